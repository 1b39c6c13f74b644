"""Synthetic, seeded analytics data for the insights benchmark, loaded straight into chDB.

    python -m benchmarks.insights_data --data-dir DIR [--events 10000000] [--days 35] [--seed 42]
        [--devices 20000] [--batch-size 200000] [--now 2026-11-30T12:00:00Z] [--force]

What it writes into ``DIR`` (the daemon's data directory layout, see ``eventlens/config.py``):

* a project and a read and a write client in the metadata database (``DIR/metadata.sqlite3``),
  their credentials in ``DIR/bench-credentials.json`` (with the generation parameters and row
  counts; written last, so its presence means the load completed);
* ``--events`` client events (page views and other events; ``/metrics`` ``totalEvents`` over the
  whole range counts exactly these, bots included) over the last ``--days`` days up to ``--now``,
  plus, as the buffer shards would, a ``session_start`` and a ``session_end`` marker per session
  (ids ``"<sid>:s"`` / ``"<sid>:e"``) and one closed ``sessions`` row per session.

Why not over HTTP: ten million events through ``/track/batch`` at the ~10–20k events/s this
2-core machine sustains would take 10–20 minutes of ingest alone, and would measure ingest, not
insights. The loader opens the embedded chDB directory itself (``migrate_clickhouse``, then
``Warehouse.insert_columns`` in column-oriented batches with a unique deduplication token each),
so the materialized views of the migrations see the rows exactly as they see a shard's flush. chDB
allows one owning process per directory: run this *before* starting a daemon on ``DIR``, never
beside one.

The model (all draws from ``numpy.random.default_rng`` seeded with ``--seed``; with the same
``--now`` and ``--batch-size`` the rows are identical):

* visitors (``--devices``): 63 % one-time visitors (1–2 sessions within a 1–3 day window), 35 %
  returning visitors (active from a first day to the end, heavy-tailed number of sessions), 2 %
  bots (``is_bot = 1``, device ``bot``, crawler browsers, many page views per visit, direct);
  geo (country/region/city) and device/browser/OS are fixed per visitor; ~30 % of the returning
  and ~5 % of the one-time visitors are identified (``profile_id`` on all their events), and each
  identified visitor's device id is aliased to the profile (as an SDK does at sign-in: the rows
  change no answer here, since those events carry the profile id, but the profile funnels and
  retention join a realistic alias table);
* session start times follow an hourly profile (a European and an American peak in UTC), a weekly
  one (weekends ~35 % lower) and a slight upward trend; one visitor's sessions are at least 31
  minutes apart (the daemon's 30-minute timeout), the gaps inside a session under 25 minutes;
* per session: an entry referrer (direct, Google/Bing/DuckDuckGo search, Facebook/Twitter/
  LinkedIn/Reddit/Hacker News/GitHub social, newsletter e-mail, Google/Facebook ad campaigns with
  ``utm_*``, a few other sites), classified by ``eventlens.ingest.referrer`` exactly like ingest
  does; later page views carry an ``internal`` referrer (the previous page) and no UTM;
* ~36 % bounces (one page view); otherwise page views over 300 paths with a Zipf-like
  popularity, ``button_click`` events, and the funnel ``page_view → signup_click →
  signup_complete → purchase`` at decreasing rates (higher for identified visitors); properties
  ``plan``, ``button``, ``method``, ``value``, ``currency``, ``scroll_depth``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from eventlens.config import Settings

CREDENTIALS_FILE = "bench-credentials.json"
ORIGIN = "https://www.example.com"
SDK_NAME, SDK_VERSION = "web", "1.4.2"
SESSION_GAP_MS = 31 * 60_000  # > the daemon's 30-minute session timeout
MAX_EVENT_GAP_MS = 25 * 60_000  # < the timeout: a session never splits
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

PAGE_VIEW, BUTTON_CLICK, SIGNUP_CLICK, SIGNUP_COMPLETE, PURCHASE = range(5)
EVENT_NAMES = np.array(
    ["page_view", "button_click", "signup_click", "signup_complete", "purchase"], dtype=object
)


# catalogue ---------------------------------------------------------------------------------------
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


def _classified() -> dict[str, np.ndarray]:
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


@dataclass(frozen=True)
class Params:
    events: int = 10_000_000
    days: int = 35
    devices: int = 20_000
    seed: int = 42
    batch_size: int = 200_000
    now_ms: int = 0


@dataclass
class Plan:
    """Visitors and their sessions, sessions sorted by start time."""

    # per visitor
    device_id: np.ndarray  # object
    profile_id: np.ndarray  # object
    geo: np.ndarray  # int index into the geo table
    dev: np.ndarray  # int index into the device table
    is_bot: np.ndarray  # uint8
    # per session
    visitor: np.ndarray
    start_ms: np.ndarray
    duration_ms: np.ndarray
    page_views: np.ndarray
    clicks: np.ndarray
    funnel: np.ndarray  # 0..3 funnel steps after the page views
    template: np.ndarray  # referrer template
    geo_table: list[tuple[str, str, str]]
    dev_table: list[tuple[str, str, str, str, str, str, str]]

    @property
    def sessions(self) -> int:
        return len(self.start_ms)

    @property
    def client_events(self) -> int:
        return int((self.page_views + self.clicks + self.funnel).sum())


# the plan ----------------------------------------------------------------------------------------
def _hour_weights(start_ms: int, hours: int) -> np.ndarray:
    """Relative traffic per hour: UTC hour-of-day profile x weekday x a slight trend."""
    hod = np.concatenate(  # 00-11 and 12-23 UTC
        [
            [0.35, 0.3, 0.28, 0.3, 0.35, 0.45, 0.6, 0.8, 1.0, 1.1, 1.15, 1.1],
            [1.05, 1.1, 1.2, 1.3, 1.35, 1.3, 1.2, 1.05, 0.9, 0.75, 0.6, 0.45],
        ]
    )
    dow = np.array([1.05, 1.1, 1.08, 1.05, 0.95, 0.62, 0.68])  # Monday .. Sunday
    t = start_ms + np.arange(hours, dtype=np.int64) * HOUR_MS
    hour = (t // HOUR_MS) % 24
    weekday = ((t // DAY_MS) + 3) % 7  # 1970-01-01 was a Thursday
    trend = 0.9 + 0.2 * np.arange(hours) / max(hours - 1, 1)
    return hod[hour] * dow[weekday] * trend


def _expand(templates: list[tuple[Any, ...]]) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Device templates with their version choices expanded into rows and weights."""
    rows, weights = [], []
    for w, device, browser, bvers, os_, overs, brand, model in templates:
        for bv in bvers:
            for ov in overs:
                rows.append((device, browser, bv, os_, ov, brand, model))
                weights.append(w / (len(bvers) * len(overs)))
    p = np.array(weights)
    return rows, p / p.sum()


def make_plan(params: Params) -> Plan:
    rng = np.random.default_rng([params.seed, 0])
    n_vis = params.devices
    end_ms = params.now_ms
    range_start = end_ms - params.days * DAY_MS
    hours = params.days * 24
    cdf = np.concatenate([[0.0], np.cumsum(_hour_weights(range_start, hours))])

    # visitors
    kind = rng.choice(3, size=n_vis, p=[0.63, 0.35, 0.02])  # 0 one-time, 1 returning, 2 bot
    is_bot = (kind == 2).astype(np.uint8)
    geo_rows = [(c, r, ci) for _, c, r, ci in GEO]
    bot_geo_rows = [(c, r, ci) for _, c, r, ci in BOT_GEO]
    geo_table = geo_rows + bot_geo_rows
    gp = np.array([g[0] for g in GEO], dtype=float)
    bgp = np.array([g[0] for g in BOT_GEO], dtype=float)
    geo = np.where(
        is_bot == 1,
        len(geo_rows) + rng.choice(len(bot_geo_rows), size=n_vis, p=bgp / bgp.sum()),
        rng.choice(len(geo_rows), size=n_vis, p=gp / gp.sum()),
    )
    dev_rows, dev_p = _expand(DEVICES)
    bot_rows, bot_p = _expand(BOTS)
    dev_table = dev_rows + bot_rows
    dev = np.where(
        is_bot == 1,
        len(dev_rows) + rng.choice(len(bot_rows), size=n_vis, p=bot_p),
        rng.choice(len(dev_rows), size=n_vis, p=dev_p),
    )
    identified = ((kind == 1) & (rng.random(n_vis) < 0.30)) | ((kind == 0) & (rng.random(n_vis) < 0.05))
    device_id = np.array([f"{x:016x}" for x in rng.integers(0, 2**63, size=n_vis)], dtype=object)
    profile_id = np.where(identified, np.array([f"user_{i + 1:06d}" for i in range(n_vis)], dtype=object), "")

    # activity window (in hours of the range) and weight of each visitor
    first_day = rng.integers(0, params.days, size=n_vis)
    span = rng.integers(1, 4, size=n_vis)
    win_a = first_day * 24
    win_b = np.minimum((first_day + span) * 24, hours)
    ret = kind != 0
    early = rng.random(n_vis) < 0.45  # returning visitors already active when the range begins
    ret_first = np.where(early, 0, rng.integers(0, max(1, int(params.days * 0.8)), size=n_vis))
    win_a = np.where(ret, ret_first * 24, win_a)
    win_b = np.where(ret, hours, win_b)
    weight = np.where(kind == 2, 0.3, 1.0) * rng.lognormal(0.0, 1.0, size=n_vis) * (win_b - win_a) / hours
    weight = np.where(ret, weight, 0.0)

    one_time_sessions = np.where(kind == 0, 1 + (rng.random(n_vis) < 0.25), 0)
    mean_events = 8.0  # rough; the loop below plans more sessions when they fall short
    want = int(params.events / mean_events * 1.12) + 16
    for _ in range(8):
        per_visitor = one_time_sessions.copy()
        rest = want - int(per_visitor.sum())
        if rest < 0:  # a small data set: only some of the one-time visitors show up
            keep = rng.random(n_vis) < want / max(int(per_visitor.sum()), 1)
            per_visitor = np.where(keep, per_visitor, 0)
            rest = 0
        if weight.sum() > 0 and rest > 0:
            per_visitor = per_visitor + rng.multinomial(rest, weight / weight.sum())
        plan = _sessions(rng, params, per_visitor, win_a, win_b, cdf, range_start, kind, identified)
        if plan is not None:
            visitor, start, dur, pv, clicks, funnel, tpl = plan
            break
        want = int(want * 1.3)
    else:
        raise RuntimeError("could not plan enough sessions; use more --devices or --days")
    order = np.argsort(start, kind="stable")
    return Plan(
        device_id=device_id,
        profile_id=profile_id,
        geo=geo,
        dev=dev,
        is_bot=is_bot,
        visitor=visitor[order],
        start_ms=start[order],
        duration_ms=dur[order],
        page_views=pv[order],
        clicks=clicks[order],
        funnel=funnel[order],
        template=tpl[order],
        geo_table=geo_table,
        dev_table=dev_table,
    )


def _sessions(
    rng: np.random.Generator,
    params: Params,
    per_visitor: np.ndarray,
    win_a: np.ndarray,
    win_b: np.ndarray,
    cdf: np.ndarray,
    range_start: int,
    kind: np.ndarray,
    identified: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """Sessions for ``per_visitor`` counts, cut to exactly ``params.events`` client events, or
    None when there are too few."""
    visitor = np.repeat(np.arange(len(per_visitor)), per_visitor)
    s = len(visitor)
    bot = kind[visitor] == 2
    returning = kind[visitor] == 1
    ident = identified[visitor]
    # start: inverse CDF of the hourly profile, restricted to the visitor's window
    lo, hi = cdf[win_a[visitor]], cdf[win_b[visitor]]
    hour = np.searchsorted(cdf, lo + rng.random(s) * (hi - lo), side="right") - 1
    hour = np.clip(hour, 0, len(cdf) - 2)
    start = range_start + hour * HOUR_MS + rng.integers(0, HOUR_MS, size=s)

    # contents
    bounce = ~bot & (rng.random(s) < np.where(ident, 0.28, 0.37))
    pv = np.where(
        bot,
        3 + rng.geometric(0.06, size=s),
        np.where(bounce, 1, 1 + rng.geometric(np.where(returning, 0.13, 0.2))),
    )
    clicks = np.where(bot | bounce, 0, rng.poisson(0.35 * pv))
    engaged = ~bot & ~bounce
    click = engaged & (rng.random(s) < np.where(ident, 0.22, 0.12))
    complete = click & (rng.random(s) < 0.45)
    purchase = complete & (rng.random(s) < np.where(ident, 0.5, 0.3))
    funnel = click.astype(np.int64) + complete + purchase
    n = pv + clicks + funnel
    # duration: the sum of n-1 gaps of a per-session mean
    mean_gap_s = np.where(bot, rng.uniform(0.5, 3.0, size=s), rng.lognormal(np.log(35.0), 0.6, size=s))
    dur = np.where(n > 1, rng.gamma(np.maximum(n - 1, 1), mean_gap_s) * 1000, 0.0).astype(np.int64)
    tw = np.array([t[0] for t in REFERRER_TEMPLATES])
    tpl = rng.choice(len(tw), size=s, p=tw / tw.sum())
    tpl = np.where(bot | (~bot & (rng.random(s) < 0.15)), 0, tpl)  # bots and some habits: direct

    # one visitor's sessions at least SESSION_GAP_MS apart: push later ones (sequential scan)
    order = np.lexsort((start, visitor))
    v_l, s_l, d_l = visitor[order].tolist(), start[order].tolist(), dur[order].tolist()
    extra = rng.exponential(45 * 60_000, size=s).astype(np.int64).tolist()
    prev_v, prev_end = -1, 0
    for i in range(s):
        if v_l[i] == prev_v and s_l[i] < prev_end + SESSION_GAP_MS:
            s_l[i] = prev_end + SESSION_GAP_MS + extra[i]
        prev_v, prev_end = v_l[i], s_l[i] + d_l[i]
    start = np.empty(s, dtype=np.int64)
    start[order] = s_l
    ok = start + dur < params.now_ms - 1000
    # a random subset of the sessions that fit, with exactly params.events client events
    idx = rng.permutation(np.flatnonzero(ok))
    total = np.cumsum(n[idx])
    if len(total) == 0 or total[-1] < params.events:
        return None
    last = int(np.searchsorted(total, params.events))  # first index reaching the target
    keep = idx[: last + 1]
    before = int(total[last - 1]) if last > 0 else 0
    r = params.events - before  # events left for the last session (1..n)
    j = keep[-1]
    old_n = int(n[j])
    new_pv = min(int(pv[j]), r)
    new_clicks = min(int(clicks[j]), r - new_pv)
    pv[j], clicks[j], funnel[j] = new_pv, new_clicks, r - new_pv - new_clicks
    dur[j] = dur[j] * (r - 1) // max(old_n - 1, 1)
    return visitor[keep], start[keep], dur[keep], pv[keep], clicks[keep], funnel[keep], tpl[keep]


# ids ---------------------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).astype(np.uint32)


def uuid7_matrix(ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """UUIDv7-shaped ids (time-ordered by ``ms``, random bits from ``rng``) as an (n, 36) array of
    code points; ``.view('<U36')`` gives the strings without a Python loop."""
    n = len(ms)
    hi = (
        (ms.astype(np.uint64) << np.uint64(16))
        | np.uint64(0x7000)
        | rng.integers(0, 4096, n, dtype=np.uint64)
    )
    lo = np.uint64(0x8000000000000000) | rng.integers(0, 2**62, n, dtype=np.uint64)
    b = np.concatenate(
        [hi.astype(">u8").view(np.uint8).reshape(n, 8), lo.astype(">u8").view(np.uint8).reshape(n, 8)], axis=1
    )
    nib = np.empty((n, 32), dtype=np.uint8)
    nib[:, 0::2] = b >> 4
    nib[:, 1::2] = b & 15
    chars = _HEX[nib]
    out = np.empty((n, 36), dtype=np.uint32)
    out[:, 8] = out[:, 13] = out[:, 18] = out[:, 23] = ord("-")
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = chars[:, 0:8], chars[:, 8:12], chars[:, 12:16]
    out[:, 19:23], out[:, 24:36] = chars[:, 16:20], chars[:, 20:32]
    return out


def _strings(matrix: np.ndarray) -> np.ndarray:
    m = np.ascontiguousarray(matrix, dtype=np.uint32)
    return m.view(f"<U{m.shape[1]}").ravel()


def _suffixed(matrix: np.ndarray, suffix: str) -> np.ndarray:
    tail = np.tile(np.array([ord(c) for c in suffix], dtype=np.uint32), (len(matrix), 1))
    return _strings(np.concatenate([matrix, tail], axis=1))


# batches -----------------------------------------------------------------------------------------
def batches(plan: Plan, params: Params, project_id: str) -> Iterator[tuple[dict[str, list], dict[str, list]]]:
    """(events columns, sessions columns) per batch of about ``batch_size`` event rows."""
    from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS

    n = plan.page_views + plan.clicks + plan.funnel
    rows = np.cumsum(n + 2)
    bounds = [0]
    while bounds[-1] < plan.sessions:
        s = bounds[-1]
        target = (int(rows[s - 1]) if s else 0) + params.batch_size
        bounds.append(max(int(np.searchsorted(rows, target, side="right")), s + 1))
    ref = _classified()
    landing = np.array([PATH_INDEX[t[3]] if t[3] else -1 for t in REFERRER_TEMPLATES], dtype=np.int64)
    geo_cols = [np.array([g[k] for g in plan.geo_table], dtype=object) for k in range(3)]
    dev_cols = [np.array([d[k] for d in plan.dev_table], dtype=object) for k in range(7)]
    for b, (s0, s1) in enumerate(itertools.pairwise(bounds)):
        rng = np.random.default_rng([params.seed, 1, b])
        ev, se = _batch(plan, params, project_id, s0, s1, rng, ref, landing, geo_cols, dev_cols)
        assert list(ev) == list(EVENT_COLUMNS), sorted(set(ev) ^ set(EVENT_COLUMNS))
        assert list(se) == list(SESSION_COLUMNS), sorted(set(se) ^ set(SESSION_COLUMNS))
        yield ev, se


def _batch(
    plan: Plan,
    params: Params,
    project_id: str,
    s0: int,
    s1: int,
    rng: np.random.Generator,
    ref: dict[str, np.ndarray],
    landing: np.ndarray,
    geo_cols: list[np.ndarray],
    dev_cols: list[np.ndarray],
) -> tuple[dict[str, list], dict[str, list]]:
    m = s1 - s0
    pv = plan.page_views[s0:s1]
    clicks = plan.clicks[s0:s1]
    funnel = plan.funnel[s0:s1]
    start = plan.start_ms[s0:s1]
    dur = plan.duration_ms[s0:s1]
    vis = plan.visitor[s0:s1]
    tpl = plan.template[s0:s1]
    n = pv + clicks + funnel
    e = int(n.sum())
    offsets = np.cumsum(n) - n
    sess = np.repeat(np.arange(m), n)
    pos = np.arange(e) - offsets[sess]

    # kinds, then a shuffle inside each session: the first page view stays first, the funnel
    # steps keep their order (in disjoint, increasing key intervals) and come late
    rel = pos - pv[sess]
    kind = np.where(rel < 0, PAGE_VIEW, np.where(rel < clicks[sess], BUTTON_CLICK, 0))
    step = rel - clicks[sess]
    is_funnel = (rel >= 0) & (step >= 0)
    kind = np.where(is_funnel, SIGNUP_CLICK + step, kind)
    u = rng.random(e)
    f = np.maximum(funnel[sess], 1)
    key = np.where(is_funnel, 0.3 + 0.7 * (step + u) / f, u)
    key[pos == 0] = -1.0
    order = np.lexsort((key, sess))
    kind = kind[order]  # sess and pos are unchanged by a sort that keeps sessions contiguous

    # times: n-1 exponential gaps scaled to the planned duration, each under the timeout
    g = rng.exponential(size=e)
    g[pos == 0] = 0.0
    sums = np.add.reduceat(g, offsets)
    gap = np.where(sums[sess] > 0, g / np.where(sums[sess] > 0, sums[sess], 1) * dur[sess], 0.0)
    gap = np.minimum(gap, MAX_EVENT_GAP_MS).astype(np.int64)
    cg = np.cumsum(gap)
    created = start[sess] + cg - (cg[offsets] - gap[offsets])[sess]
    received = np.minimum(created + rng.lognormal(np.log(250), 0.8, e).astype(np.int64), params.now_ms)
    first_t = created[offsets]
    last_t = created[offsets + n - 1]

    # pages: path of each page view, then every event takes its page's path, title, referrer
    is_pv = kind == PAGE_VIEW
    n_pv = int(is_pv.sum())
    pv_sess = sess[is_pv]
    pv_ord = np.arange(n_pv) - (np.cumsum(pv) - pv)[pv_sess]  # 0 = entry page
    pv_path = rng.choice(len(PATHS), size=n_pv, p=PATH_P)
    entry = pv_ord == 0
    land = landing[tpl[pv_sess]]
    home = rng.random(n_pv) < 0.35
    pv_path = np.where(entry & (land >= 0), land, np.where(entry & home, 0, pv_path))
    prev_path = np.concatenate([[0], pv_path[:-1]])
    t_pv = tpl[pv_sess]
    pv_ref = {
        k: np.where(entry, col[t_pv], INTERNAL_REFERRERS[prev_path] if k == "referrer" else "")
        for k, col in ref.items()
    }
    pv_ref["referrer_type"] = np.where(entry, ref["referrer_type"][t_pv], "internal")
    page = np.cumsum(is_pv) - 1  # index of each event's page view
    path = pv_path[page]
    title = TITLES[path]
    path_str = PATH_ARR[path]
    path_str = np.where(kind == SIGNUP_COMPLETE, "/signup", path_str)
    path_str = np.where(kind == PURCHASE, "/checkout", path_str)
    title = np.where(kind == SIGNUP_COMPLETE, TITLES[PATH_INDEX["/signup"]], title)
    title = np.where(kind == PURCHASE, TITLES[PATH_INDEX["/checkout"]], title)

    # properties: shared dicts, picked per event
    props = _properties(rng, kind, sess, m)

    v_ev = vis[sess]
    geo_i = plan.geo[v_ev]
    dev_i = plan.dev[v_ev]
    v_s = vis
    g_s, d_s = plan.geo[v_s], plan.dev[v_s]
    profile_s = plan.profile_id[v_s]

    # sessions: entry/exit path of the first/last page view
    last_pv = np.searchsorted(pv_sess, np.arange(m), side="right") - 1
    entry_path = PATH_ARR[pv_path[np.cumsum(pv) - pv]]
    exit_path = PATH_ARR[pv_path[last_pv]]
    pv_first = np.cumsum(pv) - pv  # each session's entry page view, in the page-view arrays

    sid = uuid7_matrix(start, rng)
    sid_str = _strings(sid)
    ids = _strings(uuid7_matrix(created, rng))
    start_ids = _suffixed(sid, ":s")
    end_ids = _suffixed(sid, ":e")
    close_ms = np.minimum(last_t + 30 * 60_000, params.now_ms)

    def cat(client: np.ndarray, s_marker: np.ndarray, e_marker: np.ndarray) -> list:
        return np.concatenate([client, s_marker, e_marker]).tolist()

    def per_session(values: np.ndarray) -> list:
        return np.concatenate([values, values]).tolist()

    ref_first = {k: v[pv_first] for k, v in pv_ref.items()}
    ref_ev = {k: np.concatenate([v[page], ref_first[k], ref_first[k]]) for k, v in pv_ref.items()}
    geo_ev = [np.concatenate([c[geo_i], c[g_s], c[g_s]]).tolist() for c in geo_cols]
    dev_ev = [np.concatenate([c[dev_i], c[d_s], c[d_s]]).tolist() for c in dev_cols]
    bot_ev = np.concatenate([plan.is_bot[v_ev], plan.is_bot[v_s], plan.is_bot[v_s]]).tolist()
    empty_props: dict[str, str] = {}
    events: dict[str, list] = {
        "id": np.concatenate([ids, start_ids, end_ids]).tolist(),
        "project_id": [project_id] * (e + 2 * m),
        "name": cat(
            EVENT_NAMES[kind], np.full(m, "session_start", object), np.full(m, "session_end", object)
        ),
        "device_id": cat(plan.device_id[v_ev], plan.device_id[v_s], plan.device_id[v_s]),
        "profile_id": cat(plan.profile_id[v_ev], profile_s, profile_s),
        "session_id": cat(sid_str[sess], sid_str, sid_str),
        "created_at": cat(created, first_t, last_t),
        "received_at": cat(received, first_t + 40, close_ms),
        "origin": [ORIGIN] * (e + 2 * m),
        "path": cat(path_str, entry_path, exit_path),
        "title": np.concatenate([title, np.full(2 * m, "", object)]).tolist(),
        "referrer": ref_ev["referrer"].tolist(),
        "referrer_name": ref_ev["referrer_name"].tolist(),
        "referrer_type": ref_ev["referrer_type"].tolist(),
        **{k: ref_ev[k].tolist() for k in UTM_KEYS},
        "country": geo_ev[0],
        "region": geo_ev[1],
        "city": geo_ev[2],
        "browser": dev_ev[1],
        "browser_version": dev_ev[2],
        "os": dev_ev[3],
        "os_version": dev_ev[4],
        "device": dev_ev[0],
        "brand": dev_ev[5],
        "model": dev_ev[6],
        "is_bot": bot_ev,
        "properties": props + [empty_props] * (2 * m),
        "sdk_name": [SDK_NAME] * (e + 2 * m),
        "sdk_version": [SDK_VERSION] * (e + 2 * m),
    }
    bounce = (pv <= 1) & (n == pv)
    sessions: dict[str, list] = {
        "project_id": [project_id] * m,
        "session_id": sid_str.tolist(),
        "device_id": plan.device_id[v_s].tolist(),
        "profile_id": profile_s.tolist(),
        "opened_at": first_t.tolist(),
        "started_at": first_t.tolist(),
        "ended_at": last_t.tolist(),
        "duration": ((last_t - first_t) / 1000.0).tolist(),
        "entry_path": entry_path.tolist(),
        "exit_path": exit_path.tolist(),
        "origin": [ORIGIN] * m,
        **{k: ref_first[k].tolist() for k in ("referrer", "referrer_name", "referrer_type", *UTM_KEYS)},
        "country": geo_cols[0][g_s].tolist(),
        "region": geo_cols[1][g_s].tolist(),
        "city": geo_cols[2][g_s].tolist(),
        "browser": dev_cols[1][d_s].tolist(),
        "browser_version": dev_cols[2][d_s].tolist(),
        "os": dev_cols[3][d_s].tolist(),
        "os_version": dev_cols[4][d_s].tolist(),
        "device": dev_cols[0][d_s].tolist(),
        "brand": dev_cols[5][d_s].tolist(),
        "model": dev_cols[6][d_s].tolist(),
        "is_bot": plan.is_bot[v_s].tolist(),
        "sdk_name": [SDK_NAME] * m,
        "sdk_version": [SDK_VERSION] * m,
        "page_views": pv.tolist(),
        "events": n.tolist(),
        "is_bounce": bounce.astype(np.uint8).tolist(),
        "is_closed": [1] * m,
        "version": close_ms.tolist(),
        "shard": [0] * m,
    }
    # same order as the table specs
    from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS

    return {k: events[k] for k in EVENT_COLUMNS}, {k: sessions[k] for k in SESSION_COLUMNS}


def _properties(rng: np.random.Generator, kind: np.ndarray, sess: np.ndarray, m: int) -> list[dict[str, str]]:
    """One shared dict per distinct property set; a session's funnel events share its plan."""
    table: list[dict[str, str]] = [{}]
    scroll0 = len(table)
    table += [{"scroll_depth": s} for s in SCROLL]
    button0 = len(table)
    table += [{"button": b} for b in BUTTONS]
    click0 = len(table)
    table += [{"plan": p, "button": b} for p in PLANS for b in SIGNUP_BUTTONS]
    complete0 = len(table)
    table += [{"plan": p, "method": mt} for p in PLANS for mt in METHODS]
    purchase0 = len(table)
    table += [{"plan": p, "value": PRICES[p], "currency": "USD"} for p in ("pro", "team")]

    e = len(kind)
    plan_s = rng.choice(len(PLANS), size=m, p=PLAN_P)[sess]
    idx = np.zeros(e, dtype=np.int64)
    scroll = rng.random(e) < 0.2
    idx = np.where((kind == PAGE_VIEW) & scroll, scroll0 + rng.integers(0, len(SCROLL), e), idx)
    idx = np.where(kind == BUTTON_CLICK, button0 + rng.choice(len(BUTTONS), size=e, p=BUTTON_P), idx)
    idx = np.where(kind == SIGNUP_CLICK, click0 + plan_s * len(SIGNUP_BUTTONS) + rng.integers(0, 2, e), idx)
    idx = np.where(
        kind == SIGNUP_COMPLETE,
        complete0 + plan_s * len(METHODS) + rng.choice(len(METHODS), size=e, p=METHOD_P),
        idx,
    )
    idx = np.where(kind == PURCHASE, purchase0 + np.maximum(plan_s, 1) - 1, idx)  # free buys pro
    objs = np.empty(len(table), dtype=object)
    objs[:] = table
    return objs[idx].tolist()


# loading -----------------------------------------------------------------------------------------
def _settings(data_dir: Path) -> Settings:
    from eventlens.config import load_settings

    return load_settings(data_dir=data_dir)


def existing_rows(wh: Any) -> int:
    return int(wh.query("SELECT count() AS n FROM events")[0]["n"])


def load(
    data_dir: Path,
    params: Params,
    *,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and load; returns the summary that is also written to the credentials file."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eventlens.storage.clickhouse import Warehouse
    from eventlens.storage.metadata import open_metadata
    from eventlens.storage.migrations import migrate_clickhouse

    console = Console(stderr=True)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings(data_dir)
    t0 = time.monotonic()
    wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        applied = migrate_clickhouse(wh)
        before = existing_rows(wh)
        if before and not force:
            raise SystemExit(
                f"{data_dir} already holds {before:,} event rows; use --force to add another "
                "project beside them, or a new directory"
            )
        store = open_metadata(settings.metadata_dsn)
        try:
            store.migrate()
            project = store.create_project(f"insights bench (seed {params.seed}, {params.events:,} events)")
            read, read_secret = store.create_client(project.id, "read", name="bench read")
            write, write_secret = store.create_client(project.id, "write", name="bench write")
        finally:
            store.close()

        t_plan = time.monotonic()
        plan = make_plan(params)
        plan_s = time.monotonic() - t_plan
        total_rows = plan.client_events + 2 * plan.sessions
        gen_s = ins_s = 0.0
        ev_rows = se_rows = 0
        with Progress(
            TextColumn("[bold]loading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("event rows"),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            task = bar.add_task("load", total=total_rows)
            it = batches(plan, params, project.id)
            b = 0
            while True:
                tg = time.monotonic()
                try:
                    ev, se = next(it)
                except StopIteration:
                    break
                ti = time.monotonic()
                gen_s += ti - tg
                names = list(ev)
                ev_rows += wh.insert_columns(
                    "events", names, [ev[k] for k in names], token=f"bench:{project.id}:{b}:events"
                )
                names = list(se)
                se_rows += wh.insert_columns(
                    "sessions", names, [se[k] for k in names], token=f"bench:{project.id}:{b}:sessions"
                )
                ins_s += time.monotonic() - ti
                bar.update(task, advance=len(ev["id"]))
                b += 1
        ident = np.flatnonzero(plan.profile_id != "")
        alias_rows = len(ident)
        if alias_rows:
            stamp = [datetime.fromtimestamp(params.now_ms / 1000, UTC)] * alias_rows
            wh.insert_columns(
                "profile_aliases",
                ["project_id", "alias", "profile_id", "created_at", "event_id"],
                [
                    [project.id] * alias_rows,
                    plan.device_id[ident].tolist(),
                    plan.profile_id[ident].tolist(),
                    stamp,
                    [f"alias-{i}" for i in ident.tolist()],
                ],
                token=f"bench:{project.id}:aliases",
            )
        counts = wh.query(
            "SELECT (SELECT count() FROM events WHERE project_id = {p:String}) AS events, "
            "(SELECT countIf(name NOT IN ('session_start', 'session_end')) FROM events "
            " WHERE project_id = {p:String}) AS client_events, "
            "(SELECT count() FROM sessions WHERE project_id = {p:String}) AS sessions, "
            "(SELECT uniqExact(device_id) FROM events WHERE project_id = {p:String}) AS devices, "
            "(SELECT min(created_at) FROM events WHERE project_id = {p:String}) AS first, "
            "(SELECT max(created_at) FROM events WHERE project_id = {p:String}) AS last",
            {"p": project.id},
        )[0]
    finally:
        wh.close()
    summary: dict[str, Any] = {
        "projectId": project.id,
        "read": {"clientId": read.id, "clientSecret": read_secret},
        "write": {"clientId": write.id, "clientSecret": write_secret},
        "params": {
            "events": params.events,
            "days": params.days,
            "devices": params.devices,
            "seed": params.seed,
            "batch_size": params.batch_size,
            "now": datetime.fromtimestamp(params.now_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        },
        "rows": {
            "events": int(counts["events"]),
            "client_events": int(counts["client_events"]),
            "sessions": int(counts["sessions"]),
            "devices": int(counts["devices"]),
            "aliases": alias_rows,
            "first": str(counts["first"]),
            "last": str(counts["last"]),
        },
        "timing_s": {
            "plan": round(plan_s, 1),
            "generate": round(gen_s, 1),
            "insert": round(ins_s, 1),
            "total": round(time.monotonic() - t0, 1),
        },
        "migrations_applied": applied,
        "data_dir": str(data_dir),
    }
    cred = data_dir / CREDENTIALS_FILE
    tmp = cred.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(cred)
    return summary


def read_credentials(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / CREDENTIALS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _parse_now(text: str | None) -> int:
    if not text:
        return int(time.time() * 1000)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.insights_data", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data-dir", type=Path, required=True, help="daemon data directory to load into")
    ap.add_argument("--events", type=int, default=10_000_000, help="client events (markers come on top)")
    ap.add_argument("--days", type=int, default=35, help="days of history, ending --now")
    ap.add_argument("--devices", type=int, default=20_000, help="visitors (device ids)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-size", type=int, default=200_000, help="event rows per insert")
    ap.add_argument("--now", help="end of the range, ISO (default: the current time)")
    ap.add_argument("--force", action="store_true", help="load even if the directory already has events")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.events < 1 or args.days < 1 or args.devices < 1 or args.batch_size < 1000:
        ap.error("--events, --days, --devices must be positive and --batch-size at least 1000")
    params = Params(
        events=args.events,
        days=args.days,
        devices=args.devices,
        seed=args.seed,
        batch_size=args.batch_size,
        now_ms=_parse_now(args.now),
    )
    summary = load(args.data_dir, params, force=args.force, progress=not args.no_progress)
    shown = {k: v for k, v in summary.items() if k not in ("read", "write")}
    print(json.dumps(shown, indent=2))
    print(f"credentials: {args.data_dir.resolve() / CREDENTIALS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
