"""Migration 0012 (revenue) on a database that was at 0011 and holds events: the columns are
added, the revenue rollup is created and backfilled, events stored before keep counting, and
revenue events stored after are totalled per currency. Part of the storage suite (chDB unless
EVENTLENS_TEST_CLICKHOUSE_URL names a server)."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventlens.api.insights import ROUTES
from eventlens.insights.sources import Rows, Sql
from eventlens.records import TABLES
from eventlens.storage.migrations import (
    CLICKHOUSE_DIR,
    ClickHouseLedger,
    migrate_clickhouse,
    migration_status,
)

pytestmark = [pytest.mark.storage, pytest.mark.chdb]

BY_NAME = {route.name: route for route in ROUTES}
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# the events columns as migrations 0001-0009 created them
OLD_COLUMNS = [c for c in TABLES["events"] if c not in ("revenue", "currency", "groups")]  # 0012, 0013


def call(wh: Any, project: str, route: str, **params: Any) -> Any:
    spec = BY_NAME[route]

    async def query(sql: Sql) -> Rows:
        return wh.query(*sql)

    model = spec.params.model_validate(params)
    return orjson.loads(orjson.dumps(asyncio.run(spec.compute(project, model, query))))


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "_t": "events",
        "id": f"ev{i}",
        "project_id": "up",
        "name": "page_view",
        "device_id": f"d{i % 3}",
        "created_at": T0 + i * 60_000,
        "received_at": T0 + i * 60_000,
        "path": "/",
        **extra,
    }


def test_a_database_at_0011_with_events_upgrades_to_0012_and_keeps_working(
    storage_warehouse: Any, tmp_path: Path
) -> None:
    wh = storage_warehouse
    if wh.cluster:
        pytest.skip("a cluster runs the backfill as written (writers paused): covered by test_cluster_ddl")
    before = tmp_path / "at-0011"
    before.mkdir()
    for f in sorted(CLICKHOUSE_DIR.glob("*.sql")):
        if int(f.name[:4]) <= 11:
            shutil.copy(f, before / f.name)
    assert migrate_clickhouse(wh, before)[-1] == "0011_replays"
    described = [r["name"] for r in wh.query("DESCRIBE TABLE events")]
    assert described == OLD_COLUMNS
    # events stored by the previous version: no revenue columns; one carried __revenue as a property
    old = [event(i) for i in range(6)]
    old.append(event(6, name="revenue", properties={"legacy": "1"}))
    wh.insert_rows("events", old, "up:old")

    # the upgrade: the shipped files, 0012 pending
    status = {s.name: s.state for s in migration_status(ClickHouseLedger(wh), CLICKHOUSE_DIR)}
    assert status["0012_revenue"] == "pending" and status["0011_replays"] == "applied"
    applied = migrate_clickhouse(wh)
    assert "0012_revenue" in applied
    assert migrate_clickhouse(wh) == []  # nothing twice
    assert [r["name"] for r in wh.query("DESCRIBE TABLE events")] == list(TABLES["events"])
    kept = wh.query(
        "SELECT count() AS n, sum(revenue) AS r, countIf(currency = '') AS blank FROM events "
        "WHERE project_id = 'up'"
    )
    assert kept == [{"n": 7, "r": Decimal(0), "blank": 7}]

    # revenue events stored after the upgrade, both insert formats
    new = [
        event(10, name="revenue", revenue="19.9900", currency="EUR", device_id="d0"),
        event(11, name="revenue", revenue="0.0100", currency="USD", device_id="d1"),
    ]
    wh.insert_rows("events", new[:1], "up:new:json", "json")
    wh.insert_rows("events", new[1:], "up:new:columnar", "columnar")
    rollup = wh.query(
        "SELECT currency, sum(revenue) AS r FROM revenue_hourly WHERE project_id = 'up' "
        "GROUP BY currency ORDER BY currency"
    )
    assert rollup == [{"currency": "EUR", "r": Decimal("19.99")}, {"currency": "USD", "r": Decimal("0.01")}]

    # the insights read both: the rollup (whole hours) and the raw table (a filter)
    rng = {"startDate": "2026-01-01T00:00:00Z", "endDate": "2026-01-01T01:00:00Z"}
    for extra in ({}, {"filters": '[{"field": "path", "operator": "eq", "value": "/"}]'}):
        m = call(wh, "up", "metrics", currency="EUR", **rng, **extra)
        assert m["totalEvents"] == 9 and m["uniqueVisitors"] == 3
        assert m["totalRevenue"] == 19.99 and m["revenuePerVisitor"] == round(19.99 / 3, 2)
        assert m["revenueByCurrency"] == {"EUR": 19.99, "USD": 0.01}
        assert call(wh, "up", "metrics", **rng, **extra)["totalRevenue"] == 0.01  # USD by default
        series = call(wh, "up", "timeseries", interval="hour", currency="eur", **rng, **extra)
        assert [r["totalRevenue"] for r in series] == [19.99]
