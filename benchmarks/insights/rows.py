"""Rows of the ``events`` and ``sessions`` tables from a plan, as columns, one batch at a time.

Each session becomes its client events plus a ``session_start`` and a ``session_end`` marker
(ids ``"<sid>:s"`` / ``"<sid>:e"``) and one closed ``sessions`` row, as the buffer shards write
them. Batch ``b`` draws from ``numpy.random.default_rng([seed, 1, b])``, in a fixed order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from benchmarks.insights.catalogue import (
    BUTTON_CLICK,
    BUTTON_P,
    BUTTONS,
    EVENT_NAMES,
    INTERNAL_REFERRERS,
    MAX_EVENT_GAP_MS,
    METHOD_P,
    METHODS,
    ORIGIN,
    PAGE_VIEW,
    PATH_ARR,
    PATH_INDEX,
    PATH_P,
    PATHS,
    PLAN_P,
    PLANS,
    PRICES,
    PURCHASE,
    REFERRER_TEMPLATES,
    SCROLL,
    SDK_NAME,
    SDK_VERSION,
    SIGNUP_BUTTONS,
    SIGNUP_CLICK,
    SIGNUP_COMPLETE,
    TITLES,
    UTM_KEYS,
    classified_referrers,
)
from benchmarks.insights.ids import strings, suffixed, uuid7_matrix
from benchmarks.insights.plan import Params, Plan

Columns = dict[str, list]


@dataclass(frozen=True)
class Lookups:
    """Per-plan tables that every batch indexes into."""

    ref: dict[str, np.ndarray]  # referrer and UTM columns per referrer template
    landing: np.ndarray  # landing path index per referrer template, -1 for none
    geo_cols: list[np.ndarray]  # country, region, city per geo row
    dev_cols: list[np.ndarray]  # device, browser, version, os, version, brand, model per device row

    @classmethod
    def of(cls, plan: Plan) -> Lookups:
        return cls(
            ref=classified_referrers(),
            landing=np.array([PATH_INDEX[t[3]] if t[3] else -1 for t in REFERRER_TEMPLATES], dtype=np.int64),
            geo_cols=[np.array([g[k] for g in plan.geo_table], dtype=object) for k in range(3)],
            dev_cols=[np.array([d[k] for d in plan.dev_table], dtype=object) for k in range(7)],
        )


@dataclass(frozen=True)
class Slice:
    """Sessions ``s0:s1`` of a plan, and for each of their client events its session and position."""

    m: int  # sessions
    pv: np.ndarray
    clicks: np.ndarray
    funnel: np.ndarray
    start: np.ndarray
    dur: np.ndarray
    vis: np.ndarray
    tpl: np.ndarray
    n: np.ndarray  # client events per session
    e: int  # client events
    offsets: np.ndarray  # each session's first event
    sess: np.ndarray  # each event's session
    pos: np.ndarray  # each event's position in its session

    @classmethod
    def of(cls, plan: Plan, s0: int, s1: int) -> Slice:
        pv, clicks, funnel = plan.page_views[s0:s1], plan.clicks[s0:s1], plan.funnel[s0:s1]
        n = pv + clicks + funnel
        e = int(n.sum())
        offsets = np.cumsum(n) - n
        sess = np.repeat(np.arange(s1 - s0), n)
        return cls(
            m=s1 - s0,
            pv=pv,
            clicks=clicks,
            funnel=funnel,
            start=plan.start_ms[s0:s1],
            dur=plan.duration_ms[s0:s1],
            vis=plan.visitor[s0:s1],
            tpl=plan.template[s0:s1],
            n=n,
            e=e,
            offsets=offsets,
            sess=sess,
            pos=np.arange(e) - offsets[sess],
        )


@dataclass(frozen=True)
class Times:
    created: np.ndarray  # per client event
    received: np.ndarray  # per client event
    first: np.ndarray  # per session
    last: np.ndarray  # per session
    closed: np.ndarray  # per session: when the shard closes it (timeout, or the end of the range)


@dataclass(frozen=True)
class Pages:
    path: np.ndarray  # per client event
    title: np.ndarray  # per client event
    ref: dict[str, np.ndarray]  # per client event: its page view's referrer and UTM columns
    ref_first: dict[str, np.ndarray]  # per session: the entry page's
    entry_path: np.ndarray  # per session
    exit_path: np.ndarray  # per session


def batches(plan: Plan, params: Params, project_id: str) -> Iterator[tuple[Columns, Columns]]:
    """(events columns, sessions columns) per batch of about ``batch_size`` event rows."""
    from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS

    lookups = Lookups.of(plan)
    for b, (s0, s1) in enumerate(itertools.pairwise(batch_bounds(plan, params.batch_size))):
        rng = np.random.default_rng([params.seed, 1, b])
        ev, se = batch(plan, params, project_id, s0, s1, rng, lookups)
        assert list(ev) == list(EVENT_COLUMNS), sorted(set(ev) ^ set(EVENT_COLUMNS))
        assert list(se) == list(SESSION_COLUMNS), sorted(set(se) ^ set(SESSION_COLUMNS))
        yield ev, se


def batch_bounds(plan: Plan, batch_size: int) -> list[int]:
    """Session indexes that cut the plan into batches of about ``batch_size`` event rows (at least
    one session each; markers included)."""
    rows = np.cumsum(plan.page_views + plan.clicks + plan.funnel + 2)
    bounds = [0]
    while bounds[-1] < plan.sessions:
        s = bounds[-1]
        target = (int(rows[s - 1]) if s else 0) + batch_size
        bounds.append(max(int(np.searchsorted(rows, target, side="right")), s + 1))
    return bounds


def batch(
    plan: Plan,
    params: Params,
    project_id: str,
    s0: int,
    s1: int,
    rng: np.random.Generator,
    lookups: Lookups,
) -> tuple[Columns, Columns]:
    """The rows of sessions ``s0:s1``, in the column order of the table specs."""
    from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS

    s = Slice.of(plan, s0, s1)
    kind = event_kinds(rng, s)
    times = event_times(rng, s, params.now_ms)
    pages = page_views(rng, s, kind, lookups)
    props = properties(rng, kind, s.sess, s.m)
    sid = uuid7_matrix(s.start, rng)
    ids = strings(uuid7_matrix(times.created, rng))
    events = event_columns(plan, project_id, s, kind, times, pages, props, sid, ids, lookups)
    sessions = session_columns(plan, project_id, s, times, pages, sid, lookups)
    return {k: events[k] for k in EVENT_COLUMNS}, {k: sessions[k] for k in SESSION_COLUMNS}


def event_kinds(rng: np.random.Generator, s: Slice) -> np.ndarray:
    """Each client event's kind. Inside a session the first page view stays first, the rest are
    shuffled, and the funnel steps keep their order (in disjoint, increasing key intervals) and
    come late."""
    sess, pos = s.sess, s.pos
    rel = pos - s.pv[sess]
    kind = np.where(rel < 0, PAGE_VIEW, np.where(rel < s.clicks[sess], BUTTON_CLICK, 0))
    step = rel - s.clicks[sess]
    is_funnel = (rel >= 0) & (step >= 0)
    kind = np.where(is_funnel, SIGNUP_CLICK + step, kind)
    u = rng.random(s.e)
    f = np.maximum(s.funnel[sess], 1)
    key = np.where(is_funnel, 0.3 + 0.7 * (step + u) / f, u)
    key[pos == 0] = -1.0
    order = np.lexsort((key, sess))
    return kind[order]  # sess and pos are unchanged by a sort that keeps sessions contiguous


def event_times(rng: np.random.Generator, s: Slice, now_ms: int) -> Times:
    """n-1 exponential gaps per session scaled to its planned duration, each under the timeout."""
    sess, offsets = s.sess, s.offsets
    g = rng.exponential(size=s.e)
    g[s.pos == 0] = 0.0
    sums = np.add.reduceat(g, offsets)
    gap = np.where(sums[sess] > 0, g / np.where(sums[sess] > 0, sums[sess], 1) * s.dur[sess], 0.0)
    gap = np.minimum(gap, MAX_EVENT_GAP_MS).astype(np.int64)
    cg = np.cumsum(gap)
    created = s.start[sess] + cg - (cg[offsets] - gap[offsets])[sess]
    received = np.minimum(created + rng.lognormal(np.log(250), 0.8, s.e).astype(np.int64), now_ms)
    first = created[offsets]
    last = created[offsets + s.n - 1]
    closed = np.minimum(last + 30 * 60_000, now_ms)
    return Times(created, received, first, last, closed)


def page_views(rng: np.random.Generator, s: Slice, kind: np.ndarray, lookups: Lookups) -> Pages:
    """The path of each page view (the entry page from the referrer template's landing page, or
    often the home page), then every event takes its page view's path, title and referrer."""
    is_pv = kind == PAGE_VIEW
    n_pv = int(is_pv.sum())
    pv_sess = s.sess[is_pv]
    pv_first = np.cumsum(s.pv) - s.pv  # each session's entry page view, in the page-view arrays
    pv_ord = np.arange(n_pv) - pv_first[pv_sess]  # 0 = entry page
    pv_path = rng.choice(len(PATHS), size=n_pv, p=PATH_P)
    entry = pv_ord == 0
    land = lookups.landing[s.tpl[pv_sess]]
    home = rng.random(n_pv) < 0.35
    pv_path = np.where(entry & (land >= 0), land, np.where(entry & home, 0, pv_path))
    pv_ref = _page_view_referrers(entry, pv_path, s.tpl[pv_sess], lookups.ref)
    page = np.cumsum(is_pv) - 1  # index of each event's page view
    path = pv_path[page]
    title = TITLES[path]
    path_str = PATH_ARR[path]
    path_str = np.where(kind == SIGNUP_COMPLETE, "/signup", path_str)
    path_str = np.where(kind == PURCHASE, "/checkout", path_str)
    title = np.where(kind == SIGNUP_COMPLETE, TITLES[PATH_INDEX["/signup"]], title)
    title = np.where(kind == PURCHASE, TITLES[PATH_INDEX["/checkout"]], title)
    last_pv = np.searchsorted(pv_sess, np.arange(s.m), side="right") - 1
    return Pages(
        path=path_str,
        title=title,
        ref={k: v[page] for k, v in pv_ref.items()},
        ref_first={k: v[pv_first] for k, v in pv_ref.items()},
        entry_path=PATH_ARR[pv_path[pv_first]],
        exit_path=PATH_ARR[pv_path[last_pv]],
    )


def _page_view_referrers(
    entry: np.ndarray, pv_path: np.ndarray, t_pv: np.ndarray, ref: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The entry page view takes its session's referrer template; later ones the previous page,
    as an internal referrer without UTM."""
    prev_path = np.concatenate([[0], pv_path[:-1]])
    pv_ref = {
        k: np.where(entry, col[t_pv], INTERNAL_REFERRERS[prev_path] if k == "referrer" else "")
        for k, col in ref.items()
    }
    pv_ref["referrer_type"] = np.where(entry, ref["referrer_type"][t_pv], "internal")
    return pv_ref


def properties(rng: np.random.Generator, kind: np.ndarray, sess: np.ndarray, m: int) -> list[dict[str, str]]:
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


def event_columns(
    plan: Plan,
    project_id: str,
    s: Slice,
    kind: np.ndarray,
    times: Times,
    pages: Pages,
    props: list[dict[str, str]],
    sid: np.ndarray,
    ids: np.ndarray,
    lookups: Lookups,
) -> Columns:
    """``events`` rows: the client events, then each session's start marker, then its end marker.
    A marker carries its session's entry referrer and the entry (start) or exit (end) path."""
    e, m, sess = s.e, s.m, s.sess
    v_ev, v_s = s.vis[sess], s.vis
    geo_i, g_s = plan.geo[v_ev], plan.geo[v_s]
    dev_i, d_s = plan.dev[v_ev], plan.dev[v_s]
    profile_s = plan.profile_id[v_s]
    sid_str = strings(sid)
    rows = e + 2 * m

    def cat(client: np.ndarray, s_marker: np.ndarray, e_marker: np.ndarray) -> list:
        return np.concatenate([client, s_marker, e_marker]).tolist()

    ref_ev = {k: cat(v, pages.ref_first[k], pages.ref_first[k]) for k, v in pages.ref.items()}
    geo_ev = [cat(c[geo_i], c[g_s], c[g_s]) for c in lookups.geo_cols]
    dev_ev = [cat(c[dev_i], c[d_s], c[d_s]) for c in lookups.dev_cols]
    return {
        "id": cat(ids, suffixed(sid, ":s"), suffixed(sid, ":e")),
        "project_id": [project_id] * rows,
        "name": cat(
            EVENT_NAMES[kind], np.full(m, "session_start", object), np.full(m, "session_end", object)
        ),
        "device_id": cat(plan.device_id[v_ev], plan.device_id[v_s], plan.device_id[v_s]),
        "profile_id": cat(plan.profile_id[v_ev], profile_s, profile_s),
        "session_id": cat(sid_str[sess], sid_str, sid_str),
        "created_at": cat(times.created, times.first, times.last),
        "received_at": cat(times.received, times.first + 40, times.closed),
        "origin": [ORIGIN] * rows,
        "path": cat(pages.path, pages.entry_path, pages.exit_path),
        "title": np.concatenate([pages.title, np.full(2 * m, "", object)]).tolist(),
        "referrer": ref_ev["referrer"],
        "referrer_name": ref_ev["referrer_name"],
        "referrer_type": ref_ev["referrer_type"],
        **{k: ref_ev[k] for k in UTM_KEYS},
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
        "is_bot": cat(plan.is_bot[v_ev], plan.is_bot[v_s], plan.is_bot[v_s]),
        "properties": props + [{}] * (2 * m),
        "sdk_name": [SDK_NAME] * rows,
        "sdk_version": [SDK_VERSION] * rows,
        # no revenue events in the benchmark's data (migration 0012's columns at their defaults)
        "revenue": ["0"] * rows,
        "currency": [""] * rows,
        "groups": [[] for _ in range(rows)],  # the benchmark's events carry no groups (0013)
    }


def session_columns(
    plan: Plan, project_id: str, s: Slice, times: Times, pages: Pages, sid: np.ndarray, lookups: Lookups
) -> Columns:
    """``sessions`` rows: one closed row per session, as a shard writes it at the timeout."""
    m, v_s = s.m, s.vis
    g_s, d_s = plan.geo[v_s], plan.dev[v_s]
    geo_cols, dev_cols = lookups.geo_cols, lookups.dev_cols
    bounce = (s.pv <= 1) & (s.n == s.pv)
    return {
        "project_id": [project_id] * m,
        "session_id": strings(sid).tolist(),
        "device_id": plan.device_id[v_s].tolist(),
        "profile_id": plan.profile_id[v_s].tolist(),
        "opened_at": times.first.tolist(),
        "started_at": times.first.tolist(),
        "ended_at": times.last.tolist(),
        "duration": ((times.last - times.first) / 1000.0).tolist(),
        "entry_path": pages.entry_path.tolist(),
        "exit_path": pages.exit_path.tolist(),
        # the entry and exit page views' times, which only a restarted shard reads: the session's
        # first and last event stand in for them
        "entry_at": times.first.tolist(),
        "exit_at": times.last.tolist(),
        "origin": [ORIGIN] * m,
        **{k: pages.ref_first[k].tolist() for k in ("referrer", "referrer_name", "referrer_type", *UTM_KEYS)},
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
        "page_views": s.pv.tolist(),
        "events": s.n.tolist(),
        "is_bounce": bounce.astype(np.uint8).tolist(),
        "is_closed": [1] * m,
        "version": times.closed.tolist(),
        "shard": [0] * m,
    }
