"""Insight, filter and health routes (FastAPI): the slower, richer side of the API.

The insight and filter routes are data: ``ROUTES`` gives each one's method, path, parameter model,
compute function and cache name, and one loop registers them. Each such route authenticates a read
client for the project, then answers from the response cache or computes through the storage ``Reader``.
The parameter models, computes and SQL builders live in ``eventlens.insights`` by topic.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from eventlens.api.auth import Authenticator
from eventlens.api.errors import error_response, json_response
from eventlens.api.goals import GoalsLoader, register_goals
from eventlens.api.legacy import register_legacy
from eventlens.errors import OUTAGE_RETRY_AFTER_S, ClientError, pydantic_details, validation_message
from eventlens.insights import breakdowns, browse, catalogue, goals, journeys, metrics, people, replay
from eventlens.insights.cache import InsightCache, NoVersions
from eventlens.insights.models import (
    BreakdownParams,
    ColumnValuesParams,
    EventNamesParams,
    EventsParams,
    FunnelParams,
    GoalsParams,
    ListParams,
    MetricsParams,
    PagesParams,
    ParamsError,
    PathsParams,
    ProfileParams,
    ProfilesParams,
    PropertyKeysParams,
    PropertyValuesParams,
    RankedListParams,
    RetentionParams,
    Scoped,
    SessionsParams,
    TimeseriesParams,
)
from eventlens.insights.replay import ReplayParams
from eventlens.insights.sources import Json, Rows, Sql
from eventlens.insights.sources import Query as RunQuery
from eventlens.metrics import InsightMetrics
from eventlens.outage import outage_as
from eventlens.storage.reader import Reader

log = logging.getLogger(__name__)

# ``await compute(project_id, params, query)``: params is an instance of the route's model
Compute = Callable[[str, Any, RunQuery], Awaitable[Json]]


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST"]
    path: str
    params: type[Scoped]  # GET: read from the query string; POST: the JSON body
    compute: Compute
    name: str  # the route's name in the cache key (and in FastAPI)
    # pages of stored rows are read once each, and profiles change without a data version: not cached
    cached: bool = True

    @property
    def path_params(self) -> tuple[str, ...]:
        """Path parameters besides the project (``{profile_id:path}`` → ``profile_id``)."""
        return tuple(n for n in re.findall(r"\{(\w+)(?::\w+)?\}", self.path) if n != "project_id")


_I = "/insights/{project_id}"
_F = "/filters/{project_id}"
ROUTES: tuple[Route, ...] = (
    Route("GET", f"{_I}/metrics", MetricsParams, metrics.metrics, "metrics"),
    Route("GET", f"{_I}/timeseries", TimeseriesParams, metrics.timeseries, "timeseries"),
    Route("GET", f"{_I}/pages", PagesParams, breakdowns.pages, "pages"),
    Route("GET", f"{_I}/referrers", RankedListParams, breakdowns.referrers, "referrers"),
    Route("GET", f"{_I}/devices", ListParams, breakdowns.devices, "devices"),
    Route("GET", f"{_I}/geo", RankedListParams, breakdowns.geo, "geo"),
    Route("GET", f"{_I}/breakdown", BreakdownParams, breakdowns.breakdown, "breakdown"),
    Route("POST", f"{_I}/funnel", FunnelParams, people.funnel, "funnel"),
    Route("GET", f"{_I}/retention", RetentionParams, people.retention, "retention"),
    # the Sankey paths; named "journeys" because "paths" is the picker of page paths below
    Route("GET", f"{_I}/paths", PathsParams, journeys.paths, "journeys"),
    Route("GET", f"{_I}/goals", GoalsParams, goals.goals, "goals"),
    Route("GET", f"{_F}/event-names", EventNamesParams, catalogue.event_names, "event-names"),
    Route("GET", f"{_F}/property-keys", PropertyKeysParams, catalogue.property_keys, "property-keys"),
    Route("GET", f"{_F}/property-values", PropertyValuesParams, catalogue.property_values, "property-values"),
    Route("GET", f"{_F}/paths", ColumnValuesParams, catalogue.paths, "paths"),
    Route("GET", f"{_F}/countries", ColumnValuesParams, catalogue.countries, "countries"),
    # seeing what landed: pages of stored rows, newest first
    Route("GET", f"{_I}/events", EventsParams, browse.events, "events", cached=False),
    Route("GET", f"{_I}/sessions", SessionsParams, browse.sessions, "sessions", cached=False),
    Route("GET", f"{_I}/profiles", ProfilesParams, browse.profiles, "profiles", cached=False),
    Route(
        "GET", f"{_I}/profiles/{{profile_id:path}}", ProfileParams, browse.profile, "profile", cached=False
    ),
    Route("GET", f"{_I}/sessions/{{session_id}}/replay", ReplayParams, replay.replay, "replay", cached=False),
)


class Answers:
    """Authenticates the caller, then answers from the response cache or computes and stores."""

    def __init__(
        self,
        auth: Authenticator,
        reader: Reader,
        cache: InsightCache,
        metrics: InsightMetrics | None = None,
        goals: GoalsLoader | None = None,
    ) -> None:
        self.auth = auth
        self.reader = reader
        self.cache = cache
        self.metrics = metrics or InsightMetrics()
        self.goals = goals  # None: the project has no goals (an app over test doubles)

    async def query(self, sql: Sql) -> Rows:
        with outage_as("storage"):
            return await self.reader.query(*sql)

    async def answer(self, route: Route, request: Request, project_id: str, params: Scoped) -> Response:
        caller = await self.auth.authenticate(request.headers, "read", project_id)
        # the project's currency where the request names none: part of the cache key from here
        if caller is not None:  # (test doubles of the authenticator answer None)
            params.use_project_defaults(caller.client.project_currency)
        if params.needs_goals():
            # before the cache key (it holds the goals' definitions) and before any SQL is built
            params.use_goals(await self.goals.get(project_id) if self.goals is not None else [])
        t0 = time.perf_counter()
        if not route.cached:
            body = orjson.dumps(await route.compute(project_id, params, self.query))
            self.metrics.answered(route.name, "off", time.perf_counter() - t0)
            return Response(body, media_type="application/json")
        cached = "miss"
        try:
            key = await self.cache.key(route.name, project_id, params.cache_fields())
            hit = await self.cache.get(key)
        except Exception:  # a cache outage slows answers down, it never fails them
            log.warning("insight cache unavailable", exc_info=True)
            key, hit, cached = None, None, "error"
        if hit is not None:
            self.metrics.answered(route.name, "hit", time.perf_counter() - t0)
            return Response(hit, media_type="application/json", headers={"x-cache": "hit"})
        if key is None and cached == "miss":
            cached = "off"  # caching is off (no shared place for data versions)
        body = orjson.dumps(await route.compute(project_id, params, self.query))
        try:
            await self.cache.set(key, body)
        except Exception:
            log.warning("insight cache unavailable", exc_info=True)
        self.metrics.answered(route.name, cached, time.perf_counter() - t0)
        return Response(body, media_type="application/json", headers={"x-cache": "miss"})


def once(request: Request) -> None:
    """A query parameter given twice is a 400 naming it: FastAPI would read one and drop the other."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise ParamsError(
                ClientError(400, "repeated_parameter", f"parameter {name[:40]!r} is given more than once")
            )
        seen.add(name)


def endpoint(route: Route, answers: Answers) -> Callable[..., Awaitable[Response]]:
    """The FastAPI endpoint of a route: its signature tells FastAPI where the model comes from."""

    async def run(project_id: str, request: Request, params: Scoped, **path: str) -> Response:
        once(request)
        if route.method == "POST" and request.query_params:
            name = next(iter(request.query_params))
            raise ParamsError(
                ClientError(
                    400,
                    "unknown_parameter",
                    f"parameter {name[:40]!r} does not apply: this route takes its parameters in the JSON body",
                )
            )
        return await answers.answer(route, request, project_id, params.with_path(path))

    source = Body() if route.method == "POST" else Query()
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    run.__signature__ = inspect.Signature(
        [
            inspect.Parameter("project_id", kind, annotation=str),
            inspect.Parameter("request", kind, annotation=Request),
            inspect.Parameter("params", kind, annotation=Annotated[route.params, source]),
            *(inspect.Parameter(name, kind, annotation=str) for name in route.path_params),
        ],
        return_annotation=Response,
    )
    return run


class AuthFirstRoute(APIRoute):
    """FastAPI reads a route's parameters, and so checks their rules, before the endpoint
    authenticates the caller: a broken rule (``ParamsError``) is shown only to a caller who may
    read the project; anyone else gets the authentication error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ParamsError:
                auth: Authenticator = request.app.state.auth
                await auth.authenticate(request.headers, "read", request.path_params["project_id"])
                raise

        return run


def register(app: FastAPI, answers: Answers) -> None:
    for route in ROUTES:
        app.router.add_api_route(
            route.path,
            endpoint(route, answers),
            methods=[route.method],
            name=route.name,
            route_class_override=AuthFirstRoute,
        )


# errors as JSON bodies {"error", "message", "details"} --------------------------------------------
async def _client_error(_: Request, exc: ClientError) -> Response:
    return error_response(exc)


async def _validation(_: Request, exc: RequestValidationError) -> Response:
    details = pydantic_details(exc)
    msg = validation_message(details, "invalid request")
    return json_response({"error": "invalid_request", "message": msg, "details": details}, 422)


async def _http(_: Request, exc: StarletteHTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response({"error": code, "message": str(exc.detail), "details": []}, exc.status_code)


async def _internal(_: Request, exc: Exception) -> Response:
    log.exception("insights failed")
    return json_response({"error": "internal", "message": "internal error", "details": []}, 500)


def live_takes_no_parameters(names: list[str]) -> ClientError:
    """``/live`` counts the devices (never bots) seen in the live window: no range, filter or bot
    switch applies to it, and one silently ignored would answer another question than asked."""
    names = sorted(set(names))
    return ClientError(
        400,
        "unknown_parameter",
        f"/live takes no parameters ({', '.join(repr(n[:40]) for n in names[:5])}): it counts the "
        "visitors seen in the live window, never bots; remove them",
        [{"parameter": n[:40]} for n in names[:20]],
    )


async def _probe(ping: Callable[[], object], timeout_s: float = 3.0) -> bool:
    """A blocking ping, off the event loop and bounded: True when it returns, False when it fails."""
    try:
        await asyncio.wait_for(asyncio.to_thread(ping), timeout_s)
        return True
    except Exception:
        return False


def create_api(
    auth: Authenticator,
    reader: Reader,
    presence: Any,
    metadata_ping: Callable[[], object],
    cache: InsightCache | None = None,
    redis_ping: Callable[[], object] | None = None,
    goals_loader: GoalsLoader | None = None,
) -> FastAPI:
    """The API application. ``redis_ping`` (None without Redis) raises when Redis does not answer.
    Goals are read from ``auth``'s store unless ``goals_loader`` is given."""
    if goals_loader is None and isinstance(auth, Authenticator):
        goals_loader = GoalsLoader(auth.store)
    app = FastAPI(title="Event Lens", docs_url="/docs", openapi_url="/openapi.json")
    app.state.auth = auth
    app.add_exception_handler(ClientError, _client_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        checks = [reader.ping(), _probe(metadata_ping)]
        if redis_ping is not None:
            checks.append(_probe(redis_ping))
        results = await asyncio.gather(*checks)
        body: dict[str, Any] = {"clickhouse": results[0], "metadata": results[1]}
        if redis_ping is not None:
            body["redis"] = results[2]
        ok = all(results)
        body = {"status": "ready" if ok else "unavailable", **body}
        headers = None if ok else {"retry-after": str(OUTAGE_RETRY_AFTER_S)}
        return json_response(body, 200 if ok else 503, headers)

    @app.get("/insights/{project_id}/live")
    async def live(project_id: str, request: Request) -> Response:
        await auth.authenticate(request.headers, "read", project_id)
        if request.query_params:
            raise live_takes_no_parameters(list(request.query_params))
        with outage_as("presence"):
            count = await presence.count.remote(project_id)
        return json_response({"count": int(count)})  # never cached

    register(app, Answers(auth, reader, cache or InsightCache(None, NoVersions(), 0), goals=goals_loader))
    register_goals(app, auth, goals_loader)  # a project's goals, for its root clients
    register_legacy(app)  # the older SDKs' /profile and /event: 410 naming the replacement
    return app
