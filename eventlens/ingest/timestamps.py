"""Event time: ISO-8601 or epoch milliseconds, clamped against the future."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from eventlens.errors import ClientError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MIN_MS = 946_684_800_000  # 2000-01-01: anything older is a unit mistake, not an event


def parse_timestamp(value: str | int | float | None, now_ms: int, max_future_ms: int) -> int:
    """Milliseconds since the epoch. Future beyond ``max_future_ms`` → server time."""
    if value is None or value == "":
        return now_ms
    if isinstance(value, bool):
        raise ClientError(
            400, "invalid_timestamp", "timestamp must be an ISO-8601 string or epoch milliseconds"
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ClientError(400, "invalid_timestamp", "timestamp must be a finite number of milliseconds")
        ms = int(value)
    else:
        text = value.strip()
        if text.lstrip("-").isdigit():
            try:  # isdigit() also accepts digits int() refuses ("²"), and int() caps string length
                ms = int(text)
            except ValueError:
                raise ClientError(
                    400, "invalid_timestamp", f"timestamp {text[:40]!r} is not ISO-8601 or epoch milliseconds"
                ) from None
        else:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ClientError(
                    400, "invalid_timestamp", f"timestamp {text[:40]!r} is not ISO-8601 or epoch milliseconds"
                ) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            ms = (dt - _EPOCH) // _ONE_MS  # exact: dt.timestamp() * 1000 loses a millisecond
    if ms < _MIN_MS:
        raise ClientError(
            400, "invalid_timestamp", "timestamp is before 2000-01-01; send epoch milliseconds, not seconds"
        )
    if ms > now_ms + max_future_ms:
        return now_ms
    return ms
