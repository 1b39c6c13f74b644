"""Scenario 1: single-event ``POST /track`` — requests per second and latency at fixed concurrency.

Closed loop, ``bench.concurrency`` keep-alive connections, one event per request. Bodies cycle
through 1,024 pre-encoded events over 512 device ids (so both shards and many sessions are used),
each with a page URL carrying UTM parameters and two properties. A warm-up of ``bench.warmup_s``
on the same connections precedes the measured window and is not counted in the figures.
"""

from __future__ import annotations

from typing import Any

import orjson

from benchmarks.common import Bench, count_accepted
from benchmarks.loadgen import make_backend, run_load

NAME = "single"
TARGET_RPS = 800.0


def bodies(n: int = 1024, devices: int = 512) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "type": "track",
                "payload": {
                    "name": "bench_single",
                    "deviceId": f"bench-single-{i % devices}",
                    "path": f"https://bench.example.com/p/{i % 20}?utm_source=bench&utm_medium=load",
                    "properties": {"seq": i, "plan": "pro"},
                },
            }
        )
        for i in range(n)
    ]


async def run(
    bench: Bench, path: str = "/track", label: str = "single /track", key: str | None = NAME
) -> dict[str, Any]:
    backend = make_backend(bench.client, bench.target.url, bench.concurrency, bench.timeout_s)
    data = bodies()
    common: dict[str, Any] = {
        "concurrency": bench.concurrency,
        "headers": bench.write_headers(),
        "progress": bench.progress,
        "console": bench.console,
        "timeout_s": bench.timeout_s,
    }
    try:
        warm = None
        if bench.warmup_s > 0:
            warm = await run_load(
                backend,
                path,
                data,
                label=f"{label} warm-up",
                duration_s=bench.warmup_s,
                max_requests=bench.max_requests,
                **common,
            )
            if key:
                count_accepted(bench, key, warm.items)
        res = await run_load(
            backend,
            path,
            data,
            label=label,
            duration_s=bench.duration_s,
            max_requests=bench.max_requests,
            **common,
        )
        if key:
            count_accepted(bench, key, res.items)
    finally:
        await backend.aclose()
    out = res.summary()
    out["warmup"] = warm.summary() if warm else None
    return out
