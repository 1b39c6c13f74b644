"""Insight, filter and health routes (FastAPI): the slower, richer side of the API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from eventlens.api.auth import Authenticator, Caller
from eventlens.api.errors import ApiError, json_response
from eventlens.api.querier import Querier
from eventlens.insights import queries
from eventlens.insights.params import parse_range

log = logging.getLogger(__name__)


def create_api(auth: Authenticator, querier: Querier, presence: Any, metadata_ping: Any) -> FastAPI:
    app = FastAPI(title="Event Lens", docs_url="/docs", openapi_url="/openapi.json")

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        msg = f"{details[0]['loc']}: {details[0]['msg']}" if details else "invalid request"
        return json_response({"error": "invalid_request", "message": msg, "details": details}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": code, "message": str(exc.detail), "details": []}, exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:
        log.exception("insights failed")
        return json_response({"error": "internal", "message": "internal error", "details": []}, 500)

    async def reader(request: Request, project_id: str) -> Caller:
        return await auth.authenticate(request.headers, "read", project_id)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        storage = await querier.ping()
        try:
            await asyncio.wait_for(asyncio.to_thread(metadata_ping), 3)
            meta = True
        except Exception:
            meta = False
        ok = storage and meta
        body = {"status": "ready" if ok else "unavailable", "clickhouse": storage, "metadata": meta}
        return json_response(body, 200 if ok else 503, None if ok else {"retry-after": "5"})

    @app.get("/insights/{project_id}/live")
    async def live(project_id: str, request: Request) -> Response:
        await reader(request, project_id)
        count = await presence.count.remote(project_id)
        return json_response({"count": int(count)})

    @app.get("/insights/{project_id}/metrics")
    async def metrics(
        project_id: str,
        request: Request,
        startDate: str | None = None,
        endDate: str | None = None,
        timezone: str | None = None,
        includeBots: bool = False,
    ) -> Response:
        await reader(request, project_id)
        rng = parse_range(startDate, endDate, timezone)
        rows = await querier.query(queries.metrics_sql(), queries.base_params(project_id, rng, includeBots))
        return json_response(queries.shape_metrics(rows[0] if rows else {}))

    return app
