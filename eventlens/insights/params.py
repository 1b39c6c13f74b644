"""Common insight parameters: the date range in a time zone, validated at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventlens.errors import ClientError

MAX_RANGE_DAYS = 3660
# what ClickHouse's DateTime64 and the calendars here can hold, with room either side
MIN_DATE = datetime(1971, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Range:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    timezone: str


def _zone(name: str) -> ZoneInfo:
    try:
        if len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ClientError(
            400, "invalid_timezone", f"timezone {name[:64]!r} is not an IANA zone like Europe/Berlin"
        ) from None


def _parse(value: str, field: str, tz: ZoneInfo, end: bool) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            # a date-only end includes that whole day
            local = datetime.combine(d + timedelta(days=1) if end else d, time.min, tz)
            return _in_bounds(local.astimezone(UTC), field, text)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        dt = dt.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ClientError(
            400, "invalid_date", f"{field} {text[:40]!r} is not an ISO date or datetime"
        ) from None
    return _in_bounds(dt, field, text)


def _in_bounds(dt: datetime, field: str, text: str) -> datetime:
    if not MIN_DATE <= dt <= MAX_DATE:
        raise ClientError(
            400, "invalid_date", f"{field} {text[:40]!r} is outside {MIN_DATE.year}-{MAX_DATE.year - 1}"
        )
    return dt


def parse_range(start: str | None, end: str | None, timezone: str | None, default_days: int = 30) -> Range:
    tzname = timezone or "UTC"
    tz = _zone(tzname)
    now = datetime.now(UTC)
    end_dt = _parse(end, "endDate", tz, True) if end else now + timedelta(seconds=1)
    start_dt = _parse(start, "startDate", tz, False) if start else end_dt - timedelta(days=default_days)
    if start_dt >= end_dt:
        raise ClientError(400, "invalid_range", "startDate must be before endDate")
    if end_dt - start_dt > timedelta(days=MAX_RANGE_DAYS):
        raise ClientError(400, "range_too_large", f"the range may span at most {MAX_RANGE_DAYS} days")
    return Range(start_dt, end_dt, tzname)
