"""GCRA rate limiting (eventlens.api.ratelimit): the pure step, the local and the Redis limiter."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens import ratelimit
from eventlens.ratelimit import Decision, LocalRateLimiter, RedisRateLimiter, gcra, retry_after_header
from tests.servers import REDIS_URL

# the pure step -----------------------------------------------------------------------------------


def run(
    tat: float, now: float, rate: float, burst: int, n: int, cost: int = 1
) -> tuple[list[bool], float, float]:
    """n requests at the same instant: which were allowed, the final tat and the last wait."""
    allowed = []
    wait = 0.0
    for _ in range(n):
        ok, tat, wait = gcra(tat, now, rate, burst, cost)
        allowed.append(ok)
    return allowed, tat, wait


@pytest.mark.parametrize(
    ("rate", "burst", "retry"),
    [(10.0, 5, 0.1), (1.0, 1, 1.0), (100.0, 20, 0.01), (0.5, 3, 2.0), (50.0, 1, 0.02)],
)
def test_burst_then_refused_with_the_exact_wait(rate: float, burst: int, retry: float) -> None:
    now = 1000.0
    allowed, tat, wait = run(0.0, now, rate, burst, burst + 1)
    assert allowed == [True] * burst + [False]
    assert wait == pytest.approx(retry)
    # a refusal does not consume anything
    ok, tat2, wait2 = gcra(tat, now, rate, burst)
    assert (ok, tat2) == (False, tat)
    assert wait2 == pytest.approx(retry)
    # slightly before the wait is over: still refused; right after: allowed, exactly one
    assert not gcra(tat, now + retry * 0.99, rate, burst)[0]
    ok, tat3, _ = gcra(tat, now + retry * 1.0001, rate, burst)
    assert ok
    assert not gcra(tat3, now + retry * 1.0001, rate, burst)[0]


def test_full_burst_recovers_after_burst_over_rate() -> None:
    rate, burst, now = 10.0, 5, 500.0
    _, tat, _ = run(0.0, now, rate, burst, burst)
    allowed, _, _ = run(tat, now + burst / rate + 1e-9, rate, burst, burst + 1)
    assert allowed == [True] * burst + [False]


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    allowed, _, _ = run(0.0, 10**6, 10.0, 3, 10)
    assert allowed == [True] * 3 + [False] * 7


def test_sustained_rate_is_always_allowed() -> None:
    rate, burst = 20.0, 1
    tat, now = 0.0, 100.0
    for i in range(200):
        ok, tat, _ = gcra(tat, now + i / rate, rate, burst)
        assert ok, i


@pytest.mark.parametrize(
    ("burst", "costs", "allowed"),
    [
        (5, [3, 2, 1], [True, True, False]),
        (5, [3, 3], [True, False]),
        (5, [5, 1], [True, False]),
        (5, [6], [False]),  # a cost above the burst is never allowed
        (1, [1, 1], [True, False]),
    ],
)
def test_cost(burst: int, costs: list[int], allowed: list[bool]) -> None:
    tat, got = 0.0, []
    for cost in costs:
        ok, tat, _ = gcra(tat, 50.0, 10.0, burst, cost)
        got.append(ok)
    assert got == allowed


@settings(max_examples=150, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=1000),
    st.integers(min_value=1, max_value=50),
    st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=80),
)
def test_never_more_than_burst_plus_rate_times_window(rate: float, burst: int, gaps: list[float]) -> None:
    """GCRA's guarantee: in any window of length w, at most burst + rate*w requests pass."""
    now, tat = 1000.0, 0.0
    passed: list[float] = []
    for gap in gaps:
        now += gap
        ok, tat, wait = gcra(tat, now, rate, burst)
        if ok:
            passed.append(now)
            assert wait == 0.0
        else:
            assert wait > 0
            # waiting the advertised time is enough, and needed
            assert gcra(tat, now + wait + 1e-6, rate, burst)[0]
            if wait > 1e-5:
                assert not gcra(tat, now + wait - min(wait / 2, 1e-3), rate, burst)[0]
    for i, start in enumerate(passed):
        for j in range(i, len(passed)):
            window = passed[j] - start
            assert j - i + 1 <= burst + rate * (window + 2e-6) + 1e-9  # the step admits 1 µs early


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "1"), (0.001, "1"), (1.0, "1"), (1.01, "2"), (2.5, "3"), (59.2, "60")]
)
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


# local limiter -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=c.monotonic))
    return c


def test_local_limiter(clock: Clock) -> None:
    limiter = LocalRateLimiter(rate=10, burst=3)

    async def scenario() -> list[Decision]:
        out = [await limiter.check("a") for _ in range(4)]
        out.append(await limiter.check("b"))  # another client has its own budget
        clock.t += out[3].retry_after_s * 1.001
        out.append(await limiter.check("a"))
        out.append(await limiter.check("a"))
        clock.t += 10
        out.extend([await limiter.check("a") for _ in range(4)])
        return out

    d = asyncio.run(scenario())
    assert [x.allowed for x in d] == [True, True, True, False, True, True, False, True, True, True, False]
    assert d[3].retry_after_s == pytest.approx(0.1)
    assert all(x.retry_after_s == 0 for x in d if x.allowed)


def test_local_limiter_cost(clock: Clock) -> None:
    limiter = LocalRateLimiter(rate=1, burst=10)

    async def scenario() -> list[bool]:
        return [(await limiter.check("k", cost=c)).allowed for c in (6, 4, 1)]

    assert asyncio.run(scenario()) == [True, True, False]


def test_local_limiter_forgets_idle_clients(clock: Clock) -> None:
    limiter = LocalRateLimiter(rate=100, burst=10)

    async def scenario() -> None:
        for i in range(100_000):
            await limiter.check(f"old-{i}")
        clock.t += 60  # every old client is idle now
        await limiter.check("new-0")
        await limiter.check("new-1")

    asyncio.run(scenario())
    assert set(limiter.tats) <= {"new-0", "new-1"}
    assert "new-1" in limiter.tats


# redis limiter -----------------------------------------------------------------------------------


def with_redis(prefix: str, rate: float, burst: int, body: Any) -> Any:
    import redis.asyncio as aioredis

    async def main() -> Any:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            return await body(RedisRateLimiter(client, rate, burst, prefix), client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.mark.redis
def test_redis_limiter_burst_refusal_and_recovery(redis_prefix: str) -> None:
    async def body(limiter: RedisRateLimiter, client: Any) -> None:
        first = [await limiter.check("client-a") for _ in range(4)]
        assert [d.allowed for d in first] == [True, True, True, False]
        wait = first[3].retry_after_s
        assert 0 < wait <= 0.05 + 0.01  # one interval at 20/s, minus the time the calls took
        assert (await limiter.check("client-b")).allowed  # separate budget
        ttl = await client.pttl(f"{redis_prefix}:client-a")
        assert 0 < ttl <= 1000 + math.ceil(3 / 20 * 1000)
        await asyncio.sleep(wait + 0.02)
        assert (await limiter.check("client-a")).allowed
        assert not (await limiter.check("client-a")).allowed

    with_redis(redis_prefix, rate=20, burst=3, body=body)


@pytest.mark.redis
def test_redis_limiter_is_atomic_under_concurrency(redis_prefix: str) -> None:
    async def body(limiter: RedisRateLimiter, client: Any) -> list[Decision]:
        return list(await asyncio.gather(*(limiter.check("hot") for _ in range(30))))

    decisions = with_redis(redis_prefix, rate=1, burst=5, body=body)
    assert sum(d.allowed for d in decisions) == 5
    assert all(d.retry_after_s > 0 for d in decisions if not d.allowed)


@pytest.mark.redis
def test_redis_limiter_cost(redis_prefix: str) -> None:
    async def body(limiter: RedisRateLimiter, client: Any) -> list[bool]:
        return [(await limiter.check("k", cost=c)).allowed for c in (6, 4, 1, 11)]

    assert with_redis(redis_prefix, rate=1, burst=10, body=body) == [True, True, False, False]


@pytest.mark.redis
def test_redis_limiter_refusal_wait_is_close_to_the_pure_step(redis_prefix: str) -> None:
    async def body(limiter: RedisRateLimiter, client: Any) -> Decision:
        for _ in range(2):
            await limiter.check("k")
        return await limiter.check("k")

    decision = with_redis(redis_prefix, rate=2, burst=2, body=body)
    assert not decision.allowed
    _, _, expected = run(0.0, 0.0, 2.0, 2, 3)
    assert expected - 0.1 < decision.retry_after_s <= expected
