"""Requests as clients send them (retries, reused session ids, late and reordered events, bots,
server-side SDKs, profile calls) in arrival order, and what one shard must store for them.

``scenarios()`` draws the requests and the shard's life around them: per batch of requests the
``now`` it arrives at, and between batches flushes (or none: storage slow or down) and restarts
(a graceful stop, a crash that loses the shard's memory, or a crash half-way through a flush)
after some downtime. The shard's clock ends idle visits as the actor's does (``Step``).
``ShardReference`` is the brute-force model of what the shard must do with the logical events,
written from the rules below and sharing no code with ``eventlens.buffer``:

- **Ids.** A track call is identified per project by its ``id``. The first copy to arrive is
  stored; every later copy within the idempotency window (7 days of arrival; scenarios span less)
  is dropped and answered with the first copy's ``deviceId`` and ``sessionId``.
- **Time.** The payload's ``timestamp``, or the arrival time when it has none or when it lies
  more than 60 s ahead of the arrival.
- **Late.** An event older than ``now − late bound`` is stored with its own time and joins no
  visit: its session id is the client's ``sessionId`` as sent, else one of its own.
- **Visits** (per device, in arrival order). An event continues a visit when its time is less
  than the timeout after the visit's latest event and less than the timeout before its earliest,
  and it sent no ``sessionId`` or the visit's own. It continues the device's last visit if it can;
  else, if it is older than that visit's start, the visit before (which the last one ended) if it
  can, and otherwise it is stored like a late event (an offline queue), keeping its client's
  ``sessionId``; else it opens a new visit, ending the last one. Whether the clock ended a visit
  in between changes none of this (a visit ended by the clock is continued by an event that still
  falls within it, and stays ended), nor does a restart of the shard.
- **Client session ids.** The n-th visit opened with the client id ``s`` is stored as ``s``
  (n = 1), then ``s~2``, ``s~3``, … (per project, for ever, restarts and days included).
- **Ending.** ``expire_sessions(now)`` ends the device's last visit once its latest event is at
  least the timeout older than ``now``; opening a visit ends the one before.
- **Bots.** A crawler's user agent flags its events ``is_bot`` unless the client authenticated
  with its secret (a server-side SDK). Presence (``take_presence``) lists every stored non-bot
  event at most the live window older than its arrival.
- **Profiles.** ``identify`` calls merge in arrival order (empty fields keep their value, property
  maps are merged); each ``alias`` is one link, created at its arrival.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from tests.reference.datasets import COUNTRIES, NAMES, PATHS, PLANS

PAGE_VIEWS = {"page_view", "screen_view"}

SECOND = 1000
MIN = 60 * SECOND
HOUR = 60 * MIN
TIMEOUT_MS = 30 * MIN
LATE_MS = HOUR
LIVE_MS = 5 * MIN
FUTURE_MS = MIN  # a timestamp further ahead of the arrival is replaced by the arrival time

# around the EU spring-forward night, a month end on a Monday, a year end
BASES = [
    datetime(2026, 3, 28, 20, tzinfo=UTC),
    datetime(2026, 11, 29, 21, tzinfo=UTC),
    datetime(2026, 12, 31, 20, tzinfo=UTC),
]
# name → (user agent, on the crawler list)
AGENTS = {
    "chrome": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        False,
    ),
    "iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        False,
    ),
    "firefox": ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0", False),
    "googlebot": ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
    "curl": ("curl/8.5.0", True),
}
REFERRER_URLS = [
    "",
    "https://www.google.com/search?q=x",
    "https://facebook.com/x",
    "https://news.example.org/a",
]
# gaps between a device's events: inside a visit, around the timeout, across visits
GAPS_MS = [SECOND, 20 * SECOND, 4 * MIN, 12 * MIN, 25 * MIN, 29 * MIN, 31 * MIN, 45 * MIN, 2 * HOUR, 9 * HOUR]
# how long after its time an event arrives: at once, reordered inside a visit, older than a
# visit's start yet not late, and late
DELAYS_MS = [0, 0, 0, 0, 2 * SECOND, 20 * SECOND, 6 * MIN, 20 * MIN, 40 * MIN, 55 * MIN, 70 * MIN, 3 * HOUR]
RETRIES = ["batch", "soon", "minutes", "hour", "restart"]
RETRY_AFTER_MS = {"soon": 2 * SECOND, "minutes": 7 * MIN, "restart": 3 * SECOND}


@dataclass(frozen=True)
class Device:
    device_id: str
    agent: str
    server_side: bool  # the client authenticated with its secret
    country: str

    @property
    def user_agent(self) -> str:
        return AGENTS[self.agent][0]

    @property
    def is_bot(self) -> bool:
        return AGENTS[self.agent][1] and not self.server_side


@dataclass
class Op:
    """One logical client call; every copy of it sends the same body."""

    kind: str  # track, identify, alias
    body: dict[str, Any]
    device: int  # whose request context it arrives in

    @property
    def payload(self) -> dict[str, Any]:
        return self.body["payload"]


@dataclass(frozen=True)
class Step:
    """``append``: a batch of copies arriving at ``now``. ``flush``: the flusher inserts what is
    sealed (``force``: seals the active segment first). ``restart``: the shard went down right
    after the previous step (``how``: ``stop``, the actor's drain; ``kill``, a crash; ``die``, a
    crash inside a flush after ``inserts`` table inserts succeeded) and is up again at ``now``.
    Between steps, while it is up, the shard's clock ends idle visits (``expire_sessions``) at the
    moment they time out, as the actor's once-a-second loop does."""

    kind: str
    now: int
    ops: tuple[int, ...] = ()  # append: the copies, in the batch's order (indices into ops)
    force: bool = False
    how: str = ""
    inserts: int = 0


@dataclass
class Scenario:
    base_ms: int
    devices: list[Device]
    ops: list[Op]
    steps: list[Step]
    end_ms: int  # the clock runs to here, then everything is flushed
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def first_ms(self) -> int:
        return min(s.now for s in self.steps) - 3 * HOUR

    def __repr__(self) -> str:
        return "Scenario:\n" + self.summary()

    def summary(self) -> str:
        """The scenario as a readable timeline (for failure messages)."""
        lines = [
            f"{d.device_id}: {d.agent} server_side={d.server_side} country={d.country!r}"
            for d in self.devices
        ]
        for s in self.steps:
            at = _clock(s.now)
            if s.kind == "flush":
                lines.append(f"{at} flush force={s.force}")
            elif s.kind == "restart":
                died = f" after {s.inserts} inserts" if s.how == "die" else ""
                lines.append(f"{at} restart ({s.how}{died}) up again")
            for i in s.ops:
                op = self.ops[i]
                p = op.payload
                if op.kind == "track":
                    ts = p.get("timestamp")
                    when = "-" if ts is None else _clock(ts)[6:]
                    lines.append(
                        f"{at} track {p['id']} {p['deviceId']} t={when} sid={p.get('sessionId', '')} {p['name']}"
                    )
                else:
                    lines.append(f"{at} {op.kind} {p}")
        lines.append(f"{_clock(self.end_ms)} end")
        return "\n".join(lines)


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S.%f")[:-3]


def _tick(ms: int) -> int:
    """Batches arrive at a whole second plus 500 ms: never an event's own time (those end in
    7…251 ms), so an event without a timestamp never ties with another event of its device."""
    return (ms // SECOND + 1) * SECOND + 500


@st.composite
def device_ops(
    draw: st.DrawFn, index: int, base_ms: int, device: Device
) -> list[tuple[Op, list[tuple[int, str]]]]:
    """A device's track calls in time order, each with its copies' (arrival, retry kind)."""
    t = base_ms + draw(st.integers(0, 20 * 3600)) * SECOND + 7 + index * 61
    out: list[tuple[Op, list[tuple[int, str]]]] = []
    sid, used = "", 0
    arrivals: list[int] = []
    queued: list[bool] = []
    for k in range(draw(st.integers(1, 9))):
        gap = TIMEOUT_MS  # the first event starts a run
        if k:
            gap = draw(st.sampled_from(GAPS_MS)) + draw(st.integers(0, 40)) * SECOND
            t += gap
        # a client session id per run of events (a later run may reuse it), sometimes a new one
        # inside a run
        if gap >= TIMEOUT_MS or draw(st.integers(0, 9)) == 0:
            mode = draw(st.sampled_from(["none", "none", "new", "reuse"]))
            if mode == "new" or (mode == "reuse" and not used):
                used += 1
                sid = f"c{index}-{used}"
            elif mode == "none":
                sid = ""
            # "reuse": the previous client id again (a later visit under the same id)
        ts_mode = draw(st.sampled_from(["ts"] * 8 + ["none", "future"]))
        payload: dict[str, Any] = {
            "id": f"e{index}-{k}",
            "name": draw(st.sampled_from(NAMES)),
            "deviceId": device.device_id,
            "path": draw(st.sampled_from(PATHS)),
            "referrer": draw(st.sampled_from(REFERRER_URLS)),
        }
        if sid:
            payload["sessionId"] = sid
        if draw(st.integers(0, 3)) == 0:
            payload["profileId"] = f"user{draw(st.integers(0, 2))}"
        if draw(st.booleans()):
            payload["properties"] = {"plan": draw(st.sampled_from(PLANS))}
        if ts_mode == "ts":
            payload["timestamp"] = t
            delay = draw(st.sampled_from(DELAYS_MS))
            delay += draw(st.integers(0, 59)) * SECOND if delay else 0
        elif ts_mode == "future":  # a client clock ten minutes ahead: stored at its arrival
            payload["timestamp"] = t + 10 * MIN
            delay = 0
        else:
            delay = 0
        arrivals.append(_tick(t + delay))
        # an offline queue: sent with the device's next request (only timestamped events, so two
        # events stored at their arrival never share a batch)
        queued.append(ts_mode == "ts" and draw(st.integers(0, 4)) == 0)
        out.append((Op("track", {"type": "track", "payload": payload}, index), []))
    for k in range(len(out) - 2, -1, -1):
        if queued[k]:
            arrivals[k] = max(arrivals[k], arrivals[k + 1])
    for k, (_op, copies) in enumerate(out):
        a = arrivals[k]
        copies.append((a, "first"))
        for kind in draw(st.lists(st.sampled_from(RETRIES), max_size=2, unique=True)):
            if draw(st.integers(0, 2)):
                continue  # most events are sent once
            if kind == "batch":
                copies.append((a, "batch"))
            elif kind == "hour":  # "in another hour", same payload (so late by now)
                copies.append((a + draw(st.integers(65, 100)) * MIN, "hour"))
            else:
                copies.append((a + RETRY_AFTER_MS[kind], kind))
    return out


@st.composite
def profile_ops(draw: st.DrawFn, base_ms: int, devices: int) -> list[tuple[Op, int]]:
    """identify and alias calls at arrival times of their own (an alias's time is its arrival, so
    two links of one alias never share a millisecond)."""
    out: list[tuple[Op, int]] = []
    aliases = [f"dev{i}" for i in range(devices)] + ["user1", "user2"]
    for j in range(draw(st.integers(0, 5))):
        at = base_ms + draw(st.integers(0, 26 * 3600)) * SECOND + 600 + j
        profile = f"user{draw(st.integers(0, 2))}"
        if draw(st.booleans()):
            payload: dict[str, Any] = {
                "profileId": profile,
                "firstName": draw(st.sampled_from(["", "Ada", "Bo"])),
                "email": draw(st.sampled_from(["", f"{profile}@example.org", "x@example.org"])),
                "properties": {"tier": draw(st.sampled_from(["gold", "free"]))},
            }
            if draw(st.booleans()):  # in the same request as some device's events
                at = _tick(at)
            out.append((Op("identify", {"type": "identify", "payload": payload}, 0), at))
        else:
            target = draw(st.sampled_from(["user0", "user1", "user2", "user9"]))
            payload = {"profileId": target, "alias": draw(st.sampled_from(aliases))}
            out.append((Op("alias", {"type": "alias", "payload": payload}, 0), at))
    return out


@st.composite
def scenarios(
    draw: st.DrawFn,
    retry_after_forgotten: bool = True,
    reopen_ended: bool = True,
    reuse_across_restart_days: bool = True,
    partial_flush_after_crash: bool = True,
    replay_offline_with_sid: bool = True,
    reordered_views_after_restart: bool = True,
    reopen_after_restart: bool = True,
    older_than_ended: bool = True,
    replay_continued_ended: bool = True,
) -> Scenario:
    """A scenario. Options leave out what the shard does not do yet (see the test module's flags):
    with ``retry_after_forgotten`` false no retry arrives after a restart that followed a flush
    of its first copy; with ``reopen_ended`` false no event continues a visit that had ended;
    with ``reopen_after_restart`` false none does after a restart since the visit ended; with
    ``older_than_ended`` false no event older than the start of the device's last visit arrives
    after the clock ended that visit; with ``reuse_across_restart_days`` false the shard never
    restarts between two visits opened with one client session id when the earlier one opened on
    an earlier UTC day than the restart; with ``partial_flush_after_crash`` false a shard that
    crashed never dies again half-way through a flush before one flush completed; with
    ``replay_offline_with_sid`` false, a shard that logged an event of an offline queue carrying a
    client session id stops gracefully (instead of crashing) unless a flush came in between; with
    ``reordered_views_after_restart`` false, no page view arrives out of order into a visit
    opened before a restart; with ``replay_continued_ended`` false, a shard that logged an event
    continuing an ended visit stops gracefully instead of crashing unless a flush came in between.
    (Events are left out with all their copies.)"""
    base_ms = int(draw(st.sampled_from(BASES)).timestamp() * 1000)
    n = draw(st.integers(1, 4))
    devices = [
        Device(
            f"dev{i}",
            draw(st.sampled_from(sorted(AGENTS))),
            draw(st.integers(0, 3)) == 0,
            draw(st.sampled_from(COUNTRIES)),
        )
        for i in range(n)
    ]
    ops: list[Op] = []
    copies: list[tuple[int, int, str]] = []  # (arrival, op, kind)
    for i, dev in enumerate(devices):
        for op, cs in draw(device_ops(i, base_ms, dev)):
            ops.append(op)
            copies.extend((a, len(ops) - 1, kind) for a, kind in cs)
    for op, at in draw(profile_ops(base_ms, n)):
        ops.append(op)
        copies.append((at, len(ops) - 1, "first"))
    by_arrival: dict[int, list[int]] = defaultdict(list)
    restarts_at: set[int] = set()
    for a, i, kind in sorted(copies):
        by_arrival[a].append(i)
        if kind == "restart":
            restarts_at.add(a - 2 * SECOND)

    def restart(now: int) -> Step:
        how = draw(st.sampled_from(["stop", "kill", "die"]))
        return Step("restart", now, how=how, inserts=draw(st.integers(0, 3)) if how == "die" else 0)

    steps: list[Step] = []
    for now in sorted(set(by_arrival) | restarts_at):
        if now in restarts_at:
            steps.append(restart(now))
        if now not in by_arrival:
            continue
        roll = draw(st.integers(0, 99))
        if roll < 40:  # else storage is slow or down: the next flush takes more
            steps.append(Step("flush", now, force=draw(st.booleans())))
        elif roll < 50 and now not in restarts_at:
            steps.append(restart(now))
        steps.append(Step("append", now, tuple(draw(st.permutations(by_arrival[now])))))
    end = steps[-1].now + draw(st.sampled_from([SECOND, 10 * MIN, 2 * HOUR]))
    if draw(st.integers(0, 2)) == 0:
        steps.append(restart(end))
    if not partial_flush_after_crash:
        steps = _without_partial_flush_after_crash(steps)
    while True:
        before = steps
        if not reuse_across_restart_days:
            steps = _without_restarts_across_days(devices, ops, steps, end)
        if not reopen_ended:
            steps = _without_decided(devices, ops, steps, end, "continued_ended")
        if not reopen_after_restart:
            steps = _without_decided(devices, ops, steps, end, "reopened_after_restart")
        if not older_than_ended:
            steps = _without_decided(devices, ops, steps, end, "older_than_ended")
        if not replay_offline_with_sid:
            steps = _without_crash_replaying(devices, ops, steps, end, "offline_with_sid")
        if not replay_continued_ended:
            steps = _without_crash_replaying(devices, ops, steps, end, "continued_ended_in")
        if not reordered_views_after_restart:
            steps = _without_events(
                ops, steps, simulate(devices, ops, steps, end).reordered_views_after_restart
            )
        if steps == before:
            break
    if not retry_after_forgotten:  # last: the steps above may turn crashes into graceful stops
        steps = _without_forgotten_retries(ops, steps)
    flags = {
        "retry_after_forgotten": retry_after_forgotten,
        "reopen_ended": reopen_ended,
        "reuse_across_restart_days": reuse_across_restart_days,
        "partial_flush_after_crash": partial_flush_after_crash,
        "replay_offline_with_sid": replay_offline_with_sid,
        "reordered_views_after_restart": reordered_views_after_restart,
        "reopen_after_restart": reopen_after_restart,
        "older_than_ended": older_than_ended,
        "replay_continued_ended": replay_continued_ended,
    }
    return Scenario(base_ms, devices, ops, steps, end, flags)


def simulate(devices: list[Device], ops: list[Op], steps: list[Step], end: int) -> ShardReference:
    """The scenario on the reference alone, the clock ending visits as the shard's would (events'
    enriched attributes left out: they decide nothing)."""
    reference = ShardReference("p", devices)
    clock = steps[0].now if steps else end  # the clock's last reading
    for n, s in enumerate(steps):
        if s.kind == "restart":  # down since the previous step: its clock reads again from now
            reference.restarts += 1
            clock = s.now
        reference.catch_up(s.now, clock)
        clock = s.now
        if s.kind == "append":
            reference.step = n
            bare = [(ops[i], {k: ops[i].payload.get(k, "") for k in ("name", "path")}) for i in s.ops]
            reference.append(s.now, bare)
    reference.catch_up(end, clock)
    return reference


def _without_restarts_across_days(
    devices: list[Device], ops: list[Op], steps: list[Step], end: int
) -> list[Step]:
    """The steps without a restart between two visits opened with one client session id, the
    earlier one opened on an earlier UTC day than the restart (a death in a flush becomes the flush)."""
    opened: dict[str, list[tuple[int, int]]] = defaultdict(list)  # client id → (step, opened_at)
    for v in simulate(devices, ops, steps, end).visits:
        if v.client_sid:
            opened[v.client_sid].append((v.opened_in, v.opened_at))
    out = []
    for n, s in enumerate(steps):
        if s.kind == "restart":
            midnight = s.now - s.now % (24 * HOUR)
            if any(
                any(m < n and at < midnight for m, at in visits) and any(m > n for m, _ in visits)
                for visits in opened.values()
            ):
                if s.how == "die":
                    out.append(Step("flush", s.now, force=True))
                continue
        out.append(s)
    return out


def _without_decided(
    devices: list[Device], ops: list[Op], steps: list[Step], end: int, kind: str
) -> list[Step]:
    """The steps without the events the reference lists as ``kind`` (until there are none)."""
    while True:
        found = getattr(simulate(devices, ops, steps, end), kind)
        if not found:
            return steps
        steps = _without_events(ops, steps, found)


def _without_events(ops: list[Op], steps: list[Step], ids: list[str]) -> list[Step]:
    """The steps without any copy of the events ``ids``."""
    drop = set(ids)
    out = []
    for s in steps:
        if s.kind == "append":
            kept = tuple(i for i in s.ops if ops[i].payload.get("id") not in drop)
            if not kept:
                continue
            s = Step("append", s.now, kept)
        out.append(s)
    return out


def _without_crash_replaying(
    devices: list[Device], ops: list[Op], steps: list[Step], end: int, kind: str
) -> list[Step]:
    """A crash that would replay from the log an event logged by one of the steps the reference
    lists as ``kind`` is a graceful stop instead (which flushes the log first)."""
    pending = False
    logged = set(getattr(simulate(devices, ops, steps, end), kind))
    out = []
    for n, s in enumerate(steps):
        if s.kind == "restart" and s.how != "stop" and pending:
            s = Step("restart", s.now, how="stop")
        if s.kind == "flush" or s.kind == "restart":
            pending = False
        if n in logged:
            pending = True
        out.append(s)
    return out


def _without_partial_flush_after_crash(steps: list[Step]) -> list[Step]:
    """A death in a flush stores nothing when the shard crashed before and no flush completed since."""
    out = []
    recovered = False
    for s in steps:
        if s.kind == "restart" and s.how == "die" and recovered:
            s = Step("restart", s.now, how="die", inserts=0)
        if s.kind == "flush" or (s.kind == "restart" and s.how == "stop"):
            recovered = False
        elif s.kind == "restart":
            recovered = True
        out.append(s)
    return out


def _without_forgotten_retries(ops: list[Op], steps: list[Step]) -> list[Step]:
    """Drop every copy of an event arriving after a restart that came after a flush that came
    after the event's first copy (conservatively: any flush may have stored it)."""
    flushed: set[str] = set()  # ids whose first copy a flush may have stored
    forgotten: set[str] = set()
    seen: set[str] = set()
    out: list[Step] = []
    for s in steps:
        if s.kind == "flush" or (s.kind == "restart" and s.how in ("stop", "die")):
            flushed |= seen
        if s.kind == "restart":
            forgotten |= flushed
        if s.kind != "append":
            out.append(s)
            continue
        keep = []
        for i in s.ops:
            op = ops[i]
            ident = op.payload.get("id", "") if op.kind == "track" else ""
            if ident in forgotten:
                continue
            if ident:
                seen.add(ident)
            keep.append(i)
        if keep:
            out.append(Step("append", s.now, tuple(keep)))
    return out


# the reference ------------------------------------------------------------------------------
@dataclass
class Visit:
    label: str  # the stored session id for a client id; "srv:<opening event id>" otherwise
    client_sid: str
    device: str
    first: dict[str, Any]  # the opening event (its attributes are the session's)
    events: list[dict[str, Any]] = field(default_factory=list)  # in arrival order
    closed: bool = False
    ever_closed: bool = False
    opened_in: int = -1  # the step whose batch opened it
    epoch: int = 0  # restarts of the shard before it opened
    closed_epoch: int = 0  # restarts of the shard before it ended

    @property
    def opened_at(self) -> int:
        return self.first["created_at"]

    @property
    def start(self) -> int:
        return min(e["created_at"] for e in self.events)

    @property
    def last(self) -> int:
        return max(e["created_at"] for e in self.events)

    def row(self) -> dict[str, Any]:
        """The session's stored attributes (sessions FINAL), ids aside."""
        views = [e for e in self.events if e["name"] in ("page_view", "screen_view")]
        with_path = [e for e in views if e.get("path")]
        profile = ""
        for e in self.events:
            if e.get("profile_id"):
                profile = e["profile_id"]
        return {
            "device_id": self.device,
            "opened_at": self.opened_at,
            "started_at": self.start,
            "ended_at": self.last,
            "duration": (self.last - self.start) / 1000,
            "entry_path": min(with_path, key=lambda e: e["created_at"])["path"] if with_path else "",
            "exit_path": max(with_path, key=lambda e: e["created_at"])["path"] if with_path else "",
            "page_views": len(views),
            "events": len(self.events),
            "is_bounce": int(len(views) <= 1 and len(self.events) == len(views)),
            "is_closed": int(self.closed),
            "profile_id": profile,
            "is_bot": self.first["is_bot"],
            "referrer_name": self.first.get("referrer_name", ""),
            "referrer_type": self.first.get("referrer_type", ""),
            "country": self.first.get("country", ""),
            "browser": self.first.get("browser", ""),
        }


@dataclass
class Expected:
    """What the shard must answer for one copy: a new event, a duplicate of ``id``, or a profile call."""

    kind: str  # fresh, duplicate, profile
    id: str = ""


# attributes of a stored event that come from its request as the pipeline enriched it; the
# reference decides the rest (time, bot flag, device, session)
CARRIED = (
    "name",
    "path",
    "origin",
    "referrer",
    "referrer_name",
    "referrer_type",
    "properties",
    "profile_id",
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
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "sdk_name",
    "sdk_version",
    "title",
)


class ShardReference:
    def __init__(self, project: str, devices: list[Device]) -> None:
        self.project = project
        self.devices = {d.device_id: d for d in devices}
        self.history: dict[str, list[Visit]] = {}  # device → its visits, in the order they opened
        self.visits: list[Visit] = []
        self.ordinals: dict[str, int] = {}  # client session id → visits opened with it
        self.stored: dict[str, dict[str, Any]] = {}  # id → the stored event (session_id: a label)
        self.visit_of: dict[str, Visit | None] = {}  # id → its visit (None: late)
        self.profiles: dict[str, dict[str, Any]] = {}
        self.aliases: list[dict[str, Any]] = []
        # events continuing a visit that had ended; those arriving after a restart since it ended;
        # events older than the start of a device's last visit after the clock ended it
        self.continued_ended: list[str] = []
        self.reopened_after_restart: list[str] = []
        self.continued_ended_in: list[int] = []  # the steps that logged such continuations
        self.older_than_ended: list[str] = []
        self.step = -1  # the step being played (visits note the one that opened them)
        # steps that stored an event of an offline queue (older than the live visit) carrying a
        # client session id
        self.offline_with_sid: list[int] = []
        # page views (with a path) continuing a visit opened before a restart, older than its
        # latest event
        self.reordered_views_after_restart: list[str] = []
        self.restarts = 0

    @staticmethod
    def event_time(payload: dict[str, Any], now: int) -> int:
        ts = payload.get("timestamp")
        if ts is None or ts > now + FUTURE_MS:
            return now
        return int(ts)

    def append(
        self, now: int, calls: list[tuple[Op, dict[str, Any]]]
    ) -> tuple[list[Expected], list[tuple[str, str, int]]]:
        """``calls``: each copy with the record the pipeline prepared for it. Returns what each
        copy is answered and the presence the shard reports for the batch."""
        expected: list[Expected] = []
        presence: list[tuple[str, str, int]] = []
        for op, prepared in calls:
            if op.kind == "identify":
                self._identify(op.payload)
                expected.append(Expected("profile"))
                continue
            if op.kind == "alias":
                self.aliases.append(
                    {"alias": op.payload["alias"], "profile_id": op.payload["profileId"], "created_at": now}
                )
                expected.append(Expected("profile"))
                continue
            ident = op.payload["id"]
            if ident in self.stored:
                expected.append(Expected("duplicate", ident))
                continue
            device = self.devices[op.payload["deviceId"]]
            ev = {k: prepared.get(k) for k in CARRIED if k in prepared}
            ev.update(
                id=ident,
                project_id=self.project,
                device_id=device.device_id,
                created_at=self.event_time(op.payload, now),
                received_at=now,
                is_bot=int(device.is_bot),
            )
            self.stored[ident] = ev
            self._place(ev, op.payload.get("sessionId") or "", now)
            expected.append(Expected("fresh", ident))
            if not device.is_bot and ev["created_at"] >= now - LIVE_MS:
                presence.append((self.project, device.device_id, ev["created_at"]))
        return expected, presence

    @staticmethod
    def _fits(visit: Visit, t: int, sid: str) -> bool:
        """The event continues the visit: under the timeout from it on both sides, and no client
        session id or the visit's own."""
        return (
            (not sid or sid == visit.client_sid)
            and t - visit.last < TIMEOUT_MS
            and visit.start - t < TIMEOUT_MS
        )

    def _place(self, ev: dict[str, Any], sid: str, now: int) -> None:
        t = ev["created_at"]
        if t < now - LATE_MS:
            self._late(ev, sid)
            return
        history = self.history.setdefault(ev["device_id"], [])
        cur = history[-1] if history else None
        if cur is not None and self._fits(cur, t, sid):
            self._join(cur, ev)
            return
        if cur is not None and t < cur.start:
            if cur.closed:  # older than a visit the clock ended: no matter, as if it were live
                self.older_than_ended.append(ev["id"])
            prev = history[-2] if len(history) > 1 else None
            if prev is not None and self._fits(prev, t, sid):
                self._join(prev, ev)  # the visit before, which the next one ended
                return
            self._late(ev, sid)  # an offline queue older than the visit: as if late
            if sid:
                self.offline_with_sid.append(self.step)
            return
        if cur is not None and not cur.closed:
            cur.closed, cur.closed_epoch = True, self.restarts
            cur.ever_closed = True
        if sid:
            n = self.ordinals[sid] = self.ordinals.get(sid, 0) + 1
            label = sid if n == 1 else f"{sid}~{n}"
        else:
            label = f"srv:{ev['id']}"
        visit = Visit(label, sid, ev["device_id"], ev, [ev], opened_in=self.step, epoch=self.restarts)
        self.visits.append(visit)
        history.append(visit)
        ev["session_id"] = label
        self.visit_of[ev["id"]] = visit

    def _join(self, visit: Visit, ev: dict[str, Any]) -> None:
        t = ev["created_at"]
        if ev.get("name") in PAGE_VIEWS and ev.get("path") and t < visit.last and visit.epoch < self.restarts:
            self.reordered_views_after_restart.append(ev["id"])
        if visit.closed:  # inside a visit that ended: it continues (and stays ended)
            self.continued_ended.append(ev["id"])
            self.continued_ended_in.append(self.step)
            if visit.closed_epoch < self.restarts:
                self.reopened_after_restart.append(ev["id"])
        visit.events.append(ev)
        ev["session_id"] = visit.label
        self.visit_of[ev["id"]] = visit

    def _late(self, ev: dict[str, Any], sid: str) -> None:
        ev["session_id"] = sid or f"late:{ev['id']}"
        self.visit_of[ev["id"]] = None

    def expire(self, now: int) -> list[Visit]:
        """The clock at ``now``: the visits it ends."""
        ended = []
        for history in self.history.values():
            visit = history[-1]
            if not visit.closed and now - visit.last >= TIMEOUT_MS:
                visit.closed = visit.ever_closed = True
                visit.closed_epoch = self.restarts
                ended.append(visit)
        return ended

    def timeouts(self) -> list[int]:
        """When the open visits time out."""
        return [h[-1].last + TIMEOUT_MS for h in self.history.values() if not h[-1].closed]

    def catch_up(self, now: int, since: int) -> None:
        """The clock from its last reading ``since`` to ``now`` (a restart's downtime in between
        reads nothing: the shard is back at ``now``, after ``since``)."""
        for t in sorted(self.timeouts()):
            if t <= now:
                self.expire(max(t, since))

    def _identify(self, p: dict[str, Any]) -> None:
        prof = self.profiles.setdefault(
            p["profileId"], {"first_name": "", "last_name": "", "email": "", "avatar": "", "properties": {}}
        )
        for key, f in (("firstName", "first_name"), ("lastName", "last_name"), ("email", "email")):
            if p.get(key):
                prof[f] = p[key]
        prof["properties"].update({k: str(v) for k, v in (p.get("properties") or {}).items()})

    # what the insight reference (tests.reference.insights) reads ---------------------------
    def insight_events(self) -> list[dict[str, Any]]:
        """The stored events with a ``session_start`` marker per visit (carrying the opening
        event's attributes and time), as ``tests.reference.insights`` reads them."""
        out = [{**e, "_late": self.visit_of[e["id"]] is None} for e in self.stored.values()]
        for v in self.visits:
            out.append(
                {
                    **v.first,
                    "id": f"{v.label}:s",
                    "name": "session_start",
                    "session_id": v.label,
                    "properties": {},
                }
            )
        return out

    def alias_map(self) -> dict[str, str]:
        newest: dict[str, tuple[int, str]] = {}
        for r in self.aliases:
            if r["alias"] not in newest or r["created_at"] > newest[r["alias"]][0]:
                newest[r["alias"]] = (r["created_at"], r["profile_id"])
        return {a: p for a, (_, p) in newest.items()}
