"""The route table and the HTTP layer over fakes (no Ray, no ClickHouse): registration, status
codes and their order, error bodies, the response cache."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from eventlens.api.insights import ROUTES, create_api
from eventlens.api.legacy import GONE
from eventlens.errors import ClientError
from eventlens.insights.cache import InsightCache, LocalStore
from eventlens.storage.versions import VersionCounter

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DOCUMENTED = {
    ("GET", "/insights/{project_id}/metrics"),
    ("GET", "/insights/{project_id}/timeseries"),
    ("GET", "/insights/{project_id}/pages"),
    ("GET", "/insights/{project_id}/referrers"),
    ("GET", "/insights/{project_id}/devices"),
    ("GET", "/insights/{project_id}/geo"),
    ("GET", "/insights/{project_id}/breakdown"),
    ("POST", "/insights/{project_id}/funnel"),
    ("GET", "/insights/{project_id}/retention"),
    ("GET", "/insights/{project_id}/paths"),
    ("GET", "/insights/{project_id}/goals"),
    ("GET", "/filters/{project_id}/event-names"),
    ("GET", "/filters/{project_id}/property-keys"),
    ("GET", "/filters/{project_id}/property-values"),
    ("GET", "/filters/{project_id}/paths"),
    ("GET", "/filters/{project_id}/countries"),
    ("GET", "/insights/{project_id}/events"),
    ("GET", "/insights/{project_id}/sessions"),
    ("GET", "/insights/{project_id}/profiles"),
    ("GET", "/insights/{project_id}/profiles/{profile_id:path}"),
    ("GET", "/insights/{project_id}/sessions/{session_id}/replay"),
}
# a project's goals, for its root clients (eventlens.api.goals)
GOALS_API = {
    ("GET", "/projects/{project_id}/goals"),
    ("POST", "/projects/{project_id}/goals"),
    ("DELETE", "/projects/{project_id}/goals/{goal_id}"),
}
NAMED_APART = {"/insights/{project_id}/paths": "journeys"}
READ = {"x-test-reader": "yes"}


class Auth:
    async def authenticate(
        self, headers: Mapping[str, str], need: str, project_id: str | None = None
    ) -> None:
        if headers.get("x-test-reader") != "yes":
            raise ClientError(401, "missing_credentials", "no credentials")
        if project_id != "p1":
            raise ClientError(403, "wrong_project", "not this project")


class FakeReader:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.sent.append((sql, params))
        return []

    async def ping(self) -> bool:
        return True


class Presence:
    class count:  # a Ray actor method handle: ``await presence.count.remote(p)``
        @staticmethod
        async def remote(project: str) -> int:
            return 7


class Versions:
    def __init__(self) -> None:
        self.counter = VersionCounter()

    async def get(self, project: str) -> str | None:
        return self.counter.get(project)


def client(cache: InsightCache | None = None) -> tuple[TestClient, FakeReader]:
    querier = FakeReader()
    app = create_api(Auth(), querier, Presence(), lambda: None, cache)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False), querier


def test_the_table_holds_every_documented_route_once() -> None:
    assert {(r.method, r.path) for r in ROUTES} == DOCUMENTED and len(ROUTES) == len(DOCUMENTED)
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    for r in ROUTES:
        # named by the last fixed segment, singular before a path parameter (profiles/{id}: profile)
        fixed = [seg for seg in r.path.split("/") if not seg.startswith("{")][-1]
        expected = fixed.removesuffix("s") if r.path.endswith("}") else fixed
        # but the Sankey paths: the picker /filters/{p}/paths had the name (and its cache keys) first
        expected = NAMED_APART.get(r.path, expected)
        assert r.name == expected, r.path
        # computes are module-level coroutines of the insights package, not closures
        assert inspect.iscoroutinefunction(r.compute) and "<locals>" not in r.compute.__qualname__
        assert r.compute.__module__.startswith("eventlens.insights.")


def test_create_api_registers_each_route_once() -> None:
    app: FastAPI = create_api(Auth(), FakeReader(), Presence(), lambda: None)  # type: ignore[arg-type]
    seen = Counter(
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    )
    legacy = {(m, p) for p in GONE for m in ("POST", "OPTIONS")}
    for key in (
        DOCUMENTED
        | legacy
        | GOALS_API
        | {("GET", "/health"), ("GET", "/ready"), ("GET", "/insights/{project_id}/live")}
    ):
        assert seen[key] == 1, key
    assert len(seen) == len(DOCUMENTED) + len(legacy) + len(GOALS_API) + 3


def test_query_parameters_keep_their_names_and_defaults() -> None:
    app = create_api(Auth(), FakeReader(), Presence(), lambda: None)  # type: ignore[arg-type]
    spec = app.openapi()["paths"]

    def names(path: str) -> dict[str, Any]:
        return {p["name"]: p["schema"].get("default") for p in spec[path]["get"]["parameters"]}

    common = {"project_id": None, "startDate": None, "endDate": None, "timezone": None, "filters": None}
    assert names("/insights/{project_id}/pages") == {
        **common,
        "includeBots": False,
        "currency": None,
        "orderBy": "count",
        "limit": 50,
        "type": "all",
    }
    assert names("/filters/{project_id}/event-names") == {**common, "includeBots": False, "limit": 500}
    assert spec["/insights/{project_id}/funnel"]["post"]["requestBody"]["required"] is True


@pytest.mark.parametrize(
    ("headers", "project", "params", "status", "code"),
    [
        (READ, "p1", {"dimension": "bad"}, 400, "invalid_dimension"),
        ({}, "p1", {"dimension": "bad"}, 401, "missing_credentials"),
        (READ, "p2", {"dimension": "bad"}, 403, "wrong_project"),
        ({}, "p1", {"dimension": "browser", "limit": "0"}, 422, "invalid_request"),
        ({}, "p1", {}, 422, "invalid_request"),
        (READ, "p1", {"dimension": "browser", "startDate": "yesterday"}, 400, "invalid_date"),
        ({}, "p1", {"dimension": "browser", "startDate": "yesterday"}, 401, "missing_credentials"),
        (READ, "p1", {"dimension": "browser"}, 200, None),
    ],
)
def test_rules_are_shown_only_to_readers_and_field_errors_to_anyone(
    headers: dict[str, str], project: str, params: dict[str, str], status: int, code: str | None
) -> None:
    http, _ = client()
    r = http.get(f"/insights/{project}/breakdown", params=params, headers=headers)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"] == code and set(r.json()) == {"error", "message", "details"}


def test_funnel_rules_and_body_errors() -> None:
    http, querier = client()
    url = "/insights/p1/funnel"
    assert http.post(url, json={"steps": [""]}, headers=READ).json()["error"] == "invalid_step"
    assert http.post(url, json={"steps": [""]}).status_code == 401
    assert http.post(url, json={"steps": [""], "window": 0}, headers=READ).status_code == 422
    r = http.post(url, json={"steps": ["a", "b"], "window": 60}, headers=READ)
    assert r.status_code == 200 and [s["name"] for s in r.json()] == ["a", "b"]
    assert querier.sent[-1][1]["window_ms"] == 60_000 and querier.sent[-1][1]["steps"] == ["a", "b"]


def test_retention_and_interval_rules_are_400s_naming_the_problem() -> None:
    http, _ = client()
    r = http.get(
        "/insights/p1/retention",
        params={"period": "day", "startDate": "2020-01-01", "endDate": "2026-01-01"},
        headers=READ,
    )
    assert (
        r.status_code == 400 and r.json()["error"] == "too_many_periods" and "period" in r.json()["message"]
    )
    r = http.get("/insights/p1/timeseries", params={"interval": "fortnight"}, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "invalid_interval"


def test_catalogue_pickers_take_zone_and_filters() -> None:
    """They answered 200 from the UTC-day catalogue before, whatever the zone and filters."""
    http, querier = client()
    params = {"startDate": "2026-01-01", "endDate": "2026-01-02", "timezone": "Asia/Tokyo"}
    for route in ("event-names", "property-keys"):
        r = http.get(f"/filters/p1/{route}", params={**params, "filters": "[{"}, headers=READ)
        assert r.status_code == 400 and r.json()["error"] == "invalid_filter", route
        r = http.get(f"/filters/p1/{route}", params=params, headers=READ)
        assert r.status_code == 200 and r.json() == {"success": True, "data": []}
        sql, bound = querier.sent[-1]
        assert bound["tz"] == "Asia/Tokyo" and bound["start"].hour == 15  # Tokyo's midnight in UTC
        assert "FROM event_catalog" in sql and "FROM events FINAL" in sql
        flt = '[{"field": "country", "operator": "eq", "value": "JP"}]'
        r = http.get(f"/filters/p1/{route}", params={**params, "filters": flt}, headers=READ)
        sql, bound = querier.sent[-1]
        assert r.status_code == 200 and "event_catalog" not in sql and bound["f0"] == "JP"


@pytest.mark.parametrize(
    ("url", "params", "name"),
    [
        ("/insights/p1/metrics", {"interval": "hour"}, "interval"),
        ("/insights/p1/metrics", {"timeZone": "Asia/Tokyo"}, "timeZone"),
        ("/insights/p1/pages", {"compare": "previous"}, "compare"),
        ("/insights/p1/breakdown", {"dimension": "browser", "period": "week"}, "period"),
        ("/filters/p1/event-names", {"eventName": "signup"}, "eventName"),
        ("/filters/p1/countries", {"key": "plan"}, "key"),
    ],
)
def test_a_parameter_the_route_does_not_take_is_a_400_naming_it(
    url: str, params: dict[str, str], name: str
) -> None:
    http, querier = client()
    r = http.get(url, params=params, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter", r.text
    assert repr(name) in r.json()["message"] and not querier.sent
    # shown to readers only, like every rule
    assert http.get(url, params=params).status_code == 401


def test_a_parameter_given_twice_is_a_400_naming_it() -> None:
    http, querier = client()
    url = "/insights/p1/metrics?timezone=UTC&timezone=Asia/Tokyo"
    r = http.get(url, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "repeated_parameter" and "'timezone'" in r.text
    assert not querier.sent and http.get(url).status_code == 401


def test_live_takes_no_parameters() -> None:
    http, _ = client()
    for name in ("startDate", "timezone", "filters", "includeBots"):
        r = http.get("/insights/p1/live", params={name: "x"}, headers=READ)
        assert r.status_code == 400 and r.json()["error"] == "unknown_parameter" and repr(name) in r.text
    assert http.get("/insights/p1/live", params={"timezone": "UTC"}).status_code == 401
    assert http.get("/insights/p1/live", headers=READ).json() == {"count": 7}


def test_funnel_keys_it_does_not_take_are_400s_naming_them() -> None:
    http, querier = client()
    r = http.post("/insights/p1/funnel", json={"steps": ["a"], "interval": "day"}, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter" and "'interval'" in r.text
    # the funnel's parameters are in its body: one in the query string is not ignored either
    r = http.post("/insights/p1/funnel?timezone=Asia/Tokyo", json={"steps": ["a"]}, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter" and "'timezone'" in r.text
    assert not querier.sent
    assert http.post("/insights/p1/funnel?timezone=UTC", json={"steps": ["a"]}).status_code == 401


def test_answers_are_cached_per_route_project_and_parameter() -> None:
    http, querier = client(InsightCache(LocalStore(60), Versions(), 60))

    def cache_state(url: str, **params: str) -> str:
        r = http.get(url, params=params, headers=READ)
        assert r.status_code == 200, r.text
        return r.headers["x-cache"]

    assert cache_state("/insights/p1/pages") == "miss"
    assert cache_state("/insights/p1/pages") == "hit"
    assert cache_state("/insights/p1/pages", limit="3") == "miss"
    assert cache_state("/insights/p1/pages", limit="3") == "hit"
    assert cache_state("/insights/p1/referrers") == "miss"
    assert cache_state("/insights/p1/pages", type="entry") == "miss"
    assert len(querier.sent) == 4
    live = http.get("/insights/p1/live", headers=READ)
    assert live.json() == {"count": 7} and "x-cache" not in live.headers


@pytest.mark.parametrize(
    "query", ["includeBots=true", "includeBots=false", "startDate=2026-01-01&filters=[]"]
)
def test_live_rejects_the_parameters_it_cannot_apply(query: str) -> None:
    """/live never counts bots and has no range or filters: a parameter it would ignore is a 400
    naming it (only to a caller who may read the project)."""
    http, _ = client()
    assert http.get(f"/insights/p1/live?{query}").status_code == 401
    r = http.get(f"/insights/p1/live?{query}", headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter", r.text
    names = sorted({kv.split("=")[0] for kv in query.split("&")})
    assert [d["parameter"] for d in r.json()["details"]] == names
    assert all(n in r.json()["message"] for n in names)
    assert http.get("/insights/p1/live", headers=READ).json() == {"count": 7}


def test_without_a_cache_every_answer_is_a_miss() -> None:
    http, _ = client()
    for _ in range(2):
        assert http.get("/insights/p1/metrics", headers=READ).headers["x-cache"] == "miss"


def test_health_ready_and_unknown_routes() -> None:
    http, _ = client()
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready")
    assert ready.status_code == 200 and ready.json() == {
        "status": "ready",
        "clickhouse": True,
        "metadata": True,
    }
    missing = http.get("/insights/p1/nothing", headers=READ)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert http.delete("/insights/p1/metrics").json()["error"] == "method_not_allowed"


def test_a_compute_failure_is_a_500_body() -> None:
    http, querier = client()

    async def broken(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        raise RuntimeError("storage down")

    querier.query = broken  # type: ignore[method-assign]
    r = http.get("/insights/p1/metrics", headers=READ)
    assert r.status_code == 500 and r.json() == {
        "error": "internal",
        "message": "internal error",
        "details": [],
    }


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1" * 400, "1" * 5000])
def test_numbers_beyond_a_float_are_400s_never_500s(literal: str) -> None:
    """As a GET route's filter (orjson) and in the funnel's body (Python's json): 400, never 500."""
    http, querier = client()
    flt = '[{"field": "properties.n", "operator": "gt", "value": %s}]' % literal  # noqa: UP031
    r = http.get("/insights/p1/metrics", params={"filters": flt}, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "invalid_filter" and "filters" in r.json()["message"]
    body = '{"steps": ["a"], "filters": %s}' % flt  # noqa: UP031
    r = http.post("/insights/p1/funnel", content=body, headers={**READ, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    if len(literal) < 4300:  # Python's json refuses longer integers before the filters are read
        assert r.json()["error"] == "invalid_filter" and r.json()["message"].startswith("filters[0]: ")
    assert not querier.sent


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/profile", "identify"),
        ("/profile/increment", "increment"),
        ("/profile/decrement", "decrement"),
        ("/event", "track"),
    ],
)
def test_the_older_sdks_routes_are_410_naming_the_replacement(path: str, kind: str) -> None:
    http, querier = client()
    # no credentials needed to learn a route is gone; a web page may read the answer
    r = http.post(
        path,
        json={"profileId": "u1", "property": "n", "value": 1},
        headers={"origin": "https://shop.example"},
    )
    assert r.status_code == 410, r.text
    body = r.json()
    assert (
        body["error"] == "gone"
        and "POST /track" in body["message"]
        and f'"type": "{kind}"' in body["message"]
    )
    assert body["details"] == [{"replacement": "POST /track", "type": kind}]
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    pre = http.options(
        path, headers={"origin": "https://shop.example", "access-control-request-method": "POST"}
    )
    assert pre.status_code == 204 and "POST" in pre.headers["access-control-allow-methods"]
    assert "openpanel-client-id" in pre.headers["access-control-allow-headers"]
    assert http.get(path).status_code == 405 and not querier.sent


def test_paths_parameters_rules_and_bound_values() -> None:
    """The Sankey paths route: its defaults, a 400 naming start/end, 422 outside depth/width, and
    the start or end value only ever a bound parameter (never in the SQL text)."""
    app = create_api(Auth(), FakeReader(), Presence(), lambda: None)  # type: ignore[arg-type]
    spec = app.openapi()["paths"]["/insights/{project_id}/paths"]["get"]["parameters"]
    defaults = {p["name"]: p["schema"].get("default") for p in spec}
    assert {k: defaults[k] for k in ("type", "start", "end", "depth", "width")} == {
        "type": "page_view",
        "start": None,
        "end": None,
        "depth": 5,
        "width": 10,
    }
    http, querier = client()
    url = "/insights/p1/paths"
    r = http.get(url, params={"start": "/a", "end": "/b"}, headers=READ)
    assert r.status_code == 400 and r.json()["error"] == "invalid_anchor"
    assert "start" in r.json()["message"] and "end" in r.json()["message"]
    assert http.get(url, params={"start": "/a", "end": "/b"}).status_code == 401  # rules: readers only
    for name, value in (("start", ""), ("end", "x" * 1001)):
        r = http.get(url, params={name: value}, headers=READ)
        assert r.status_code == 400 and r.json()["message"].startswith(name), (name, r.text)
    for params in ({"depth": "1"}, {"depth": "11"}, {"width": "0"}, {"width": "51"}, {"type": "all"}):
        r = http.get(url, params=params, headers=READ)
        assert r.status_code == 422 and next(iter(params)) in r.json()["message"], (params, r.text)
    hostile = "/x' OR 1=1 --"
    r = http.get(url, params={"end": hostile, "type": "event", "depth": "3", "width": "2"}, headers=READ)
    assert r.status_code == 200 and r.json() == {"nodes": [], "links": []}
    sql, bound = querier.sent[-1]
    assert hostile not in sql and bound["anchor"] == hostile
    assert (bound["depth"], bound["width"]) == (3, 2)
