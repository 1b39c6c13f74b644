"""A rejected input is data with a status, a short code and a message for a human."""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


def pydantic_details(exc: Any) -> list[dict[str, Any]]:
    """pydantic ValidationError → [{"loc": "payload.name", "msg": ...}] without echoing input."""
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        out.append({"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]})
    return out


def validation_message(details: list[dict[str, Any]]) -> str:
    if not details:
        return "invalid input"
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{first['loc'] or 'body'}: {first['msg']}{more}"
