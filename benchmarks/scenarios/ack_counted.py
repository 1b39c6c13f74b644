"""Scenario 3: ack→counted — how long after ``200`` from ``/track`` an event shows in ``/metrics``.

Method (no other load runs meanwhile):

* One sender posts single ``track`` events at a modest fixed rate (default 20/s, one request in
  flight at a time), each with a unique client id (``ack-<run>-<k>``) and all from one new device
  id. One device means one buffer shard, and one sender means the shard logs them in the order
  they were acknowledged; shards flush their log in order, so "``totalEvents`` ≥ k" means the
  first k acknowledged events are counted.
* One poller asks ``GET /insights/{project}/metrics?startDate=<scenario start>`` every 50 ms (back
  to back when a poll takes longer; ``polls`` and ``poll_rtt_ms`` say what was achieved). The
  range starts when this scenario starts, so events of earlier scenarios never count (a baseline
  poll before the first send is subtracted anyway).
* Event k's ack→counted latency is ``t(first poll answered at/after its ack whose count ≥ k) −
  t(ack)``: an upper bound, too high by at most one poll interval plus one poll round trip. The
  lower bound (same poll's send time) is reported too.

Events still not counted ``settle_timeout_s`` after the last send are reported as ``not_counted``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from benchmarks.common import Bench, count_accepted
from benchmarks.loadgen import check_loopback, latency_summary

NAME = "ack_counted"
TARGET_P95_S = 2.0


def match(acks: list[float], polls: list[tuple[float, float, int]]) -> tuple[list[float], list[float], int]:
    """Per acknowledged event: (upper, lower) ack→counted seconds; and how many never counted."""
    upper: list[float] = []
    lower: list[float] = []
    j = 0
    for k, t_ack in enumerate(acks, start=1):
        while j < len(polls) and not (polls[j][2] >= k and polls[j][1] >= t_ack):
            j += 1
        if j == len(polls):
            return upper, lower, len(acks) - k + 1
        t_send, t_recv, _ = polls[j]
        upper.append(t_recv - t_ack)
        lower.append(max(0.0, t_send - t_ack))
    return upper, lower, 0


async def run(
    bench: Bench,
    rate: float = 20.0,
    poll_interval_s: float = 0.05,
    settle_timeout_s: float = 30.0,
    duration_s: float | None = None,
) -> dict[str, Any]:
    check_loopback(bench.target.url)
    duration = duration_s or bench.duration_s
    max_events = int(rate * duration) + 1
    run_id = uuid.uuid4().hex[:10]
    device = f"bench-ack-{run_id}"
    started = datetime.now(UTC)
    params = {"startDate": started.isoformat(timespec="microseconds").replace("+00:00", "Z")}
    metrics_path = f"/insights/{bench.target.project_id}/metrics"
    write, read = bench.write_headers(), bench.read_headers()
    write["content-type"] = "application/json"

    acks: list[float] = []
    send_rtt_ms: list[float] = []
    send_fail: Counter[str] = Counter()
    polls: list[tuple[float, float, int]] = []
    poll_rtt_ms: list[float] = []
    poll_fail: Counter[str] = Counter()
    sending_done = asyncio.Event()

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=bench.target.url, trust_env=False, timeout=httpx.Timeout(10.0))

    async with client() as sender, client() as poller:
        r = await poller.get(metrics_path, params=params, headers=read)
        r.raise_for_status()
        baseline = int(r.json()["totalEvents"])

        async def send() -> None:
            t0 = time.perf_counter()
            try:
                for k in range(max_events):
                    due = t0 + k / rate
                    now = time.perf_counter()
                    if now - t0 >= duration:
                        break
                    if due > now:
                        await asyncio.sleep(due - now)
                    body = {
                        "type": "track",
                        "payload": {
                            "name": "bench_ack",
                            "deviceId": device,
                            "id": f"ack-{run_id}-{k}",
                            "properties": {"k": k},
                        },
                    }
                    ts = time.perf_counter()
                    try:
                        resp = await sender.post("/track", content=orjson.dumps(body), headers=write)
                    except httpx.HTTPError as exc:
                        send_fail[type(exc).__name__] += 1
                        continue
                    t = time.perf_counter()
                    if resp.status_code == 200:
                        acks.append(t)
                        send_rtt_ms.append((t - ts) * 1000)
                    else:
                        send_fail[str(resp.status_code)] += 1
            finally:
                sending_done.set()

        async def poll(prog: Progress, task: Any) -> None:
            hard_stop = time.perf_counter() + duration + settle_timeout_s + 5
            settle_deadline: float | None = None
            while time.perf_counter() < hard_stop:
                t_send = time.perf_counter()
                try:
                    resp = await poller.get(metrics_path, params=params, headers=read)
                    t_recv = time.perf_counter()
                    if resp.status_code == 200:
                        polls.append((t_send, t_recv, int(resp.json()["totalEvents"]) - baseline))
                        poll_rtt_ms.append((t_recv - t_send) * 1000)
                    else:
                        poll_fail[str(resp.status_code)] += 1
                except httpx.HTTPError as exc:
                    poll_fail[type(exc).__name__] += 1
                counted = polls[-1][2] if polls else 0
                prog.update(task, acked=len(acks), counted=counted, polls=len(polls))
                if sending_done.is_set():
                    if settle_deadline is None:
                        settle_deadline = time.perf_counter() + settle_timeout_s
                    if counted >= len(acks) or time.perf_counter() > settle_deadline:
                        break
                await asyncio.sleep(max(0.0, poll_interval_s - (time.perf_counter() - t_send)))

        cols = (
            TextColumn("[bold]ack→counted"),
            TextColumn(
                "acked {task.fields[acked]:>5}  counted {task.fields[counted]:>5}  polls {task.fields[polls]:>5}"
            ),
            TimeElapsedColumn(),
        )
        with Progress(*cols, console=bench.console, disable=not bench.progress, refresh_per_second=4) as prog:
            task = prog.add_task("ack", total=None, acked=0, counted=0, polls=0)
            await asyncio.gather(send(), poll(prog, task))

    count_accepted(bench, NAME, len(acks))
    upper, lower, not_counted = match(acks, polls)
    final = polls[-1][2] if polls else 0
    up = latency_summary([u * 1000 for u in upper])
    return {
        "rate_per_s": rate,
        "poll_interval_ms": poll_interval_s * 1000,
        "duration_limit_s": duration,
        "sent": len(acks) + sum(send_fail.values()),
        "acked": len(acks),
        "send_failures": dict(send_fail),
        "send_latency_ms": latency_summary(send_rtt_ms),
        "polls": len(polls),
        "poll_failures": dict(poll_fail),
        "poll_rtt_ms": latency_summary(poll_rtt_ms),
        "baseline_total_events": baseline,
        "final_counted": final,
        "counted_minus_acked": final - len(acks),
        "not_counted": not_counted,
        "ack_to_counted_ms": up,
        "ack_to_counted_lower_bound_ms": latency_summary([v * 1000 for v in lower]),
        "p50_s": up["p50"] / 1000 if upper else None,
        "p95_s": up["p95"] / 1000 if upper else None,
    }
