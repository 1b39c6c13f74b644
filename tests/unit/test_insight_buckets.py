"""Buckets in a time zone: complete lists, DST days, Monday weeks, half-hour zones, the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.insights.buckets import MAX_BUCKETS, bucket_start, buckets, hour_aligned, label
from eventlens.insights.params import parse_range


def labels(start: str, end: str, tz: str, interval: str) -> list[str]:
    rng = parse_range(start, end, tz)
    zone = ZoneInfo(tz)
    return [label(b, interval, zone) for b in buckets(rng.start, rng.end, interval, zone)]


def test_date_only_end_includes_the_whole_day() -> None:
    assert labels("2026-11-01", "2026-11-03", "UTC", "day") == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_spring_forward_day_has_23_hours_in_berlin() -> None:
    hours = labels("2026-03-29", "2026-03-29", "Europe/Berlin", "hour")
    assert len(hours) == 23
    assert hours[1:3] == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]


def test_fall_back_day_has_25_hours_and_two_2am_buckets() -> None:
    hours = labels("2026-10-25", "2026-10-25", "Europe/Berlin", "hour")
    assert len(hours) == 25
    assert "2026-10-25T02:00:00+02:00" in hours and "2026-10-25T02:00:00+01:00" in hours


def test_weeks_start_on_monday_in_the_zone() -> None:
    # 2026-11-29 is a Sunday: its week started Monday the 23rd
    assert labels("2026-11-29", "2026-12-07", "Asia/Tokyo", "week") == [
        "2026-11-23",
        "2026-11-30",
        "2026-12-07",
    ]


def test_months_and_half_hour_zones() -> None:
    assert labels("2026-01-31", "2026-03-01", "Asia/Kolkata", "month") == [
        "2026-01-01",
        "2026-02-01",
        "2026-03-01",
    ]
    hours = labels("2026-05-01T00:00:00Z", "2026-05-01T03:00:00Z", "Asia/Kolkata", "hour")
    assert hours == [
        "2026-05-01T05:00:00+05:30",
        "2026-05-01T06:00:00+05:30",
        "2026-05-01T07:00:00+05:30",
        "2026-05-01T08:00:00+05:30",
    ]


def test_too_many_buckets_is_a_400() -> None:
    rng = parse_range("2026-01-01", "2026-12-31", "UTC")
    with pytest.raises(ClientError) as err:
        buckets(rng.start, rng.end, "minute", ZoneInfo("UTC"))
    assert err.value.status == 400 and str(MAX_BUCKETS) in err.value.message


def test_rollups_only_where_utc_hours_nest_in_the_zone() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=60)
    assert hour_aligned(start, end, ZoneInfo("Europe/Berlin"))
    assert not hour_aligned(start, end, ZoneInfo("Asia/Kolkata"))
    assert not hour_aligned(start + timedelta(minutes=5), end, ZoneInfo("UTC"))


@pytest.mark.parametrize(
    "tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]
)
@given(
    offset_h=st.integers(0, 24 * 400),
    minutes=st.integers(0, 59),
    interval=st.sampled_from(["minute", "hour", "day", "week", "month"]),
)
def test_every_instant_falls_in_exactly_one_listed_bucket(
    tz: str, offset_h: int, minutes: int, interval: str
) -> None:
    zone = ZoneInfo(tz)
    t = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=offset_h, minutes=minutes)
    start = t - timedelta(days=40 if interval in ("week", "month") else 2)
    if interval == "minute":
        start = t - timedelta(hours=3)
    listed = buckets(start, t + timedelta(minutes=1), interval, zone)
    b = bucket_start(t, interval, zone)
    assert b in listed and b <= t
    i = listed.index(b)
    assert i == len(listed) - 1 or listed[i + 1] > t
    assert listed == sorted(set(listed))
