"""Insight, filter and health routes (FastAPI): the slower, richer side of the API.

Each insight route authenticates a read client for the project, checks its parameters, and
answers from the response cache or from ClickHouse through the ``Querier``. SQL comes from the
pure builders in ``eventlens.insights.queries``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from eventlens.api.auth import Authenticator
from eventlens.api.errors import error_response, json_response
from eventlens.errors import ClientError, pydantic_details, validation_message
from eventlens.insights import queries
from eventlens.insights.buckets import bucket_start, buckets, check_interval
from eventlens.insights.cache import InsightCache, NoVersions
from eventlens.insights.filters import parse_filters
from eventlens.insights.params import parse_range
from eventlens.insights.scope import Scope
from eventlens.storage.reader import Reader

log = logging.getLogger(__name__)

Limit = Query(50, ge=1, le=1000, description="Rows to return")
Json = dict[str, Any] | list[Any]


class FunnelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[str] = Field(min_length=1, max_length=20)
    startDate: str | None = None
    endDate: str | None = None
    timezone: str | None = None
    window: int = Field(86400, ge=1, le=90 * 86400, description="seconds from the first step")
    groupBy: Literal["device", "session", "profile"] = "device"
    filters: list[Any] | None = None
    includeBots: bool = False


def common_params(
    startDate: str | None = None,
    endDate: str | None = None,
    timezone: str | None = None,
    filters: str | None = None,
    includeBots: bool = False,
) -> dict[str, Any]:
    """The parameters every insight route shares (CONTRACT 3); also the cache key's base."""
    return {
        "startDate": startDate,
        "endDate": endDate,
        "timezone": timezone,
        "filters": filters,
        "includeBots": includeBots,
    }


def catalog_params(
    startDate: str | None = None, endDate: str | None = None, includeBots: bool = False
) -> dict[str, Any]:
    """The catalogue pickers (event names, property keys) take no zone or filters: UTC days."""
    return common_params(startDate, endDate, None, None, includeBots)


# module level: with postponed annotations FastAPI resolves these names in the module's globals
EventName = Annotated[str | None, Query(max_length=200)]
PickerLimit = Annotated[int, Query(ge=1, le=5000)]
Common = Annotated[dict[str, Any], Depends(common_params)]
Catalog = Annotated[dict[str, Any], Depends(catalog_params)]


def create_api(
    auth: Authenticator,
    querier: Reader,
    presence: Any,
    metadata_ping: Any,
    cache: InsightCache | None = None,
) -> FastAPI:
    app = FastAPI(title="Event Lens", docs_url="/docs", openapi_url="/openapi.json")
    cache = cache or InsightCache(None, NoVersions(), 0)

    @app.exception_handler(ClientError)
    async def _api_error(_: Request, exc: ClientError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        details = pydantic_details(exc)
        msg = validation_message(details, "invalid request")
        return json_response({"error": "invalid_request", "message": msg, "details": details}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": code, "message": str(exc.detail), "details": []}, exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> Response:
        log.exception("insights failed")
        return json_response({"error": "internal", "message": "internal error", "details": []}, 500)

    async def query(sql_params: queries.Sql) -> list[dict[str, Any]]:
        return await querier.query(*sql_params)

    async def cached(
        request: Request,
        project_id: str,
        route: str,
        params: dict[str, Any],
        compute: Callable[[], Awaitable[Json]],
    ) -> Response:
        """Authenticate, then answer from the cache or compute and store."""
        await auth.authenticate(request.headers, "read", project_id)
        try:
            key = await cache.key(route, project_id, params)
            hit = await cache.get(key)
        except Exception:  # a cache outage slows answers down, it never fails them
            log.warning("insight cache unavailable", exc_info=True)
            key, hit = None, None
        if hit is not None:
            return Response(hit, media_type="application/json", headers={"x-cache": "hit"})
        body = orjson.dumps(await compute())
        try:
            await cache.set(key, body)
        except Exception:
            log.warning("insight cache unavailable", exc_info=True)
        return Response(body, media_type="application/json", headers={"x-cache": "miss"})

    def scope_of(project_id: str, p: dict[str, Any]) -> Scope:
        rng = parse_range(p.get("startDate"), p.get("endDate"), p.get("timezone"))
        return Scope(project_id, rng, parse_filters(p.get("filters")), bool(p.get("includeBots")))

    # health ------------------------------------------------------------------------------------
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

    # insights ----------------------------------------------------------------------------------
    @app.get("/insights/{project_id}/live")
    async def live(project_id: str, request: Request) -> Response:
        await auth.authenticate(request.headers, "read", project_id)
        count = await presence.count.remote(project_id)
        return json_response({"count": int(count)})  # never cached

    @app.get("/insights/{project_id}/metrics")
    async def metrics(
        project_id: str,
        request: Request,
        p: Common,
        compare: Literal["previous"] | None = None,
    ) -> Response:
        p = {**p, "compare": compare}

        async def compute() -> Json:
            scope = scope_of(project_id, p)
            rows = await query(queries.metrics_sql(scope))
            body = queries.shape_metrics(rows[0] if rows else {})
            if compare:
                prev_rows = await query(queries.metrics_sql(scope.previous()))
                previous = queries.shape_metrics(prev_rows[0] if prev_rows else {})
                body["previous"] = previous
                body["change"] = queries.compare(body, previous)
            return body

        return await cached(request, project_id, "metrics", p, compute)

    async def _series(scope: Scope, interval: str) -> list[dict[str, Any]]:
        (ev, ses) = queries.timeseries_sql(scope, interval)
        ev_rows, ses_rows = await asyncio.gather(query(ev), query(ses))
        return queries.shape_timeseries(scope, interval, ev_rows, ses_rows)

    @app.get("/insights/{project_id}/timeseries")
    async def timeseries(
        project_id: str,
        request: Request,
        p: Common,
        interval: str = "day",
        compare: Literal["previous"] | None = None,
    ) -> Response:
        p = {**p, "interval": interval, "compare": compare}

        async def compute() -> Json:
            check_interval(interval)
            scope = scope_of(project_id, p)
            rows = await _series(scope, interval)
            if compare:
                before = await _series(scope.previous(), interval)
                # aligned by position: bucket i of this period against bucket i of the previous one
                for i, row in enumerate(rows):
                    row["previous"] = before[i] if i < len(before) else None
            return rows

        return await cached(request, project_id, "timeseries", p, compute)

    @app.get("/insights/{project_id}/pages")
    async def pages(
        project_id: str,
        request: Request,
        p: Common,
        limit: int = Limit,
        type: Literal["all", "entry", "exit"] = "all",
    ) -> Response:
        p = {**p, "limit": limit, "type": type}

        async def compute() -> Json:
            rows = await query(queries.pages_sql(scope_of(project_id, p), type, limit))
            return queries.int_rows(rows, "views", "uniqueVisitors")

        return await cached(request, project_id, "pages", p, compute)

    def _list_route(route: str, build: Callable[[Scope, int], queries.Sql], counts: tuple[str, ...]) -> None:
        """A ranked list over the common parameters and ``limit``."""

        @app.get(f"/insights/{{project_id}}/{route}", name=route)
        async def ranked(project_id: str, request: Request, p: Common, limit: int = Limit) -> Response:
            p = {**p, "limit": limit}

            async def compute() -> Json:
                return queries.int_rows(await query(build(scope_of(project_id, p), limit)), *counts)

            return await cached(request, project_id, route, p, compute)

    _list_route("referrers", queries.referrers_sql, ("visits", "uniqueVisitors"))
    _list_route("devices", queries.devices_sql, ("count", "uniqueVisitors"))
    _list_route("geo", queries.geo_sql, ("count", "uniqueVisitors"))

    @app.get("/insights/{project_id}/breakdown")
    async def breakdown(
        project_id: str, request: Request, p: Common, dimension: str, limit: int = Limit
    ) -> Response:
        p = {**p, "limit": limit, "dimension": dimension}

        async def compute() -> Json:
            dim = "name" if dimension in ("event", "event_name") else dimension
            if dim.startswith("properties."):
                if not 0 < len(dim) - len("properties.") <= 200:
                    raise ClientError(
                        400, "invalid_dimension", "properties.<key> needs a key of 1-200 characters"
                    )
            elif dim not in queries.BREAKDOWN_DIMENSIONS:
                raise ClientError(
                    400,
                    "invalid_dimension",
                    f"dimension {dimension[:60]!r} is not one of {', '.join(queries.BREAKDOWN_DIMENSIONS)}"
                    " or properties.<key>",
                )
            rows = await query(queries.breakdown_sql(scope_of(project_id, p), dim, limit))
            return queries.int_rows(rows, "count", "uniqueVisitors")

        return await cached(request, project_id, "breakdown", p, compute)

    @app.post("/insights/{project_id}/funnel")
    async def funnel(project_id: str, request: Request, body: FunnelBody = Body(...)) -> Response:  # noqa: B008
        p = body.model_dump()

        async def compute() -> Json:
            for i, step in enumerate(body.steps):
                if not 0 < len(step) <= 200:
                    raise ClientError(
                        400, "invalid_step", f"steps[{i}] must be an event name of 1-200 characters"
                    )
            scope = scope_of(project_id, p)
            rows = await query(queries.funnel_sql(scope, body.steps, body.window, body.groupBy))
            return queries.shape_funnel(body.steps, rows)

        return await cached(request, project_id, "funnel", p, compute)

    @app.get("/insights/{project_id}/retention")
    async def retention(
        project_id: str, request: Request, p: Common, period: Literal["day", "week", "month"] = "day"
    ) -> Response:
        p = {**p, "period": period}

        async def compute() -> Json:
            scope = scope_of(project_id, p)
            # cohorts x periods grows quadratically: keep it to what a table can show
            n = len(buckets(scope.rng.start, scope.rng.end, period, scope.tz))
            if n > 400:
                raise ClientError(
                    400, "too_many_periods", f"{n} {period}s in range; at most 400 — use a wider period"
                )
            last = bucket_start(scope.rng.end - timedelta(milliseconds=1), period, scope.tz)
            rows = await query(queries.retention_sql(scope, period))
            return queries.shape_retention(rows, last.astimezone(scope.tz).date().isoformat(), period)

        return await cached(request, project_id, "retention", p, compute)

    # filter pickers ----------------------------------------------------------------------------
    def success(data: list[Any]) -> Json:
        return {"success": True, "data": data}

    @app.get("/filters/{project_id}/event-names")
    async def event_names(
        project_id: str, request: Request, p: Catalog, limit: PickerLimit = 500
    ) -> Response:
        p = {**p, "limit": limit}

        async def compute() -> Json:
            rows = await query(queries.event_names_sql(scope_of(project_id, p), limit))
            return success(queries.int_rows(rows, "count"))

        return await cached(request, project_id, "event-names", p, compute)

    @app.get("/filters/{project_id}/property-keys")
    async def property_keys(
        project_id: str, request: Request, p: Catalog, eventName: EventName = None, limit: PickerLimit = 500
    ) -> Response:
        p = {**p, "limit": limit, "eventName": eventName}

        async def compute() -> Json:
            rows = await query(queries.property_keys_sql(scope_of(project_id, p), eventName, limit))
            return success(queries.int_rows(rows, "count"))

        return await cached(request, project_id, "property-keys", p, compute)

    @app.get("/filters/{project_id}/property-values")
    async def property_values(
        project_id: str,
        request: Request,
        p: Common,
        key: Annotated[str, Query(min_length=1, max_length=200)],
        eventName: EventName = None,
        limit: PickerLimit = 100,
    ) -> Response:
        p = {**p, "limit": limit, "eventName": eventName, "key": key}

        async def compute() -> Json:
            sql = queries.property_values_sql(scope_of(project_id, p), key, eventName, limit)
            return success(queries.int_rows(await query(sql), "count"))

        return await cached(request, project_id, "property-values", p, compute)

    def _column_route(route: str, column: str, page_views_only: bool) -> None:
        @app.get(f"/filters/{{project_id}}/{route}", name=f"filters_{column}")
        async def values(project_id: str, request: Request, p: Common, limit: PickerLimit = 500) -> Response:
            p = {**p, "limit": limit}

            async def compute() -> Json:
                sql = queries.column_values_sql(scope_of(project_id, p), column, limit, page_views_only)
                return success(queries.int_rows(await query(sql), "count"))

            return await cached(request, project_id, route, p, compute)

    _column_route("paths", "path", True)
    _column_route("countries", "country", False)

    return app
