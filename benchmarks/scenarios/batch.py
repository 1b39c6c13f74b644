"""Scenario 2: ``POST /track/batch`` — events per second with 100 and with 1,000 events per request.

Closed loop, ``bench.batch_concurrency`` keep-alive connections. Each request carries ``size``
events (8 pre-encoded bodies are cycled; events carry no client id, so the server assigns one to
each and nothing is deduplicated), spread over 5,000 device ids (as a mobile or server SDK sends
them) and a few event names, with pages, UTM parameters and referrers of every type; each body is
sent with its own user agent and public address (``benchmarks.traffic``), so user agent and geo
enrichment run once per request as in production. Events per
second counts only events the server reported as accepted in a 200 answer (``accepted``); events it
rejected inside a 200 answer are reported separately.
"""

from __future__ import annotations

from typing import Any

import orjson

from benchmarks.common import Bench, count_accepted
from benchmarks.loadgen import make_backend, run_load
from benchmarks.traffic import page, referrer, visitors

NAME = "batch"
TARGET_EVENTS_PER_S = 20_000.0
NAMES = ("page_view", "signup_click", "add_to_cart", "search", "video_play")


def bodies(size: int, n_bodies: int = 8, devices: int = 5000) -> list[bytes]:
    out = []
    for b in range(n_bodies):
        events = []
        for j in range(size):
            i = b * size + j
            events.append(
                {
                    "type": "track",
                    "payload": {
                        "name": NAMES[i % len(NAMES)],
                        "deviceId": f"bench-batch-{i % devices}",
                        "path": page(i, 50),
                        "referrer": referrer(i),
                        "properties": {"seq": i, "variant": "b" if i % 2 else "a"},
                    },
                }
            )
        out.append(orjson.dumps({"events": events}))
    return out


def accept(content: bytes) -> tuple[int, int]:
    body = orjson.loads(content)
    return int(body["accepted"]), len(body.get("rejected") or [])


async def run(bench: Bench, size: int) -> dict[str, Any]:
    conc = bench.batch_concurrency
    backend = make_backend(bench.client, bench.target.url, conc, bench.timeout_s)
    data = bodies(size)
    label = f"batch x{size}"
    common: dict[str, Any] = {
        "concurrency": conc,
        "headers": bench.write_headers(),
        "body_headers": [v.headers() for v in visitors(len(data))],
        "progress": bench.progress,
        "console": bench.console,
        "timeout_s": bench.timeout_s,
        "items_per_request": size,
        "accept": accept,
    }
    try:
        warm = None
        if bench.warmup_s > 0:
            warm = await run_load(
                backend,
                "/track/batch",
                data,
                label=f"{label} warm-up",
                duration_s=bench.warmup_s,
                max_requests=bench.max_requests,
                **common,
            )
            count_accepted(bench, f"{NAME}{size}", warm.items)
        res = await run_load(
            backend,
            "/track/batch",
            data,
            label=label,
            duration_s=bench.duration_s,
            max_requests=bench.max_requests,
            **common,
        )
        count_accepted(bench, f"{NAME}{size}", res.items)
    finally:
        await backend.aclose()
    out = res.summary()
    out["body_bytes"] = len(data[0])
    out["warmup"] = warm.summary() if warm else None
    return out
