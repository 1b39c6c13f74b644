#!/usr/bin/env bash
# Install and run the daemon on embedded defaults (chDB + SQLite under ./eventlens-data, no
# database server). Extra arguments go to `eventlens serve` (e.g. --port 8080 --data-dir /var/lib/el).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/eventlens serve "$@"
