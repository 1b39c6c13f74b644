"""Scenario 1: single-event ``POST /track`` — requests per second and latency at fixed concurrency.

Closed loop, ``bench.concurrency`` keep-alive connections, one event per request. Requests cycle
through 1,024 pre-encoded events from 512 browser-like visitors (``benchmarks.traffic``): each
request carries its visitor's user agent (64 distinct) and public address (``X-Forwarded-For``),
and no device id, so the daemon does a browser SDK's full enrichment per request: user agent,
geo, the cookieless device hash (current and previous salt), page and UTM split, referrer
classification, two properties. A warm-up of ``bench.warmup_s`` on the same connections precedes
the measured window and is not counted in the figures.
"""

from __future__ import annotations

from typing import Any

import orjson

from benchmarks.common import Bench, count_accepted
from benchmarks.loadgen import make_backend, run_load
from benchmarks.traffic import page, referrer, visitors

NAME = "single"
TARGET_RPS = 800.0


def bodies(n: int = 1024) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "type": "track",
                "payload": {
                    "name": "screen_view" if i % 4 else "signup_click",
                    "path": page(i, 20),
                    "referrer": referrer(i),
                    "title": f"Page {i % 20}",
                    "properties": {"seq": i, "plan": "pro"},
                },
            }
        )
        for i in range(n)
    ]


def headers(n: int = 1024, n_visitors: int = 512) -> list[dict[str, str]]:
    people = visitors(n_visitors)
    return [people[i % n_visitors].headers() for i in range(n)]


async def run(
    bench: Bench, path: str = "/track", label: str = "single /track", key: str | None = NAME
) -> dict[str, Any]:
    backend = make_backend(bench.client, bench.target.url, bench.concurrency, bench.timeout_s)
    data = bodies()
    common: dict[str, Any] = {
        "concurrency": bench.concurrency,
        "headers": bench.write_headers(),
        "body_headers": headers(len(data)),
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
