"""The synthetic site's static data: pages, referrers, places, devices, event names and properties.

Weights are relative; the generator normalises them. Nothing here draws random numbers.
"""

from __future__ import annotations

import numpy as np

ORIGIN = "https://www.example.com"
SDK_NAME, SDK_VERSION = "web", "1.4.2"

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SESSION_GAP_MS = 31 * 60_000  # > the daemon's 30-minute session timeout
MAX_EVENT_GAP_MS = 25 * 60_000  # < the timeout: a session never splits

# event kinds, as indexes into EVENT_NAMES
PAGE_VIEW, BUTTON_CLICK, SIGNUP_CLICK, SIGNUP_COMPLETE, PURCHASE = range(5)
EVENT_NAMES = np.array(
    ["page_view", "button_click", "signup_click", "signup_complete", "purchase"], dtype=object
)


def _paths() -> list[str]:
    """300 page paths, most popular first (rank decides the Zipf weight)."""
    head = [
        "/",
        "/pricing",
        "/features",
        "/docs",
        "/blog",
        "/signup",
        "/login",
        "/about",
        "/contact",
        "/changelog",
        "/checkout",
        "/customers",
        "/security",
        "/careers",
        "/integrations",
    ]
    features = [
        f"/features/{x}"
        for x in [
            "dashboards",
            "funnels",
            "retention",
            "realtime",
            "sessions",
            "referrers",
            "geo",
            "devices",
            "events",
            "profiles",
            "api",
            "exports",
            "alerts",
            "sdk",
            "self-hosting",
        ]
    ]
    docs = [f"/docs/{t}" for t in _words(80, "guide")]
    integrations = [f"/integrations/{t}" for t in _words(40, "tool")]
    blog = [f"/blog/{t}" for t in _words(300 - len(head) - len(features) - len(docs) - 40, "post")]
    paths = head + features + docs + integrations + blog
    # interleave so that the tail is a mix of sections, not all blog posts
    order = sorted(range(len(paths)), key=lambda i: (i >= 20, i if i < 20 else (i * 7919) % 997))
    return [paths[i] for i in order]


def _words(n: int, kind: str) -> list[str]:
    a = ["quick", "deep", "first", "better", "simple", "modern", "privacy", "cookieless", "server", "mobile"]
    b = ["tracking", "analytics", "events", "funnels", "sessions", "dashboards", "metrics", "cohorts"]
    out = []
    for i in range(n):
        out.append(f"{a[i % len(a)]}-{b[(i // len(a)) % len(b)]}-{kind}-{i + 1}")
    return out


PATHS = _paths()
assert len(PATHS) == 300 and len(set(PATHS)) == 300
PATH_INDEX = {p: i for i, p in enumerate(PATHS)}


def _title(path: str) -> str:
    if path == "/":
        return "Example – Product analytics"
    last = path.rstrip("/").rsplit("/", 1)[-1].replace("-", " ")
    return f"{last[:1].upper()}{last[1:]} – Example"


TITLES = np.array([_title(p) for p in PATHS], dtype=object)
PATH_ARR = np.array(PATHS, dtype=object)
INTERNAL_REFERRERS = np.array([ORIGIN + p for p in PATHS], dtype=object)
_zipf = 1.0 / np.arange(1, len(PATHS) + 1) ** 1.07
PATH_P = _zipf / _zipf.sum()

# (weight, referrer URL, utm, landing path or None); classified with ingest's own rules below
REFERRER_TEMPLATES: list[tuple[float, str, dict[str, str], str | None]] = [
    (37.0, "", {}, None),
    (20.0, "https://www.google.com/", {}, None),
    (2.5, "https://www.google.de/", {}, None),
    (1.5, "https://www.google.co.uk/", {}, None),
    (4.0, "https://www.bing.com/", {}, None),
    (1.5, "https://duckduckgo.com/", {}, None),
    (3.5, "https://www.facebook.com/", {}, None),
    (1.0, "https://l.facebook.com/", {}, None),
    (3.0, "https://t.co/x7Kq2bL", {}, None),
    (1.5, "https://www.linkedin.com/", {}, None),
    (1.5, "https://www.reddit.com/r/analytics/", {}, None),
    (1.5, "https://news.ycombinator.com/", {}, None),
    (1.5, "https://github.com/example/sdk", {}, None),
    (
        3.5,
        "",
        {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly_digest"},
        "/blog",
    ),
    (
        1.5,
        "",
        {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "product_update"},
        "/changelog",
    ),
    (
        3.5,
        "https://www.google.com/",
        {
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "brand_search",
            "utm_term": "product analytics",
        },
        "/pricing",
    ),
    (
        1.5,
        "https://www.facebook.com/",
        {
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": "spring_launch",
            "utm_content": "video_a",
        },
        "/",
    ),
    (
        1.0,
        "https://t.co/a9Fz0pQ",
        {"utm_source": "twitter", "utm_medium": "social", "utm_campaign": "launch_week"},
        "/features",
    ),
    (1.5, "https://dev-notes.example.org/posts/analytics-stack", {}, None),
    (1.0, "https://www.producthunt.com/", {}, None),
    (0.5, ORIGIN + "/blog", {}, None),  # a visit resumed after the timeout: internal entry
]
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

# (weight, country, region, city)
GEO: list[tuple[float, str, str, str]] = [
    (4, "US", "California", "San Francisco"),
    (3, "US", "California", "Los Angeles"),
    (5, "US", "New York", "New York"),
    (2, "US", "Texas", "Austin"),
    (2, "US", "Washington", "Seattle"),
    (2, "US", "Illinois", "Chicago"),
    (4, "DE", "Berlin", "Berlin"),
    (3, "DE", "Bavaria", "Munich"),
    (2, "DE", "Hamburg", "Hamburg"),
    (1.5, "DE", "Hesse", "Frankfurt am Main"),
    (5, "GB", "England", "London"),
    (1.5, "GB", "England", "Manchester"),
    (1, "GB", "Scotland", "Edinburgh"),
    (3, "FR", "Île-de-France", "Paris"),
    (1, "FR", "Auvergne-Rhône-Alpes", "Lyon"),
    (2, "NL", "North Holland", "Amsterdam"),
    (1.5, "ES", "Madrid", "Madrid"),
    (1.5, "ES", "Catalonia", "Barcelona"),
    (2.5, "IN", "Karnataka", "Bengaluru"),
    (2, "IN", "Maharashtra", "Mumbai"),
    (2, "BR", "São Paulo", "São Paulo"),
    (2, "CA", "Ontario", "Toronto"),
    (1, "CA", "British Columbia", "Vancouver"),
    (1.5, "JP", "Tokyo", "Tokyo"),
    (1.5, "AU", "New South Wales", "Sydney"),
    (1, "PL", "Mazovia", "Warsaw"),
    (1, "SE", "Stockholm", "Stockholm"),
]
BOT_GEO: list[tuple[float, str, str, str]] = [
    (6, "US", "California", "Mountain View"),
    (2, "US", "Washington", "Redmond"),
    (1, "DE", "Hesse", "Frankfurt am Main"),
    (1, "SG", "", "Singapore"),
]

# (weight, device, browser, browser versions, os, os versions, brand, model)
DEVICES: list[tuple[float, str, str, tuple[str, ...], str, tuple[str, ...], str, str]] = [
    (22, "desktop", "Chrome", ("124.0", "125.0", "126.0"), "Windows", ("10.0",), "", ""),
    (8, "desktop", "Edge", ("124.0", "125.0"), "Windows", ("10.0",), "", ""),
    (4, "desktop", "Firefox", ("125.0", "126.0"), "Windows", ("10.0",), "", ""),
    (9, "desktop", "Chrome", ("125.0", "126.0"), "Mac OS X", ("10.15",), "Apple", "Mac"),
    (6, "desktop", "Safari", ("17.4", "17.5"), "Mac OS X", ("10.15",), "Apple", "Mac"),
    (2, "desktop", "Firefox", ("126.0",), "Ubuntu", ("",), "", ""),
    (1, "desktop", "Chrome", ("125.0",), "Chrome OS", ("14.0",), "", ""),
    (18, "mobile", "Mobile Safari", ("17.4", "17.5"), "iOS", ("17.4", "17.5"), "Apple", "iPhone"),
    (6, "mobile", "Chrome Mobile", ("125.0", "126.0"), "Android", ("14.0",), "Samsung", "SM-S918B"),
    (3, "mobile", "Chrome Mobile", ("125.0",), "Android", ("14.0",), "Google", "Pixel 8"),
    (6, "mobile", "Chrome Mobile", ("124.0", "125.0"), "Android", ("10.0",), "", ""),
    (2, "mobile", "Samsung Internet", ("24.0",), "Android", ("14.0",), "Samsung", "SM-A546B"),
    (3, "tablet", "Mobile Safari", ("17.5",), "iOS", ("17.5",), "Apple", "iPad"),
    (1, "tablet", "Chrome", ("125.0",), "Android", ("13.0",), "Samsung", "SM-X710"),
]
BOTS: list[tuple[float, str, str, tuple[str, ...], str, tuple[str, ...], str, str]] = [
    (5, "bot", "Googlebot", ("2.1",), "", ("",), "", ""),
    (2, "bot", "bingbot", ("2.0",), "", ("",), "", ""),
    (1, "bot", "AhrefsBot", ("7.0",), "", ("",), "", ""),
    (1, "bot", "HeadlessChrome", ("124.0",), "Linux", ("",), "", ""),
    (1, "bot", "Python Requests", ("2.31",), "", ("",), "", ""),
]

BUTTONS = ["hero_cta", "nav_pricing", "copy_snippet", "play_video", "footer_docs", "theme_toggle"]
BUTTON_P = np.array([0.3, 0.22, 0.18, 0.12, 0.1, 0.08])
PLANS = ["free", "pro", "team"]
PLAN_P = np.array([0.5, 0.35, 0.15])
SIGNUP_BUTTONS = ["header_cta", "pricing_cta"]
METHODS = ["email", "google", "github"]
METHOD_P = np.array([0.5, 0.3, 0.2])
PRICES = {"pro": "29.00", "team": "99.00"}
SCROLL = ["25", "50", "75", "100"]


def classified_referrers() -> dict[str, np.ndarray]:
    """Referrer and UTM columns per template, as ingest's ``classify_referrer`` fills them."""
    from eventlens.ingest.referrer import classify_referrer

    cols: dict[str, list[str]] = {k: [] for k in ("referrer", "referrer_name", "referrer_type", *UTM_KEYS)}
    for _, url, utm, landing in REFERRER_TEMPLATES:
        page = ORIGIN + (landing or "/")
        ref = classify_referrer(url, page, utm)
        cols["referrer"].append(ref.referrer)
        cols["referrer_name"].append(ref.referrer_name)
        cols["referrer_type"].append(ref.referrer_type)
        for k in UTM_KEYS:
            cols[k].append(utm.get(k, ""))
    return {k: np.array(v, dtype=object) for k, v in cols.items()}
