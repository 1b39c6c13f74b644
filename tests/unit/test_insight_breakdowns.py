"""Ranked lists: which table each reads, and that limits, keys and values are bound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from eventlens.insights import breakdowns
from eventlens.insights.scope import Scope
from eventlens.insights.sources import Sql
from tests.unit.insight_sql import HOSTILE, check_bound, eq, placeholders, scope


def test_all_pages_over_rollup_ranges_read_the_page_dimension() -> None:
    sql, params = breakdowns.pages_sql(scope(), "all", 25)
    assert "FROM events_dims_daily" in sql and "uniqExactMerge(visitors)" in sql
    assert params["dim"] == "page" and params["limit"] == 25
    assert placeholders(sql)["limit"] == "UInt32" and "LIMIT {limit:UInt32}" in sql
    check_bound(sql, params)


def test_all_pages_with_filters_read_page_views_of_raw_events_final() -> None:
    sql, params = breakdowns.pages_sql(scope(filters=eq("path", HOSTILE)), "all", 10)
    assert "FROM events FINAL WHERE" in sql and "name IN {page_views:Array(String)}" in sql
    assert "path = {f0:String}" in sql
    check_bound(sql, params, HOSTILE)


@pytest.mark.parametrize(("kind", "column"), [("entry", "entry_path"), ("exit", "exit_path")])
def test_entry_and_exit_pages_read_sessions_final(kind: str, column: str) -> None:
    sql, params = breakdowns.pages_sql(scope(), kind, 5)
    assert f"SELECT {column} AS path" in sql and "FROM sessions FINAL WHERE" in sql
    assert f"AND {column} != ''" in sql
    check_bound(sql, params)


def test_referrers_read_sessions_final() -> None:
    sql, params = breakdowns.referrers_sql(scope(tz="Asia/Kolkata", filters=eq("country", HOSTILE)), 3)
    assert "FROM sessions FINAL WHERE" in sql and "country = {sf0:String}" in sql
    assert "GROUP BY referrerName, referrerType" in sql and params["limit"] == 3
    check_bound(sql, params, HOSTILE)


@pytest.mark.parametrize(
    ("build", "dim", "columns"),
    [
        (breakdowns.devices_sql, "devices", ("device", "browser", "os")),
        (breakdowns.geo_sql, "geo", ("country", "region", "city")),
    ],
)
def test_grouped_lists_split_the_rollup_tuple_or_group_raw_events(
    build: Callable[[Scope, int], Sql], dim: str, columns: tuple[str, ...]
) -> None:
    sql, params = build(scope(), 7)
    assert params["dim"] == dim and "splitByChar('\\t', value)[1] AS " + columns[0] in sql
    assert "FROM events_dims_daily" in sql
    check_bound(sql, params)
    sql, params = build(scope(tz="Asia/Kolkata"), 7)
    assert "FROM events FINAL WHERE" in sql and f"GROUP BY {', '.join(columns)}" in sql
    assert "dim" not in params
    check_bound(sql, params)


def test_breakdown_by_a_rolled_up_column_reads_its_dimension() -> None:
    sql, params = breakdowns.breakdown_sql(scope(), "browser", 50)
    assert "FROM events_dims_daily" in sql and params["dim"] == "browser"
    check_bound(sql, params)


def test_breakdown_by_a_column_without_rollup_reads_raw_events() -> None:
    sql, params = breakdowns.breakdown_sql(scope(), "utm_term", 50)
    assert "SELECT utm_term AS value" in sql and "FROM events FINAL WHERE" in sql
    check_bound(sql, params)


def test_breakdown_by_a_property_binds_its_key() -> None:
    sql, params = breakdowns.breakdown_sql(scope(), "properties." + HOSTILE, 50)
    assert "SELECT properties[{bk:String}] AS value" in sql and params["bk"] == HOSTILE
    check_bound(sql, params, HOSTILE)


def test_breakdown_with_filters_reads_raw_events() -> None:
    sql, params = breakdowns.breakdown_sql(scope(filters=eq("browser", HOSTILE)), "browser", 50)
    assert "FROM events FINAL WHERE" in sql and "browser = {f0:String}" in sql
    check_bound(sql, params, HOSTILE)
