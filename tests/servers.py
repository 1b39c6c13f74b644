"""The suite's MariaDB and Redis servers: where they are, and what a test needing one does when it
does not answer.

A test marked ``mariadb`` or ``redis`` needs that server (``tests/conftest.py`` probes it before
the test's fixtures are set up). When it does not answer, the test is skipped, unless
``EVENTLENS_REQUIRE_SERVICES=1`` (exported by ``scripts/test.sh``, so in CI): then it fails, with
a message naming the server and its address. A marker given ``suite_server=False`` says the test
touches the client library but not the suite's server (a closed port, a private server it starts
itself): it is never probed.

The addresses default to the local servers ``scripts/services.sh`` starts; set
``EVENTLENS_TEST_MARIADB_URL`` (``mysql://user[:password]@host:port``, no database) or
``EVENTLENS_TEST_REDIS_URL`` to use others.
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

REQUIRE_ENV = "EVENTLENS_REQUIRE_SERVICES"
MARIADB_URL = os.environ.get("EVENTLENS_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306").rstrip("/")
REDIS_URL = os.environ.get("EVENTLENS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_mariadb = urlsplit(MARIADB_URL)
# pymysql.connect's keyword arguments for the suite's MariaDB (no database)
MARIADB: dict[str, Any] = {
    "host": _mariadb.hostname or "127.0.0.1",
    "port": _mariadb.port or 3306,
    "user": unquote(_mariadb.username or "root"),
    "password": unquote(_mariadb.password or ""),
}
_redis = urlsplit(REDIS_URL)
ADDRESSES = {
    "mariadb": f"{MARIADB['host']}:{MARIADB['port']}",
    "redis": f"{_redis.hostname or '127.0.0.1'}:{_redis.port or 6379}",
}
NAMES = {"mariadb": "MariaDB", "redis": "Redis"}
PROBE_TIMEOUT_S = 3


def required() -> bool:
    """Whether an unreachable server fails the tests that need it (else they are skipped)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def problem(service: str) -> str | None:
    """Why the suite's ``service`` does not answer (None: it does). Asked once per process."""
    try:
        if service == "redis":
            import redis

            client = redis.Redis.from_url(
                REDIS_URL, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
            )
            try:
                client.ping()
            finally:
                client.close()
        elif service == "mariadb":
            import pymysql

            pymysql.connect(**MARIADB, connect_timeout=PROBE_TIMEOUT_S).close()
        else:
            raise ValueError(f"unknown service {service!r}")
    except ValueError:
        raise
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def need(service: str) -> None:
    """Skip the calling test (or fail it, under ``EVENTLENS_REQUIRE_SERVICES=1``) if the suite's
    ``service`` does not answer."""
    why = problem(service)
    if why is None:
        return
    message = f"{NAMES[service]} is not reachable at {ADDRESSES[service]} ({why})"
    if required():
        pytest.fail(f"{message}; {REQUIRE_ENV}=1, so a test that needs it fails", pytrace=False)
    pytest.skip(f"{message}; set {REQUIRE_ENV}=1 to fail instead")
