"""Per-client rate limiting with GCRA: local memory, or shared through Redis when configured.

GCRA keeps one number per client (the theoretical arrival time), allows ``burst`` requests at once
and ``rate`` per second sustained, and says exactly how long to wait when it refuses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from eventlens.outage import outage_as


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


# Slack for float rounding: summing ``interval`` ``burst`` times can land a hair above the tolerance
# (10/s, burst 5: 0.1 added five times is 0.5000000000000001), which refused the last request of
# every burst. Admitting a request one microsecond early is harmless.
_SLACK_S = 1e-6


def gcra(tat: float, now: float, rate: float, burst: int, cost: int = 1) -> tuple[bool, float, float]:
    """Pure step: returns (allowed, new_tat, retry_after_seconds)."""
    interval = 1.0 / rate
    tolerance = interval * burst
    new_tat = max(tat, now) + interval * cost
    allow_at = new_tat - tolerance
    if allow_at - now > _SLACK_S:
        return False, tat, allow_at - now
    return True, new_tat, 0.0


class LocalRateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tats: dict[str, float] = {}

    async def check(self, key: str, cost: int = 1) -> Decision:
        now = time.monotonic()
        ok, tat, wait = gcra(self.tats.get(key, 0.0), now, self.rate, self.burst, cost)
        if ok:
            self.tats[key] = tat
            if len(self.tats) > 100_000:  # forget idle clients
                self.tats = {k: v for k, v in self.tats.items() if v > now}
        return Decision(ok, wait)


_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = 1.0 / tonumber(ARGV[2])
local tolerance = interval * tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, '0'}
"""


class RedisRateLimiter:
    """Shared across replicas and nodes; the clock is Redis's own, so nodes need not agree."""

    def __init__(self, client: Any, rate: float, burst: int, prefix: str) -> None:
        self.r = client
        self.rate, self.burst, self.prefix = rate, burst, prefix
        self.script = client.register_script(_LUA)

    async def check(self, key: str, cost: int = 1) -> Decision:
        # Fail closed (503): with Redis down the shared budget is unknown, and the shards' logs,
        # which live in the same Redis, cannot take the event either. Nothing was logged yet, so
        # the client's retry cannot duplicate it.
        with outage_as("rate_limiter"):
            ok, wait = await self.script(keys=[f"{self.prefix}:{key}"], args=[0, self.rate, self.burst, cost])
        return Decision(bool(int(ok)), float(wait))


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
