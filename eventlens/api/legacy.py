"""Routes of older OpenPanel SDKs that are gone: ``410 Gone`` naming what replaced each.

Before ``POST /track`` took a ``type``, the SDKs sent ``POST /event`` (an event) and ``POST
/profile``, ``/profile/increment``, ``/profile/decrement`` (profile updates). Their bodies are
exactly the ``payload`` of today's ``/track`` types, so a caller moves by wrapping the body:
``{"type": "identify", "payload": <the old body>}``. They are answered by the API application
(``/track`` is the ingest application's prefix and these paths are not under it), which logs
nothing; so they are refused, never half-served. No credentials are needed to learn that a route
is gone; the answer carries CORS headers so a web page can read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.responses import Response

from eventlens.api.errors import json_response

# old path → (the /track type that replaced it, the fields of its payload)
GONE: dict[str, tuple[str, str]] = {
    "/profile": ("identify", "profileId, firstName, lastName, email, avatar, properties"),
    "/profile/increment": ("increment", "profileId, property, value"),
    "/profile/decrement": ("decrement", "profileId, property, value"),
    "/event": ("track", "name, properties, timestamp, profileId, …"),
}


def gone_body(path: str) -> dict[str, object]:
    kind, fields = GONE[path]
    return {
        "error": "gone",
        "message": (
            f"POST {path} was removed with the older SDKs: send POST /track with"
            f' {{"type": "{kind}", "payload": {{{fields}}}}} (the old body is the payload), or'
            " update the SDK"
        ),
        "details": [{"replacement": "POST /track", "type": kind}],
    }


def _endpoint(path: str) -> Callable[[Request], Awaitable[Response]]:
    async def gone(request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = {"access-control-allow-origin": origin, "vary": "Origin"} if origin else {}
        if request.method == "OPTIONS":  # the browser's preflight: let it read the 410
            return Response(
                status_code=204,
                headers={
                    "access-control-allow-origin": origin or "*",
                    "vary": "Origin",
                    "access-control-allow-methods": "POST, OPTIONS",
                    "access-control-allow-headers": "content-type, openpanel-client-id,"
                    " openpanel-client-secret, openpanel-sdk-name, openpanel-sdk-version",
                    "access-control-max-age": "86400",
                },
            )
        return json_response(gone_body(path), 410, cors)

    return gone


def register_legacy(app: FastAPI) -> None:
    for path in GONE:
        app.add_api_route(path, _endpoint(path), methods=["POST", "OPTIONS"], include_in_schema=False)
