// @openpanel/web (the npm package, bundled unmodified) in headless Chromium (Debian's), against an
// Event Lens daemon: the page tracks screen views, clicks and outgoing links by itself, records
// the session (rrweb), and the script calls the public methods a site calls.
//
//   node tests/sdk/web_client.mjs <pageUrl> <apiUrl> <clientId> <tag>
//
// Prints one JSON object: every request the SDK made to /track (message type, status, answer).
import { chromium } from "playwright-core";

const [pageUrl, apiUrl, clientId, tag] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const requests = [];
try {
  const context = await browser.newContext({
    // a visitor's browser, not "HeadlessChrome" (which is classified as a bot)
    userAgent:
      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
  });
  const page = await context.newPage();
  page.on("response", async (res) => {
    if (!res.url().startsWith(apiUrl) || res.request().method() !== "POST") return;
    let type = null;
    try {
      type = JSON.parse(res.request().postData() || "{}").type ?? null;
    } catch {}
    requests.push({ path: new URL(res.url()).pathname, type, status: res.status(), answer: await res.text() });
  });
  const url = `${pageUrl}?clientId=${encodeURIComponent(clientId)}&apiUrl=${encodeURIComponent(apiUrl)}`;
  await page.goto(url);
  await page.waitForFunction(() => window.op && window.op.getSessionId() !== "", null, { timeout: 15000 });
  await page.click("#buy"); // data-track: a plan_selected event with its data-* attributes
  await page.evaluate(async (t) => {
    const op = window.op;
    await op.identify({ profileId: `${t}-user`, firstName: "Ada", email: `${t}@example.com` });
    await op.track("signup", { plan: "pro" });
    await op.revenue(19.5, { currency: "EUR" });
    await op.upsertGroup({ id: `${t}-acme`, type: "company", name: "Acme" });
    await op.setGroup(`${t}-acme`);
    await op.increment({ profileId: `${t}-user`, property: "visits" });
    await op.decrement({ profileId: `${t}-user`, property: "credits", value: 2 });
    history.pushState({}, "", "/checkout"); // a screen view of the new path
    for (let i = 0; i < 30; i++) {
      const li = document.createElement("li");
      li.textContent = `row ${i}`;
      document.getElementById("list").appendChild(li); // something for the recorder
    }
  }, tag);
  await page.waitForTimeout(1500); // replay chunks go out every 500 ms
  await page.evaluate(() => window.dispatchEvent(new Event("pagehide"))); // the last chunk
  await page.waitForTimeout(1000);
  const ids = await page.evaluate(() => ({ deviceId: window.op.getDeviceId(), sessionId: window.op.getSessionId() }));
  console.log(JSON.stringify({ requests, ...ids }));
} finally {
  await browser.close();
}
