"""The filter pickers: the catalogue for whole UTC days, raw events for the edges of a range in
another zone and for filters on other columns than the name; names, keys and filters bound."""

from __future__ import annotations

from datetime import date, datetime

from eventlens.insights import catalogue
from tests.unit.insight_sql import HOSTILE, check_bound, eq, scope


def test_event_names_over_whole_utc_days_read_only_the_catalogue() -> None:
    sql, params = catalogue.event_names_sql(scope(), 500)
    assert "FROM event_catalog" in sql and "property_key = ''" in sql and params["limit"] == 500
    assert (params["d0"], params["d1"]) == (date(2026, 1, 1), date(2026, 1, 8))
    assert "events FINAL" not in sql  # midnight to midnight in UTC: no edges
    check_bound(sql, params)


def test_a_zone_reads_the_catalogue_inside_and_the_raw_events_at_the_edges() -> None:
    """The catalogue ignored the zone before: a day in Berlin was counted as the UTC day."""
    sql, params = catalogue.event_names_sql(scope("2026-01-01", "2026-01-07", tz="Europe/Berlin"), 50)
    # Berlin's 1-7 January is 2025-12-31 23:00 UTC to 2026-01-07 23:00 UTC
    assert (params["start"], params["end"]) == (datetime(2025, 12, 31, 23), datetime(2026, 1, 7, 23))
    assert (params["d0"], params["d1"]) == (date(2026, 1, 1), date(2026, 1, 7))
    assert (params["d0t"], params["d1t"]) == (datetime(2026, 1, 1), datetime(2026, 1, 7))
    assert "FROM event_catalog WHERE property_key = ''" in sql and "UNION ALL" in sql
    assert "FROM events FINAL WHERE" in sql and catalogue.EDGES in sql
    check_bound(sql, params)


def test_a_range_without_a_whole_utc_day_reads_raw_events_final() -> None:
    sql, params = catalogue.event_names_sql(scope("2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z"), 5)
    assert "FROM events FINAL WHERE" in sql and "event_catalog" not in sql
    check_bound(sql, params)
    sql, _ = catalogue.event_names_sql(scope("2026-01-01", "2026-01-01", tz="America/New_York"), 5)
    assert "event_catalog" not in sql  # 05:00 to 05:00 UTC holds no whole UTC day


def test_filters_on_other_columns_read_raw_events_for_the_whole_range() -> None:
    """The pickers dropped the filters before; the catalogue has no country, path or property."""
    for flt in (eq("country", HOSTILE), eq("properties.plan", HOSTILE)):
        s = scope(tz="Asia/Tokyo", filters=flt)
        for sql, params in (catalogue.event_names_sql(s, 9), catalogue.property_keys_sql(s, None, 9)):
            assert "event_catalog" not in sql and "FROM events FINAL WHERE" in sql
            assert "{f0:String}" in sql and params["f0"] == HOSTILE
            check_bound(sql, params, HOSTILE)


def test_a_filter_on_the_name_applies_to_the_catalogue_and_the_edges() -> None:
    s = scope(tz="Asia/Kolkata", filters=[{"field": "name", "operator": "in", "value": [HOSTILE, "signup"]}])
    sql, params = catalogue.property_keys_sql(s, None, 10)
    days, edges = sql.split("UNION ALL")
    assert "FROM event_catalog" in days and "name IN {cf0:Array(String)}" in days
    assert "FROM events FINAL" in edges and "name IN {f0:Array(String)}" in edges
    assert params["cf0"] == params["f0"] == [HOSTILE, "signup"]
    check_bound(sql, params, HOSTILE)


def test_bots_are_excluded_from_both_parts_unless_included() -> None:
    for bots in (False, True):
        sql, params = catalogue.event_names_sql(scope(tz="Europe/Berlin", bots=bots), 10)
        assert sql.count("(is_bot = 0 OR {bots:UInt8} = 1)") == 2 and params["bots"] == int(bots)


def test_property_keys_bind_the_event_name() -> None:
    sql, params = catalogue.property_keys_sql(scope(), HOSTILE, 10)
    assert "FROM event_catalog" in sql and "property_key != ''" in sql
    assert "AND name = {event:String}" in sql and params["event"] == HOSTILE
    check_bound(sql, params, HOSTILE)
    sql, params = catalogue.property_keys_sql(scope("2026-01-01T01:00:00Z", "2026-01-03"), None, 10)
    days, edges = sql.split("UNION ALL")
    assert "FROM event_catalog" in days and "arrayJoin(mapKeys(properties))" in edges
    assert "event" not in params
    check_bound(sql, params)


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
