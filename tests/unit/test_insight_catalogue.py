"""The filter pickers: catalogue for whole UTC days, raw events otherwise, names and keys bound."""

from __future__ import annotations

from eventlens.insights import catalogue
from tests.unit.insight_sql import HOSTILE, check_bound, eq, scope


def test_event_names_over_whole_utc_days_read_the_catalogue() -> None:
    sql, params = catalogue.event_names_sql(scope(), 500)
    assert "FROM event_catalog" in sql and "property_key = ''" in sql and params["limit"] == 500
    assert "events FINAL" not in sql
    check_bound(sql, params)


def test_event_names_over_part_days_read_raw_events_final() -> None:
    sql, params = catalogue.event_names_sql(scope("2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z"), 5)
    assert "FROM events FINAL WHERE" in sql and "event_catalog" not in sql
    check_bound(sql, params)


def test_property_keys_bind_the_event_name() -> None:
    sql, params = catalogue.property_keys_sql(scope(), HOSTILE, 10)
    assert "FROM event_catalog" in sql and "property_key != ''" in sql
    assert "AND name = {event:String}" in sql and params["event"] == HOSTILE
    check_bound(sql, params, HOSTILE)
    sql, params = catalogue.property_keys_sql(scope("2026-01-01T01:00:00Z", "2026-01-03"), None, 10)
    assert "arrayJoin(mapKeys(properties))" in sql and "FROM events FINAL" in sql
    assert "event" not in params


def test_property_values_bind_key_event_and_filters() -> None:
    s = scope(tz="Asia/Kolkata", filters=eq("properties.plan", HOSTILE + "!"))
    sql, params = catalogue.property_values_sql(s, HOSTILE, "signup", 100)
    assert "SELECT properties[{key:String}] AS value" in sql and "FROM events FINAL" in sql
    assert "mapContains(properties, {key:String})" in sql and "name = {event:String}" in sql
    assert params["key"] == HOSTILE and params["event"] == "signup" and params["limit"] == 100
    check_bound(sql, params, HOSTILE, HOSTILE + "!")


def test_column_values_and_page_views_only() -> None:
    sql, params = catalogue.column_values_sql(scope(), "path", 500, True)
    assert "SELECT path AS value" in sql and "path != ''" in sql
    assert "name IN {page_views:Array(String)}" in sql
    check_bound(sql, params)
    sql, params = catalogue.column_values_sql(scope(), "country", 5)
    assert "SELECT country AS value" in sql and "page_views:Array" not in sql
