"""Per-event cost of the ingest pipeline, with and without enrichment: µs per event.

    .venv/bin/python -m benchmarks.micro.pipeline [--events 20000] [--json]

Times, single-threaded in this process, what an ingest replica does per event before the shard
hand-off: validation, properties, timestamp, device id, page/UTM split, referrer classification
(``ingest.pipeline``) and, once per request, user agent + geo (``ingest.context.build_context``).

- bare: enrichment switched off (empty user agent, no geo database) — the foundation's path;
- enriched, warm: realistic traffic, where user agents, IPs and referrers repeat (caches hit);
- enriched, cold: every event with a user agent, IP and referrer never seen before.

Bounded: a few seconds of one core. Not a test; prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.traffic import make_agents, public_ip
from eventlens.config import Settings
from eventlens.ingest.context import RequestContext, build_context
from eventlens.ingest.geo import GeoLookup
from eventlens.ingest.pipeline import Limits, prepare
from eventlens.ingest.useragent import warm_up

NOW = 1_790_000_000_000
SALTS = ("s" * 64, "t" * 64)
IP_HEADERS = Settings().ip_headers
REFERRERS = [
    "https://www.google.com/",
    "https://t.co/x",
    "",
    "https://news.ycombinator.com/",
    "https://shop.example/a",
]


def _body(i: int, referrer: str) -> dict[str, Any]:
    return {
        "type": "track",
        "payload": {
            "name": "page_view" if i % 3 else "add_to_cart",
            "path": f"https://shop.example/p/{i % 500}?utm_source=news&utm_medium=email",
            "referrer": referrer,
            "properties": {"plan": "pro", "sku": f"s{i % 97}", "price": "9.99"},
        },
    }


def run(n: int, mode: str, geo: GeoLookup, agents: list[str]) -> float:
    limits = Limits()
    rnd = random.Random(1)
    start = time.perf_counter()
    for i in range(n):
        if mode == "bare":  # no user agent, no geo: the pipeline's own cost
            ref = REFERRERS[i % len(REFERRERS)]
            ctx = RequestContext(
                "p1", "203.0.113.9", "", NOW, SALTS[0], SALTS[1], origin="https://shop.example"
            )
        else:
            if mode == "cold":
                ua, ip, ref = (
                    agents[i % len(agents)] + f" b{i}",
                    public_ip(i),
                    f"https://site{i}.example/post",
                )
            else:
                ua, ip, ref = (
                    agents[rnd.randrange(50)],
                    public_ip(rnd.randrange(300)),
                    REFERRERS[i % len(REFERRERS)],
                )
            headers = {"user-agent": ua, "x-forwarded-for": ip, "origin": "https://shop.example"}
            ctx = build_context("p1", headers, None, SALTS, ip_headers=IP_HEADERS, geo=geo, now_ms=NOW)
        prepare(_body(i, ref), ctx, limits)
    return (time.perf_counter() - start) / n * 1e6


def measure(events: int = 20_000) -> dict[str, float]:
    """µs per event of the three paths, and the enrichment's share of the warm and cold ones."""
    n = min(max(events, 1000), 200_000)
    warm_up()
    geo = GeoLookup(Settings().geo_database)
    agents = make_agents(2000)
    run(2000, "warm", geo, agents)  # first-use costs out of the way
    bare = run(n, "bare", geo, agents)
    warm = run(n, "warm", geo, agents)
    cold = run(min(n, 5000), "cold", geo, agents)
    return {
        "events": n,
        "bare_us": round(bare, 2),
        "warm_us": round(warm, 2),
        "cold_us": round(cold, 2),
        "enrichment_warm_us": round(warm - bare, 2),
        "enrichment_cold_us": round(cold - bare, 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.micro.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)
    m = measure(args.events)
    if args.json:
        print(json.dumps(m))
        return
    bare, warm, cold = m["bare_us"], m["warm_us"], m["cold_us"]
    print(f"{'path':<28}{'µs/event':>10}{'events/s/core':>16}")
    for label, us in (
        ("bare (no enrichment)", bare),
        ("enriched, warm caches", warm),
        ("enriched, all unseen", cold),
    ):
        print(f"{label:<28}{us:>10.1f}{1e6 / us:>16,.0f}")
    print(f"enrichment cost per event: warm {warm - bare:.1f} µs, cold {cold - bare:.1f} µs")


if __name__ == "__main__":
    main()
