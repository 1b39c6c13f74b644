"""Rejected input as data: a status, a short code, a message that says what to fix, details.

Ingest and insights raise the same ``ClientError``; the HTTP layer turns it into a JSON body
``{"error", "message", "details"}`` (``eventlens.api.errors``). pydantic errors are formatted in one
place, without echoing the input back.
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
