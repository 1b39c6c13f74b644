"""JSON responses, and client errors as JSON bodies ``{"error", "message", "details"}``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from eventlens.errors import ClientError


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def error_response(err: ClientError, extra_headers: dict[str, str] | None = None) -> Response:
    return json_response(err.body(), err.status, {**err.headers, **(extra_headers or {})})
