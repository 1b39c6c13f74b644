"""The per-request context (eventlens.ingest.context): client IP, user agent, geo, salts, bot rule."""

from __future__ import annotations

from eventlens.config import DEFAULT_IP_HEADERS
from eventlens.ingest.context import RequestContext, build_context

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


def ctx(headers: dict[str, str], server_side: bool = False, peer: str | None = "10.0.0.1") -> RequestContext:
    return build_context(
        "p1",
        headers,
        peer,
        ("now", "before"),
        ip_headers=DEFAULT_IP_HEADERS,
        geo=None,
        server_side=server_side,
        now_ms=1_750_000_000_000,
    )


def test_context_takes_the_first_public_forwarded_address_and_the_sdk_headers() -> None:
    c = ctx(
        {
            "user-agent": CHROME,
            "x-forwarded-for": "10.1.1.1, 81.2.69.142",
            "openpanel-sdk-name": "web",
            "openpanel-sdk-version": "1.4.1",
            "origin": "https://shop.example",
        }
    )
    assert c.ip == "81.2.69.142"
    assert (c.salt, c.prev_salt) == ("now", "before")
    assert (c.sdk_name, c.sdk_version, c.origin) == ("web", "1.4.1", "https://shop.example")
    assert c.enrichment["browser"] == "Chrome"
    assert c.enrichment["is_bot"] == 0
    assert c.now_ms == 1_750_000_000_000


def test_peer_address_when_no_header_names_a_public_one() -> None:
    assert ctx({"x-forwarded-for": "192.168.0.3"}, peer="10.0.0.9").ip == "10.0.0.9"


def test_a_crawler_is_a_bot_unless_the_caller_is_a_server_side_sdk() -> None:
    bot = {"user-agent": "curl/8.5.0"}
    assert ctx(bot).enrichment["is_bot"] == 1
    server = ctx(bot, server_side=True).enrichment
    assert server["is_bot"] == 0
    assert server["device"] != "bot"


def test_long_headers_are_cut() -> None:
    c = ctx({"user-agent": "x" * 5000, "openpanel-sdk-name": "n" * 500, "origin": "o" * 2000})
    assert len(c.user_agent) == 1024
    assert len(c.sdk_name) == 64
    assert len(c.origin) == 512
