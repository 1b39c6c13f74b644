"""The plan of a data set: visitors, their activity windows, and their sessions in time order.

Every draw comes from ``numpy.random.default_rng([seed, 0])`` in a fixed order, so the same
``Params`` give the same plan; changing the order of draws changes every data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.insights.catalogue import BOT_GEO, BOTS, DAY_MS, DEVICES, GEO, HOUR_MS
from benchmarks.insights.sessions import plan_sessions


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


@dataclass
class Visitors:
    kind: np.ndarray  # 0 one-time, 1 returning, 2 bot
    is_bot: np.ndarray
    identified: np.ndarray
    device_id: np.ndarray
    profile_id: np.ndarray
    geo: np.ndarray
    dev: np.ndarray
    geo_table: list[tuple[str, str, str]]
    dev_table: list[tuple[Any, ...]]


def hour_weights(start_ms: int, hours: int) -> np.ndarray:
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


def expand_devices(templates: list[tuple[Any, ...]]) -> tuple[list[tuple[str, ...]], np.ndarray]:
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
    range_start = params.now_ms - params.days * DAY_MS
    hours = params.days * 24
    cdf = np.concatenate([[0.0], np.cumsum(hour_weights(range_start, hours))])
    vis = _visitors(rng, params.devices)
    win_a, win_b, weight = _activity(rng, params, vis.kind, hours)
    planned = _sessions_for(rng, params, vis, win_a, win_b, weight, cdf, range_start)
    visitor, start, dur, pv, clicks, funnel, tpl = planned
    order = np.argsort(start, kind="stable")
    return Plan(
        device_id=vis.device_id,
        profile_id=vis.profile_id,
        geo=vis.geo,
        dev=vis.dev,
        is_bot=vis.is_bot,
        visitor=visitor[order],
        start_ms=start[order],
        duration_ms=dur[order],
        page_views=pv[order],
        clicks=clicks[order],
        funnel=funnel[order],
        template=tpl[order],
        geo_table=vis.geo_table,
        dev_table=vis.dev_table,
    )


def _visitors(rng: np.random.Generator, n_vis: int) -> Visitors:
    """Kind, place, device and identity of each visitor; place and device never change."""
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
    dev_rows, dev_p = expand_devices(DEVICES)
    bot_rows, bot_p = expand_devices(BOTS)
    dev_table = dev_rows + bot_rows
    dev = np.where(
        is_bot == 1,
        len(dev_rows) + rng.choice(len(bot_rows), size=n_vis, p=bot_p),
        rng.choice(len(dev_rows), size=n_vis, p=dev_p),
    )
    identified = ((kind == 1) & (rng.random(n_vis) < 0.30)) | ((kind == 0) & (rng.random(n_vis) < 0.05))
    device_id = np.array([f"{x:016x}" for x in rng.integers(0, 2**63, size=n_vis)], dtype=object)
    profile_id = np.where(identified, np.array([f"user_{i + 1:06d}" for i in range(n_vis)], dtype=object), "")
    return Visitors(kind, is_bot, identified, device_id, profile_id, geo, dev, geo_table, dev_table)


def _activity(
    rng: np.random.Generator, params: Params, kind: np.ndarray, hours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each visitor's activity window (in hours of the range) and the share of the returning
    visitors' sessions they get (zero for one-time visitors, whose sessions are counted apart)."""
    n_vis = len(kind)
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
    return win_a, win_b, weight


def _sessions_for(
    rng: np.random.Generator,
    params: Params,
    vis: Visitors,
    win_a: np.ndarray,
    win_b: np.ndarray,
    weight: np.ndarray,
    cdf: np.ndarray,
    range_start: int,
) -> tuple[np.ndarray, ...]:
    """Sessions per visitor, planned with a growing margin until they hold ``params.events``."""
    n_vis = len(vis.kind)
    one_time_sessions = np.where(vis.kind == 0, 1 + (rng.random(n_vis) < 0.25), 0)
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
        planned = plan_sessions(
            rng, params, per_visitor, win_a, win_b, cdf, range_start, vis.kind, vis.identified
        )
        if planned is not None:
            return planned
        want = int(want * 1.3)
    raise RuntimeError("could not plan enough sessions; use more --devices or --days")
