"""HTTP errors as JSON bodies ``{"error", "message", "details"}`` (CONTRACT 1)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class ApiError(Exception):
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

    def response(self, extra_headers: dict[str, str] | None = None) -> Response:
        return json_response(
            {"error": self.code, "message": self.message, "details": self.details},
            self.status,
            {**self.headers, **(extra_headers or {})},
        )


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")
