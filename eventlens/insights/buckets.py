"""Time buckets of a range in a time zone: the full list (empty ones included) and their labels.

ClickHouse returns each bucket's start as a UTC instant (``toStartOfX(created_at, tz)``); the
same instant computed here gives the same label, so empty buckets can be filled with zeros.
Days, weeks (starting Monday) and months follow the zone's calendar, DST included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from eventlens.errors import ClientError

INTERVALS = ("minute", "hour", "day", "week", "month")
MAX_BUCKETS = 3000

# ClickHouse bucket expressions over a DateTime64 column, by interval (tz is a bound parameter).
CH_BUCKET = {
    "minute": "toStartOfMinute({col})",
    "hour": "toStartOfHour({col}, {{tz:String}})",
    "day": "toStartOfDay({col}, {{tz:String}})",
    "week": "toDateTime(toMonday({col}, {{tz:String}}), {{tz:String}})",
    "month": "toDateTime(toStartOfMonth({col}, {{tz:String}}), {{tz:String}})",
}


def check_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ClientError(
            400, "invalid_interval", f"interval {interval[:20]!r} is not one of {', '.join(INTERVALS)}"
        )
    return interval


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time.min, tz).astimezone(UTC)


def bucket_start(t: datetime, interval: str, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the bucket holding ``t`` starts."""
    if interval == "minute":
        return t.replace(second=0, microsecond=0)
    local = t.astimezone(tz)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    d = local.date()
    if interval == "week":
        d -= timedelta(days=d.weekday())
    elif interval == "month":
        d = d.replace(day=1)
    return _local_midnight(d, tz)


def _next(start: datetime, interval: str, tz: ZoneInfo) -> datetime:
    if interval == "minute":
        return start + timedelta(minutes=1)
    if interval == "hour":
        # step in absolute time, then re-align to the zone's hour (offsets of half an hour)
        nxt = bucket_start(start + timedelta(hours=1), "hour", tz)
        return nxt if nxt > start else start + timedelta(hours=1)
    d = start.astimezone(tz).date()
    if interval == "day":
        d += timedelta(days=1)
    elif interval == "week":
        d += timedelta(days=7)
    else:
        d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _local_midnight(d, tz)


def _half(t: datetime, tz: ZoneInfo) -> bool:
    """Whether the zone's offset at ``t`` is not a whole number of hours."""
    off = t.astimezone(tz).utcoffset() or timedelta(0)
    return off.total_seconds() % 3600 != 0


def buckets(start: datetime, end: datetime, interval: str, tz: ZoneInfo) -> list[datetime]:
    """Every bucket start (UTC) overlapping [start, end); 400 when there would be too many."""
    estimate = (end - start).total_seconds() / {
        "minute": 60,
        "hour": 3600,
        "day": 86400,
        "week": 7 * 86400,
        "month": 28 * 86400,
    }[interval]
    if estimate > MAX_BUCKETS:
        raise ClientError(
            400,
            "too_many_buckets",
            f"{interval} buckets over this range would be about {int(estimate)}; at most {MAX_BUCKETS}"
            " — use a wider interval or a shorter range",
        )
    out: list[datetime] = []
    b = bucket_start(start, interval, tz)
    while b < end:
        out.append(b)
        nxt = _next(b, interval, tz)
        if nxt <= b:  # cannot happen with real zones; guard against an endless loop
            break
        b = nxt
    return out


def label(start: datetime, interval: str, tz: ZoneInfo) -> str:
    """``YYYY-MM-DD`` for day, week and month; local ISO time with offset for minute and hour."""
    local = start.astimezone(tz)
    if interval in ("day", "week", "month"):
        return local.date().isoformat()
    return local.isoformat(timespec="seconds")


def hour_aligned(start: datetime, end: datetime, tz: ZoneInfo) -> bool:
    """Whether UTC hours nest inside the zone's buckets over the range (hourly rollups apply)."""
    if start.minute or start.second or start.microsecond or end.minute or end.second or end.microsecond:
        return False
    t = start
    step = timedelta(days=7)
    while t < end:
        if _half(t, tz):
            return False
        t += step
    return not _half(end, tz)
