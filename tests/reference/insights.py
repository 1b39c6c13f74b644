"""A brute-force reference for every insight endpoint, in plain Python, from the stored events.

It reads only the event rows (client events plus the server's ``session_start``/``session_end``
markers) and follows the endpoints' definitions literally; it shares no code with the SQL builders
(no ``eventlens.insights`` import), so an answer both agree on is checked twice.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

MARKERS = {"session_start", "session_end"}
PAGE_VIEWS = {"page_view", "screen_view"}
# a stored text is a number when it is written as a JSON number (what ingest writes for one)
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


@dataclass
class Query:
    start_ms: int
    end_ms: int
    tz: str = "UTC"
    filters: list[dict[str, Any]] = field(default_factory=list)
    include_bots: bool = False


def rate(part: float, whole: float) -> float:
    return round(part * 100 / whole, 2) if whole else 0


def ratio(part: float, whole: float) -> float:
    return round(part / whole, 2) if whole else 0


def avg_seconds(total_ms: int, n: int) -> float:
    """Exact: milliseconds over ``n``, in seconds rounded half up to two decimals."""
    return math.floor(Fraction(total_ms, 10 * n) + Fraction(1, 2)) / 100 if n else 0


# filters ---------------------------------------------------------------------------------------
def _value(ev: dict[str, Any], fld: str) -> str | None:
    if fld.startswith("properties."):
        return (ev.get("properties") or {}).get(fld[len("properties.") :])
    return str(ev.get(fld, "") or "")


def _text(v: Any) -> str:
    """A filter value as text: numbers as ingest stores them in properties."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and not -(2**63) <= v < 2**64:
        v = float(v)  # a JSON reader that keeps 64-bit integers reads a wider one as a float
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def group_matches(ev: dict[str, Any], op: str, want: Any) -> bool:
    """A ``group`` filter: whether one of the event's group ids matches (``ne``, ``nin`` and
    ``notContains``: whether none does); ``isNull`` is "no group"."""
    groups = ev.get("groups") or []
    if op == "isNull":
        return not groups
    if op == "isNotNull":
        return bool(groups)
    if op in ("in", "nin"):
        hit = any(g in {_text(w) for w in want} for g in groups)
        return hit if op == "in" else not hit
    test = {
        "eq": lambda g, w: g == w,
        "ne": lambda g, w: g == w,
        "contains": lambda g, w: w in g,
        "notContains": lambda g, w: w in g,
        "startsWith": lambda g, w: g.startswith(w),
        "endsWith": lambda g, w: g.endswith(w),
    }[op]
    hit = any(test(g, _text(want)) for g in groups)
    return not hit if op in ("ne", "notContains") else hit


def matches(ev: dict[str, Any], f: dict[str, Any]) -> bool:
    fld, op, want = f["field"], f["operator"], f.get("value")
    if fld == "group":
        return group_matches(ev, op, want)
    if fld == "goal":  # the reference's goal filter carries the goal's definition as "goal"
        return converts(ev, f["goal"]) == (op in ("is", "eq"))
    raw = _value(ev, fld)
    if op == "isNull":
        return raw is None if fld.startswith("properties.") else raw == ""
    if op == "isNotNull":
        return raw is not None if fld.startswith("properties.") else raw != ""
    v = raw or ""  # a missing property reads as ""
    if op == "eq":
        return v == _text(want)
    if op == "ne":
        return v != _text(want)
    if op == "in":
        return v in {_text(w) for w in want}
    if op == "nin":
        return v not in {_text(w) for w in want}
    if op == "contains":
        return _text(want) in v
    if op == "notContains":
        return _text(want) not in v
    if op == "startsWith":
        return v.startswith(_text(want))
    if op == "endsWith":
        return v.endswith(_text(want))
    cmp = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }[op]
    if isinstance(want, int | float) and not isinstance(want, bool):
        return bool(NUMBER.fullmatch(v)) and cmp(float(v), float(want))
    return cmp(v.encode(), _text(want).encode())


# goals -----------------------------------------------------------------------------------------
def glob(pattern: str, path: str) -> bool:
    """Whether a path pattern matches all of ``path``: ``**`` any characters, ``*`` any but ``/``,
    everything else literal. Positions reachable after each token (no backtracking: a pattern of
    hundreds of stars stays linear per token)."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "*":
            j = i
            while j < len(pattern) and pattern[j] == "*":
                j += 1
            tokens.append("**" if j - i >= 2 else "*")
            i = j
        else:
            tokens.append(pattern[i])
            i += 1
    n = len(path)
    reach = {0}
    for tok in tokens:
        if not reach:
            return False
        if tok == "**":
            reach = set(range(min(reach), n + 1))
        elif tok == "*":
            nxt: set[int] = set()
            for k in sorted(reach):
                while k not in nxt:
                    nxt.add(k)
                    if k == n or path[k] == "/":
                        break
                    k += 1
            reach = nxt
        else:
            reach = {k + 1 for k in reach if k < n and path[k] == tok}
    return n in reach


def converts(ev: dict[str, Any], goal: dict[str, Any]) -> bool:
    """Whether an event converts for a goal ``{kind, path, event, property}``."""
    if goal["kind"] == "page_view":
        if ev["name"] not in PAGE_VIEWS:
            return False
        path = ev.get("path") or ""
        return glob(goal["path"], path) if "*" in goal["path"] else path == goal["path"]
    if ev["name"] != goal["event"]:
        return False
    prop = goal.get("property")
    props = ev.get("properties") or {}
    return prop is None or (prop["key"] in props and props[prop["key"]] == prop["value"])


# selections ------------------------------------------------------------------------------------
def _distinct(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        seen.setdefault(e["id"], e)
    return list(seen.values())


def selected(events: list[dict[str, Any]], q: Query) -> list[dict[str, Any]]:
    """Client events in range, bots per the query, every filter true; one per id."""
    return _distinct(
        e
        for e in events
        if e["name"] not in MARKERS
        and q.start_ms <= e["created_at"] < q.end_ms
        and (q.include_bots or not e.get("is_bot"))
        and all(matches(e, f) for f in q.filters)
    )


@dataclass
class Sess:
    sid: str
    start: int
    device: str
    is_bot: int
    referrer_name: str
    referrer_type: str
    first: dict[str, Any] = field(default_factory=dict)  # the session_start marker: entry attributes
    times: list[int] = field(default_factory=list)
    views: list[tuple[int, str]] = field(default_factory=list)
    others: int = 0

    @property
    def page_views(self) -> int:
        return len(self.views)

    @property
    def bounce(self) -> bool:
        return self.page_views <= 1 and self.others == 0

    @property
    def duration(self) -> float:
        return self.duration_ms / 1000

    @property
    def duration_ms(self) -> int:
        return max(self.times) - min(self.times) if self.times else 0

    def entry(self) -> str:
        with_path = [v for v in self.views if v[1]]
        return min(with_path, key=lambda v: v[0])[1] if with_path else ""

    def exit(self) -> str:
        with_path = [v for v in self.views if v[1]]
        return max(with_path, key=lambda v: v[0])[1] if with_path else ""


def sessions_of(events: list[dict[str, Any]]) -> dict[str, Sess]:
    """Sessions the server opened (those with a ``session_start`` marker), from their events."""
    out: dict[str, Sess] = {}
    for e in events:
        if e["name"] == "session_start":
            out[e["session_id"]] = Sess(
                e["session_id"],
                e["created_at"],
                e["device_id"],
                int(e.get("is_bot", 0)),
                e.get("referrer_name", ""),
                e.get("referrer_type", ""),
                e,
            )
    for e in _distinct(events):
        s = out.get(e.get("session_id", ""))
        # a late event that kept the client's session id is stored under it but is not one of the
        # session's events (the session's row leaves it out)
        if s is None or e["name"] in MARKERS or e.get("_late"):
            continue
        s.times.append(e["created_at"])
        if e["name"] in PAGE_VIEWS:
            s.views.append((e["created_at"], e.get("path", "")))
        else:
            s.others += 1
    return out


# visit attributes: a session is filtered on its own (first event's) value of these
VISIT_ATTRIBUTES = {
    "device_id",
    "session_id",
    "origin",
    "referrer",
    "referrer_name",
    "referrer_type",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
    "brand",
    "model",
    "sdk_name",
    "sdk_version",
}


def sessions_in(events: list[dict[str, Any]], q: Query) -> list[Sess]:
    """Sessions started in range whose own attributes match the visit-attribute filters and that
    hold an event in range matching the other filters."""
    own = [f for f in q.filters if f["field"] in VISIT_ATTRIBUTES]
    held = [f for f in q.filters if f["field"] not in VISIT_ATTRIBUTES]
    sel = None
    if held:
        sel = {
            e["session_id"] for e in selected(events, Query(q.start_ms, q.end_ms, q.tz, held, q.include_bots))
        }
    return [
        s
        for s in sessions_of(events).values()
        if q.start_ms <= s.start < q.end_ms
        and (q.include_bots or not s.is_bot)
        and all(matches(s.first, f) for f in own)
        and (sel is None or s.sid in sel)
    ]


# revenue ---------------------------------------------------------------------------------------
def amount(e: dict[str, Any]) -> Decimal:
    return Decimal(str(e.get("revenue") or "0"))


def by_currency(ev: Iterable[dict[str, Any]]) -> dict[str, Decimal]:
    """Exact sums per currency of the events that carried revenue (a currency)."""
    out: dict[str, Decimal] = {}
    for e in ev:
        if e.get("currency"):
            out[e["currency"]] = out.get(e["currency"], Decimal(0)) + amount(e)
    return out


def money(d: Decimal) -> float:
    return float(d) + 0.0


def visit_revenue(events: list[dict[str, Any]], q: Query, currency: str) -> dict[str, Decimal]:
    """Revenue in ``currency`` per session id: the events in range stored with that id (filters
    and bots do not apply to them: the visits are chosen by ``sessions_in``)."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for e in _distinct(events):
        if (
            e["name"] not in MARKERS
            and q.start_ms <= e["created_at"] < q.end_ms
            and e.get("currency") == currency
            and e.get("session_id")
        ):
            out[e["session_id"]] += amount(e)
    return out


# endpoints -------------------------------------------------------------------------------------
def metrics(events: list[dict[str, Any]], q: Query, currency: str = "USD") -> dict[str, Any]:
    ev = selected(events, q)
    ss = sessions_in(events, q)
    views = sum(1 for e in ev if e["name"] in PAGE_VIEWS)
    n = len(ss)
    visitors = len({e["device_id"] for e in ev})
    sums = by_currency(ev)
    total = money(sums.get(currency, Decimal(0)))
    return {
        "uniqueVisitors": visitors,
        "totalSessions": n,
        "totalPageViews": views,
        "totalEvents": len(ev),
        "viewsPerSession": ratio(views, n),
        "bounceRate": rate(sum(1 for s in ss if s.bounce), n),
        "avgSessionDuration": avg_seconds(sum(s.duration_ms for s in ss if not s.bounce), n),
        "totalRevenue": total,
        "revenuePerVisitor": ratio(total, visitors),
        "revenueByCurrency": {c: money(v) for c, v in sorted(sums.items())},
    }


def bucket_label(ms: int, interval: str, tz: ZoneInfo) -> str:
    local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)
    if interval == "minute":
        return local.replace(second=0, microsecond=0).isoformat(timespec="seconds")
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat(timespec="seconds")
    d = local.date()
    if interval == "week":
        d -= timedelta(days=d.weekday())
    elif interval == "month":
        d = d.replace(day=1)
    return d.isoformat()


def all_labels(q: Query, interval: str) -> list[str]:
    tz = ZoneInfo(q.tz)
    # every bucket starts on a quarter hour (zone offsets are multiples of 15 minutes): the range
    # start and each quarter-hour instant inside the range meet every bucket
    step = 60_000 if interval == "minute" else 15 * 60_000
    points = [q.start_ms, *range(q.start_ms - q.start_ms % step + step, q.end_ms, step)]
    labels: list[str] = []
    for t in points:
        lab = bucket_label(t, interval, tz)
        if not labels or labels[-1] != lab:
            labels.append(lab)
    return labels


def timeseries(
    events: list[dict[str, Any]], q: Query, interval: str, currency: str = "USD"
) -> list[dict[str, Any]]:
    tz = ZoneInfo(q.tz)
    rows = {
        lab: {
            "date": lab,
            "visitors": set(),
            "totalSessions": 0,
            "totalPageViews": 0,
            "totalEvents": 0,
            "revenue": Decimal(0),
        }
        for lab in all_labels(q, interval)
    }
    for e in selected(events, q):
        r = rows[bucket_label(e["created_at"], interval, tz)]
        r["visitors"].add(e["device_id"])
        r["totalEvents"] += 1
        r["totalPageViews"] += e["name"] in PAGE_VIEWS
        if e.get("currency") == currency:
            r["revenue"] += amount(e)
    for s in sessions_in(events, q):
        rows[bucket_label(s.start, interval, tz)]["totalSessions"] += 1
    return [
        {
            "date": r["date"],
            "uniqueVisitors": len(r["visitors"]),
            "totalSessions": r["totalSessions"],
            "totalPageViews": r["totalPageViews"],
            "totalEvents": r["totalEvents"],
            "totalRevenue": money(r["revenue"]),
            "revenuePerVisitor": ratio(money(r["revenue"]), len(r["visitors"])),
        }
        for r in rows.values()
    ]


def _top(
    groups: dict[tuple[Any, ...], dict[str, Any]], keys: tuple[str, ...], count: str, limit: int
) -> list[dict[str, Any]]:
    rows = []
    for key, g in groups.items():
        row = dict(zip(keys, key, strict=True))
        row[count] = len(g["ids"])
        row["uniqueVisitors"] = len(g["devices"])
        rows.append(row)
    rows.sort(key=lambda r: (-r[count], *[r[k].encode() for k in keys]))
    return rows[:limit]


def _group(items: Iterable[tuple[tuple[Any, ...], str, str]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: {"ids": set(), "devices": set()})
    for key, ident, device in items:
        groups[key]["ids"].add(ident)
        groups[key]["devices"].add(device)
    return groups


def by_revenue(
    counted: list[dict[str, Any]],
    revenue: dict[tuple[Any, ...], Decimal],
    keys: tuple[str, ...],
    counts: tuple[str, ...],
    limit: int,
) -> list[dict[str, Any]]:
    """``orderBy=revenue``: the counted rows (all of them, uncut) and the values with revenue, each
    row with its revenue (a value with revenue only counts 0), by revenue, then the first count,
    then the keys."""
    rows = {tuple(r[k] for k in keys): dict(r) for r in counted}
    for key in revenue:
        rows.setdefault(key, {**dict(zip(keys, key, strict=True)), **dict.fromkeys(counts, 0)})
    out = sorted(
        rows.items(),
        key=lambda kv: (-revenue.get(kv[0], Decimal(0)), -kv[1][counts[0]], *[v.encode() for v in kv[0]]),
    )
    return [{**r, "revenue": money(revenue.get(key, Decimal(0)))} for key, r in out[:limit]]


def visit_revenue_by(
    events: list[dict[str, Any]], q: Query, currency: str, value: Any
) -> dict[tuple[Any, ...], Decimal]:
    """Revenue per ``value(session)`` key: the revenue of the visits ``sessions_in`` counts."""
    per_session = visit_revenue(events, q, currency)
    out: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for s in sessions_in(events, q):
        if s.sid in per_session:
            out[value(s)] += per_session[s.sid]
    return dict(out)


def event_revenue_by(
    events: list[dict[str, Any]], q: Query, currency: str, columns: tuple[str, ...]
) -> dict[tuple[Any, ...], Decimal]:
    out: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for e in selected(events, q):
        if e.get("currency") == currency:
            out[tuple(str(e.get(c, "") or "") for c in columns)] += amount(e)
    return dict(out)


def pages(
    events: list[dict[str, Any]],
    q: Query,
    kind: str = "all",
    limit: int = 50,
    currency: str | None = None,
) -> list[dict[str, Any]]:
    if kind == "all":
        items = [
            ((e.get("path", ""),), e["id"], e["device_id"])
            for e in selected(events, q)
            if e["name"] in PAGE_VIEWS
        ]
    else:
        items = []
        for s in sessions_in(events, q):
            path = s.entry() if kind == "entry" else s.exit()
            if path:
                items.append(((path,), s.sid, s.device))
    if currency is None:
        return _top(_group(items), ("path",), "views", limit)
    counted = _top(_group(items), ("path",), "views", 10**9)
    if kind == "all":
        revenue = event_revenue_by(events, q, currency, ("path",))
    else:
        revenue = visit_revenue_by(
            events, q, currency, lambda s: (s.entry() if kind == "entry" else s.exit(),)
        )
        revenue = {k: v for k, v in revenue.items() if k[0]}
    return by_revenue(counted, revenue, ("path",), ("views", "uniqueVisitors"), limit)


def referrers(
    events: list[dict[str, Any]], q: Query, limit: int = 50, currency: str | None = None
) -> list[dict[str, Any]]:
    items = [((s.referrer_name, s.referrer_type), s.sid, s.device) for s in sessions_in(events, q)]
    keys = ("referrerName", "referrerType")
    if currency is None:
        return _top(_group(items), keys, "visits", limit)
    revenue = visit_revenue_by(events, q, currency, lambda s: (s.referrer_name, s.referrer_type))
    counted = _top(_group(items), keys, "visits", 10**9)
    return by_revenue(counted, revenue, keys, ("visits", "uniqueVisitors"), limit)


def grouped(
    events: list[dict[str, Any]],
    q: Query,
    columns: tuple[str, ...],
    limit: int = 50,
    currency: str | None = None,
) -> list[dict[str, Any]]:
    """Events per tuple of their own columns; with ``currency``, revenue of the visits by the
    session's own values of the columns (visit attributes)."""
    items = [
        (tuple(str(e.get(c, "") or "") for c in columns), e["id"], e["device_id"])
        for e in selected(events, q)
    ]
    if currency is None:
        return _top(_group(items), columns, "count", limit)
    revenue = visit_revenue_by(
        events, q, currency, lambda s: tuple(str(s.first.get(c, "") or "") for c in columns)
    )
    counted = _top(_group(items), columns, "count", 10**9)
    return by_revenue(counted, revenue, columns, ("count", "uniqueVisitors"), limit)


# visit attributes credited through the visit with orderBy=revenue; the path by the event's own
VISIT_REVENUE_DIMENSIONS = {
    "referrer_name",
    "referrer_type",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
}


def breakdown(
    events: list[dict[str, Any]], q: Query, dimension: str, limit: int = 50, currency: str | None = None
) -> list[dict[str, Any]]:
    if dimension == "group":
        # one row per group id; an event without a group counts under ''
        items = [
            ((g,), e["id"], e["device_id"])
            for e in selected(events, q)
            for g in (set(e.get("groups") or []) or {""})
        ]
    else:
        items = [(((_value(e, dimension) or ""),), e["id"], e["device_id"]) for e in selected(events, q)]
    if currency is None:
        return _top(_group(items), ("value",), "count", limit)
    if dimension in VISIT_REVENUE_DIMENSIONS:
        revenue = visit_revenue_by(events, q, currency, lambda s: (str(s.first.get(dimension, "") or ""),))
    else:
        revenue = event_revenue_by(events, q, currency, (dimension,))
    counted = _top(_group(items), ("value",), "count", 10**9)
    return by_revenue(counted, revenue, ("value",), ("count", "uniqueVisitors"), limit)


def person(e: dict[str, Any]) -> str:
    return e.get("profile_id") or e["device_id"]


def profile_unit(e: dict[str, Any], aliases: dict[str, str]) -> str:
    """The profile an event counts for: its person's alias target, else its own profile id."""
    return aliases.get(person(e)) or e.get("profile_id") or ""


def funnel(
    events: list[dict[str, Any]],
    q: Query,
    steps: list[str],
    window_s: int = 86400,
    group_by: str = "device",
    aliases: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    per_unit: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in selected(events, q):
        if group_by == "group":
            # a group is one unit: the events of every member carrying its id, in time order
            for g in set(e.get("groups") or []):
                per_unit[g].append((e["created_at"], e["name"]))
            continue
        if group_by == "profile":
            unit = profile_unit(e, aliases or {})
        else:
            unit = e.get({"device": "device_id", "session": "session_id"}[group_by]) or ""
        if unit:
            per_unit[unit].append((e["created_at"], e["name"]))
    window = window_s * 1000
    counts = [0] * len(steps)
    for evs in per_unit.values():
        evs.sort()
        best = 0
        for t0, name in evs:
            if name != steps[0]:
                continue
            level, last = 1, t0
            for step in steps[1:]:
                nxt = next((t for t, n in evs if n == step and last < t <= t0 + window), None)
                if nxt is None:
                    break
                level, last = level + 1, nxt
            best = max(best, level)
        for i in range(best):
            counts[i] += 1
    out = []
    for i, name in enumerate(steps):
        prev = counts[i - 1] if i else counts[0]
        first = 100.0 if counts[0] else 0
        out.append(
            {
                "name": name,
                "count": counts[i],
                "conversion": rate(counts[i], counts[0]) if i else first,
                "conversionFromPrevious": rate(counts[i], prev) if i else first,
                "dropoff": prev - counts[i] if i else 0,
            }
        )
    return out


def paths(
    events: list[dict[str, Any]],
    q: Query,
    kind: str = "page_view",
    start: str | None = None,
    end: str | None = None,
    depth: int = 5,
    width: int = 10,
) -> dict[str, list[dict[str, Any]]]:
    """Sankey paths through sessions, literally: each session's steps (page paths of page views,
    or event names) in time order (ties by value, byte-wise), empty values skipped, repeats in a
    row kept once; the path from the first step, from the first ``start`` or up to the last
    ``end``, at most ``depth`` steps, numbered so that an ``end`` path ends at step ``depth``. Per
    step the ``width`` values with the most sessions are kept (ties by value), the rest become
    the step's other node (name None)."""
    per_session: dict[str, list[tuple[int, bytes, str]]] = defaultdict(list)
    for e in selected(events, q):
        sid = e.get("session_id") or ""
        if kind == "page_view":
            value = (e.get("path") or "") if e["name"] in PAGE_VIEWS else ""
        else:
            value = e["name"]
        if sid and value:
            per_session[sid].append((e["created_at"], value.encode(), value))
    trails: list[tuple[int, list[str]]] = []  # (number of the first step, values)
    for items in per_session.values():
        seq: list[str] = []
        for _, _, value in sorted(items):
            if not seq or seq[-1] != value:
                seq.append(value)
        if start is not None:
            if start in seq:
                at = seq.index(start)
                trails.append((1, seq[at : at + depth]))
        elif end is not None:
            if end in seq:
                at = max(i for i, v in enumerate(seq) if v == end)
                trail = seq[max(0, at - depth + 1) : at + 1]
                trails.append((depth - len(trail) + 1, trail))
        else:
            trails.append((1, seq[:depth]))
    totals: dict[tuple[int, str], int] = defaultdict(int)
    for first, trail in trails:
        for k, value in enumerate(trail):
            totals[(first + k, value)] += 1
    ranked: dict[int, list[tuple[int, bytes, str]]] = defaultdict(list)
    for (step, value), n in totals.items():
        ranked[step].append((-n, value.encode(), value))
    kept = {(step, value) for step, row in ranked.items() for _, _, value in sorted(row)[:width]}
    node_counts: dict[tuple[int, str | None], int] = defaultdict(int)
    link_counts: dict[tuple[int, str | None, str | None], int] = defaultdict(int)
    for first, trail in trails:
        folded = [v if (first + k, v) in kept else None for k, v in enumerate(trail)]
        for k, value in enumerate(folded):
            node_counts[(first + k, value)] += 1
            if k + 1 < len(folded):
                link_counts[(first + k, value, folded[k + 1])] += 1

    def order(v: str | None) -> tuple[int, bytes]:
        return (1, b"") if v is None else (0, v.encode())

    nodes = [{"step": s, "name": v, "sessions": n} for (s, v), n in node_counts.items()]
    nodes.sort(key=lambda r: (r["step"], -r["sessions"], order(r["name"])))
    links = [{"step": s, "source": a, "target": b, "sessions": n} for (s, a, b), n in link_counts.items()]
    links.sort(key=lambda r: (r["step"], -r["sessions"], order(r["source"]), order(r["target"])))
    return {"nodes": nodes, "links": links}


def _period_start(ms: int, period: str, tz: ZoneInfo) -> date:
    d = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).date()
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    return d


def _periods_between(a: date, b: date, period: str) -> int:
    if period == "day":
        return (b - a).days
    if period == "week":
        return (b - a).days // 7
    return (b.year - a.year) * 12 + b.month - a.month


def retention(
    events: list[dict[str, Any]],
    q: Query,
    period: str = "day",
    aliases: dict[str, str] | None = None,
    group_by: str = "user",
) -> list[dict[str, Any]]:
    tz = ZoneInfo(q.tz)
    aliases = aliases or {}
    active: dict[str, set[date]] = defaultdict(set)
    for e in selected(events, q):
        if group_by == "group":
            # a group is active in a period when an event carrying its id is
            for g in set(e.get("groups") or []):
                active[g].add(_period_start(e["created_at"], period, tz))
            continue
        user = aliases.get(person(e)) or person(e)
        active[user].add(_period_start(e["created_at"], period, tz))
    last = _period_start(q.end_ms - 1, period, tz)
    cohorts: dict[date, list[set[date]]] = defaultdict(list)
    for periods in active.values():
        cohorts[min(periods)].append(periods)
    out = []
    for cohort in sorted(cohorts):
        members = cohorts[cohort]
        for k in range(_periods_between(cohort, last, period) + 1):
            n = sum(1 for ps in members if any(_periods_between(cohort, p, period) == k for p in ps))
            out.append(
                {
                    "cohortDate": cohort.isoformat(),
                    "periodNumber": k,
                    "retainedUsers": n,
                    "cohortSize": len(members),
                    "retentionRate": rate(n, len(members)),
                }
            )
    return out


# filter pickers --------------------------------------------------------------------------------
def _counted(values: Iterable[str], label: str, limit: int) -> list[dict[str, Any]]:
    counts: dict[str, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:limit]
    return [{label: k, "count": n} for k, n in rows]


def event_names(events: list[dict[str, Any]], q: Query, limit: int = 500) -> list[dict[str, Any]]:
    return _counted((e["name"] for e in selected(events, q)), "name", limit)


def property_keys(
    events: list[dict[str, Any]], q: Query, event: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    keys = (
        k for e in selected(events, q) if not event or e["name"] == event for k in (e.get("properties") or {})
    )
    return _counted(keys, "key", limit)


def property_values(
    events: list[dict[str, Any]], q: Query, key: str, event: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    values = (
        e["properties"][key]
        for e in selected(events, q)
        if key in (e.get("properties") or {}) and (not event or e["name"] == event)
    )
    return _counted(values, "value", limit)


def column_values(
    events: list[dict[str, Any]], q: Query, column: str, page_views_only: bool = False, limit: int = 500
) -> list[dict[str, Any]]:
    values = (
        e.get(column, "")
        for e in selected(events, q)
        if e.get(column, "") and (not page_views_only or e["name"] in PAGE_VIEWS)
    )
    return _counted(values, "value", limit)


def previous(q: Query) -> Query:
    span = q.end_ms - q.start_ms
    return Query(q.start_ms - span, q.start_ms, q.tz, q.filters, q.include_bots)


def change(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Percent change of every number (``revenueByCurrency``, an object, has none)."""
    return {
        k: (round((v - before[k]) * 100 / before[k], 2) if before[k] else None)
        for k, v in now.items()
        if isinstance(v, int | float)
    }


def goals(events: list[dict[str, Any]], q: Query, defined: list[dict[str, Any]]) -> dict[str, Any]:
    """Per goal: matching events, distinct converting devices, and those as a percentage of the
    distinct devices of the selection; ranked by unique conversions, conversions, name."""
    ev = selected(events, q)
    visitors = len({e["device_id"] for e in ev})
    rows = []
    for g in defined:
        hits = [e for e in ev if converts(e, g)]
        unique = len({e["device_id"] for e in hits})
        rows.append(
            {
                **g,
                "conversions": len(hits),
                "uniqueConversions": unique,
                "visitors": unique,
                "conversionRate": rate(unique, visitors),
            }
        )
    rows.sort(key=lambda r: (-r["uniqueConversions"], -r["conversions"], r["name"]))
    return {"uniqueVisitors": visitors, "goals": rows}


def goals_compared(events: list[dict[str, Any]], q: Query, defined: list[dict[str, Any]]) -> dict[str, Any]:
    """``goals`` with ``compare=previous``: each goal's numbers of the period before and the change."""
    now, before = goals(events, q, defined), goals(events, previous(q), defined)
    numbers = ("conversions", "uniqueConversions", "visitors", "conversionRate")
    prev = {g["id"]: {k: g[k] for k in numbers} for g in before["goals"]}
    for g in now["goals"]:
        g["previous"] = prev[g["id"]]
        g["change"] = change({k: g[k] for k in numbers}, g["previous"])
    now["previous"] = {"uniqueVisitors": before["uniqueVisitors"]}
    now["change"] = change({"uniqueVisitors": now["uniqueVisitors"]}, now["previous"])
    return now
