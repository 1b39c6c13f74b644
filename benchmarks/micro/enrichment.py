"""Micro-benchmark of user-agent enrichment (eventlens.ingest.useragent): µs per parse.

    .venv/bin/python -m benchmarks.micro.enrichment [--agents 2000] [--rounds 5] [--slow-sample 100]

Takes ~2,000 distinct, realistic user agents (``benchmarks.traffic.make_agents``: versions and
models varied in templates of real ones), then times, single-threaded, in this process:

- first: the first agents the process ever parses (ua-parser-rs compiles its regexes lazily);
- cold: agents unseen (cache cleared), once warm — what the first event of a new agent costs;
- cached: the same agents again — what every later event of that agent costs;
- the parts of a cold parse: ua-parser's resolver alone, the crawler check alone;
- for comparison, on a small sample: ua-parser's pure-Python resolver and crawlerdetect's own
  (Python ``re``) matcher, i.e. what a cold parse would cost without ua-parser-rs.

Bounded: a few seconds of one core. Not a test; prints a table.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence

from benchmarks.traffic import make_agents


def per_op_us(
    fn: Callable[[str], object], agents: Sequence[str], before: Callable[[], None] | None = None
) -> float:
    if before is not None:
        before()
    gc.disable()
    try:
        start = time.perf_counter()
        for ua in agents:
            fn(ua)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / len(agents) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro.enrichment", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--agents", type=int, default=2000, help="distinct user agents (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the cached agents (default 5)")
    parser.add_argument(
        "--slow-sample", type=int, default=100, help="agents for the pure-Python comparisons (0: skip)"
    )
    args = parser.parse_args(argv)

    from eventlens.ingest import useragent

    agents = make_agents(args.agents)
    assert args.agents <= useragent.CACHE_SIZE, "more agents than the cache holds: 'cached' would miss"

    start = time.perf_counter()
    useragent.warm_up()
    warm_s = time.perf_counter() - start
    engines = useragent._get_engines()

    rows: list[tuple[str, int, float]] = []
    # ua-parser-rs compiles each of its regexes on first use: the first agents of a process pay
    # for that. A second, disjoint set shows the steady state of agents never seen before.
    others = [ua for ua in make_agents(args.agents, seed=8) if ua not in set(agents)]
    first = per_op_us(useragent.parse_user_agent, others, before=useragent.cache_clear)
    rows.append(("parse_user_agent, first agents of the process", len(others), first))
    cold = per_op_us(useragent.parse_user_agent, agents, before=useragent.cache_clear)
    rows.append(("parse_user_agent, cold (unseen agents, cache cleared)", len(agents), cold))
    cached = min(per_op_us(useragent.parse_user_agent, agents) for _ in range(args.rounds))
    rows.append((f"parse_user_agent, cached (best of {args.rounds} rounds)", len(agents), cached))
    domains = engines.all_domains
    rows.append(
        (
            f"  part: ua-parser resolver ({engines.resolver_name})",
            len(agents),
            per_op_us(lambda ua: engines.resolve(ua, domains), agents),
        )
    )
    rows.append(
        (
            f"  part: crawler check (exclusions + {engines.bot_matcher_name} regex set)",
            len(agents),
            per_op_us(engines.is_crawler, agents),
        )
    )
    rows.append(
        (
            "    of which: crawlerdetect exclusions (Python re)",
            len(agents),
            per_op_us(lambda ua: engines.exclusions.sub("", ua), agents),
        )
    )

    if args.slow_sample > 0:
        import ua_parser
        from crawlerdetect.crawlerdetect import get_compiled_crawler_regex

        sample = random.Random(1).sample(agents, min(args.slow_sample, len(agents)))
        crawler_re = get_compiled_crawler_regex()
        rows.append(
            (
                "  compare: crawler check, crawlerdetect's Python re",
                len(sample),
                per_op_us(lambda ua: crawler_re.search(engines.exclusions.sub("", ua)), sample),
            )
        )
        basic = ua_parser.BasicResolver(ua_parser.load_builtins())
        basic(sample[0], domains)  # compile what the first agent needs outside the timing
        rows.append(
            (
                "  compare: ua-parser pure-Python resolver (basic)",
                len(sample),
                per_op_us(lambda ua: basic(ua, domains), sample[1:]),
            )
        )

    devices: dict[str, int] = {}
    for ua in agents:
        device = useragent.parse_user_agent(ua).device
        devices[device] = devices.get(device, 0) + 1

    width = max(len(r[0]) for r in rows)
    print(
        f"user-agent enrichment: {len(agents)} distinct agents, warm-up (build parsers) {warm_s * 1000:.0f} ms"
    )
    print(f"{'what':<{width}}  {'agents':>6}  {'µs/op':>9}")
    print(f"{'-' * width}  {'-' * 6}  {'-' * 9}")
    for name, n, us in rows:
        print(f"{name:<{width}}  {n:>6}  {us:>9.2f}")
    print("device classes:", ", ".join(f"{k} {v}" for k, v in sorted(devices.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
