"""Browser-like visitors for the load scenarios, so the daemon's full enrichment does real work.

Each visitor has a public IP address (sent as ``X-Forwarded-For``, which the daemon reads before the
socket address, so geo lookups hit the bundled database) and one of ``AGENTS`` user agents (desktop,
phone, tablet and app, from ``benchmarks.enrichment_bench``; crawlers and HTTP libraries are left
out because their events are excluded from ``/metrics``, which the runner's consistency check
reads), and events carry referrers of every type. Seeded: every run sends the same traffic.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from benchmarks.enrichment_bench import make_agents

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
