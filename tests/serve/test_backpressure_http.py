"""Backpressure at the door: a flood against an ingest deployment with a tiny queue is shed with
``503`` + ``Retry-After`` by Serve itself (``max_queued_requests``), through HAProxy, quickly; no
request fails with ``500`` or hangs, and every acknowledged event is counted."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Daemon, DaemonManager

pytestmark = pytest.mark.ray

FLOOD = 600
CONCURRENCY = 200
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def tiny(daemons: DaemonManager) -> Daemon:
    # one replica running two requests at a time and queueing two more: a flood of 200 concurrent
    # requests must be shed, not queued into client time-outs
    return daemons.use(
        "door",
        ingest_replicas=1,
        max_ongoing_requests=2,
        ingest_max_queued_requests=2,
        ingest_retry_after_s=2,
        shards=1,
    )


async def _flood(url: str, headers: dict[str, str]) -> list[tuple[int, str | None, str, float]]:
    """Send FLOOD single events, CONCURRENCY at a time; (status, retry-after, device, seconds)."""
    sem = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S, limits=limits) as client:

        async def one(i: int) -> tuple[int, str | None, str, float]:
            device = f"flood-{i}"
            async with sem:
                start = time.monotonic()
                r = await client.post(
                    "/track",
                    json={"type": "track", "payload": {"name": "flood", "deviceId": device}},
                    headers=headers,
                )
                return r.status_code, r.headers.get("retry-after"), device, time.monotonic() - start

        return await asyncio.gather(*(one(i) for i in range(FLOOD)))


def test_flood_is_shed_with_503_and_retry_after_and_acknowledged_events_counted(tiny: Daemon) -> None:
    creds = tiny.new_project()
    results = asyncio.run(_flood(tiny.url, creds.write_headers()))
    statuses = {s for s, *_ in results}
    ok = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] == 503]
    assert statuses <= {200, 503}, f"unexpected statuses {sorted(statuses)}"
    assert shed, "a flood against a queue of 2 must be shed"
    assert ok, "the replica must keep serving what it admits"
    assert {r[1] for r in shed} == {"2"}, "every shed request carries Retry-After"
    assert max(r[3] for r in results) < TIMEOUT_S
    # what was acknowledged is durable and counted, exactly
    m = tiny.wait_metric(creds, "totalEvents", len(ok), timeout=30, settle=1.0)
    assert m["uniqueVisitors"] == len(ok)
    # once the flood is over, the door is open again
    assert tiny.track(creds, {"name": "after", "deviceId": "after"}).status_code == 200
    shed_s = sorted(r[3] for r in shed)
    print(
        f"flood of {FLOOD} ({CONCURRENCY} concurrent): {len(ok)} acknowledged, {len(shed)} shed with 503 "
        f"(median {shed_s[len(shed_s) // 2] * 1000:.0f} ms), slowest request {max(r[3] for r in results):.2f}s"
    )


def test_ingest_options_carry_queue_limit_and_retry_after() -> None:
    from eventlens.api.deployments import ingest_options
    from eventlens.config import Settings

    opts = ingest_options(Settings(ingest_max_queued_requests=7, ingest_retry_after_s=3))
    assert opts["max_queued_requests"] == 7
    assert opts["backpressure_config"].status_code == 503
    assert opts["backpressure_config"].retry_after_s == 3
