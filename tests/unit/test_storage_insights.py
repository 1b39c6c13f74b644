"""The storage suite's insight queries: every insight and filter route's compute (its SQL builders)
run against the storage suite's ClickHouse and must equal the brute-force reference.

The same check as tests/serve/test_insights_http.py without Ray, Serve and HTTP: rows are
inserted with deduplication tokens the way the shards write them (every batch twice, so a replay
must land once), and each route's compute runs its SQL on the ClickHouse in
EVENTLENS_TEST_CLICKHOUSE_URL when set (a ClickHouse server, or a cluster's Distributed tables
with EVENTLENS_TEST_CLICKHOUSE_CLUSTER), else on an embedded chDB.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlens.api.insights import ROUTES
from eventlens.errors import ClientError
from eventlens.goals import Goal
from eventlens.insights.models import ParamsError
from eventlens.insights.sources import Rows, Sql
from eventlens.storage.migrations import migrate_clickhouse
from eventlens.storage.tables import to_columns
from tests.reference import insights as ref
from tests.reference import paths_sample
from tests.reference.datasets import (
    NOT_NUMBERS,
    NUMBERS,
    NUMERIC_PLANS,
    ZONES,
    Dataset,
    datasets,
    filters,
    local_midnight_ms,
    path_shapes,
    ranges,
    sizes,
    whole_range,
)

pytestmark = [pytest.mark.storage, pytest.mark.chdb]

BY_NAME = {route.name: route for route in ROUTES}


@pytest.fixture(scope="module")
def wh(storage_warehouse: Any) -> Any:
    migrate_clickhouse(storage_warehouse)
    return storage_warehouse


def load(wh: Any, project_id: str, data: Dataset) -> None:
    """Insert the rows as a shard's flush would, each batch twice with its token (a replay)."""
    for table, rows in (
        ("events", data.events),
        ("sessions", data.sessions),
        ("profile_aliases", data.aliases),
    ):
        if not rows:
            continue
        for r in rows:
            r["project_id"] = project_id
        names, cols = to_columns(table, rows)
        token = f"t-{uuid.uuid4().hex}"
        wh.insert_columns(table, names, cols, token)
        wh.insert_columns(table, names, cols, token)


def call(
    wh: Any,
    project_id: str,
    route: str,
    path: dict[str, str] | None = None,
    goals: list[Goal] | None = None,
    **params: Any,
) -> Any:
    """The route's answer as its JSON body: parameters validated by its model, the project's
    ``goals`` given as the HTTP layer gives them, SQL run on ``wh``."""
    spec = BY_NAME[route]

    async def query(sql: Sql) -> Rows:
        return wh.query(*sql)

    model = spec.params.model_validate(params).with_path(path or {})
    if model.needs_goals():
        model.use_goals(goals or [])
    return orjson.loads(orjson.dumps(asyncio.run(spec.compute(project_id, model, query))))


@settings(
    max_examples=int(os.environ.get("EVENTLENS_TEST_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=datasets(), tz=st.sampled_from(ZONES), choice=st.data())
def test_every_insight_query_equals_the_reference(
    wh: Any, data: Dataset, tz: str, choice: st.DataObject
) -> None:
    project = f"st-{uuid.uuid4().hex[:12]}"
    load(wh, project, data)
    events = data.events
    # a replayed batch landed once: as many distinct rows as inserted
    stored = wh.query("SELECT count() AS n FROM events WHERE project_id = {p:String}", {"p": project})
    assert stored == [{"n": len(events)}]

    rng = choice.draw(ranges(data, tz))
    flt = choice.draw(filters())
    bots = choice.draw(st.booleans())
    # the project's goals, and maybe a goal filter (on every route below)
    defined = choice.draw(goal_sets(data.names))
    ref_flt = list(flt)
    if choice.draw(st.integers(0, 3)) == 0:
        goal = choice.draw(st.sampled_from(defined))
        op = choice.draw(st.sampled_from(["is", "isNot"]))
        flt = [*flt, {"field": "goal", "operator": op, "value": goal.name}]
        ref_flt = [*ref_flt, {"field": "goal", "operator": op, "goal": goal.definition()}]
    q = ref.Query(rng.start_ms, rng.end_ms, tz, ref_flt, bots)
    common: dict[str, Any] = {"startDate": rng.start, "endDate": rng.end, "timezone": tz, "includeBots": bots}
    if flt:
        common["filters"] = json.dumps(flt)
    ctx = {"range": rng, "filters": flt, "tz": tz, "aliases": data.aliases}

    def get(route: str, **params: Any) -> Any:
        return call(wh, project, route, goals=defined, **params)

    # conversions per goal, and against the period before
    definitions = [g.definition() for g in defined]
    assert get("goals", **common) == ref.goals(events, q, definitions), (definitions, ctx)
    expected = ref.goals_compared(events, q, definitions)
    assert get("goals", compare="previous", **common) == expected, (definitions, ctx)

    assert get("metrics", **common) == ref.metrics(events, q), ctx
    # revenue in another currency than the default (USD): mixed currencies are never added
    cur = choice.draw(st.sampled_from(["EUR", "jpy", "GBP"]))
    assert get("metrics", currency=cur, **common) == ref.metrics(events, q, cur.upper()), ctx
    span_h = (rng.end_ms - rng.start_ms) / 3600_000
    interval = choice.draw(
        st.sampled_from(["hour", "day", "week", "month"] + (["minute"] if span_h <= 6 else []))
    )
    assert get("timeseries", interval=interval, **common) == ref.timeseries(events, q, interval), ctx
    expected = ref.timeseries(events, q, interval, cur.upper())
    assert get("timeseries", interval=interval, currency=cur, **common) == expected, ctx
    for kind in ("all", "entry", "exit"):
        assert get("pages", type=kind, **common) == ref.pages(events, q, kind), (kind, ctx)
    # orderBy=revenue: visit attributes credited through the visit, the path by the event's own
    by_rev = {"orderBy": "revenue", "currency": cur, **common}
    kind = choice.draw(st.sampled_from(["all", "entry", "exit"]))
    assert get("pages", type=kind, **by_rev) == ref.pages(events, q, kind, currency=cur.upper()), (kind, ctx)
    assert get("referrers", **by_rev) == ref.referrers(events, q, currency=cur.upper()), ctx
    geo_cols = ("country", "region", "city")
    assert get("geo", **by_rev) == ref.grouped(events, q, geo_cols, currency=cur.upper()), ctx
    rdim = choice.draw(st.sampled_from(["country", "path", "referrer_type", "referrer_name", "utm_campaign"]))
    expected = ref.breakdown(events, q, rdim, currency=cur.upper())
    assert get("breakdown", dimension=rdim, **by_rev) == expected, (rdim, ctx)
    assert get("referrers", **common) == ref.referrers(events, q), ctx
    assert get("devices", **common) == ref.grouped(events, q, ("device", "browser", "os")), ctx
    assert get("geo", **common) == ref.grouped(events, q, ("country", "region", "city")), ctx
    dim = choice.draw(
        st.sampled_from(["browser", "country", "path", "name", "referrer_type", "properties.plan", "group"])
    )
    assert get("breakdown", dimension=dim, **common) == ref.breakdown(events, q, dim), (dim, ctx)

    steps = choice.draw(st.lists(st.sampled_from([*data.names, "never"]), min_size=1, max_size=4))
    window = choice.draw(st.sampled_from([60, 1800, 7200, 86400]))
    group = choice.draw(st.sampled_from(["device", "session", "profile", "group"]))
    body = {"steps": steps, "startDate": rng.start, "endDate": rng.end, "timezone": tz, "window": window}
    body.update(groupBy=group, includeBots=bots, filters=flt)
    assert get("funnel", **body) == ref.funnel(events, q, steps, window, group, data.alias_map()), (body, ctx)

    period = choice.draw(st.sampled_from(["day", "week", "month"]))
    expected = ref.retention(events, q, period, data.alias_map())
    assert get("retention", period=period, **common) == expected, (data.aliases, ctx)
    # groups (B2B accounts) as the units: a group is active when an event carrying it is
    expected = ref.retention(events, q, period, group_by="group")
    assert get("retention", period=period, groupBy="group", **common) == expected, ctx

    # comparison with the period just before
    now, before = ref.metrics(events, q), ref.metrics(events, ref.previous(q))
    assert get("metrics", compare="previous", **common) == {
        **now,
        "previous": before,
        "change": ref.change(now, before),
    }, ctx

    # filter pickers: the same range, zone, filters and bots as every other route
    def picker(route: str, **params: Any) -> Any:
        answer = get(route, **params)
        assert answer["success"] is True
        return answer["data"]

    assert picker("event-names", **common) == ref.event_names(events, q), ctx
    event = choice.draw(st.sampled_from([None, *data.names]))
    extra = {"eventName": event} if event else {}
    assert picker("property-keys", **common, **extra) == ref.property_keys(events, q, event), ctx
    assert picker("property-values", key="plan", **common, **extra) == ref.property_values(
        events, q, "plan", event
    ), ctx
    assert picker("paths", **common) == ref.column_values(events, q, "path", page_views_only=True), ctx
    assert picker("countries", **common) == ref.column_values(events, q, "country"), ctx

    # Sankey paths (the route /insights/{p}/paths, named "journeys")
    shape = choice.draw(path_shapes(data.names))
    expected = ref.paths(events, q, shape["type"], shape.get("start"), shape.get("end"), **sizes(shape))
    assert get("journeys", **shape, **common) == expected, (shape, ctx)
    # and over all the data, where sessions keep more of their steps (longer paths, folding)
    whole, wq = whole_range(data, bots)
    expected = ref.paths(events, wq, shape["type"], shape.get("start"), shape.get("end"), **sizes(shape))
    assert get("journeys", **shape, **whole) == expected, (shape, whole)


GOAL_PATHS = ["/docs/*", "/*", "/Docs*", "/**", "/pricing", "/", "/d*s/a", "/nowhere/*", "*"]


@st.composite
def goal_sets(draw: st.DrawFn, names: list[str]) -> list[Goal]:
    """A page-view goal with a pattern (a glob or an exact path), an event goal, and an event goal
    with a property match."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    pool = [*names, "never"]
    plan = draw(st.sampled_from(["free", "pro", "10", "", "x'); DROP TABLE events; --"]))
    return [
        Goal(id="g1", project_id="p", name="Page", kind="page_view", path=draw(st.sampled_from(GOAL_PATHS)),
             created_at=t),
        Goal(id="g2", project_id="p", name="Event", kind="event", event=draw(st.sampled_from(pool)),
             created_at=t),
        Goal(id="g3", project_id="p", name="Event with plan", kind="event", event=draw(st.sampled_from(pool)),
             property_key="plan", property_value=plan, created_at=t),
    ]  # fmt: skip


def test_pickers_count_the_zones_days_and_the_filters(wh: Any) -> None:
    """Events every 40 minutes over three UTC days: a local day starts inside a UTC day, so the
    catalogue's days and the raw edges must add up to the zone's day (they counted UTC days and
    ignored the filters before)."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    t0 = int(datetime(2026, 3, 27, tzinfo=UTC).timestamp() * 1000)  # Berlin changes clocks on the 29th
    events = [
        {
            "_t": "events",
            "id": f"k{i}",
            "name": ["page_view", "signup", "click"][i % 3],
            "device_id": f"d{i % 7}",
            "country": ["DE", "IN", ""][i % 4 % 3],
            "is_bot": int(i % 11 == 0),
            "created_at": t0 + i * 40 * 60_000,
            "received_at": t0 + i * 40 * 60_000,
            "properties": {f"k{i % 5}": "v", **({"plan": "pro"} if i % 2 else {})},
        }
        for i in range(3 * 36 + 5)
    ]
    load(wh, project, Dataset(events, [], t0, events[-1]["created_at"]))
    name_in = [{"field": "name", "operator": "in", "value": ["signup", "click"]}]
    country = [{"field": "country", "operator": "eq", "value": "DE"}]
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Pacific/Auckland"):
        zone = ZoneInfo(tz)
        for start, end in (
            ("2026-03-28", "2026-03-29"),
            ("2026-03-27", "2026-03-27"),
            ("2026-03-28", "2026-03-28"),
        ):
            start_ms = local_midnight_ms(date.fromisoformat(start), zone)
            end_ms = local_midnight_ms(date.fromisoformat(end) + timedelta(days=1), zone)
            for flt in ([], name_in, country, name_in + country):
                for bots in (False, True):
                    q = ref.Query(start_ms, end_ms, tz, flt, bots)
                    params: dict[str, Any] = {
                        "startDate": start,
                        "endDate": end,
                        "timezone": tz,
                        "includeBots": bots,
                    }
                    if flt:
                        params["filters"] = json.dumps(flt)
                    ctx = (tz, start, end, flt, bots)
                    assert call(wh, project, "event-names", **params)["data"] == ref.event_names(events, q), (
                        ctx
                    )
                    for event in (None, "signup"):
                        extra = {"eventName": event} if event else {}
                        got = call(wh, project, "property-keys", **params, **extra)["data"]
                        assert got == ref.property_keys(events, q, event), (*ctx, event)


def test_paths_of_a_known_data_set(wh: Any) -> None:
    """The Sankey paths of four sessions, worked out by hand (tests/reference/paths_sample.py):
    repeats collapsed, ties in time ordered by path, width folding into the other node (null),
    paths ending at ``end`` aligned on the last step; the bot's session only with includeBots."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    events = paths_sample.events()
    load(wh, project, Dataset(events, [], paths_sample.T0, paths_sample.T0 + 5 * 3600_000))
    for params, want in paths_sample.CASES:
        assert call(wh, project, "journeys", **paths_sample.RANGE, **params) == want, params
    with_bots = call(wh, project, "journeys", **paths_sample.RANGE, includeBots=True, depth=2)
    assert {"step": 2, "name": "/admin", "sessions": 1} in with_bots["nodes"]
    assert with_bots["nodes"][0] == {"step": 1, "name": "/", "sessions": 4}
    # events by name: every session is page_view then click then page_view (repeats collapsed)
    by_name = call(wh, project, "journeys", **paths_sample.RANGE, type="event", depth=4, width=50)
    assert by_name == {
        "nodes": [
            {"step": 1, "name": "page_view", "sessions": 4},
            {"step": 2, "name": "click", "sessions": 4},
            {"step": 3, "name": "page_view", "sessions": 4},
        ],
        "links": [
            {"step": 1, "source": "page_view", "target": "click", "sessions": 4},
            {"step": 2, "source": "click", "target": "page_view", "sessions": 4},
        ],
    }
    # a filter applies to the events, so to the steps: only the pages under /p are steps
    flt = json.dumps([{"field": "path", "operator": "startsWith", "value": "/p"}])
    only = call(wh, project, "journeys", **paths_sample.RANGE, filters=flt)
    assert only == {"nodes": [{"step": 1, "name": "/pricing", "sessions": 4}], "links": []}


STEPS = ["/", "/a", "/b", "/c", "/é"]


@st.composite
def dense_sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Many short sessions over a few steps, seconds apart (some at the same millisecond): paths
    long enough to fold, and nodes that paths reach from the step before and paths start at."""
    t0 = 1_780_000_000_000
    events = []
    for s in range(draw(st.integers(1, 25))):
        t = t0 + s * 60_000
        bot = int(draw(st.integers(0, 7)) == 0)
        for k in range(draw(st.integers(1, 8))):
            t += draw(st.sampled_from([0, 1, 1000]))
            view = draw(st.integers(0, 3)) > 0
            events.append(
                {
                    "_t": "events",
                    "id": f"x{s}-{k}",
                    "name": "page_view" if view else draw(st.sampled_from(["click", "signup"])),
                    "device_id": f"d{s % 4}",
                    "session_id": f"s{s}",
                    "path": draw(st.sampled_from([*STEPS, ""])),
                    "created_at": t,
                    "received_at": t,
                    "is_bot": bot,
                    "properties": {},
                }
            )
    return events


@settings(
    max_examples=int(os.environ.get("EVENTLENS_TEST_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(events=dense_sessions(), choice=st.data())
def test_paths_of_dense_sessions_equal_the_reference(
    wh: Any, events: list[dict[str, Any]], choice: st.DataObject
) -> None:
    """Several shapes per data set: from the first step, from a start, to an end (paths aligned
    on the last step start at different steps), narrow widths that fold."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    load(wh, project, Dataset(events, [], events[0]["created_at"], events[-1]["created_at"]))
    rng = {"startDate": "2026-05-01", "endDate": "2026-06-30"}
    bots = choice.draw(st.booleans())
    q = ref.Query(
        int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000),
        include_bots=bots,
    )
    for _ in range(4):
        kind = choice.draw(st.sampled_from(["page_view", "event"]))
        shape: dict[str, Any] = {"type": kind, "depth": choice.draw(st.integers(2, 6))}
        shape["width"] = choice.draw(st.integers(1, 3))
        anchor = choice.draw(st.sampled_from([None, "start", "end", "end"]))
        if anchor:
            pool = STEPS if kind == "page_view" else ["page_view", "click", "signup"]
            shape[anchor] = choice.draw(st.sampled_from(pool))
        want = ref.paths(events, q, kind, shape.get("start"), shape.get("end"), **sizes(shape))
        assert call(wh, project, "journeys", includeBots=bots, **rng, **shape) == want, shape


# stored texts at the edges of "a number", and filter values that are numbers
STORED = [
    *NUMERIC_PLANS,
    *NOT_NUMBERS,
    "0",
    "-3",
    "2.5",
    "10",
    "1e-07",
    "1e+16",
    "-1e400",
    "1\n",
    "\n1",
    "1 ",
    "١٢",
    "Infinity",
    "-inf",
    "",
]
FILTER_NUMBERS = [*NUMBERS, 2**64 - 1, -(2**63), 1e-7, 1e16, -1e300, "1e3", "inf", "10"]


def test_numeric_filter_values_filter_like_the_reference(wh: Any) -> None:
    """Each number (and the texts next to it) filters as the brute-force rules say: 1e3, -0,
    2**53 + 1, 10**30, long digit strings; inf, nan, +1, .5 and texts with spaces are not numbers."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    t0 = 1_780_000_000_000
    events = [
        {
            "_t": "events",
            "id": f"n{i}",
            "name": "click",
            "device_id": f"d{i}",
            "created_at": t0 + i,
            "received_at": t0 + i,
            "properties": {"n": text},
        }
        for i, text in enumerate(STORED)
    ]
    load(wh, project, Dataset(events, [], t0, t0 + len(events)))
    rng = {"startDate": "2026-05-01", "endDate": "2026-06-30"}
    q = ref.Query(
        int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000),
    )
    assert call(wh, project, "metrics", **rng)["totalEvents"] == len(STORED)
    for value in FILTER_NUMBERS:
        for op in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"):
            flt = [
                {"field": "properties.n", "operator": op, "value": [value] if op in ("in", "nin") else value}
            ]
            got = call(wh, project, "metrics", filters=json.dumps(flt), **rng)["totalEvents"]
            want = len(ref.selected(events, ref.Query(q.start_ms, q.end_ms, filters=flt)))
            assert got == want, (op, value)
            # the funnel's body (Python's json keeps every integer's digits) filters alike
            body = {"steps": ["click"], "filters": flt, **rng}
            assert call(wh, project, "funnel", **body)[0]["count"] == want, (op, value)


def test_every_insight_route_is_covered() -> None:
    covered = {
        "metrics",
        "timeseries",
        "pages",
        "referrers",
        "devices",
        "geo",
        "breakdown",
        "funnel",
        "retention",
        "event-names",
        "property-keys",
        "property-values",
        "paths",
        "countries",
        "journeys",
        "goals",
        # the read routes: test_the_read_routes_list_what_the_reference_selects
        "events",
        "sessions",
        "profiles",
        "profile",
        # test_the_replay_route_returns_each_chunk_once_in_order
        "replay",
    }
    assert set(BY_NAME) == covered


# session replay ----------------------------------------------------------------------------------
def test_the_replay_route_returns_each_chunk_once_in_order(wh: Any) -> None:
    """Chunks stored out of order, one of them twice (a retried request, a later copy): every page
    walked by ``nextChunk`` gives each chunk once, in order, with the events as they were sent."""
    project = f"rp-{uuid.uuid4().hex[:12]}"
    t0 = 1_795_000_000_000

    def chunk(i: int, session: str = "s1", received: int = 0) -> dict[str, Any]:
        events = [
            {"type": 2 if i == 0 else 3, "timestamp": t0 + i * 1000 + k, "data": {"k": k}} for k in range(3)
        ]
        return {
            "_t": "replays",
            "project_id": project,
            "session_id": session,
            "device_id": "d1",
            "chunk_index": i,
            "started_at": t0 + i * 1000,
            "ended_at": t0 + i * 1000 + 2,
            "events_count": 3,
            "is_full_snapshot": int(i == 0),
            "payload": orjson.dumps(events).decode(),
            "received_at": t0 + 60_000 + received,
        }

    rows = [chunk(i) for i in (4, 0, 2, 1, 3)] + [chunk(2, received=5), chunk(0, session="s2")]
    wh.insert_rows("replays", rows, f"{project}:1")
    got: list[dict[str, Any]] = []
    first = 0
    for _ in range(10):
        page = call(wh, project, "replay", {"session_id": "s1"}, fromChunk=first, limit=2)
        assert page["sessionId"] == "s1"
        got.extend(page["chunks"])
        if page["nextChunk"] is None:
            break
        first = page["nextChunk"]
    assert [c["index"] for c in got] == [0, 1, 2, 3, 4]
    assert got[0]["isFullSnapshot"] is True and not any(c["isFullSnapshot"] for c in got[1:])
    assert got[2]["events"] == orjson.loads(chunk(2)["payload"])
    assert got[1]["startedAt"] == "2026-11-18T11:06:41.000Z" and got[1]["eventsCount"] == 3
    with pytest.raises(ClientError) as missing:
        call(wh, project, "replay", {"session_id": "nope"})
    assert missing.value.status == 404
    with pytest.raises(ParamsError):
        call(wh, project, "replay", {"session_id": "s1"}, startDate="2026-01-01")


# the read routes: pages of stored rows ------------------------------------------------------------
def walk(wh: Any, project: str, route: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following ``nextCursor``; a cursor comes only with a full page."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        body = call(wh, project, route, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        rows += body["data"]
        cursor = body["nextCursor"]
        if cursor is None:
            assert len(body["data"]) <= limit
            return rows
        assert len(body["data"]) == limit
    raise AssertionError("the cursor never ended")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_profiles(events: list[dict[str, Any]]) -> dict[str, str]:
    """A session's profile: the last profile id its events named (in the order they were sent)."""
    out: dict[str, str] = {}
    for e in sorted(ref._distinct(events), key=lambda e: e["created_at"]):
        if e["name"] not in ref.MARKERS and e.get("profile_id"):
            out[e["session_id"]] = e["profile_id"]
    return out


@settings(
    max_examples=int(os.environ.get("EVENTLENS_TEST_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=datasets(), tz=st.sampled_from(ZONES), choice=st.data())
def test_the_read_routes_list_what_the_reference_selects(
    wh: Any, data: Dataset, tz: str, choice: st.DataObject
) -> None:
    """Newest first, every page walked: the events and sessions the reference selects for the same
    range, zone, filters and bots, each once; one profile's sessions and events through its aliases."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    load(wh, project, data)
    events = data.events
    rng = choice.draw(ranges(data, tz))
    flt = choice.draw(filters())
    bots = choice.draw(st.booleans())
    q = ref.Query(rng.start_ms, rng.end_ms, tz, flt, bots)
    common: dict[str, Any] = {"startDate": rng.start, "endDate": rng.end, "timezone": tz, "includeBots": bots}
    if flt:
        common["filters"] = json.dumps(flt)
    ctx = {"range": rng, "filters": flt, "tz": tz, "aliases": data.aliases}
    limit = choice.draw(st.integers(1, 7))

    markers = choice.draw(st.booleans())
    want = ref._distinct(
        e
        for e in events
        if (markers or e["name"] not in ref.MARKERS)
        and q.start_ms <= e["created_at"] < q.end_ms
        and (bots or not e.get("is_bot"))
        and all(ref.matches(e, f) for f in flt)
    )
    want.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
    got = walk(wh, project, "events", limit, includeMarkers=markers, **common)
    fields = [
        (
            g["id"],
            g["createdAt"],
            g["name"],
            g["deviceId"],
            g["sessionId"],
            g["isBot"],
            g["revenue"],
            g["currency"],
        )
        for g in got
    ]
    assert fields == [
        (
            e["id"],
            iso(e["created_at"]),
            e["name"],
            e["device_id"],
            e["session_id"],
            bool(e.get("is_bot")),
            ref.money(ref.amount(e)),
            e.get("currency", ""),
        )
        for e in want
    ], ctx

    sessions = sorted(ref.sessions_in(events, q), key=lambda s: (s.start, s.sid), reverse=True)
    got = walk(wh, project, "sessions", limit, **common)
    assert [
        (g["id"], g["deviceId"], g["pageViews"], g["events"], g["isBounce"], g["duration"]) for g in got
    ] == [(s.sid, s.device, s.page_views, len(s.times), s.bounce, s.duration) for s in sessions], ctx

    # one profile: its own and its aliases' sessions and events in range, newest first
    pid = choice.draw(st.sampled_from(["user0", "user1", "user2", "user9"]))
    aliases = data.alias_map()

    def mine(person: str) -> bool:
        return person == pid or aliases.get(person) == pid

    own_events = [e for e in ref.selected(events, q) if mine(ref.person(e))]
    own_events.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
    profile_of = session_profiles(events)
    own_sessions = [s for s in sessions if mine(profile_of.get(s.sid) or s.device)]
    own_aliases = sorted(a for a, p in aliases.items() if p == pid)
    model = BY_NAME["profile"].params.model_validate({**common, "limit": 500}).with_path({"profile_id": pid})

    async def query(sql: Sql) -> Rows:
        return wh.query(*sql)

    if not (own_events or own_sessions or own_aliases):
        with pytest.raises(ClientError) as err:
            asyncio.run(BY_NAME["profile"].compute(project, model, query))
        assert err.value.status == 404, ctx
        return
    body = orjson.loads(orjson.dumps(asyncio.run(BY_NAME["profile"].compute(project, model, query))))
    assert body["id"] == pid and body["updatedAt"] is None and body["counters"] == {}, ctx
    assert body["aliases"] == own_aliases, ctx
    assert [e["id"] for e in body["events"]] == [e["id"] for e in own_events], (pid, ctx)
    assert [s["id"] for s in body["sessions"]] == [s.sid for s in own_sessions], (pid, ctx)


def test_profiles_list_the_newest_state_of_each_newest_first(wh: Any) -> None:
    """``identify`` rows at several versions: the list and its filters see each profile's newest
    row only, newest update first, ties by id; counters sum their operations once each."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    t0 = 1_780_000_000_000
    rows = [
        {"_t": "profiles", "profile_id": f"u{i}", "email": f"old{i}@example.com", "updated_at": t0 + i,
         "properties": {"plan": "free"}, "event_id": f"p{i}"}
        for i in range(6)
    ] + [
        # u1 and u4 updated later; u2 and u3 at the same millisecond
        {"_t": "profiles", "profile_id": "u1", "email": "new1@example.com", "updated_at": t0 + 100,
         "properties": {"plan": "pro"}, "event_id": "p1b"},
        {"_t": "profiles", "profile_id": "u4", "email": "new4@example.com", "updated_at": t0 + 100,
         "properties": {"plan": "pro"}, "event_id": "p4b"},
    ]  # fmt: skip
    counters = [
        {"_t": "profile_counters", "profile_id": "u1", "property": "logins", "delta": d, "created_at": t0,
         "event_id": f"c{k}"}
        for k, d in enumerate((1.0, 1.0, -0.5))
    ]  # fmt: skip
    for table, batch in (("profiles", rows[:6]), ("profiles", rows[6:]), ("profile_counters", counters)):
        for r in batch:
            r["project_id"] = project
        names, cols = to_columns(table, batch)
        token = f"t-{uuid.uuid4().hex}"
        wh.insert_columns(table, names, cols, token)
        wh.insert_columns(table, names, cols, token)  # a replay lands once
    rng = {"startDate": "2026-05-01", "endDate": "2026-06-30"}
    listed = [p["id"] for p in walk(wh, project, "profiles", 2, **rng)]
    assert listed == ["u4", "u1", "u5", "u3", "u2", "u0"]
    by = lambda v: json.dumps([{"field": "email", "operator": "startsWith", "value": v}])  # noqa: E731
    assert [p["id"] for p in call(wh, project, "profiles", filters=by("old"), **rng)["data"]] == [
        "u5",
        "u3",
        "u2",
        "u0",
    ]
    assert [p["id"] for p in call(wh, project, "profiles", filters=by("new"), **rng)["data"]] == ["u4", "u1"]
    plan = json.dumps([{"field": "properties.plan", "operator": "eq", "value": "free"}])
    assert len(call(wh, project, "profiles", filters=plan, **rng)["data"]) == 4
    model = BY_NAME["profile"].params.model_validate(rng).with_path({"profile_id": "u1"})

    async def query(sql: Sql) -> Rows:
        return wh.query(*sql)

    one = asyncio.run(BY_NAME["profile"].compute(project, model, query))
    assert one["email"] == "new1@example.com" and one["counters"] == {"logins": 1.5}
    assert one["updatedAt"] == iso(t0 + 100) and one["events"] == [] and one["sessions"] == []


def test_groups_are_units_of_their_members_events(wh: Any) -> None:
    """A group (B2B account) converts when its members' events, taken together in time order, pass
    the steps: here one member signs up and another buys. The breakdown counts an event once per
    group ('' without one); the filter selects events carrying the group."""
    project = f"st-{uuid.uuid4().hex[:12]}"
    t0 = int(datetime(2026, 5, 4, 12, tzinfo=UTC).timestamp() * 1000)
    day = 86_400_000

    def ev(i: int, device: str, name: str, at: int, groups: list[str]) -> dict[str, Any]:
        return {"_t": "events", "id": f"g{i}", "name": name, "device_id": device, "created_at": at,
                "received_at": at, "groups": groups}  # fmt: skip

    events = [
        ev(1, "d1", "signup", t0, ["acme"]),
        ev(2, "d2", "purchase", t0 + 1000, ["acme"]),
        ev(3, "d3", "signup", t0, ["globex"]),
        ev(4, "d4", "signup", t0, []),
        ev(5, "d4", "purchase", t0 + 1000, []),
        ev(6, "d5", "click", t0 + 2000, ["acme", "globex"]),
        ev(7, "d3", "click", t0 + 2 * day, ["globex"]),
    ]
    load(wh, project, Dataset(events, [], t0, events[-1]["created_at"]))
    rng = {"startDate": "2026-05-01", "endDate": "2026-05-31"}
    steps = ["signup", "purchase"]
    by_group = call(wh, project, "funnel", steps=steps, groupBy="group", **rng)
    assert [s["count"] for s in by_group] == [2, 1]  # acme converted, globex did not
    assert [s["count"] for s in call(wh, project, "funnel", steps=steps, **rng)] == [3, 1]
    assert call(wh, project, "breakdown", dimension="group", **rng) == [
        {"value": "acme", "count": 3, "uniqueVisitors": 3},
        {"value": "globex", "count": 3, "uniqueVisitors": 2},
        {"value": "", "count": 2, "uniqueVisitors": 1},
    ]
    acme = json.dumps([{"field": "group", "operator": "eq", "value": "acme"}])
    assert call(wh, project, "metrics", filters=acme, **rng)["totalEvents"] == 3
    none = json.dumps([{"field": "group", "operator": "isNull"}])
    assert call(wh, project, "metrics", filters=none, **rng)["totalEvents"] == 2
    retained = call(wh, project, "retention", groupBy="group", startDate="2026-05-04", endDate="2026-05-06")
    assert [(r["cohortDate"], r["periodNumber"], r["retainedUsers"]) for r in retained] == [
        ("2026-05-04", 0, 2),
        ("2026-05-04", 1, 0),
        ("2026-05-04", 2, 1),  # globex came back two days later
    ]
    q = ref.Query(t0 - day, t0 + 30 * day)
    assert by_group == ref.funnel(events, q, steps, group_by="group")


# goals ---------------------------------------------------------------------------------------------
HOSTILE_PATHS = [
    "/blog/a",
    "/blog/a/b",
    "/blog/",
    "/blog",
    "/blogx",
    "/100%",
    "/100x",
    "/a_b",
    "/aXb",
    "/a.b",
    "/a+b",
    "/(x)?[y]{2}^$|\\",
    "/a\nb",
    "/é/ü",
    "/" + "z" * 900,
    "",
]
HOSTILE_PATTERNS = [
    "/blog/*",
    "/blog/**",
    "/blog*",
    "/100%",
    "/a_b",
    "/a.b",
    "/a+b",
    "/(x)?[y]{2}^$|\\",
    "/(x)?*",
    "/a*b",
    "/*/*",
    "/é/*",
    "/" + "z" * 900,
    "/" + "*z" * 400,
    "%",
    "_",
    ".*",
    "**",
    "\\Q*\\E",
]


def test_goal_patterns_match_exactly_what_the_reference_matches(wh: Any) -> None:
    """Page-view goals with %, _, regex metacharacters, non-ASCII and very long patterns convert
    exactly the page views whose whole path the pattern matches; a goal filter keeps exactly them."""
    project = f"gl-{uuid.uuid4().hex[:12]}"
    t0 = 1_780_000_000_000
    events = [
        {
            "_t": "events",
            "id": f"g{i}",
            "name": "page_view" if i % 5 else "click",
            "device_id": f"d{i % 3}",
            "session_id": f"s{i % 3}",
            "path": path,
            "created_at": t0 + i,
            "received_at": t0 + i,
            "properties": {"plan": "pro"} if i % 2 else {},
        }
        for i, path in enumerate(HOSTILE_PATHS * 2)
    ]
    load(wh, project, Dataset(events, [], t0, t0 + len(events)))
    rng = {"startDate": "2026-05-01", "endDate": "2026-06-30"}
    q = ref.Query(
        int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000),
    )
    t = datetime(2026, 1, 1, tzinfo=UTC)
    defined = [
        Goal(id=f"p{i}", project_id=project, name=f"goal {i}", kind="page_view", path=p, created_at=t)
        for i, p in enumerate(HOSTILE_PATTERNS)
    ] + [
        Goal(id="e1", project_id=project, name="click", kind="event", event="click", created_at=t),
        Goal(id="e2", project_id=project, name="pro click", kind="event", event="click",
             property_key="plan", property_value="pro", created_at=t),
    ]  # fmt: skip
    definitions = [g.definition() for g in defined]
    got = call(wh, project, "goals", goals=defined, **rng)
    assert got == ref.goals(events, q, definitions)
    by_name = {g["name"]: g["conversions"] for g in got["goals"]}
    # worked out by hand: each path twice, page views only (every fifth event is a click)
    views = {p: sum(1 for e in events if e["path"] == p and e["name"] == "page_view") for p in HOSTILE_PATHS}
    assert by_name["goal 0"] == views["/blog/a"] + views["/blog/"]  # /blog/*
    assert by_name["goal 1"] == views["/blog/a"] + views["/blog/a/b"] + views["/blog/"]  # /blog/**
    assert by_name["goal 3"] == views["/100%"]  # % is literal
    assert by_name["goal 4"] == views["/a_b"]  # _ is literal
    assert by_name["goal 5"] == views["/a.b"]  # . is literal
    assert by_name["goal 14"] == by_name["goal 15"] == by_name["goal 16"] == 0
    assert by_name["click"] == sum(1 for e in events if e["name"] == "click")
    assert 0 < by_name["pro click"] < by_name["click"]
    for g in defined:
        for op in ("is", "isNot"):
            flt = json.dumps([{"field": "goal", "operator": op, "value": g.name}])
            rq = ref.Query(
                q.start_ms, q.end_ms, filters=[{"field": "goal", "operator": op, "goal": g.definition()}]
            )
            assert call(wh, project, "metrics", goals=defined, filters=flt, **rng) == ref.metrics(
                events, rq
            ), (
                g.path,
                op,
            )
