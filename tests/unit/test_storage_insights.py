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
from eventlens.insights.sources import Rows, Sql
from eventlens.storage.migrations import migrate_clickhouse
from eventlens.storage.tables import to_columns
from tests.reference import insights as ref
from tests.reference.datasets import (
    NOT_NUMBERS,
    NUMBERS,
    NUMERIC_PLANS,
    ZONES,
    Dataset,
    datasets,
    filters,
    local_midnight_ms,
    ranges,
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


def call(wh: Any, project_id: str, route: str, **params: Any) -> Any:
    """The route's answer as its JSON body: parameters validated by its model, SQL run on ``wh``."""
    spec = BY_NAME[route]

    async def query(sql: Sql) -> Rows:
        return wh.query(*sql)

    model = spec.params.model_validate(params)
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
    q = ref.Query(rng.start_ms, rng.end_ms, tz, flt, bots)
    common: dict[str, Any] = {"startDate": rng.start, "endDate": rng.end, "timezone": tz, "includeBots": bots}
    if flt:
        common["filters"] = json.dumps(flt)
    ctx = {"range": rng, "filters": flt, "tz": tz, "aliases": data.aliases}

    def get(route: str, **params: Any) -> Any:
        return call(wh, project, route, **params)

    assert get("metrics", **common) == ref.metrics(events, q), ctx
    span_h = (rng.end_ms - rng.start_ms) / 3600_000
    interval = choice.draw(
        st.sampled_from(["hour", "day", "week", "month"] + (["minute"] if span_h <= 6 else []))
    )
    assert get("timeseries", interval=interval, **common) == ref.timeseries(events, q, interval), ctx
    for kind in ("all", "entry", "exit"):
        assert get("pages", type=kind, **common) == ref.pages(events, q, kind), (kind, ctx)
    assert get("referrers", **common) == ref.referrers(events, q), ctx
    assert get("devices", **common) == ref.grouped(events, q, ("device", "browser", "os")), ctx
    assert get("geo", **common) == ref.grouped(events, q, ("country", "region", "city")), ctx
    dim = choice.draw(
        st.sampled_from(["browser", "country", "path", "name", "referrer_type", "properties.plan"])
    )
    assert get("breakdown", dimension=dim, **common) == ref.breakdown(events, q, dim), (dim, ctx)

    steps = choice.draw(st.lists(st.sampled_from([*data.names, "never"]), min_size=1, max_size=4))
    window = choice.draw(st.sampled_from([60, 1800, 7200, 86400]))
    group = choice.draw(st.sampled_from(["device", "session", "profile"]))
    body = {"steps": steps, "startDate": rng.start, "endDate": rng.end, "timezone": tz, "window": window}
    body.update(groupBy=group, includeBots=bots, filters=flt)
    assert get("funnel", **body) == ref.funnel(events, q, steps, window, group, data.alias_map()), (body, ctx)

    period = choice.draw(st.sampled_from(["day", "week", "month"]))
    expected = ref.retention(events, q, period, data.alias_map())
    assert get("retention", period=period, **common) == expected, (data.aliases, ctx)

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
    }
    assert set(BY_NAME) == covered
