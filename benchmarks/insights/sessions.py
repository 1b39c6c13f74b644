"""Sessions of a plan: when they start, what they hold, how long they last, where they come from.

They follow the daemon's rules, so its sessionizer would cut the same sessions: one visitor's
sessions start at least ``SESSION_GAP_MS`` after the previous one ended, and the gaps inside a
session stay under ``MAX_EVENT_GAP_MS`` (see ``rows``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmarks.insights.catalogue import HOUR_MS, REFERRER_TEMPLATES, SESSION_GAP_MS

if TYPE_CHECKING:
    from benchmarks.insights.plan import Params

Sessions = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def plan_sessions(
    rng: np.random.Generator,
    params: Params,
    per_visitor: np.ndarray,
    win_a: np.ndarray,
    win_b: np.ndarray,
    cdf: np.ndarray,
    range_start: int,
    kind: np.ndarray,
    identified: np.ndarray,
) -> Sessions | None:
    """Sessions for ``per_visitor`` counts, cut to exactly ``params.events`` client events, or
    None when there are too few: (visitor, start, duration, page views, clicks, funnel steps,
    referrer template) per session."""
    visitor = np.repeat(np.arange(len(per_visitor)), per_visitor)
    start = _start_times(rng, visitor, win_a, win_b, cdf, range_start)
    pv, clicks, funnel, dur, tpl = _contents(rng, kind[visitor], identified[visitor])
    start = _spaced(rng, visitor, start, dur)
    return _cut(rng, params, visitor, start, dur, pv, clicks, funnel, tpl)


def _start_times(
    rng: np.random.Generator,
    visitor: np.ndarray,
    win_a: np.ndarray,
    win_b: np.ndarray,
    cdf: np.ndarray,
    range_start: int,
) -> np.ndarray:
    """Inverse CDF of the hourly profile, restricted to each visitor's window."""
    s = len(visitor)
    lo, hi = cdf[win_a[visitor]], cdf[win_b[visitor]]
    hour = np.searchsorted(cdf, lo + rng.random(s) * (hi - lo), side="right") - 1
    hour = np.clip(hour, 0, len(cdf) - 2)
    return range_start + hour * HOUR_MS + rng.integers(0, HOUR_MS, size=s)


def _contents(
    rng: np.random.Generator, visitor_kind: np.ndarray, ident: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Page views, clicks, funnel steps, duration (ms) and referrer template of each session."""
    s = len(visitor_kind)
    bot = visitor_kind == 2
    returning = visitor_kind == 1
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
    return pv, clicks, funnel, dur, tpl


def _spaced(rng: np.random.Generator, visitor: np.ndarray, start: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Start times with one visitor's sessions at least SESSION_GAP_MS apart: a session that would
    begin too soon after the visitor's previous one is pushed later (a sequential scan)."""
    s = len(visitor)
    order = np.lexsort((start, visitor))
    v_l, s_l, d_l = visitor[order].tolist(), start[order].tolist(), dur[order].tolist()
    extra = rng.exponential(45 * 60_000, size=s).astype(np.int64).tolist()
    prev_v, prev_end = -1, 0
    for i in range(s):
        if v_l[i] == prev_v and s_l[i] < prev_end + SESSION_GAP_MS:
            s_l[i] = prev_end + SESSION_GAP_MS + extra[i]
        prev_v, prev_end = v_l[i], s_l[i] + d_l[i]
    spaced = np.empty(s, dtype=np.int64)
    spaced[order] = s_l
    return spaced


def _cut(
    rng: np.random.Generator,
    params: Params,
    visitor: np.ndarray,
    start: np.ndarray,
    dur: np.ndarray,
    pv: np.ndarray,
    clicks: np.ndarray,
    funnel: np.ndarray,
    tpl: np.ndarray,
) -> Sessions | None:
    """A random subset of the sessions that end before ``now``, with exactly ``params.events``
    client events: the last one kept is shortened to fit."""
    n = pv + clicks + funnel
    ok = start + dur < params.now_ms - 1000
    idx = rng.permutation(np.flatnonzero(ok))
    total = np.cumsum(n[idx])
    if len(total) == 0 or total[-1] < params.events:
        return None
    last = int(np.searchsorted(total, params.events))  # first index reaching the target
    keep = idx[: last + 1]
    before = int(total[last - 1]) if last > 0 else 0
    r = params.events - before  # events left for the final visit (1..n)
    j = keep[-1]
    old_n = int(n[j])
    new_pv = min(int(pv[j]), r)
    new_clicks = min(int(clicks[j]), r - new_pv)
    pv[j], clicks[j], funnel[j] = new_pv, new_clicks, r - new_pv - new_clicks
    dur[j] = dur[j] * (r - 1) // max(old_n - 1, 1)
    return visitor[keep], start[keep], dur[keep], pv[keep], clicks[keep], funnel[keep], tpl[keep]
