"""Event time parsing (eventlens.ingest.timestamps.parse_timestamp)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.ingest.timestamps import parse_timestamp

NOW = 1_750_000_000_000  # 2025-06-15T15:06:40Z
SKEW = 60_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, NOW),
        ("", NOW),
        (NOW - 1000, NOW - 1000),
        (float(NOW - 1000), NOW - 1000),
        (NOW - 1000.7, NOW - 1001),  # fractional milliseconds are dropped
        (str(NOW - 5), NOW - 5),
        (f"  {NOW - 5} ", NOW - 5),
        ("2025-06-15T15:00:00Z", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),
        ("2025-06-15T15:00:00z", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),
        ("2025-06-15T15:00:00.123Z", ms_of(datetime(2025, 6, 15, 15, 0, 0, 123_000, tzinfo=UTC))),
        ("2025-06-15T15:00:00.123456+00:00", ms_of(datetime(2025, 6, 15, 15, 0, 0, 123_000, tzinfo=UTC))),
        ("2025-06-15T17:00:00+02:00", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),
        ("2025-06-15T10:00:00-05:00", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),
        ("2025-06-15T15:00:00", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),  # naive means UTC
        ("2025-06-15 15:00:00", ms_of(datetime(2025, 6, 15, 15, tzinfo=UTC))),
        ("2025-06-15", ms_of(datetime(2025, 6, 15, tzinfo=UTC))),
        ("2004-04-24T20:52:56.067Z", 1_082_839_976_067),  # float maths made this ...066
        ("2000-01-01T00:00:00Z", 946_684_800_000),  # the oldest accepted instant
        (946_684_800_000, 946_684_800_000),
    ],
)
def test_parse(value: str | int | float | None, expected: int) -> None:
    assert parse_timestamp(value, NOW, SKEW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW + SKEW, NOW + SKEW),  # exactly one minute ahead: a clock skew, kept
        (NOW + SKEW + 1, NOW),  # more: server time
        (NOW + 86_400_000, NOW),
        (str(NOW + 10 * SKEW), NOW),
        ("2099-01-01T00:00:00Z", NOW),
        (10**30, NOW),
        ("9999-12-31T23:59:59-05:00", NOW),
    ],
)
def test_future_is_clamped_to_server_time(value: str | int, expected: int) -> None:
    assert parse_timestamp(value, NOW, SKEW) == expected


@pytest.mark.parametrize(
    "value",
    [
        NOW // 1000,  # seconds instead of milliseconds
        str(NOW // 1000),
        float(NOW // 1000),
        946_684_799_999,  # one ms before 2000
        "1999-12-31T23:59:59.999Z",
        0,
        -1,
        "-1750000000000",
        True,
        False,
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-06-15T25:00:00Z",
        "12:00",
        "1e12",
        "0x1F",
        "NaN",
        "²",  # str.isdigit() is true for it, int() refuses it
        "١٢٣",  # Arabic-Indic digits: a number, but far too small
        pytest.param("9" * 5000, id="5000-digits"),  # past Python's int-from-string digit limit
        "0001-01-01T00:00:00+05:00",
        float("inf"),
        float("-inf"),
        float("nan"),
    ],
)
def test_invalid_is_400_invalid_timestamp(value: str | int | float) -> None:
    with pytest.raises(ClientError) as info:
        parse_timestamp(value, NOW, SKEW)
    assert info.value.status == 400
    assert info.value.code == "invalid_timestamp"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=946_684_800_000, max_value=NOW + SKEW), st.sampled_from(["Z", "+00:00", "+05:30"])
)
def test_iso_round_trip_is_exact_to_the_millisecond(ms: int, zone: str) -> None:
    offset = {"Z": timedelta(0), "+00:00": timedelta(0), "+05:30": timedelta(hours=5, minutes=30)}[zone]
    local = EPOCH + timedelta(milliseconds=ms) + offset
    text = local.replace(tzinfo=None).isoformat(timespec="milliseconds") + zone
    assert parse_timestamp(text, NOW, SKEW) == ms
    assert parse_timestamp(ms, NOW, SKEW) == ms
    assert parse_timestamp(str(ms), NOW, SKEW) == ms


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=NOW + SKEW + 1, max_value=2**62))
def test_any_far_future_is_now(ms: int) -> None:
    assert parse_timestamp(ms, NOW, SKEW) == NOW


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats()))
def test_never_raises_anything_but_a_400(value: str | int | float) -> None:
    try:
        ms = parse_timestamp(value, NOW, SKEW)
    except ClientError as err:
        assert (err.status, err.code) == (400, "invalid_timestamp")
    else:
        assert 946_684_800_000 <= ms <= NOW + SKEW
