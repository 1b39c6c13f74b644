#!/usr/bin/env bash
# Install everything and run the whole test suite against real Ray Serve, chDB, MariaDB and Redis.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crash -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
scripts/services.sh
scripts/sdk.sh
# the services were just started: a test that cannot reach MariaDB or Redis is a failure here, not
# a skip (tests/servers.py)
export EVENTLENS_REQUIRE_SERVICES=1
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
# pytest's 5 means "no tests collected": that is a failure here, never a silent pass
exit $rc
