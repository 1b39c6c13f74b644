"""Every insight endpoint over HTTP equals the brute-force reference on hypothesis data sets.

Rows are written the way the shards write them (events with markers, several snapshot versions
per session) straight through the chDB owner actor, into a fresh project per example; the
answers come from the running daemon over HTTP and must equal ``tests.reference.insights``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import ray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlens.storage.tables import to_columns
from tests.conftest import Creds, Daemon
from tests.reference import insights as ref
from tests.reference import paths_sample
from tests.reference.datasets import ZONES, Dataset, datasets, filters, path_shapes, ranges, sizes

pytestmark = pytest.mark.ray


def load(daemon: Daemon, creds: Creds, data: Dataset) -> None:
    """Insert the rows through the chDB owner, as a shard's flush would."""
    wh = daemon.actor("warehouse")
    for table, rows in (
        ("events", data.events),
        ("sessions", data.sessions),
        ("profile_aliases", data.aliases),
    ):
        if not rows:
            continue
        for r in rows:
            r["project_id"] = creds.project_id
        names, cols = to_columns(table, rows)
        ray.get(wh.insert_columns.remote(table, names, orjson.dumps(cols), f"t-{uuid.uuid4().hex}"))


def get(daemon: Daemon, creds: Creds, route: str, **params: Any) -> Any:
    r = daemon.http.get(f"/insights/{creds.project_id}/{route}", params=params, headers=creds.read_headers())
    assert r.status_code == 200, (route, params, r.text)
    return r.json()


@pytest.fixture(scope="module")
def daemon(embedded: Daemon) -> Daemon:
    return embedded


@settings(
    max_examples=int(os.environ.get("EVENTLENS_TEST_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets(), tz=st.sampled_from(ZONES), choice=st.data())
def test_every_endpoint_equals_the_reference(
    daemon: Daemon, data: Dataset, tz: str, choice: st.DataObject
) -> None:
    creds = daemon.new_project("ref")
    load(daemon, creds, data)
    rng = choice.draw(ranges(data, tz))
    flt = choice.draw(filters())
    bots = choice.draw(st.booleans())
    q = ref.Query(rng.start_ms, rng.end_ms, tz, flt, bots)
    events = data.events
    common = {"startDate": rng.start, "endDate": rng.end, "timezone": tz, "includeBots": str(bots).lower()}
    if flt:
        common["filters"] = json.dumps(flt)
    ctx = {"range": rng, "filters": flt, "tz": tz, "aliases": data.aliases}

    assert get(daemon, creds, "metrics", **common) == ref.metrics(events, q), ctx

    span_h = (rng.end_ms - rng.start_ms) / 3600_000
    intervals = ["hour", "day", "week", "month"] + (["minute"] if span_h <= 6 else [])
    interval = choice.draw(st.sampled_from(intervals))
    assert get(daemon, creds, "timeseries", interval=interval, **common) == ref.timeseries(
        events, q, interval
    ), ctx

    for kind in ("all", "entry", "exit"):
        assert get(daemon, creds, "pages", type=kind, **common) == ref.pages(events, q, kind), (kind, ctx)
    assert get(daemon, creds, "referrers", **common) == ref.referrers(events, q), ctx
    assert get(daemon, creds, "devices", **common) == ref.grouped(events, q, ("device", "browser", "os")), ctx
    assert get(daemon, creds, "geo", **common) == ref.grouped(events, q, ("country", "region", "city")), ctx
    dim = choice.draw(
        st.sampled_from(["browser", "country", "path", "name", "referrer_type", "properties.plan", "group"])
    )
    assert get(daemon, creds, "breakdown", dimension=dim, **common) == ref.breakdown(events, q, dim), (
        dim,
        ctx,
    )

    steps = choice.draw(st.lists(st.sampled_from([*data.names, "never"]), min_size=1, max_size=4))
    window = choice.draw(st.sampled_from([60, 1800, 7200, 86400]))
    group = choice.draw(st.sampled_from(["device", "session", "profile", "group"]))
    body = {"steps": steps, "startDate": rng.start, "endDate": rng.end, "timezone": tz, "window": window}
    body.update(groupBy=group, includeBots=bots, filters=flt)
    r = daemon.http.post(f"/insights/{creds.project_id}/funnel", json=body, headers=creds.read_headers())
    assert r.status_code == 200, r.text
    assert r.json() == ref.funnel(events, q, steps, window, group, data.alias_map()), (body, ctx)

    # comparison with the period just before
    if choice.draw(st.booleans()):
        now, before = ref.metrics(events, q), ref.metrics(events, ref.previous(q))
        expected = {**now, "previous": before, "change": ref.change(now, before)}
        assert get(daemon, creds, "metrics", compare="previous", **common) == expected, ctx
        rows = get(daemon, creds, "timeseries", interval=interval, compare="previous", **common)
        prev_rows = ref.timeseries(events, ref.previous(q), interval)
        for i, row in enumerate(rows):
            assert row.pop("previous") == (prev_rows[i] if i < len(prev_rows) else None), ctx
        assert rows == ref.timeseries(events, q, interval), ctx

    # filter pickers
    def picker(route: str, **params: Any) -> Any:
        r = daemon.http.get(
            f"/filters/{creds.project_id}/{route}", params=params, headers=creds.read_headers()
        )
        assert r.status_code == 200, (route, r.text)
        body = r.json()
        assert body["success"] is True
        return body["data"]

    # the same range, zone, filters and bots as every other route
    assert picker("event-names", **common) == ref.event_names(events, q), ctx
    event = choice.draw(st.sampled_from([None, *data.names]))
    extra = {"eventName": event} if event else {}
    assert picker("property-keys", **common, **extra) == ref.property_keys(events, q, event), ctx
    assert picker("property-values", key="plan", **common, **extra) == ref.property_values(
        events, q, "plan", event
    ), ctx
    assert picker("paths", **common) == ref.column_values(events, q, "path", page_views_only=True), ctx
    assert picker("countries", **common) == ref.column_values(events, q, "country"), ctx

    period = choice.draw(st.sampled_from(["day", "week", "month"]))
    expected = ref.retention(events, q, period, data.alias_map())
    assert get(daemon, creds, "retention", period=period, **common) == expected, (data.aliases, ctx)

    shape = choice.draw(path_shapes(data.names))
    expected = ref.paths(events, q, shape["type"], shape.get("start"), shape.get("end"), **sizes(shape))
    assert get(daemon, creds, "paths", **shape, **common) == expected, (shape, ctx)


# every route, for isolation and hostile-input checks -------------------------------------------
GET_ROUTES = [
    ("insights", "metrics", {}),
    ("insights", "timeseries", {"interval": "day"}),
    ("insights", "pages", {}),
    ("insights", "referrers", {}),
    ("insights", "devices", {}),
    ("insights", "geo", {}),
    ("insights", "breakdown", {"dimension": "browser"}),
    ("insights", "retention", {}),
    ("insights", "paths", {}),
    ("insights", "live", {}),
    ("filters", "event-names", {}),
    ("filters", "property-keys", {}),
    ("filters", "property-values", {"key": "plan"}),
    ("filters", "paths", {}),
    ("filters", "countries", {}),
]


def test_a_read_client_of_one_project_gets_403_on_every_route_of_another(daemon: Daemon) -> None:
    mine, other = daemon.new_project("a"), daemon.new_project("b")
    for prefix, route, params in GET_ROUTES:
        r = daemon.http.get(
            f"/{prefix}/{other.project_id}/{route}", params=params, headers=mine.read_headers()
        )
        assert r.status_code == 403, (route, r.text)
        assert r.json()["error"] == "wrong_project"
    r = daemon.http.post(
        f"/insights/{other.project_id}/funnel", json={"steps": ["a"]}, headers=mine.read_headers()
    )
    assert r.status_code == 403
    # and a write client may not read at all
    r = daemon.http.get(f"/insights/{mine.project_id}/metrics", headers=mine.write_headers())
    assert r.status_code == 403


def test_an_empty_project_answers_zeros_on_every_route(daemon: Daemon) -> None:
    creds = daemon.new_project("empty")
    for prefix, route, params in GET_ROUTES:
        r = daemon.http.get(
            f"/{prefix}/{creds.project_id}/{route}", params=params, headers=creds.read_headers()
        )
        assert r.status_code == 200, (route, r.text)
    m = get(daemon, creds, "metrics")
    assert m.pop("revenueByCurrency") == {}
    assert set(m.values()) == {0}
    series = get(daemon, creds, "timeseries", startDate="2026-01-01", endDate="2026-01-07", interval="day")
    assert next(row["date"] for row in series) == "2026-01-01" and len(series) == 7
    assert all(row["totalEvents"] == 0 for row in series)
    r = daemon.http.post(
        f"/insights/{creds.project_id}/funnel", json={"steps": ["a", "b"]}, headers=creds.read_headers()
    )
    assert r.json() == [
        {"name": "a", "count": 0, "conversion": 0, "conversionFromPrevious": 0, "dropoff": 0},
        {"name": "b", "count": 0, "conversion": 0, "conversionFromPrevious": 0, "dropoff": 0},
    ]


HOSTILE = [
    (
        "metrics",
        {"filters": '[{"field": "country) OR 1=1 --", "operator": "eq", "value": "x"}]'},
        400,
        "unknown field",
    ),
    (
        "metrics",
        {"filters": '[{"field": "country", "operator": "=1 OR", "value": "x"}]'},
        400,
        "unknown operator",
    ),
    ("metrics", {"filters": "[{"}, 400, "not valid JSON"),
    ("metrics", {"startDate": "2000-01-01", "endDate": "2030-01-01"}, 400, "at most"),
    ("metrics", {"startDate": "yesterday"}, 400, "startDate"),
    ("metrics", {"startDate": "2026-02-01", "endDate": "2026-01-01"}, 400, "before endDate"),
    ("metrics", {"timezone": "Mars/Olympus"}, 400, "IANA"),
    ("metrics", {"timezone": "../../etc/passwd"}, 400, "IANA"),
    ("metrics", {"compare": "always"}, 422, "compare"),
    ("timeseries", {"interval": "fortnight"}, 400, "interval"),
    (
        "timeseries",
        {"interval": "minute", "startDate": "2026-01-01", "endDate": "2026-01-31"},
        400,
        "buckets",
    ),
    ("pages", {"limit": "0"}, 422, "limit"),
    ("pages", {"type": "middle"}, 422, "type"),
    ("breakdown", {"dimension": "browser; DROP TABLE events"}, 400, "dimension"),
    ("breakdown", {}, 422, "dimension"),
    ("retention", {"period": "year"}, 422, "period"),
    ("retention", {"period": "day", "startDate": "2020-01-01", "endDate": "2026-01-01"}, 400, "period"),
    ("paths", {"start": "/", "end": "/pricing"}, 400, "not both"),
    ("paths", {"start": ""}, 400, "start"),
    ("paths", {"end": "/" * 1001}, 400, "end"),
    ("paths", {"depth": "1"}, 422, "depth"),
    ("paths", {"depth": "11"}, 422, "depth"),
    ("paths", {"width": "0"}, 422, "width"),
    ("paths", {"width": "51"}, 422, "width"),
    ("paths", {"type": "click"}, 422, "type"),
    ("paths", {"limit": "5"}, 400, "limit"),
]


@pytest.mark.parametrize(("route", "params", "status", "fragment"), HOSTILE)
def test_hostile_parameters_are_4xx_with_a_message(
    daemon: Daemon, hostile_project: Creds, route: str, params: dict[str, str], status: int, fragment: str
) -> None:
    r = daemon.http.get(
        f"/insights/{hostile_project.project_id}/{route}",
        params=params,
        headers=hostile_project.read_headers(),
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message", "details"}
    assert fragment in body["message"], body


@pytest.fixture(scope="module")
def hostile_project(daemon: Daemon) -> Creds:
    creds = daemon.new_project("hostile")
    data = Dataset(
        events=[
            {
                "_t": "events",
                "id": f"h{i}",
                "name": "page_view",
                "device_id": f"d{i}",
                "path": "/x",
                "created_at": 1_780_000_000_000 + i,
                "received_at": 1_780_000_000_000 + i,
                "properties": {"plan": "pro"},
                "country": "DE",
            }
            for i in range(3)
        ],
        sessions=[],
        first_ms=1_780_000_000_000,
        last_ms=1_780_000_000_002,
    )
    load(daemon, creds, data)
    return creds


@pytest.mark.parametrize(
    "value",
    ["' OR 1=1 --", "DE' OR '1'='1", "\\'; DROP TABLE events; --", "{f0:String}", "DE\x00", "%", "_"],
)
def test_sql_in_filter_values_is_only_a_value(daemon: Daemon, hostile_project: Creds, value: str) -> None:
    common = {"startDate": "2026-05-01", "endDate": "2026-06-30"}
    assert get(daemon, hostile_project, "metrics", **common)["totalEvents"] == 3
    for field in ("country", "properties.plan", "properties.' OR 1=1 --"):
        flt = json.dumps([{"field": field, "operator": "eq", "value": value}])
        assert get(daemon, hostile_project, "metrics", filters=flt, **common)["totalEvents"] == 0
    r = daemon.http.get(
        f"/filters/{hostile_project.project_id}/property-values",
        params={"key": value, **common},
        headers=hostile_project.read_headers(),
    )
    assert r.status_code == 200 and r.json() == {"success": True, "data": []}
    # nothing changed: the data is all still there
    assert get(daemon, hostile_project, "metrics", **common)["totalEvents"] == 3


def test_hostile_funnel_bodies_are_4xx(daemon: Daemon, hostile_project: Creds) -> None:
    url = f"/insights/{hostile_project.project_id}/funnel"
    for body, status in [
        ({"steps": []}, 422),
        ({"steps": ["a"] * 21}, 422),
        ({"steps": [""]}, 400),
        ({"steps": ["a"], "window": 0}, 422),
        ({"steps": ["a"], "groupBy": "ip"}, 422),
        ({"steps": ["a"], "filters": [{"field": "1=1", "operator": "eq", "value": 1}]}, 400),
        ({"steps": "a"}, 422),
        ({"steps": ["a"], "extra": 1}, 400),  # a key the funnel does not take, named
    ]:
        r = daemon.http.post(url, json=body, headers=hostile_project.read_headers())
        assert r.status_code == status, (body, r.text)
    r = daemon.http.post(
        url,
        content=b"{not json",
        headers={**hostile_project.read_headers(), "content-type": "application/json"},
    )
    assert r.status_code == 422


def test_paths_of_a_known_data_set_over_http(daemon: Daemon) -> None:
    """The Sankey paths of four sessions worked out by hand (tests/reference/paths_sample.py)."""
    creds = daemon.new_project("paths")
    events = paths_sample.events()
    load(daemon, creds, Dataset(events, [], paths_sample.T0, paths_sample.T0 + 5 * 3600_000))
    for params, want in paths_sample.CASES:
        assert get(daemon, creds, "paths", **paths_sample.RANGE, **params) == want, params
    # the picker of page paths keeps its own route: the paths of page views, by count
    r = daemon.http.get(
        f"/filters/{creds.project_id}/paths", params=paths_sample.RANGE, headers=creds.read_headers()
    )
    assert r.status_code == 200 and r.json()["data"][0] == {"value": "/pricing", "count": 5}, r.text


def test_answers_are_cached_until_new_data_is_flushed(daemon: Daemon) -> None:
    creds = daemon.new_project("cache")
    first = daemon.http.get(f"/insights/{creds.project_id}/metrics", headers=creds.read_headers())
    again = daemon.http.get(f"/insights/{creds.project_id}/metrics", headers=creds.read_headers())
    assert first.headers["x-cache"] == "miss" and again.headers["x-cache"] == "hit"
    assert again.json() == first.json() and first.json()["totalEvents"] == 0
    assert daemon.track(creds, {"name": "page_view", "deviceId": "cache-dev", "path": "/"}).status_code == 200
    # the flush bumps the project's data version: the next dashboard refresh sees the event
    daemon.wait_metric(creds, "totalEvents", 1, timeout=15)
    live = daemon.http.get(f"/insights/{creds.project_id}/live", headers=creds.read_headers())
    assert "x-cache" not in live.headers


@pytest.mark.redis
@pytest.mark.mariadb
def test_shared_mode_caches_in_redis_until_new_data_is_stored(shared: Daemon) -> None:
    """The same route with the same parameters: miss, hit (from Redis), then, once new events are
    stored, a miss that answers the new numbers: the flush bumped the project's data version.
    Storage is checked apart from the cache (a count through the chDB owner), so a version that
    was not bumped would show here as a stale hit, not as a wait that never ends."""
    import redis

    creds = shared.new_project("cache")
    today = datetime.now(UTC).date()
    params = {
        "startDate": (today - timedelta(days=1)).isoformat(),
        "endDate": (today + timedelta(days=1)).isoformat(),
        "timezone": "UTC",
    }
    url = f"/insights/{creds.project_id}/metrics"

    def ask(expected: str) -> bytes:
        r = shared.http.get(url, params=params, headers=creds.read_headers())
        assert r.status_code == 200, r.text
        assert r.headers["x-cache"] == expected, (expected, r.headers.get("x-cache"), r.text)
        return r.content

    first = ask("miss")
    assert json.loads(first)["totalEvents"] == 0
    assert ask("hit") == first
    store = redis.Redis.from_url(shared.settings.redis_url)
    cached = [store.get(k) for k in store.scan_iter(f"eventlens:{shared.settings.instance}:insights:*")]
    assert first in cached  # the hit came from Redis

    for i, path in enumerate(["/", "/pricing", "/docs"]):
        r = shared.track(creds, {"name": "page_view", "deviceId": f"cache-dev-{i % 2}", "path": path})
        assert r.status_code == 200, r.text
    wh = shared.actor("warehouse")

    def stored(sql: str) -> int:
        return int(ray.get(wh.query.remote(sql, {"p": creds.project_id}))[0]["n"])

    def counts() -> tuple[int, int, int]:
        """Client events, session markers and sessions stored for the project."""
        return (
            stored(
                "SELECT count() AS n FROM events WHERE project_id = {p:String} "
                "AND name NOT IN ('session_start', 'session_end')"
            ),
            stored(
                "SELECT count() AS n FROM events WHERE project_id = {p:String} "
                "AND name IN ('session_start', 'session_end')"
            ),
            stored("SELECT uniqExact(session_id) AS n FROM sessions WHERE project_id = {p:String}"),
        )

    # the events, the sessions' markers and snapshots may come in separate inserts: wait for all,
    # so the answer below is the final one (each insert bumps the version on its own)
    deadline = time.monotonic() + 30
    while (now := counts()) != (3, 2, 2):
        assert time.monotonic() < deadline, f"stored (events, markers, sessions) {now}, expected (3, 2, 2)"
        time.sleep(0.1)

    fresh = ask("miss")
    body = json.loads(fresh)
    assert (body["totalEvents"], body["totalPageViews"], body["uniqueVisitors"]) == (3, 3, 2), body
    assert body["totalSessions"] == 2, body
    assert ask("hit") == fresh
