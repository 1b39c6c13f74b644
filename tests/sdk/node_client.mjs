// Every public method of @openpanel/sdk (the npm package, unmodified) against an Event Lens daemon.
//
//   node tests/sdk/node_client.mjs <apiUrl> <clientId> <clientSecret> <tag>
//
// Prints one JSON object: every HTTP request the SDK made (message type, status, answer) and the
// ids it ended with. The SDK swallows a refused message (it retries, then logs and returns null),
// so the requests are recorded by wrapping fetch: the test asserts on what the server answered.
import { OpenPanel } from "@openpanel/sdk";

const [apiUrl, clientId, clientSecret, tag] = process.argv.slice(2);
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  const sent = init.body ? JSON.parse(init.body) : null;
  const res = await realFetch(url, init);
  requests.push({
    path: new URL(String(url)).pathname,
    type: sent?.type ?? null,
    status: res.status,
    answer: await res.clone().text(),
  });
  return res;
};

const op = new OpenPanel({ clientId, clientSecret, apiUrl });
op.api.maxRetries = 0; // a refused message shows as its status once, not after 3.5 s of retries

const user = `${tag}-user`;
await op.track("screen_view", { __path: "/pricing", __title: "Pricing", plan: "pro" });
await op.identify({
  profileId: user,
  firstName: "Ada",
  lastName: "Lovelace",
  email: `${tag}@example.com`,
  properties: { tier: "gold" },
});
await op.increment({ profileId: user, property: "logins", value: 2 });
await op.decrement({ profileId: user, property: "credits" });
await op.track("signup", { plan: "pro" });
await op.revenue(49.99, { currency: "EUR" });
await op.upsertGroup({ id: `${tag}-acme`, type: "company", name: "Acme", properties: { seats: 12 } });
await op.setGroup(`${tag}-acme`);
await op.setGroups([`${tag}-acme`, `${tag}-beta`]);
await op.track("report_viewed", { report: "weekly" });
op.alias({ profileId: user, alias: `${tag}-alias` }); // deprecated in 1.3.1: sends nothing
const deviceId = op.getDeviceId();
const sessionId = op.getSessionId();
const fetched = await op.fetchDeviceId();
op.clear();
await op.track("after_clear");

console.log(JSON.stringify({ requests, deviceId, sessionId, fetched, cleared: op.getDeviceId() }));
