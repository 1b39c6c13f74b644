"""Metrics and timeseries: the SQL they send, their shapes, and the comparison with the period before."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from eventlens.insights import metrics
from eventlens.insights.models import MetricsParams, TimeseriesParams
from eventlens.insights.sources import Rows, Sql
from tests.unit.insight_sql import HOSTILE, PROJECT, check_bound, eq, scope


def test_metrics_over_utc_days_reads_the_daily_rollup_and_sessions_final() -> None:
    sql, params = metrics.metrics_sql(scope())
    assert "FROM events_daily" in sql and "FROM events_hourly" in sql
    assert "FROM sessions FINAL WHERE" in sql and "events FINAL" not in sql
    assert params["start"] == datetime(2026, 1, 1) and params["end"] == datetime(2026, 1, 8)
    assert params["bots"] == 0 and params["tz"] == "UTC"
    check_bound(sql, params)


def test_metrics_in_a_half_hour_zone_reads_raw_events_final() -> None:
    sql, params = metrics.metrics_sql(scope(tz="Asia/Kolkata", bots=True))
    assert "FROM events FINAL WHERE" in sql and "events_hourly" not in sql and "events_daily" not in sql
    assert params["bots"] == 1
    check_bound(sql, params)


def test_metrics_filter_values_are_only_bound() -> None:
    sql, params = metrics.metrics_sql(scope(tz="Asia/Kolkata", filters=eq("country", HOSTILE)))
    # the events side and the sessions side bind the value each under their own name
    assert "country = {f0:String}" in sql and "country = {sf0:String}" in sql
    assert params["f0"] == params["sf0"] == HOSTILE
    check_bound(sql, params, HOSTILE)


def test_a_filter_on_an_event_column_selects_sessions_holding_such_an_event() -> None:
    sql, params = metrics.metrics_sql(scope(filters=eq("name", HOSTILE)))
    assert "session_id IN (SELECT session_id FROM events WHERE" in sql and "name = {hf0:String}" in sql
    check_bound(sql, params, HOSTILE)


def test_timeseries_buckets_rollup_hours_in_the_zone() -> None:
    (events, eparams), (sessions, sparams) = metrics.timeseries_sql(scope(tz="Europe/Berlin"), "day")
    assert "FROM events_hourly WHERE" in events
    assert "toStartOfDay(hour, {tz:String})" in events and "GROUP BY bucket" in events
    assert "FROM sessions FINAL WHERE" in sessions and "toStartOfDay(opened_at, {tz:String})" in sessions
    assert eparams["tz"] == sparams["tz"] == "Europe/Berlin"
    check_bound(events, eparams)
    check_bound(sessions, sparams)


def test_minute_timeseries_read_raw_events() -> None:
    s = scope("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z")
    (events, params), _ = metrics.timeseries_sql(s, "minute")
    assert "FROM events FINAL WHERE" in events and "toStartOfMinute(created_at)" in events
    check_bound(events, params)


def test_shape_metrics_rounds_rates() -> None:
    row = {"uniqueVisitors": "3", "totalEvents": 9, "totalPageViews": 5, "totalSessions": 4}
    shaped = metrics.shape_metrics({**row, "bouncedSessions": 1, "totalDurationMs": 33500})
    assert shaped == {
        "uniqueVisitors": 3,
        "totalSessions": 4,
        "totalPageViews": 5,
        "totalEvents": 9,
        "viewsPerSession": 1.25,
        "bounceRate": 25.0,
        "avgSessionDuration": 8.38,
        "totalRevenue": 0,
        "revenuePerVisitor": 0,
        "revenueByCurrency": {},
    }
    empty = metrics.shape_metrics({})
    assert empty.pop("revenueByCurrency") == {}
    assert set(empty.values()) == {0}


def test_shape_metrics_totals_the_requested_currency_only() -> None:
    row = {
        "uniqueVisitors": 3,
        "revenueCurrencies": ["EUR", "JPY", "USD"],
        "revenueAmounts": ["10.5000", "1000", "99999999999999.9999"],
    }
    eur = metrics.shape_metrics(row, "EUR")
    assert eur["totalRevenue"] == 10.5 and eur["revenuePerVisitor"] == 3.5
    assert eur["revenueByCurrency"] == {"EUR": 10.5, "JPY": 1000.0, "USD": 99999999999999.9999}
    assert metrics.shape_metrics(row, "GBP")["totalRevenue"] == 0
    assert metrics.shape_metrics(row, "USD")["totalRevenue"] == float("99999999999999.9999")


def test_average_session_duration_rounds_half_up_exactly() -> None:
    """Summed in integer milliseconds: 15 ms over one session is 0.015 s, half-way between two
    hundredths, and rounds up (a float 0.015 would round down), whatever the order of the sum."""
    row = {"totalSessions": 1, "totalDurationMs": 15}
    assert metrics.shape_metrics(row)["avgSessionDuration"] == 0.02
    assert metrics.shape_metrics({"totalSessions": 3, "totalDurationMs": 1000})["avgSessionDuration"] == 0.33
    assert metrics.shape_metrics({"totalSessions": 8, "totalDurationMs": 1000})["avgSessionDuration"] == 0.13


def test_compare_is_percent_change_and_none_from_zero() -> None:
    assert metrics.compare({"a": 15, "b": 3, "c": "x"}, {"a": 10, "b": 0, "c": "y"}) == {"a": 50.0, "b": None}


def test_shape_timeseries_fills_empty_buckets() -> None:
    s = scope("2026-01-01", "2026-01-03")
    jan2 = int(datetime.fromisoformat("2026-01-02T00:00:00+00:00").timestamp())
    rows = metrics.shape_timeseries(s, "day", [{"bucket": jan2, "totalEvents": "4"}], [])
    assert [r["date"] for r in rows] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [r["totalEvents"] for r in rows] == [0, 4, 0]


class Recorder:
    def __init__(self, rows: Rows) -> None:
        self.sent: list[Sql] = []
        self.rows = rows

    async def __call__(self, sql: Sql) -> Rows:
        self.sent.append(sql)
        return [dict(r) for r in self.rows]


def test_metrics_compute_compares_with_the_period_just_before() -> None:
    query = Recorder([{"totalEvents": 10, "totalSessions": 2}])
    params = MetricsParams(startDate="2026-01-08", endDate="2026-01-14", compare="previous")
    body: Any = asyncio.run(metrics.metrics(PROJECT, params, query))
    assert body["totalEvents"] == 10 and body["previous"]["totalEvents"] == 10
    assert body["change"]["totalEvents"] == 0.0
    (_, now), (_, before) = query.sent
    assert now["start"] == datetime(2026, 1, 8) and before["end"] == datetime(2026, 1, 8)
    assert before["start"] == datetime(2026, 1, 1)


def test_timeseries_compute_attaches_the_previous_bucket_by_position() -> None:
    query = Recorder([])
    params = TimeseriesParams(startDate="2026-01-01", endDate="2026-01-02", compare="previous")
    rows: Any = asyncio.run(metrics.timeseries(PROJECT, params, query))
    assert len(rows) == 2 and len(query.sent) == 6  # events, sessions, revenue; twice
    assert rows[0]["previous"]["date"] == "2025-12-30"
