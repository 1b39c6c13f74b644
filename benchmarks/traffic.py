"""Browser-like visitors for the load scenarios, so the daemon's full enrichment does real work.

Each visitor has a public IP address (sent as ``X-Forwarded-For``, which the daemon reads before the
socket address, so geo lookups hit the bundled database) and one of ``AGENTS`` user agents (desktop,
phone, tablet and app, from ``make_agents``, which the micro-benchmarks share; crawlers and HTTP
libraries are left out because their events are excluded from ``/metrics``, which the runner's
consistency check reads), and events carry referrers of every type. Seeded: every run sends the
same traffic.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

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
    """``count`` distinct user agents: versions and models drawn into ``TEMPLATES`` (real agents)."""
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


NOT_BROWSERS = re.compile(r"bot|curl|python-requests", re.IGNORECASE)
AGENTS = 64  # distinct user agents: parsed once each, then served from the replica's cache
REFERRERS = (
    "",  # direct
    "https://www.google.com/",
    "https://www.bing.com/search?q=event+lens",
    "https://t.co/abc123",
    "https://www.facebook.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://mail.google.com/mail/u/0/",
    "https://bench.example.com/p/1",  # internal
    "https://blog.partner.example/post",  # other
)
UTM = ("", "?utm_source=newsletter&utm_medium=email&utm_campaign=nov", "?utm_source=bench&utm_medium=cpc")


@dataclass(frozen=True)
class Visitor:
    ip: str
    user_agent: str

    def headers(self) -> dict[str, str]:
        return {"user-agent": self.user_agent, "x-forwarded-for": self.ip}


def public_ip(i: int) -> str:
    """Deterministic addresses spread over public ranges (11.x–210.x)."""
    return f"{(i * 7919) % 200 + 11}.{(i * 104729) % 250}.{(i // 250) % 250}.{i % 250 + 1}"


def visitors(n: int, seed: int = 11) -> list[Visitor]:
    rng = random.Random(seed)
    agents = [ua for ua in make_agents(AGENTS * 2) if not NOT_BROWSERS.search(ua)][:AGENTS]
    return [Visitor(public_ip(i), agents[rng.randrange(len(agents))]) for i in range(n)]


def referrer(i: int) -> str:
    return REFERRERS[i % len(REFERRERS)]


def page(i: int, pages: int) -> str:
    return f"https://bench.example.com/p/{i % pages}{UTM[i % len(UTM)]}"
