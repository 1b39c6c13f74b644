"""Micro-benchmark of user-agent enrichment (eventlens.ingest.useragent): µs per parse.

    .venv/bin/python -m benchmarks.enrichment_bench [--agents 2000] [--rounds 5] [--slow-sample 100]

Builds ~2,000 distinct, realistic user agents by varying versions and models in templates of
real ones, then times, single-threaded, in this process:

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
import itertools
import random
import time
from collections.abc import Callable, Sequence

TEMPLATES = [
    # desktop
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{b}.{p}",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{s}.{m} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0",
    "Mozilla/5.0 (X11; CrOS x86_64 {b}.{p}.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    # phones
    "Mozilla/5.0 (iPhone; CPU iPhone OS {s}_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{s}.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS {s}_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{v}.0.{b}.{p} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {a}; SM-S9{n}B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android {a}; Pixel {px}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android {a}; SM-A{n}5F) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{sb}.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android {a}; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    # tablets
    "Mozilla/5.0 (iPad; CPU OS {s}_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{s}.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {a}; SM-X{n}0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p} Safari/537.36",
    # apps, bots, libraries
    "MyApp/{sb}.{m}.{n} CFNetwork/1{n}4.0.7 Darwin/{a}.{m}.0",
    "Mozilla/5.0 (compatible; Googlebot/2.{m}; +http://www.google.com/bot.html) Chrome/{v}.0.{b}.{p}",
    "Mozilla/5.0 (compatible; bingbot/2.{m}; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.{n}.{m}",
    "curl/8.{m}.{n}",
]


def make_agents(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for template in itertools.cycle(TEMPLATES):
        if len(seen) >= count:
            break
        ua = template.format(
            v=rng.randint(90, 130),
            b=rng.randint(4000, 6999),
            p=rng.randint(0, 250),
            s=rng.randint(13, 18),
            m=rng.randint(0, 7),
            f=rng.randint(100, 130),
            a=rng.randint(9, 15),
            n=rng.randint(0, 99),
            px=rng.choice(["6", "7", "7a", "8", "8 Pro", "9"]),
            sb=rng.randint(18, 27),
        )
        seen[ua] = None
    return list(seen)


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
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
