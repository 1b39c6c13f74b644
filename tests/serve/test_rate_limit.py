"""Per-client rate limiting over HTTP, shared through Redis (the local limiter is unit-tested)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import Daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.mariadb]


def test_rate_limit_answers_429_with_retry_after(shared: Daemon) -> None:
    d = shared
    s = d.settings
    creds = d.new_project()
    n = 400

    def send(_: int) -> httpx.Response:
        return d.http.post(
            "/track", json={"type": "track", "payload": {"name": "x"}}, headers=creds.write_headers()
        )

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(n)))
    elapsed = time.monotonic() - started
    ok = sum(r.status_code == 200 for r in statuses)
    limited = [r for r in statuses if r.status_code == 429]
    assert ok + len(limited) == n
    # GCRA: the burst at once, then the sustained rate (one interval of slack for timing)
    assert ok <= s.rate_limit_burst + s.rate_limit_per_second * elapsed + 1, (ok, elapsed)
    assert limited, "no request was rate limited"
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"] == "rate_limited"
    # the budget lives in Redis, shared by every replica and node
    import redis

    assert redis.Redis.from_url(s.redis_url).exists(f"eventlens:{s.instance}:rl:{creds.write_id}")
    # another client has its own budget
    other = d.new_project()
    assert d.track(other, {"name": "x"}).status_code == 200
