"""Where counts come from: hourly rollup, per-dimension rollup, daily + edge hours, or raw events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from eventlens.insights.sources import (
    ROLLUP_WHERE,
    counts_source,
    days_and_hours,
    dims_source,
    int_rows,
    rate,
    ratio,
)
from tests.unit.insight_sql import HOSTILE, check_bound, eq, placeholders, scope


def test_an_hour_aligned_utc_range_without_filters_reads_the_hourly_rollup() -> None:
    params: dict[str, Any] = scope().params()
    source = counts_source(scope(), params)
    assert source.table == f"events_hourly WHERE {ROLLUP_WHERE}"
    assert (source.time, source.visitors) == ("hour", "uniqExactMerge(visitors)")
    assert (source.events, source.page_views) == ("sum(events)", "sum(page_views)")
    assert "FINAL" not in source.table


def test_a_half_hour_zone_reads_the_raw_events_final() -> None:
    s = scope(tz="Asia/Kolkata")  # local midnight is 18:30 UTC: UTC hours do not nest in its days
    params = s.params()
    source = counts_source(s, params, totals=True)
    assert source.table.startswith("events FINAL WHERE project_id = {project:String}")
    assert "name NOT IN {markers:Array(String)}" in source.table
    assert "events_hourly" not in source.table and "events_daily" not in source.table
    assert source.time == "created_at" and source.visitors == "uniqExact(device_id)"
    assert source.page_views == "countIf(name IN {page_views:Array(String)})"
    assert params["start"] == datetime(2025, 12, 31, 18, 30) and params["tz"] == "Asia/Kolkata"
    check_bound(source.table, params)


def test_a_minute_aligned_range_and_raw_requests_read_the_raw_events() -> None:
    s = scope("2026-01-01T10:30:00Z", "2026-01-01T12:00:00Z")
    assert counts_source(s, s.params()).table.startswith("events FINAL WHERE")
    assert counts_source(scope(), scope().params(), raw=True).table.startswith("events FINAL WHERE")


def test_filters_on_one_rolled_up_column_read_the_dimension_rollup() -> None:
    s = scope(filters=eq("country", HOSTILE))
    params = s.params()
    source = counts_source(s, params)
    assert source.table.startswith("events_dims_hourly WHERE")
    assert source.table.endswith(" AND dim = {dim:String} AND value = {f0:String}")
    assert params["dim"] == "country" and params["f0"] == HOSTILE
    check_bound(source.table, params, HOSTILE)


def test_filters_on_two_columns_or_a_property_read_the_raw_events() -> None:
    two = scope(filters=[*eq("country", "DE"), *eq("browser", "Firefox")])
    assert counts_source(two, two.params()).table.startswith("events FINAL WHERE")
    prop = scope(filters=eq("properties.plan", HOSTILE))
    params = prop.params()
    table = counts_source(prop, params).table
    assert table.startswith("events FINAL WHERE") and "properties[{f0k:String}] = {f0:String}" in table
    check_bound(table, params, HOSTILE)


def test_totals_read_whole_utc_days_daily_and_the_edge_hours_hourly() -> None:
    s = scope("2026-01-01T10:00:00Z", "2026-01-04T05:00:00Z")
    params = s.params()
    table = days_and_hours("events_hourly", "events_daily", "", s, params)
    assert "FROM events_daily" in table and "FROM events_hourly" in table and "UNION ALL" in table
    assert params["d0"] == date(2026, 1, 2) and params["d1"] == date(2026, 1, 4)
    assert params["d0t"] == datetime(2026, 1, 2) and params["d1t"] == datetime(2026, 1, 4)
    assert placeholders(table)["d0"] == "Date" and placeholders(table)["d0t"] == "DateTime64(3, 'UTC')"
    check_bound(table, params)


def test_a_range_inside_one_utc_day_reads_only_hours() -> None:
    s = scope("2026-01-01T10:00:00Z", "2026-01-01T20:00:00Z")
    params = s.params()
    table = days_and_hours("events_hourly", "events_daily", " AND x = 1", s, params)
    assert table == f"events_hourly WHERE {ROLLUP_WHERE} AND x = 1"
    assert "d0" not in params


def test_counts_totals_with_a_dimension_filter_read_the_daily_dimension_rollup() -> None:
    s = scope(filters=eq("path", "/a"))
    params = s.params()
    table = counts_source(s, params, totals=True).table
    assert "FROM events_dims_daily" in table and "FROM events_dims_hourly" in table
    assert table.count("AND dim = {dim:String} AND value = {f0:String}") == 2
    assert params["dim"] == "path"


def test_dims_source_selects_the_value_of_one_dimension() -> None:
    params = scope().params()
    table = dims_source("page", params, scope())
    assert "SELECT value, visitors, events, page_views FROM events_dims_daily" in table
    assert params["dim"] == "page"
    check_bound(table, params)


def test_rates_ratios_and_int_rows() -> None:
    assert rate(1, 3) == 33.33 and rate(1, 0) == 0
    assert ratio(5, 4) == 1.25 and ratio(5, 0) == 0
    assert int_rows([{"count": "12", "name": "7"}], "count") == [{"count": 12, "name": "7"}]
