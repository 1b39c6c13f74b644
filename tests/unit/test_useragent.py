"""User-agent enrichment (eventlens.ingest.useragent), on real user agents.

Expected values were checked against ua-parser 1.0.2 + ua-parser-builtins 202610 + crawlerdetect
0.4.2 (the pinned versions): a rules update may rename a family, and then this table is updated.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest import useragent
from eventlens.ingest.useragent import (
    DEVICE_CLASSES,
    EMPTY,
    MAX_UA_LENGTH,
    UserAgentInfo,
    parse_user_agent,
)

UA = UserAgentInfo

# Chrome on Windows 11 sends the same "Windows NT 10.0" token as Windows 10 (the real version is
# only in the Sec-CH-UA-Platform-Version client hint), so both are os_version "10.0".
CHROME_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Mobile/15E148 Safari/604.1"
)

CASES: list[tuple[str, str, UserAgentInfo]] = [
    # --- desktop browsers
    ("chrome-windows", CHROME_WINDOWS, UA("Chrome", "120.0", "Windows", "10.0", "desktop")),
    (
        "safari-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4.1 Safari/605.1.15",
        UA("Safari", "17.4", "Mac OS X", "10.15", "desktop", "Apple", "Mac"),
    ),
    (
        "chrome-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        UA("Chrome", "124.0", "Mac OS X", "10.15", "desktop", "Apple", "Mac"),
    ),
    (
        "firefox-ubuntu",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        UA("Firefox", "125.0", "Ubuntu", "", "desktop"),
    ),
    (
        "firefox-linux",
        "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
        UA("Firefox", "115.0", "Linux", "", "desktop"),
    ),
    (
        "edge-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        UA("Edge", "124.0", "Windows", "10.0", "desktop"),
    ),
    (
        "opera-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0",
        UA("Opera", "109.0", "Windows", "10.0", "desktop"),
    ),
    (
        "ie11-windows7",
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        UA("IE", "11.0", "Windows", "7.0", "desktop"),
    ),
    (
        "firefox-windows-xp",  # a non-numeric major stays alone
        "Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0",
        UA("Firefox", "52.0", "Windows", "XP", "desktop"),
    ),
    (
        "firefox-windows-8.1",
        "Mozilla/5.0 (Windows NT 6.3; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
        UA("Firefox", "115.0", "Windows", "8.1", "desktop"),
    ),
    (
        "chrome-chromeos",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        UA("Chrome", "124.0", "Chrome OS", "14541.0", "desktop"),
    ),
    (
        "yandex-browser",  # not "YandexBot": crawlerdetect's Yandex(?!Search) and its exclusions
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
        UA("Yandex Browser", "24.4", "Windows", "10.0", "desktop"),
    ),
    # --- phones
    ("safari-iphone", IPHONE_SAFARI, UA("Mobile Safari", "17.4", "iOS", "17.4", "mobile", "Apple", "iPhone")),
    (
        "chrome-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        UA("Chrome Mobile iOS", "124.0", "iOS", "17.4", "mobile", "Apple", "iPhone"),
    ),
    (
        "facebook-in-app-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.108;FBBV/588467025;FBDV/iPhone15,2;FBMD/iPhone;"
        "FBSN/iOS;FBSV/17.4.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        UA("Facebook", "460.0", "iOS", "17.4", "mobile", "Apple", "iPhone15,2"),
    ),
    (
        "chrome-samsung-galaxy",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Mobile Safari/537.36",
        UA("Chrome Mobile", "124.0", "Android", "14.0", "mobile", "Samsung", "SM-S918B"),
    ),
    (
        "samsung-internet",
        "Mozilla/5.0 (Linux; Android 13; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        UA("Samsung Internet", "24.0", "Android", "13.0", "mobile", "Samsung", "SM-A546B"),
    ),
    (
        "chrome-pixel",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Mobile Safari/537.36",
        UA("Chrome Mobile", "124.0", "Android", "14.0", "mobile", "Google", "Pixel 8"),
    ),
    (
        "chrome-android-reduced",  # Chrome's reduced UA: model "K" for every device, dropped
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        UA("Chrome Mobile", "124.0", "Android", "10.0", "mobile"),
    ),
    (
        "firefox-android-phone",
        "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
        UA("Firefox Mobile", "125.0", "Android", "14.0", "mobile"),
    ),
    (
        "cubot-phone",  # "bot" in a phone brand: crawlerdetect's exclusions keep it a person
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        UA("Chrome Mobile", "124.0", "Android", "10.0", "mobile", "Cubot", "X30"),
    ),
    (
        "android-app-dalvik",  # an app's default agent: no "Mobile" token, still a phone
        "Dalvik/2.1.0 (Linux; U; Android 13; SM-S918B Build/TP1A.220624.014)",
        UA("Android", "13.0", "Android", "13.0", "mobile", "Samsung", "SM-S918B"),
    ),
    (
        "ios-app-cfnetwork",  # React Native / Expo fetch on iOS: no model in the agent
        "Expo/2.31.2 CFNetwork/1496.0.7 Darwin/23.5.0",
        UA("Expo", "2.31", "iOS", "17.5", "mobile", "Apple"),
    ),
    # --- tablets
    (
        "safari-ipad",
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
        UA("Mobile Safari", "16.6", "iOS", "16.6", "tablet", "Apple", "iPad"),
    ),
    (
        "chrome-galaxy-tab",  # Android without "Mobile" → tablet
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Safari/537.36",
        UA("Chrome", "124.0", "Android", "13.0", "tablet", "", "SM-X700"),
    ),
    (
        "chrome-pixel-tablet",
        "Mozilla/5.0 (Linux; Android 14; Pixel Tablet) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.82 Safari/537.36",
        UA("Chrome", "124.0", "Android", "14.0", "tablet", "Google", "Pixel Tablet"),
    ),
    (
        "chrome-android-tablet-reduced",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        UA("Chrome", "124.0", "Android", "10.0", "tablet"),
    ),
    (
        "firefox-android-tablet",
        "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
        UA("Firefox Mobile", "125.0", "Android", "14.0", "tablet"),
    ),
    (
        "silk-kindle-fire",
        "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.6 "
        "like Chrome/124.0.6367.219 Safari/537.36",
        UA("Amazon Silk", "124.2", "Android", "11.0", "tablet", "Amazon", "Kindle"),
    ),
    # --- TVs, consoles, wearables
    (
        "samsung-tizen-tv",
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "76.0.3809.146/6.0 TV Safari/537.36",
        UA("Safari", "", "Tizen", "6.0", "tv", "Samsung", "SMART-TV"),
    ),
    (
        "lg-webos-tv",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 "
        "Safari/537.36 WebAppManager",
        UA("Chrome", "79.0", "Web0S", "", "tv", "LG", "Web0S SmartTV"),
    ),
    (
        "amazon-fire-tv",  # a TV that says "Mobile Safari"
        "Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36",
        UA("Chrome Mobile WebView", "120.0", "Android", "9.0", "tv", "", "AFTKA"),
    ),
    (
        "chromecast-google-tv",
        "Mozilla/5.0 (Linux; Android 12; Chromecast Build/STTE.230319.008; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/114.0.5735.196 Safari/537.36",
        UA("Chrome Mobile WebView", "114.0", "Android", "12.0", "tv", "", "Chromecast"),
    ),
    (
        "playstation-5",
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/13.0 Safari/605.1.15",
        UA("Safari", "13.0", "", "", "console", "Sony", "PlayStation 5"),
    ),
    (
        "xbox-one",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/48.0.2564.82 Safari/537.36 Edge/20.02",
        UA("Edge", "20.02", "Windows", "10.0", "console"),
    ),
    (
        "nintendo-switch",
        "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/609.4 (KHTML, like Gecko) "
        "NF/6.0.2.21.3 NintendoBrowser/5.1.0.22474",
        UA("", "", "", "", "console", "Nintendo", "Switch"),
    ),
    (
        "galaxy-watch",
        "Mozilla/5.0 (Linux; Android 11; SM-R860 Build/RWD2.220202.002; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/96.0.4664.104 Mobile Safari/537.36",
        UA("Chrome Mobile WebView", "96.0", "Android", "11.0", "wearable", "Samsung", "SM-R860"),
    ),
    # --- crawlers: brand/model placeholders ("Spider") dropped; browser/os kept
    (
        "googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        UA("Googlebot", "2.1", "", "", "bot", is_bot=True),
    ),
    (
        "googlebot-smartphone",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        UA("Googlebot", "2.1", "Android", "6.0", "bot", is_bot=True),
    ),
    (
        "bingbot",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        UA("bingbot", "2.0", "", "", "bot", is_bot=True),
    ),
    (
        "yandexbot",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        UA("YandexBot", "3.0", "", "", "bot", is_bot=True),
    ),
    (
        "gptbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        UA("GPTBot", "1.2", "", "", "bot", is_bot=True),
    ),
    (
        "ahrefsbot",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        UA("AhrefsBot", "7.0", "", "", "bot", is_bot=True),
    ),
    (
        "facebook-link-preview",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        UA("FacebookBot", "1.1", "", "", "bot", is_bot=True),
    ),
    (
        "headless-chrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 "
        "Safari/537.36",
        UA("HeadlessChrome", "124.0", "Linux", "", "bot", is_bot=True),
    ),
    # --- HTTP libraries and CLI clients: crawlerdetect lists them, so they are bots here; the
    # caller exempts requests authenticated with a client secret (server-side SDKs).
    ("curl", "curl/8.5.0", UA("curl", "8.5", "", "", "bot", is_bot=True)),
    ("wget", "Wget/1.21.4", UA("Wget", "1.21", "", "", "bot", is_bot=True)),
    ("python-requests", "python-requests/2.31.0", UA("Python Requests", "2.31", "", "", "bot", is_bot=True)),
    ("python-httpx", "python-httpx/0.27.0", UA("", "", "", "", "bot", is_bot=True)),
    ("go-http-client", "Go-http-client/2.0", UA("Go-http-client", "2.0", "", "", "bot", is_bot=True)),
    ("axios", "axios/1.6.8", UA("axios", "1.6", "", "", "bot", is_bot=True)),
    ("okhttp-react-native-android", "okhttp/4.9.2", UA("okhttp", "4.9", "", "", "bot", is_bot=True)),
    # --- nothing recognisable
    ("node", "node", UA("", "", "", "", "unknown")),
    ("garbage", "hello world", UA("", "", "", "", "unknown")),
    ("empty", "", EMPTY),
    ("blank", "   ", EMPTY),
]


@pytest.mark.parametrize(("ua", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_real_user_agents(ua: str, expected: UserAgentInfo) -> None:
    assert parse_user_agent(ua) == expected


def test_case_ids_are_unique() -> None:
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))


def test_native_accelerators_are_in_use() -> None:
    # ua-parser-rs is a pinned dependency: the pure-Python resolver is ~100x slower per new agent.
    assert useragent.resolver_name() == "regex"
    assert useragent.bot_matcher_name() == "ua-parser-rs"


def test_empty_and_none() -> None:
    assert parse_user_agent(None) is EMPTY
    assert parse_user_agent("") == UserAgentInfo("", "", "", "", "", "", "", False)
    assert parse_user_agent(" \t\n") is EMPTY


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_user_agent(f"  {IPHONE_SAFARI}\n") == parse_user_agent(IPHONE_SAFARI)


def test_long_user_agent_is_truncated_before_parsing() -> None:
    long_ua = CHROME_WINDOWS + " " + "x" * 5000
    assert parse_user_agent(long_ua) == parse_user_agent(long_ua[:MAX_UA_LENGTH])
    assert parse_user_agent(long_ua).browser == "Chrome"
    # anything past the limit cannot change the result: a crawler token there is not seen
    assert not parse_user_agent(CHROME_WINDOWS + " " * MAX_UA_LENGTH + "Googlebot/2.1").is_bot


def test_results_are_cached_per_string() -> None:
    useragent.cache_clear()
    first = parse_user_agent(CHROME_WINDOWS)
    second = parse_user_agent(CHROME_WINDOWS)
    assert first is second
    info = useragent.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize == useragent.CACHE_SIZE


def test_columns_match_the_event_row() -> None:
    from eventlens.records import EVENT_COLUMNS

    row = parse_user_agent(
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    ).columns()
    assert set(row) <= set(EVENT_COLUMNS)
    assert row["is_bot"] == 1
    assert parse_user_agent(CHROME_WINDOWS).columns()["is_bot"] == 0


def test_device_is_always_a_known_class() -> None:
    for _, ua, _ in CASES:
        assert parse_user_agent(ua).device in (*DEVICE_CLASSES, "")


# --- the Rust crawler matcher gives crawlerdetect's verdicts ----------------------------------


def _crawlerdetect(ua: str) -> bool:
    from crawlerdetect import CrawlerDetect

    return CrawlerDetect().is_crawler(ua)


def test_bot_flag_agrees_with_crawlerdetect_on_the_table() -> None:
    for name, ua, expected in CASES:
        if name == "node":
            continue
        assert expected.is_bot == _crawlerdetect(ua), name


def test_every_literal_crawler_pattern_is_recognised() -> None:
    from crawlerdetect.providers.crawlers import data

    literals = [p for p in data if not re.search(r"[\\^$.*+?()\[\]{}|]", p)]
    assert len(literals) > 1000
    engines = useragent._get_engines()
    agents = [f"Mozilla/5.0 (compatible; {p.upper()}/1.0)" for p in literals]
    missed = [ua for ua in agents if not engines.is_crawler(ua)]
    # A few contain an exclusion (" Intel" in "Intelliseek"): crawlerdetect misses them too.
    assert len(missed) < 10
    assert not any(_crawlerdetect(ua) for ua in missed)


@pytest.mark.parametrize(
    ("ua", "is_bot"),
    [
        ("YandexBot/3.0", True),
        ("Yandex", True),
        ("YandexSearch/24.1", False),  # the one lookahead, rewritten for Rust's regex
        ("yandexsearch", False),
        ("YandexSearc", True),
        ("Mozilla/5.0 (compatible; YandexImages/3.0; +http://yandex.com/bots)", True),
        ("Java/17.0.2", True),  # anchored patterns
        ("Mozilla/5.0 Java/17.0.2", False),
        ("Amazon Simple Notification Service Agent", True),
        ("Amazon Simple Notification Service Agent 2", False),
    ],
)
def test_crawler_matcher_edge_cases(ua: str, is_bot: bool) -> None:
    assert _crawlerdetect(ua) is is_bot
    assert useragent._get_engines().is_crawler(ua) is is_bot


def test_python_fallback_when_the_rust_matcher_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> None:
        raise ImportError("no ua_parser_rs")

    monkeypatch.setattr(useragent._Engines, "_rust_crawler_matcher", staticmethod(unavailable))
    engines = useragent._Engines()
    assert engines.bot_matcher_name == "crawlerdetect"
    assert engines.is_crawler("Mozilla/5.0 (compatible; bingbot/2.0)")
    assert not engines.is_crawler("YandexSearch/24.1")
    assert not engines.is_crawler(IPHONE_SAFARI)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_to_strings(ua: str) -> None:
    info = parse_user_agent(ua)
    assert info.device in (*DEVICE_CLASSES, "")
    assert all(isinstance(v, str) for v in info[:7])
    assert isinstance(info.is_bot, bool)
    assert (info.device == "") == (ua.strip() == "")
    assert (info.device == "bot") == info.is_bot
