"""User agent → browser, OS, device class, brand, model and a bot flag. Pure and cached.

Parsing uses ua-parser 1.x with its rules precompiled in ``ua-parser-builtins``. When the native
accelerator ``ua-parser-rs`` is installed (a pinned dependency), ua-parser's ``BestAvailableResolver``
is its Rust ``regex`` resolver: ~20 µs per new user agent instead of ~1-3 ms for the pure-Python
one. :func:`resolver_name` says which one is in use. The results are cached per user-agent string
in a bounded LRU (:data:`CACHE_SIZE`), since agents repeat; strings longer than
:data:`MAX_UA_LENGTH` are cut to that length first. A whole parse of a new agent costs ~55 µs, a
cached one ~0.2 µs (``python -m benchmarks.micro.enrichment``); :func:`warm_up` builds the parsers
(~0.6 s) ahead of the first request.

Fields (empty string when unknown):

- ``browser`` / ``os``: ua-parser's family names ("Chrome", "Chrome Mobile", "Mobile Safari",
  "Edge", "Firefox", "Samsung Internet"; "Windows", "Mac OS X", "iOS", "Android", "Linux",
  "Ubuntu", "Chrome OS"). ua-parser's "Other" becomes "".
- ``browser_version`` / ``os_version``: "major.minor" ("120.0", "17.4"); a numeric major without a
  minor gets ".0" ("Android 14" → "14.0", "Windows NT 10.0" → "10.0", so Windows 11, which sends
  the same token, is "10.0" too); a non-numeric major stays alone ("XP").
- ``brand`` / ``model``: ua-parser's device brand and model ("Apple"/"iPhone",
  "Samsung"/"SM-S918B"), without its placeholders: the brands "Generic*" and "Spider", and the
  models "Smartphone", "Tablet", "Feature Phone", "Desktop", "iOS-Device", and "K" (the model
  that Chrome's reduced user agent sends for every Android device).
- ``device``: one of :data:`DEVICE_CLASSES`, by the first rule that applies:

  1. ``bot`` — ``is_bot`` (below).
  2. ``console`` — an Xbox, PlayStation or Nintendo token, or ua-parser's device of those.
  3. ``tv`` — a smart-TV token (SMART-TV, SmartTV, HbbTV, Web0S, NetCast, BRAVIA, Roku, CrKey,
     Chromecast, Google TV, Android TV, Apple TV, Amazon Fire TV models ``AFT…``), ua-parser's
     TV devices (brand "Generic_Inettv", "AppleTV", "Chromecast", "… SMART-TV") or TV systems
     (tvOS, Roku, Chromecast, GoogleTV, WebTV).
  4. ``wearable`` — watchOS / Wear OS / Apple Watch / SmartWatch tokens, or a Samsung Galaxy
     Watch model (``SM-R`` + 3 digits).
  5. ``tablet`` — an iPad; ua-parser's tablet devices ("Generic Tablet", brand
     "Generic_Android_Tablet", Amazon Kindle, BlackBerry Tablet OS); a "Tablet" token next to
     Android (Firefox); or a *browser* (``Mozilla/…``) on Android without the "Mobile" token —
     Android phones' browsers send it, tablets' don't. iPadOS 13+ Safari asks for desktop sites
     with a Mac user agent: it is indistinguishable from a Mac and counts as ``desktop``.
  6. ``mobile`` — an iPhone or iPod, any other iOS agent (apps' CFNetwork agents name no model),
     Android (app agents such as ``Dalvik/…`` carry no "Mobile" token and are mostly phones),
     Windows Phone/Mobile, BlackBerry, KaiOS, Symbian, Firefox OS, HarmonyOS and the like,
     ua-parser's generic smartphones and feature phones, or a "Mobile"/"Mobi" token.
  7. ``desktop`` — ua-parser's "Mac" device (checked before rule 6: it also names macOS apps'
     CFNetwork agents "iOS"), Windows, macOS, Chrome OS, Linux distributions, the BSDs, Solaris.
  8. ``unknown`` — a non-empty agent none of the above recognises ("node", "hello").

  An empty agent has ``device == ""``.
- ``is_bot``: crawlerdetect's verdict (its maintained crawler list, after its exclusions), or
  ua-parser's device family "Spider". That includes HTTP libraries and command-line clients:
  curl, Wget, python-requests, python-httpx, axios, okhttp, Go-http-client, Java/…, headless
  Chrome. Such agents are also what server-side SDKs send, and a plain "node" is not a bot. This
  module only says what the agent looks like: the contract's rule that requests authenticated
  with a client secret are never bots belongs to the caller (``is_bot and not server_side``).
  An empty agent is not a bot: server-side SDKs often send none.

crawlerdetect's own matcher is one Python regex of ~1,500 alternatives, ~0.5 ms per agent. The
same patterns run here through ua-parser-rs's Rust regex set (~3 µs); only its one lookahead,
``Yandex(?!Search)``, is rewritten into an equivalent lookahead-free form. Its exclusions step
stays Python's. Without ua-parser-rs, or if a future list fails to compile, crawlerdetect's own
matcher is used: same answers, slower.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

MAX_UA_LENGTH = 1024
CACHE_SIZE = 20_000

DEVICE_CLASSES = ("desktop", "mobile", "tablet", "bot", "tv", "console", "wearable", "unknown")


class UserAgentInfo(NamedTuple):
    browser: str = ""
    browser_version: str = ""
    os: str = ""
    os_version: str = ""
    device: str = ""
    brand: str = ""
    model: str = ""
    is_bot: bool = False

    def columns(self) -> dict[str, Any]:
        """The event-row columns of the same names (``is_bot`` as 0/1, as stored)."""
        row = self._asdict()
        row["is_bot"] = int(self.is_bot)
        return row


EMPTY = UserAgentInfo()

# --- device-class vocabulary ------------------------------------------------------------------

_PLACEHOLDER_BRANDS = frozenset(
    {"Generic", "Generic_Android", "Generic_Android_Tablet", "Generic_Inettv", "Spider"}
)
_PLACEHOLDER_MODELS = frozenset(
    {"Smartphone", "Tablet", "Feature Phone", "Desktop", "iOS-Device", "K", "Other"}
)

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Mac OS",
        "Chrome OS",
        "Linux",
        "Ubuntu",
        "Kubuntu",
        "Lubuntu",
        "Linux Mint",
        "Debian",
        "Fedora",
        "Red Hat",
        "CentOS",
        "Arch Linux",
        "Gentoo",
        "Slackware",
        "openSUSE",
        "SUSE",
        "Mandriva",
        "Mageia",
        "PCLinuxOS",
        "Puppy",
        "BackTrack",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "BSD",
        "Solaris",
        "SerenityOS",
    }
)
_MOBILE_OS = frozenset(
    {
        "iOS",
        "Android",
        "Windows Phone",
        "Windows Mobile",
        "BlackBerry OS",
        "KaiOS",
        "Firefox OS",
        "HarmonyOS",
        "Sailfish",
        "MeeGo",
        "Bada",
        "Maemo",
        "Symbian OS",
        "Symbian^3",
        "Symbian^3 Anna",
        "Symbian^3 Belle",
        "Nokia Series 40",
        "Nokia Series 30 Plus",
        "Brew MP",
        "BREW",
    }
)
_TV_OS = frozenset({"tvOS", "ATV OS X", "GoogleTV", "WebTV", "Roku", "FireHbbTV"})
_TV_DEVICE_FAMILIES = frozenset({"AppleTV", "Chromecast", "Inettv", "LG Web0S SmartTV"})
_MOBILE_DEVICE_FAMILIES = frozenset({"Generic Smartphone", "Generic Feature Phone"})

_CONSOLE_RE = re.compile(r"\b(?:Xbox|PlayStation|PLAYSTATION|Nintendo)\b")
_TV_RE = re.compile(
    r"(?i:\b(?:smart[- ]?tv|hbbtv|web0s|netcast|bravia|roku|crkey|chromecast|google ?tv|android ?tv|apple ?tv)\b)"
    r"|; AFT[A-Z0-9]{1,6}(?:\)| Build)"
)
_WEARABLE_RE = re.compile(r"(?i:\b(?:watch ?os|wear ?os|apple watch|smartwatch)\b)|\bSM-R[0-9]{3}\b")
_ANDROID_TABLET_TOKEN_RE = re.compile(r"Android[^)]*; Tablet\b|\bTablet;[^)]*Android")
_MOBILE_TOKEN_RE = re.compile(r"\bMobi(?:le)?\b")
# Lowercase substrings, one of which every match of the pattern above it contains: a substring
# test costs ~0.1 µs, a regex scan of a whole agent 5-15 µs, and most agents have none of them.
_CONSOLE_HINTS = ("xbox", "playstation", "nintendo")
_TV_HINTS = ("tv", "web0s", "netcast", "bravia", "roku", "crkey", "chromecast", "; aft")
_WEARABLE_HINTS = ("watch", "wear", "sm-r")
_TABLET_HINTS = ("tablet",)
_MOBILE_HINTS = ("mobi",)


def _search(pattern: re.Pattern[str], ua: str, lowered: str, hints: tuple[str, ...]) -> bool:
    """``pattern.search(ua)``, skipped when none of its ``hints`` occurs in ``lowered``."""
    for hint in hints:
        if hint in lowered:
            return pattern.search(ua) is not None
    return False


def _version(major: str | None, minor: str | None) -> str:
    if not major:
        return ""
    if minor:
        return f"{major}.{minor}"
    return f"{major}.0" if major.isdigit() else major


def _device_class(ua: str, is_bot: bool, os_family: str, dev_family: str, dev_brand: str) -> str:
    if is_bot:
        return "bot"
    low = ua.lower()
    if (
        _search(_CONSOLE_RE, ua, low, _CONSOLE_HINTS)
        or dev_family.startswith(("PlayStation", "Nintendo"))
        or dev_brand == "Nintendo"
    ):
        return "console"
    if (
        os_family in _TV_OS
        or os_family.startswith("Chromecast")
        or dev_brand == "Generic_Inettv"
        or dev_family in _TV_DEVICE_FAMILIES
        or "SMART-TV" in dev_family
        or _search(_TV_RE, ua, low, _TV_HINTS)
    ):
        return "tv"
    if (
        os_family == "WatchOS"
        or dev_family.startswith("Apple Watch")
        or _search(_WEARABLE_RE, ua, low, _WEARABLE_HINTS)
    ):
        return "wearable"
    if (
        dev_family.startswith("iPad")
        or dev_family == "Generic Tablet"
        or dev_brand == "Generic_Android_Tablet"
        or (dev_brand == "Amazon" and dev_family.startswith("Kindle"))
        or os_family == "BlackBerry Tablet OS"
        or _search(_ANDROID_TABLET_TOKEN_RE, ua, low, _TABLET_HINTS)
        or (
            os_family == "Android"
            and ua.startswith("Mozilla/")
            and not _search(_MOBILE_TOKEN_RE, ua, low, _MOBILE_HINTS)
        )
    ):
        return "tablet"
    if dev_family == "Mac":  # before iOS: ua-parser names macOS apps' CFNetwork agents iOS on a Mac
        return "desktop"
    if (
        dev_family.startswith(("iPhone", "iPod"))
        or os_family in _MOBILE_OS
        or dev_family in _MOBILE_DEVICE_FAMILIES
        or dev_brand == "Generic_Android"
        or _search(_MOBILE_TOKEN_RE, ua, low, _MOBILE_HINTS)
    ):
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "unknown"


# --- engines (built once, lazily: ~0.6 s) -----------------------------------------------------

_YANDEX_LOOKAHEAD = "Yandex(?!Search)"
# The same language as the lookahead, without one: "Yandex" not followed by "Search".
_YANDEX_NO_LOOKAHEAD = "Yandex(?:$|[^S]|S(?:$|[^e]|e(?:$|[^a]|a(?:$|[^r]|r(?:$|[^c]|c(?:$|[^h]))))))"


class _Engines:
    def __init__(self) -> None:
        import ua_parser
        from crawlerdetect.crawlerdetect import get_compiled_crawler_regex, get_compiled_exclusions_regex

        self.resolver_name = self._pick_resolver(ua_parser)
        self.exclusions = get_compiled_exclusions_regex()
        self.crawler_match: Callable[[str], object]
        self.bot_matcher_name: str
        try:
            self.crawler_match = self._rust_crawler_matcher()
            self.bot_matcher_name = "ua-parser-rs"
        except Exception:  # no accelerator, or a pattern it cannot compile
            self.crawler_match = get_compiled_crawler_regex().search
            self.bot_matcher_name = "crawlerdetect"

    def _pick_resolver(self, ua_parser: Any) -> str:
        resolver_cls = ua_parser.BestAvailableResolver
        if resolver_cls is ua_parser.BasicResolver:
            self.resolve = resolver_cls(ua_parser.load_builtins())
        else:  # the native resolvers want the lazy matchers (regex strings, nothing compiled in Python)
            self.resolve = resolver_cls(ua_parser.load_lazy_builtins())
        self.all_domains = ua_parser.Domain.ALL
        return resolver_cls.__module__.rsplit(".", 1)[-1]  # "regex" (ua-parser-rs), "re2" or "basic"

    @staticmethod
    def _rust_crawler_matcher() -> Callable[[str], object]:
        import ua_parser_rs
        from crawlerdetect.providers.crawlers import data as crawler_patterns

        patterns = [_YANDEX_NO_LOOKAHEAD if p == _YANDEX_LOOKAHEAD else p for p in crawler_patterns]
        if any("(?=" in p or "(?!" in p or "(?<" in p for p in patterns):
            raise ValueError("lookaround in the crawler list")  # Rust's regex has none: use Python's
        # A device extractor is a case-insensitive (flag "i") regex set; any match means a crawler.
        extractor = ua_parser_rs.DeviceExtractor([(p, "i", "bot", None, None) for p in patterns])
        return extractor.extract

    def is_crawler(self, ua: str) -> bool:
        """crawlerdetect's ``CrawlerDetect().is_crawler(ua)``, on an already stripped agent."""
        agent = self.exclusions.sub("", ua)
        return bool(agent) and self.crawler_match(agent) is not None


_engines: _Engines | None = None
_engines_lock = threading.Lock()


def _get_engines() -> _Engines:
    global _engines
    if _engines is None:
        with _engines_lock:
            if _engines is None:
                _engines = _Engines()
    return _engines


def warm_up() -> None:
    """Build the parsers now (~0.6 s) rather than on the first request."""
    _get_engines()


def resolver_name() -> str:
    """ua-parser's resolver in use: "regex" (ua-parser-rs), "re2" or "basic" (pure Python)."""
    return _get_engines().resolver_name


def bot_matcher_name() -> str:
    """What runs crawlerdetect's patterns: "ua-parser-rs" or "crawlerdetect" (Python's re)."""
    return _get_engines().bot_matcher_name


# --- parsing ----------------------------------------------------------------------------------


def _parse(ua: str) -> UserAgentInfo:
    if not ua:
        return EMPTY
    engines = _get_engines()
    result = engines.resolve(ua, engines.all_domains)
    browser = result.user_agent
    os_ = result.os
    dev = result.device

    browser_family = browser.family if browser and browser.family != "Other" else ""
    os_family = os_.family if os_ and os_.family != "Other" else ""
    dev_family = dev.family if dev and dev.family != "Other" else ""
    dev_brand = (dev.brand or "") if dev else ""
    dev_model = (dev.model or "") if dev else ""

    is_bot = dev_family == "Spider" or engines.is_crawler(ua)
    device = _device_class(ua, is_bot, os_family, dev_family, dev_brand)
    return UserAgentInfo(
        browser=browser_family,
        browser_version=_version(browser.major, browser.minor) if browser_family and browser else "",
        os=os_family,
        os_version=_version(os_.major, os_.minor) if os_family and os_ else "",
        device=device,
        brand="" if is_bot or dev_brand in _PLACEHOLDER_BRANDS else dev_brand,
        model="" if is_bot or dev_model in _PLACEHOLDER_MODELS else dev_model,
        is_bot=is_bot,
    )


_parse_cached = lru_cache(maxsize=CACHE_SIZE)(_parse)


def parse_user_agent(ua: str | None) -> UserAgentInfo:
    """Parse a User-Agent header value; cached per (stripped, truncated) string."""
    if not ua:
        return EMPTY
    ua = ua.strip()[:MAX_UA_LENGTH]
    if not ua:
        return EMPTY
    return _parse_cached(ua)


def cache_clear() -> None:
    _parse_cached.cache_clear()


def cache_info() -> Any:
    return _parse_cached.cache_info()
