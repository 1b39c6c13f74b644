"""Which failures mean "a dependency is down, retry later" (503) rather than "our bug" (500).

``is_outage`` is the one classification; ``outage_as`` wraps a call to a dependency so that an
outage surfaces as ``DependencyUnavailable`` naming it, and anything else propagates untouched.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from eventlens.errors import ClientError, DependencyUnavailable
from eventlens.storage.metadata_backends import MetadataError

log = logging.getLogger(__name__)

# Driver exception types by module. Looked up in ``sys.modules`` rather than imported: an exception
# of a driver's type can only exist once that driver is loaded, and importing Ray or a driver at
# the moment of an outage would block the event loop (and the embedded setup may lack pymysql).
_DRIVER_ERRORS: dict[str, tuple[str, ...]] = {
    # ConnectionError covers refused/reset, auth and loading; ReadOnlyError a failover in progress
    "redis.exceptions": ("ConnectionError", "TimeoutError", "ReadOnlyError", "OutOfMemoryError"),
    # OperationalError: cannot connect, lost connection, lock wait; InterfaceError: closed socket
    "pymysql.err": ("OperationalError", "InterfaceError"),
    # transport failures, and server answers of 429/503/504 that outlived the driver's retries
    "clickhouse_connect.driver.exceptions": ("OperationalError",),
    # the chDB owner actor dead, restarting or not answering in time
    "ray.exceptions": ("RayActorError", "GetTimeoutError"),
}
# ClickHouse server error codes that are about the server's state, not the query:
# TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR, ALL_CONNECTION_TRIES_FAILED
_CLICKHOUSE_OUTAGE_CODES = frozenset({202, 209, 210, 279})
# a plain OSError (not a ConnectionError subclass) with these numbers is the network, not a file
_NETWORK_ERRNOS = frozenset({errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH})


def _driver_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name, names in _DRIVER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(t for n in names if isinstance(t := getattr(module, n, None), type))
    return tuple(found)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is unreachable, timed out or refusing work for now.

    Follows explicit causes (``raise … from``), so a wrapper around a network error counts."""
    for _ in range(8):  # a bounded walk: cause chains are short, and could in theory loop
        if isinstance(exc, ClientError):
            return False
        # MetadataError is what the metadata store raises when it cannot (re)connect
        if isinstance(exc, MetadataError | ConnectionError | TimeoutError | socket.gaierror):
            return True
        if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
            return True
        if isinstance(exc, _driver_types()):
            return True
        if getattr(exc, "code", None) in _CLICKHOUSE_OUTAGE_CODES and _is_clickhouse_error(exc):
            return True
        if exc.__cause__ is None:
            return False
        exc = exc.__cause__
    return False


def _is_clickhouse_error(exc: BaseException) -> bool:
    module = sys.modules.get("clickhouse_connect.driver.exceptions")
    return module is not None and isinstance(exc, module.DatabaseError)


# one warning per dependency per interval: an outage fails every request, the log needs one line
_LOG_EVERY_S = 10.0
_last_logged: dict[str, float] = {}


@contextmanager
def outage_as(dependency: str) -> Iterator[None]:
    """Turn an outage raised inside the block into ``DependencyUnavailable(dependency)``."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        now = time.monotonic()
        if now - _last_logged.get(dependency, float("-inf")) >= _LOG_EVERY_S:
            _last_logged[dependency] = now
            log.warning("%s unavailable: %s: %s", dependency, type(exc).__name__, exc)
        raise DependencyUnavailable(dependency) from exc
