"""Rejected input as data: a status, a short code, a message that says what to fix, details.

Ingest and insights raise the same ``ClientError``; the HTTP layer turns it into a JSON body
``{"error", "message", "details"}`` (``eventlens.api.errors``). pydantic errors are formatted in one
place, without echoing the input back. A dependency outage is a ``DependencyUnavailable``: a 503
the client should retry (which failures count as an outage: ``eventlens.outage``).
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


# Seconds a client waits before retrying when a dependency is down (and what /ready announces):
# long enough for a restart or failover, short enough that SDK retry queues stay small.
OUTAGE_RETRY_AFTER_S = 5

# what each dependency is called in messages; the keys make the error codes (``<key>_unavailable``)
DEPENDENCIES: dict[str, str] = {
    "rate_limiter": "the rate limiter (Redis)",
    "metadata": "the metadata database",
    "storage": "the event storage (ClickHouse)",
    "presence": "the live visitor counter",
}


class DependencyUnavailable(ClientError):
    """A dependency is down: nothing was done, the same request may be sent again later.

    The message names the dependency only, never the failure text, which may hold hosts or URLs."""

    def __init__(self, dependency: str) -> None:
        super().__init__(
            503,
            f"{dependency}_unavailable",
            f"{DEPENDENCIES[dependency]} is unavailable; nothing was done, retry after Retry-After seconds",
            headers={"retry-after": str(OUTAGE_RETRY_AFTER_S)},
        )
        self.dependency = dependency


def pydantic_details(exc: Any) -> list[dict[str, Any]]:
    """A pydantic ``ValidationError`` (or FastAPI's ``RequestValidationError``) →
    ``[{"loc": "payload.name", "msg": ...}]``; only location and message, the input is not echoed."""
    out = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append({"loc": ".".join(str(p) for p in err["loc"]), "msg": msg})
    return out


def validation_message(details: list[dict[str, Any]], default: str = "invalid input") -> str:
    """One line naming the first problem (and how many more there are)."""
    if not details:
        return default
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{first['loc'] or 'body'}: {first['msg']}{more}"
