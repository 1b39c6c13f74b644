// The page's analytics, as a site sets up @openpanel/web (bundled by scripts/sdk.sh with esbuild).
// The client id and the API address come from the page's query string.
import { OpenPanel } from "@openpanel/web";

const params = new URLSearchParams(window.location.search);
window.op = new OpenPanel({
  clientId: params.get("clientId"),
  apiUrl: params.get("apiUrl"),
  trackScreenViews: true,
  trackOutgoingLinks: true,
  trackAttributes: true,
  // chunks every half second instead of every 10 s, so a test need not wait
  sessionReplay: { enabled: true, flushIntervalMs: 500, maskAllText: false },
});
