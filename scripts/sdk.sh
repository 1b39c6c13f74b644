#!/usr/bin/env bash
# Install the OpenPanel SDKs the SDK tests drive (tests/sdk/package.json, pinned by its
# package-lock.json) from the npm registry, with the machine's Node.js and npm.
set -euo pipefail
cd "$(dirname "$0")/../tests/sdk"
# Debian packages: the package lists are refreshed once, only when something must be installed
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt_install nodejs npm
  else
    echo "sdk.sh: Node.js and npm are needed (apt-get install nodejs npm)" >&2
    exit 1
  fi
fi
stamp=node_modules/.installed
# reinstall only when the lock file changed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
# the web SDK bundled for the test page (tests/sdk/page.html), as a site's build would
if [ ! -f build/web.js ] || [ web_entry.js -nt build/web.js ] || [ "$stamp" -nt build/web.js ]; then
  ./node_modules/.bin/esbuild web_entry.js --bundle --format=iife --log-level=warning --outfile=build/web.js
fi
# headless Chromium for the web SDK (Debian's package; playwright-core drives it)
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt_install chromium
  else
    echo "sdk.sh: Chromium is needed for the web SDK test (apt-get install chromium)" >&2
    exit 1
  fi
fi
