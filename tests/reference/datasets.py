"""hypothesis strategies for insight data sets, and their rows as the shards would store them.

Events are generated per device (gaps around the session timeout, across midnights, DST changes
and month ends), run through the real ``Sessionizer`` in time order as a shard would (markers,
snapshot rows at several versions, some sessions left open), and returned as the rows of the
``events`` and ``sessions`` tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from eventlens.buffer.sessions import Sessionizer
from eventlens.insights.filters import GROUP_OPERATORS, OPERATORS

TIMEOUT_MS = 30 * 60_000
# near the EU spring-forward and fall-back nights, a month end on a Monday, a year end
BASES = [
    datetime(2026, 3, 28, 18, tzinfo=UTC),
    datetime(2026, 10, 24, 20, tzinfo=UTC),
    datetime(2026, 11, 29, 19, tzinfo=UTC),
    datetime(2026, 12, 31, 21, tzinfo=UTC),
]
# whole hours (rollups apply), half and quarter hours (raw table), both hemispheres' DST
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "America/St_Johns",
]
NAMES = ["page_view", "screen_view", "signup", "purchase", "click"]
PATHS = ["/", "/pricing", "/docs/a", "/Docs", ""]
COUNTRIES = ["DE", "FR", "US", ""]
BROWSERS = ["Chrome", "Firefox", "Safari"]
OSES = ["Windows", "Mac OS X", "Android"]
DEVICES = ["desktop", "mobile", "tablet"]
REFERRERS = [("", "direct"), ("Google", "search"), ("Facebook", "social"), ("Newsletter", "email")]
# group (B2B account) ids; a device's events carry some of its groups (or none)
GROUPS = ["acme", "globex", "initech", "acme-eu"]
PLANS = ["free", "pro", "10", "2.5", "-3", "", "x'); DROP TABLE events; --"]
# texts at the edges of "a number": what ingest writes for 1e3, -0, 2**53 + 1 and 10**30, and texts
# that are not numbers although a float parser may read them (inf, nan, +1, .5, 1.)
NUMERIC_PLANS = ["1000", "1e3", "-0", "9007199254740993", "1000000000000000019884624838656", "1" * 40]
NOT_NUMBERS = ["inf", "nan", "+1", ".5", "1.", "1e400"]
# filter values that are numbers: each one filters exactly like the brute-force reference
NUMBERS = [0, 2.5, 10, -3, 1e3, -0.0, 2**53 + 1, 10**30, 1e300, int("1" * 40)]
# amounts as ingest stores them (exact text, 4 decimals at most) in mixed currencies, with refunds
AMOUNTS = ["19.99", "0.0001", "-5", "1000", "99999999999999.9999", "0", "3.3333"]
CURRENCIES = ["USD", "EUR", "JPY"]
GAPS_MS = [1_000, 5 * 60_000, 29 * 60_000, 31 * 60_000, 2 * 3600_000, 11 * 3600_000, 26 * 3600_000]


@dataclass
class Dataset:
    events: list[dict[str, Any]]  # client events and markers, as stored
    sessions: list[dict[str, Any]]  # sessions rows (several versions per session)
    first_ms: int
    last_ms: int
    names: list[str] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)  # profile_aliases rows

    def alias_map(self) -> dict[str, str]:
        """alias → profile, the newest row of each alias winning."""
        out: dict[str, tuple[int, str]] = {}
        for r in self.aliases:
            if r["alias"] not in out or r["created_at"] > out[r["alias"]][0]:
                out[r["alias"]] = (r["created_at"], r["profile_id"])
        return {a: p for a, (_, p) in out.items()}


@st.composite
def alias_rows(draw: st.DrawFn, devices: int, base_ms: int) -> list[dict[str, Any]]:
    """Links of anonymous devices and of profiles to profiles; some aliases re-linked later."""
    ids = [f"dev{i}" for i in range(devices)] + ["user0", "user1", "user2"]
    rows = []
    for k, alias in enumerate(draw(st.lists(st.sampled_from(ids), max_size=4))):
        rows.append(
            {
                "_t": "profile_aliases",
                "alias": alias,
                "profile_id": draw(st.sampled_from(["user0", "user1", "user2", "user9"])),
                "created_at": base_ms + k * 1000,  # distinct: the newest row of an alias is clear
                "event_id": f"a{k}",
            }
        )
    return rows


@st.composite
def device_events(draw: st.DrawFn, index: int, base_ms: int) -> list[dict[str, Any]]:
    bot = draw(st.integers(0, 9)) == 0
    attrs = {
        "device_id": f"dev{index}",
        "country": draw(st.sampled_from(COUNTRIES)),
        "region": "",
        "city": "",
        "browser": draw(st.sampled_from(BROWSERS)),
        "os": draw(st.sampled_from(OSES)),
        "device": "bot" if bot else draw(st.sampled_from(DEVICES)),
        "is_bot": 1 if bot else 0,
    }
    profile = draw(st.sampled_from(["", "", f"user{index % 3}"]))
    # the device's accounts: devices share them, so a group's events come from several devices
    accounts = draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))
    t = base_ms + draw(st.integers(0, 36 * 3600_000)) // 1000 * 1000 + index  # unique ms per device
    out = []
    for k in range(draw(st.integers(1, 9))):
        if k:
            t += draw(st.sampled_from(GAPS_MS)) + draw(st.integers(0, 50)) * 1000
        ref_name, ref_type = draw(st.sampled_from(REFERRERS))
        props = {}
        if draw(st.booleans()):
            props["plan"] = draw(st.sampled_from(PLANS + NUMERIC_PLANS + NOT_NUMBERS))
        revenue: dict[str, str] = {}
        if draw(st.integers(0, 3)) == 0:  # a revenue event (any name may carry __revenue)
            revenue = {
                "revenue": draw(st.sampled_from(AMOUNTS)),
                "currency": draw(st.sampled_from(CURRENCIES)),
            }
        out.append(
            {
                "_t": "events",
                "id": f"e{index}-{k}",
                "name": draw(st.sampled_from(NAMES)),
                "path": draw(st.sampled_from(PATHS)),
                "profile_id": profile if draw(st.booleans()) else "",
                "created_at": t,
                "received_at": t,
                "referrer_name": ref_name,
                "referrer_type": ref_type,
                "properties": props,
                **revenue,
                # an event carries all, some or none of the device's groups
                "groups": [g for g in accounts if draw(st.integers(0, 3))],
                **attrs,
            }
        )
    return out


@st.composite
def datasets(draw: st.DrawFn, project_id: str = "p") -> Dataset:
    base = draw(st.sampled_from(BASES))
    base_ms = int(base.timestamp() * 1000)
    events: list[dict[str, Any]] = []
    devices = draw(st.integers(1, 5))
    for i in range(devices):
        events.extend(draw(device_events(i, base_ms)))
    events.sort(key=lambda e: e["created_at"])
    sz = Sessionizer(TIMEOUT_MS, 3600_000)
    rows: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for n, ev in enumerate(events):
        ev["project_id"] = project_id
        now = ev["created_at"]
        rows.extend(sz.expire(now))
        rows.extend(sz.assign(ev, now))
        rows.append(ev)
        if n % 3 == 2:
            sessions.extend(sz.snapshots(now))  # older versions that FINAL must look past
    last = events[-1]["created_at"]
    if draw(st.booleans()):
        rows.extend(sz.expire(last + TIMEOUT_MS))  # else some sessions stay open
    sessions.extend(sz.snapshots(last + TIMEOUT_MS + 1))
    for r in sessions:
        r["shard"] = 0
    aliases = draw(alias_rows(devices, base_ms))
    for r in aliases:
        r["project_id"] = project_id
    names = sorted({e["name"] for e in events})
    return Dataset(rows, sessions, events[0]["created_at"], last, names, aliases)


@dataclass(frozen=True)
class RangeChoice:
    start: str  # as sent to the API
    end: str
    start_ms: int  # what it means
    end_ms: int


def local_midnight_ms(d: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(d, time.min, tz).timestamp() * 1000)


@st.composite
def ranges(draw: st.DrawFn, data: Dataset, tz_name: str) -> RangeChoice:
    tz = ZoneInfo(tz_name)
    first = datetime.fromtimestamp(data.first_ms / 1000, UTC)
    if draw(st.booleans()):
        # date-only: the start day's midnight to the end of the end day, in the zone
        d0 = first.astimezone(tz).date() - timedelta(days=draw(st.integers(0, 1)))
        d1 = d0 + timedelta(days=draw(st.sampled_from([0, 1, 2, 6, 40])))
        return RangeChoice(
            d0.isoformat(),
            d1.isoformat(),
            local_midnight_ms(d0, tz),
            local_midnight_ms(d1 + timedelta(days=1), tz),
        )
    start = first + timedelta(minutes=draw(st.integers(-180, 600)))
    start = start.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=draw(st.sampled_from([30, 90, 6 * 60, 36 * 60, 9 * 24 * 60])))
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return RangeChoice(
        start.strftime(fmt), end.strftime(fmt), int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    )


FILTER_FIELDS = {
    "country": COUNTRIES,
    "path": [*PATHS, "/docs"],
    "browser": BROWSERS,
    "name": NAMES,
    "properties.plan": PLANS + NUMERIC_PLANS + NOT_NUMBERS,
    "referrer_type": [t for _, t in REFERRERS],
    "group": [*GROUPS, "", "nope"],
}


@st.composite
def filters(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        fld = draw(st.sampled_from(sorted(FILTER_FIELDS)))
        op = draw(st.sampled_from(GROUP_OPERATORS if fld == "group" else OPERATORS))
        pool = FILTER_FIELDS[fld]
        value: Any
        numbers = NUMBERS if fld == "properties.plan" else []
        if op in ("in", "nin"):
            value = draw(st.lists(st.sampled_from(pool + numbers), min_size=1, max_size=3))
        elif op in ("gt", "gte", "lt", "lte") and draw(st.booleans()):
            value = draw(st.sampled_from(NUMBERS))
        elif op in ("eq", "ne") and numbers and draw(st.booleans()):
            value = draw(st.sampled_from(numbers))
        elif op in ("contains", "notContains", "startsWith", "endsWith"):
            value = draw(st.sampled_from(["/d", "o", "pro", "", "'"]))
        else:
            value = draw(st.sampled_from(pool))
        f: dict[str, Any] = {"field": fld, "operator": op}
        if op not in ("isNull", "isNotNull"):
            f["value"] = value
        out.append(f)
    return out


@st.composite
def path_shapes(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """Parameters of the Sankey paths route: a type, maybe a start or an end (one that may not
    occur), a depth and a width small enough that folding happens."""
    kind = draw(st.sampled_from(["page_view", "event"]))
    shape: dict[str, Any] = {"type": kind, "depth": draw(st.integers(2, 5)), "width": draw(st.integers(1, 4))}
    anchor = draw(st.sampled_from([None, "start", "end"]))
    if anchor:
        pool = [p for p in PATHS if p] + ["/nowhere"] if kind == "page_view" else [*names, "never"]
        shape[anchor] = draw(st.sampled_from(pool))
    return shape


def sizes(shape: dict[str, Any]) -> dict[str, int]:
    return {"depth": shape["depth"], "width": shape["width"]}


def whole_range(data: Dataset, bots: bool) -> tuple[dict[str, Any], Any]:
    """Route parameters (UTC days) holding every event of ``data``, and the reference's query."""
    from tests.reference.insights import Query

    d0 = datetime.fromtimestamp(data.first_ms / 1000, UTC).date()
    d1 = datetime.fromtimestamp(data.last_ms / 1000, UTC).date()
    params = {"startDate": d0.isoformat(), "endDate": d1.isoformat(), "timezone": "UTC", "includeBots": bots}
    q = Query(
        local_midnight_ms(d0, ZoneInfo("UTC")), local_midnight_ms(d1 + timedelta(days=1), ZoneInfo("UTC"))
    )
    q.include_bots = bots
    return params, q
