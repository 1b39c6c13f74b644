"""Common insight parameters: the date range in a time zone, validated at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventlens.api.errors import ApiError

MAX_RANGE_DAYS = 3660


@dataclass(frozen=True)
class Range:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    timezone: str


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            400, "invalid_timezone", f"timezone {name[:64]!r} is not an IANA zone like Europe/Berlin"
        ) from None


def _parse(value: str, field: str, tz: ZoneInfo, end: bool) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            # a date-only end includes that whole day
            local = datetime.combine(d + timedelta(days=1) if end else d, time.min, tz)
            return local.astimezone(UTC)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_date", f"{field} {text[:40]!r} is not an ISO date or datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


def parse_range(start: str | None, end: str | None, timezone: str | None, default_days: int = 30) -> Range:
    tzname = timezone or "UTC"
    tz = _zone(tzname)
    now = datetime.now(UTC)
    end_dt = _parse(end, "endDate", tz, True) if end else now + timedelta(seconds=1)
    start_dt = _parse(start, "startDate", tz, False) if start else end_dt - timedelta(days=default_days)
    if start_dt >= end_dt:
        raise ApiError(400, "invalid_range", "startDate must be before endDate")
    if end_dt - start_dt > timedelta(days=MAX_RANGE_DAYS):
        raise ApiError(400, "range_too_large", f"the range may span at most {MAX_RANGE_DAYS} days")
    return Range(start_dt, end_dt, tzname)
