"""Funnels and retention: tables read, aliases, bound steps and windows, and the shapers."""

from __future__ import annotations

import pytest

from eventlens.insights import people
from eventlens.insights.models import MAX_FUNNEL_STEPS
from tests.unit.insight_sql import HOSTILE, check_bound, eq, scope


def test_a_funnel_without_filters_reads_the_narrow_funnel_table() -> None:
    sql, params = people.funnel_sql(scope(), ["signup", HOSTILE], 3600, "device")
    assert "FROM funnel_events WHERE" in sql and "device AS unit" in sql and "device != 0" in sql
    assert "windowFunnel({window_ms:UInt64}, 'strict_increase')" in sql
    assert "name = {s0:String}, name = {s1:String}" in sql
    assert params["window_ms"] == 3_600_000 and params["steps"] == ["signup", HOSTILE]
    assert (params["s0"], params["s1"]) == ("signup", HOSTILE)
    # every unit counts once whatever its duplicates: no FINAL needed
    assert "FINAL" not in sql
    check_bound(sql, params, HOSTILE)


def test_a_filtered_funnel_reads_raw_events_by_the_unit_column() -> None:
    sql, params = people.funnel_sql(scope(filters=eq("country", HOSTILE)), ["a"], 60, "session")
    assert "SELECT session_id AS unit" in sql and "FROM events WHERE" in sql
    assert "session_id != ''" in sql and "country = {f0:String}" in sql
    check_bound(sql, params, HOSTILE)


def test_profile_funnels_resolve_aliases_hashed_or_raw() -> None:
    sql, _ = people.funnel_sql(scope(), ["a"], 60, "profile")
    assert "sipHash64(alias) AS akey" in sql and "FROM funnel_events" in sql
    sql, params = people.funnel_sql(scope(filters=eq("path", "/x")), ["a"], 60, "profile")
    assert "SELECT alias AS akey" in sql and "FROM events WHERE" in sql
    assert "if(profile_id != '', profile_id, device_id) AS person" in sql
    check_bound(sql, params)


def test_repeated_steps_scale_time_and_window() -> None:
    sql, params = people.funnel_sql(scope(), ["a", "a", "b"], 60, "device")
    k = people.FUNNEL_TIME_SCALE
    assert params["window_scaled"] == 60 * 1000 * k
    assert f"toUInt64(t * {k} + ({k - 1} - c)), c = 0, c = 1, c = 2" in sql
    assert "range(3)" in sql
    check_bound(sql, params)


def test_the_time_scale_leaves_a_slot_per_step() -> None:
    assert people.FUNNEL_TIME_SCALE > MAX_FUNNEL_STEPS


def test_shape_funnel_counts_units_reaching_each_level() -> None:
    rows = [{"level": 1, "units": 3}, {"level": 3, "units": "1"}]
    shaped = people.shape_funnel(["a", "b", "c"], rows)
    assert [s["count"] for s in shaped] == [4, 1, 1]
    assert shaped[1] == {
        "name": "b",
        "count": 1,
        "conversion": 25.0,
        "conversionFromPrevious": 25.0,
        "dropoff": 3,
    }
    assert people.shape_funnel(["a"], [])[0]["conversion"] == 0


@pytest.mark.parametrize(("period", "expr"), [("day", "toDate(hour"), ("week", "toMonday(toDate(hour")])
def test_retention_over_rollup_ranges_reads_user_hours(period: str, expr: str) -> None:
    sql, params = people.retention_sql(scope(), period)
    assert "FROM user_hours WHERE" in sql and expr in sql and f"dateDiff('{period}'" in sql
    assert "SELECT alias AS akey" in sql
    check_bound(sql, params)


def test_retention_in_a_half_hour_zone_or_filtered_reads_raw_events() -> None:
    sql, params = people.retention_sql(scope(tz="Asia/Kolkata", filters=eq("country", HOSTILE)), "month")
    assert "FROM events WHERE" in sql and "toStartOfMonth(toDate(created_at, {tz:String}))" in sql
    assert "user_hours" not in sql
    check_bound(sql, params, HOSTILE)


def test_shape_retention_fills_every_period_up_to_the_last() -> None:
    rows = [
        {"cohortDate": "2026-01-01", "periodNumber": 0, "retainedUsers": 4},
        {"cohortDate": "2026-01-01", "periodNumber": 2, "retainedUsers": "1"},
    ]
    shaped = people.shape_retention(rows, "2026-01-03", "day")
    assert [(r["periodNumber"], r["retainedUsers"], r["retentionRate"]) for r in shaped] == [
        (0, 4, 100.0),
        (1, 0, 0),
        (2, 1, 25.0),
    ]
    assert len(people.shape_retention(rows, "2026-03-01", "month")) == 3
