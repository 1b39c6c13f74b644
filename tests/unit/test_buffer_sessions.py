"""Session assignment per device (eventlens.buffer.sessions.Sessionizer)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.buffer.sessions import Sessionizer
from eventlens.records import ENTRY_FIELDS, SESSION_COLUMNS

MIN = 60_000
TIMEOUT = 30 * MIN
LATE = 6 * 60 * MIN
NOW = 1_750_000_000_000


_ids = itertools.count()


def ev(at: int, *, device: str = "d1", project: str = "p1", sid: str = "", **extra: Any) -> dict[str, Any]:
    # every call a new event, with an id of its own (as ingest gives it): server session ids derive
    # from the opening event's id, so two events sharing an id would share a session id
    return {
        "_t": "events",
        "id": f"e-{device}-{at}-{sid}-{next(_ids)}",
        "project_id": project,
        "device_id": device,
        "session_id": sid,
        "created_at": at,
        "name": "page_view",
        **extra,
    }


def names(markers: list[dict[str, Any]]) -> list[str]:
    return [m["name"] for m in markers]


# properties --------------------------------------------------------------------------------------

MAX_EVENTS = 40
gaps = st.lists(st.integers(min_value=0, max_value=2 * TIMEOUT), min_size=1, max_size=MAX_EVENTS)
WIDE_LATE = MAX_EVENTS * 2 * TIMEOUT  # every generated run fits inside the late bound


@settings(max_examples=150, deadline=None)
@given(gaps, st.booleans())
def test_sessions_partition_a_sorted_run_of_events(gap_list: list[int], now_moves: bool) -> None:
    """Sorted events of one device, all within the late bound: sessions are maximal runs with gaps
    under the timeout, each opened by exactly one session_start."""
    times: list[int] = []
    t = 0
    for g in gap_list:
        t += g
        times.append(t)
    start = NOW - times[-1]  # the last event is "now"; all are within the late bound
    assert times[-1] <= WIDE_LATE
    times = [start + x for x in times]
    s = Sessionizer(TIMEOUT, WIDE_LATE)
    events = [ev(x) for x in times]
    starts: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    for e in events:
        markers = s.assign(e, e["created_at"] if now_moves else NOW)
        starts += [m for m in markers if m["name"] == "session_start"]
        ends += [m for m in markers if m["name"] == "session_end"]
        assert set(names(markers)) <= {"session_start", "session_end"}

    # the sessions, in order of first appearance; each is a contiguous run
    order: list[str] = []
    for e in events:
        if not order or order[-1] != e["session_id"]:
            assert e["session_id"] not in order, "a session resumed after another one started"
            order.append(e["session_id"])
    runs = {sid: [e["created_at"] for e in events if e["session_id"] == sid] for sid in order}
    for sid, run in runs.items():
        assert all(b - a < TIMEOUT for a, b in itertools.pairwise(run)), sid
    for prev, nxt in itertools.pairwise(order):
        assert runs[nxt][0] - runs[prev][-1] >= TIMEOUT
    # exactly one start per session, at its first event; an end for every session but the live one
    assert [m["session_id"] for m in starts] == order
    assert [m["created_at"] for m in starts] == [runs[sid][0] for sid in order]
    assert [m["session_id"] for m in ends] == order[:-1]
    assert [m["created_at"] for m in ends] == [runs[sid][-1] for sid in order[:-1]]
    # expiring after the last event closes the live one, and only then
    assert s.expire(times[-1] + TIMEOUT - 1) == []
    [last_end] = s.expire(times[-1] + TIMEOUT)
    assert last_end["session_id"] == order[-1]
    assert s.live == {}


@settings(max_examples=200, deadline=None)
@given(gaps, st.randoms(use_true_random=False))
def test_any_arrival_order_keeps_sessions_tight_and_marked(gap_list: list[int], rnd: Any) -> None:
    """The same events arriving in any order (a device's offline queue, several tabs): every event
    gets a session id; inside a session no gap reaches the timeout; every session has exactly one
    session_start (at the time of its first event to arrive) and one session_end (at the last event
    it held when it ended: an older event arriving after that, inside the visit, continues it
    without a second marker); an event stored like a late event (no session_start) is alone in its
    session."""
    times: list[int] = []
    t = 0
    for g in gap_list:
        t += g
        times.append(NOW - WIDE_LATE // 2 + t)
    arrival = list(times)
    rnd.shuffle(arrival)
    s = Sessionizer(TIMEOUT, WIDE_LATE)
    events = [ev(x) for x in arrival]
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    clock = max(times)  # every event arrives "now", within the late bound
    for e in events:
        for m in s.assign(e, clock):
            book = starts if m["name"] == "session_start" else ends
            assert m["session_id"] not in book, f"two {m['name']} markers for one session"
            book[m["session_id"]] = m["created_at"]
    for m in s.expire(clock + 10 * WIDE_LATE):
        ends[m["session_id"]] = m["created_at"]
    by_session: dict[str, list[int]] = {}
    for e in events:
        assert e["session_id"]
        by_session.setdefault(e["session_id"], []).append(e["created_at"])
    for sid, run in by_session.items():
        run.sort()
        assert all(b - a < TIMEOUT for a, b in itertools.pairwise(run)), sid
        if sid in starts:  # a visit: opened once, closed once, around all its events
            assert starts[sid] in run and ends[sid] in run
        else:  # stored like a late event: one event of its own, no visit touched
            assert len(run) == 1 and sid not in ends
    assert set(starts) == set(ends) <= set(by_session)


def test_an_offline_queue_flushed_mid_visit_does_not_split_the_visit() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    first, second = ev(NOW), ev(NOW + 10 * MIN)
    assert names(s.assign(first, NOW)) == ["session_start"]
    assert s.assign(second, NOW + 10 * MIN) == []
    queued = ev(NOW - 40 * MIN)  # recorded offline 40 minutes before the visit, sent now
    assert s.assign(queued, NOW + 11 * MIN) == []
    assert queued["session_id"] not in (first["session_id"], "")
    third = ev(NOW + 15 * MIN)
    assert s.assign(third, NOW + 15 * MIN) == []
    assert third["session_id"] == first["session_id"]
    [row] = s.snapshots(NOW + 15 * MIN)
    assert (row["events"], row["started_at"], row["ended_at"]) == (3, NOW, NOW + 15 * MIN)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=LATE + 1, max_value=10 * LATE), min_size=1, max_size=10))
def test_late_events_never_open_or_extend_a_live_session(ages: list[int]) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    live = ev(NOW - MIN)
    s.assign(live, NOW)
    before = dict(s.live)
    session = next(iter(before.values()))
    last = session.last_ms
    for age in ages:
        late = ev(NOW - age)
        assert s.assign(late, NOW) == []
        assert late["session_id"] and late["session_id"] != live["session_id"]
    assert s.live == before
    assert session.last_ms == last


def test_late_event_on_a_device_without_a_session_opens_nothing() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    late = ev(NOW - LATE - 1)
    assert s.assign(late, NOW) == []
    assert late["session_id"]
    assert s.live == {}
    assert s.expire(NOW + 10 * LATE) == []


def test_late_bound_is_inclusive_of_its_edge() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    assert names(s.assign(ev(NOW - LATE), NOW)) == ["session_start"]  # exactly at the bound: not late
    s2 = Sessionizer(TIMEOUT, LATE)
    assert s2.assign(ev(NOW - LATE - 1), NOW) == []


def test_late_event_keeps_a_client_session_id() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    late = ev(NOW - LATE - MIN, sid="client-1")
    assert s.assign(late, NOW) == []
    assert late["session_id"] == "client-1"
    assert s.live == {}


# client-supplied ids -----------------------------------------------------------------------------


def test_client_session_id_is_respected() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    a = ev(NOW, sid="client-a")
    assert names(s.assign(a, NOW)) == ["session_start"]
    assert a["session_id"] == "client-a"
    # within the timeout, the client's id continues its session
    b = ev(NOW + 3 * TIMEOUT, sid="client-a")
    assert s.assign(ev(NOW + TIMEOUT - 1, sid="client-a"), NOW + TIMEOUT - 1) == []
    assert s.assign(ev(NOW + 2 * TIMEOUT - 2, sid="client-a"), NOW + 2 * TIMEOUT - 2) == []
    # past the timeout the visit is over, even if the client reuses its id: a new stored session
    assert names(s.assign(b, NOW + 3 * TIMEOUT)) == ["session_end", "session_start"]
    assert b["session_id"] == "client-a~2"
    # a different client id one second later: a new session, the old one ends
    c = ev(NOW + 3 * TIMEOUT + 1000, sid="client-b")
    markers = s.assign(c, NOW + 3 * TIMEOUT + 1000)
    assert names(markers) == ["session_end", "session_start"]
    assert [m["session_id"] for m in markers] == ["client-a~2", "client-b"]
    assert c["session_id"] == "client-b"
    # an event without an id, within the timeout, joins the client's session
    d = ev(NOW + 3 * TIMEOUT + 2000)
    assert s.assign(d, NOW + 3 * TIMEOUT + 2000) == []
    assert d["session_id"] == "client-b"


def test_client_session_id_replaces_a_server_session() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    a = ev(NOW)
    s.assign(a, NOW)
    b = ev(NOW + 1000, sid="client-x")
    markers = s.assign(b, NOW + 1000)
    assert names(markers) == ["session_end", "session_start"]
    assert markers[0]["session_id"] == a["session_id"]
    assert b["session_id"] == "client-x"


# markers and keys --------------------------------------------------------------------------------


def test_marker_copies_the_opening_event_fields_and_has_deterministic_ids() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    first = ev(
        NOW, path="/landing", country="DE", browser="Firefox", title="not copied", properties={"x": "1"}
    )
    [start] = s.assign(first, NOW + 5)
    sid = first["session_id"]
    assert start["id"] == f"{sid}:s"
    assert start["_t"] == "events"
    assert start["name"] == "session_start"
    assert start["created_at"] == NOW
    assert start["received_at"] == NOW + 5
    assert start["path"] == "/landing"  # the entry page
    assert start["country"] == "DE" and start["browser"] == "Firefox"
    assert start["profile_id"] == ""
    # the opening event's own title and properties are not copied (empty, so columns are complete)
    assert start["title"] == "" and start["properties"] == {}
    marker_keys = {
        *ENTRY_FIELDS,
        "_t",
        "id",
        "name",
        "session_id",
        "profile_id",
        "path",
        "title",
        "properties",
    }
    assert set(start) <= marker_keys | {"created_at", "received_at"}
    s.assign(ev(NOW + MIN, path="/second", profile_id="user-1", country="FR"), NOW + MIN)
    [end] = s.expire(NOW + MIN + TIMEOUT)
    assert end["id"] == f"{sid}:e"
    assert end["name"] == "session_end"
    assert end["path"] == "/second"  # the exit page
    assert end["profile_id"] == "user-1"  # identified during the session
    assert end["country"] == "DE"  # entry fields stay those of the opening event
    assert end["created_at"] == NOW + MIN
    assert end["received_at"] == NOW + MIN + TIMEOUT
    assert set(end) <= marker_keys | {"created_at", "received_at"}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"device": "d1", "project": "p1"}, {"device": "d1", "project": "p1"}, True),
        ({"device": "d1", "project": "p1"}, {"device": "d2", "project": "p1"}, False),
        ({"device": "d1", "project": "p1"}, {"device": "d1", "project": "p2"}, False),
    ],
)
def test_sessions_are_per_project_and_device(a: dict[str, str], b: dict[str, str], same: bool) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    x, y = ev(NOW, **a), ev(NOW + 1, **b)
    s.assign(x, NOW)
    markers = s.assign(y, NOW + 1)
    assert (x["session_id"] == y["session_id"]) is same
    assert names(markers) == ([] if same else ["session_start"])


@pytest.mark.parametrize(
    ("gap", "same"),
    [(0, True), (1, True), (TIMEOUT - 1, True), (TIMEOUT, False), (TIMEOUT + 1, False)],
)
def test_timeout_edge(gap: int, same: bool) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    a, b = ev(NOW), ev(NOW + gap)
    s.assign(a, NOW)
    s.assign(b, NOW + gap)
    assert (a["session_id"] == b["session_id"]) is same


def test_expire_only_closes_idle_sessions() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    s.assign(ev(NOW, device="old"), NOW)
    s.assign(ev(NOW + 10 * MIN, device="new"), NOW + 10 * MIN)
    ended = s.expire(NOW + TIMEOUT)
    assert [m["device_id"] for m in ended] == ["old"]
    assert [k[1] for k in s.live] == ["new"]


# snapshots (the sessions table) ------------------------------------------------------------------


def feed(s: Sessionizer, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assign ``events`` in order, each at its own time; returns the log as a shard writes it."""
    log: list[dict[str, Any]] = []
    for e in events:
        log += s.assign(e, e["created_at"])
        log.append(e)
    return log


def test_snapshot_is_a_complete_sessions_row() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(
        s,
        [
            ev(NOW, path="/in", country="DE", browser="Firefox", is_bot=0, utm_source="news"),
            ev(NOW + 10_000, name="click", path="/not-a-page"),  # not a page view: paths untouched
            ev(NOW + 20_000, name="screen_view", path="/middle", profile_id="user-1"),
            ev(NOW + 90_500, path="/out"),
        ],
    )
    [row] = s.snapshots(NOW + 100_000)
    sid = row["session_id"]
    assert row == {
        **{k: "" for k in ENTRY_FIELDS},
        "_t": "sessions",
        "project_id": "p1",
        "device_id": "d1",
        "country": "DE",
        "browser": "Firefox",
        "utm_source": "news",
        "is_bot": 0,
        "session_id": sid,
        "profile_id": "user-1",
        "opened_at": NOW,
        "started_at": NOW,
        "ended_at": NOW + 90_500,
        "duration": 90.5,
        "entry_path": "/in",
        "exit_path": "/out",
        "entry_at": NOW,  # the entry and exit page views' times (see restore)
        "exit_at": NOW + 90_500,
        "page_views": 3,
        "events": 4,
        "is_bounce": 0,
        "is_closed": 0,
        "version": NOW + 100_000,
    }
    # every column of the sessions table but ``shard`` (the BufferCore adds it)
    assert set(row) - {"_t"} == set(SESSION_COLUMNS) - {"shard"}


@pytest.mark.parametrize(
    ("names_", "bounce"),
    [
        (["page_view"], 1),
        (["screen_view"], 1),
        (["page_view", "page_view"], 0),
        (["page_view", "click"], 0),
        (["click"], 0),  # no page view but an interaction: not a bounce
        (["signup", "click"], 0),
    ],
)
def test_bounce_is_at_most_one_page_view_and_nothing_else(names_: list[str], bounce: int) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW + i * 1000, name=n, path=f"/{i}") for i, n in enumerate(names_)])
    [row] = s.snapshots(NOW + MIN)
    assert row["is_bounce"] == bounce
    assert row["page_views"] == sum(n in ("page_view", "screen_view") for n in names_)
    assert row["events"] == len(names_)  # the session_start marker is not an event of the session


def test_only_changed_sessions_are_snapshotted_again_with_increasing_versions() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW, device="a"), ev(NOW + 1, device="b")])
    first = {r["device_id"]: r for r in s.snapshots(NOW + 10)}
    assert set(first) == {"a", "b"}
    assert s.snapshots(NOW + 20) == []  # nothing changed
    feed(s, [ev(NOW + MIN, device="a", path="/next")])
    [again] = s.snapshots(NOW + MIN)
    assert again["device_id"] == "a" and again["session_id"] == first["a"]["session_id"]
    assert again["events"] == 2 and again["exit_path"] == "/next"
    assert again["version"] > first["a"]["version"]
    assert s.snapshots(NOW + MIN) == []
    # a clock that stands still (or steps back) still yields a strictly higher version
    feed(s, [ev(NOW + MIN + 1, device="a")])
    [same_ms] = s.snapshots(NOW)
    assert same_ms["version"] == again["version"] + 1
    feed(s, [ev(NOW + MIN + 2, device="a")])
    [later] = s.snapshots(NOW)
    assert later["version"] == same_ms["version"] + 1


def test_session_end_emits_a_final_closed_snapshot() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW, path="/a"), ev(NOW + MIN, path="/b")])
    [open_row] = s.snapshots(NOW + MIN)
    assert open_row["is_closed"] == 0
    [end] = s.expire(NOW + MIN + TIMEOUT)
    [closed] = s.snapshots(NOW + MIN + TIMEOUT)
    assert closed["session_id"] == end["session_id"] == open_row["session_id"]
    assert closed["is_closed"] == 1
    assert closed["version"] > open_row["version"]
    assert (closed["started_at"], closed["ended_at"], closed["events"]) == (NOW, NOW + MIN, 2)
    assert (closed["entry_path"], closed["exit_path"]) == ("/a", "/b")
    assert s.snapshots(NOW + 2 * TIMEOUT) == []  # closed once, never again


def test_a_session_replaced_by_a_new_one_is_closed_in_the_same_snapshots_call() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    old, new = ev(NOW, path="/old"), ev(NOW + TIMEOUT, path="/new")
    log = feed(s, [old, new])
    assert names(log[2:]) == ["session_end", "session_start", "page_view"]
    rows = {r["session_id"]: r for r in s.snapshots(NOW + TIMEOUT)}
    assert rows[old["session_id"]]["is_closed"] == 1
    assert rows[new["session_id"]]["is_closed"] == 0
    assert rows[new["session_id"]]["entry_path"] == "/new"


def test_late_events_do_not_touch_snapshots() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW)])
    s.snapshots(NOW)
    assert s.assign(ev(NOW - LATE - 1, path="/late"), NOW) == []
    assert s.snapshots(NOW + 1) == []


# restore, replay ---------------------------------------------------------------------------------


def as_read_back(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as a restarted shard reads it from ClickHouse: every column, epoch-ms times."""
    out = {**SESSION_COLUMNS, **row, "shard": 3}
    del out["_t"]
    out["started_at"], out["ended_at"] = int(row["started_at"]), int(row["ended_at"])
    return out


def live_state(s: Sessionizer) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        key: (
            x.session_id,
            x.started_ms,
            x.last_ms,
            x.entry_path,
            x.exit_path,
            x.profile_id,
            x.page_views,
            x.events,
            {k: v for k, v in x.first.items() if v not in ("", 0)},  # "" and 0 are the defaults
        )
        for key, x in s.live.items()
    }


def test_restore_then_continue_the_same_session() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(
        s,
        [
            ev(NOW, device="a", path="/in", country="DE"),
            ev(NOW + MIN, device="a", name="click", profile_id="user-1"),
            ev(NOW, device="b"),
        ],
    )
    rows = s.snapshots(NOW + MIN)
    restarted = Sessionizer(TIMEOUT, LATE)
    assert restarted.restore([as_read_back(r) for r in rows]) == 2
    assert live_state(restarted) == live_state(s)
    assert restarted.snapshots(NOW + MIN) == []  # restored sessions are not changed sessions
    nxt = ev(NOW + MIN + TIMEOUT - 1, device="a", path="/out")
    assert restarted.assign(nxt, nxt["created_at"]) == []  # joins: no session_start
    a_row = next(r for r in rows if r["device_id"] == "a")
    assert nxt["session_id"] == a_row["session_id"]
    [row] = restarted.snapshots(nxt["created_at"])
    assert row["session_id"] == a_row["session_id"]
    assert (row["page_views"], row["events"], row["is_bounce"]) == (2, 3, 0)
    assert (row["entry_path"], row["exit_path"], row["profile_id"]) == ("/in", "/out", "user-1")
    assert (row["started_at"], row["ended_at"]) == (NOW, NOW + MIN + TIMEOUT - 1)
    assert row["country"] == "DE"
    assert row["version"] > a_row["version"]
    # a restored session times out like any other
    [end] = restarted.expire(NOW + TIMEOUT)
    assert end["session_id"] == next(r for r in rows if r["device_id"] == "b")["session_id"]


def test_restored_session_past_the_timeout_is_replaced() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW)])
    restarted = Sessionizer(TIMEOUT, LATE)
    restarted.restore([as_read_back(r) for r in s.snapshots(NOW)])
    e = ev(NOW + TIMEOUT)
    markers = restarted.assign(e, NOW + TIMEOUT)
    assert names(markers) == ["session_end", "session_start"]
    assert markers[0]["session_id"] == next(iter(s.live.values())).session_id != e["session_id"]


def test_replay_of_the_log_rebuilds_the_live_state() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    log = feed(
        s,
        [
            ev(NOW, device="a", path="/a1", country="DE"),
            ev(NOW + MIN, device="b", name="click"),
            ev(NOW + 2 * MIN, device="a", name="screen_view", path="/a2", profile_id="user-1"),
            ev(NOW + 3 * MIN, device="c", path="/c1"),
            ev(NOW + 3 * MIN + TIMEOUT, device="a", path="/a3"),  # a: session_end + new session
            ev(NOW + 3 * MIN + TIMEOUT + 1, device="b", sid="client-b"),  # b: a client's session
        ],
    )
    log.append(ev(NOW - LATE, device="a"))  # a late event (assigned at an old now): never counted
    s.assign(log[-1], NOW + 3 * MIN + TIMEOUT)
    log.append({"_t": "profiles", "project_id": "p1", "profile_id": "user-1"})
    log += s.expire(NOW + 4 * MIN + TIMEOUT)  # c ends
    log += s.snapshots(NOW + 4 * MIN + TIMEOUT)  # the sessions rows a seal appends
    assert [r.get("name") for r in log].count("session_end") == 3
    replayed = Sessionizer(TIMEOUT, LATE)
    for rec in log:
        replayed.replay(rec)
    assert live_state(replayed) == live_state(s)
    assert {k[1] for k in replayed.live} == {"a", "b"}


def test_replay_after_restore_counts_only_the_unflushed_records() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW, path="/a"), ev(NOW + MIN, path="/b")])
    flushed = [as_read_back(r) for r in s.snapshots(NOW + MIN)]
    unflushed = feed(s, [ev(NOW + 2 * MIN, name="click"), ev(NOW + 3 * MIN, path="/c")])
    restarted = Sessionizer(TIMEOUT, LATE)
    restarted.restore(flushed)
    for rec in unflushed:
        restarted.replay(rec)
    assert live_state(restarted) == live_state(s)
    [row] = restarted.snapshots(NOW + 3 * MIN)
    assert (row["events"], row["page_views"], row["exit_path"]) == (4, 3, "/c")


# salt rotation: _prev_device ---------------------------------------------------------------------


def test_prev_device_continues_a_visit_across_the_salt_rotation() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    before = ev(NOW, device="old-hash", path="/in")
    s.assign(before, NOW)
    after = ev(NOW + MIN, device="new-hash", _prev_device="old-hash", path="/out")
    assert s.assign(after, NOW + MIN) == []  # no new session, nothing ends
    assert after["session_id"] == before["session_id"]
    assert after["device_id"] == "old-hash"  # stored (and answered) under the visit's id
    assert "_prev_device" not in after  # routing hint only, never stored
    assert list(s.live) == [("p1", "old-hash")]
    [row] = s.snapshots(NOW + MIN)
    assert (row["device_id"], row["events"], row["entry_path"], row["exit_path"]) == (
        "old-hash",
        2,
        "/in",
        "/out",
    )
    # the visit goes on: every later event of the visitor carries both ids
    later = ev(NOW + 2 * MIN, device="new-hash", _prev_device="old-hash")
    assert s.assign(later, NOW + 2 * MIN) == []
    assert (later["session_id"], later["device_id"]) == (before["session_id"], "old-hash")


def test_prev_device_does_not_revive_a_timed_out_session() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    before = ev(NOW, device="old-hash")
    s.assign(before, NOW)
    after = ev(NOW + TIMEOUT, device="new-hash", _prev_device="old-hash")
    markers = s.assign(after, NOW + TIMEOUT)
    assert names(markers) == ["session_start"]  # the old one is left for expire(), not ended here
    assert after["session_id"] != before["session_id"]
    assert after["device_id"] == "new-hash"
    assert "_prev_device" not in after
    assert set(s.live) == {("p1", "old-hash"), ("p1", "new-hash")}
    [end] = s.expire(NOW + TIMEOUT)
    assert end["session_id"] == before["session_id"]


def test_prev_device_is_ignored_when_the_new_device_has_a_session() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    s.assign(ev(NOW, device="old-hash"), NOW)
    current = ev(NOW + 1, device="new-hash")
    s.assign(current, NOW + 1)
    e = ev(NOW + 2, device="new-hash", _prev_device="old-hash")
    assert s.assign(e, NOW + 2) == []
    assert (e["session_id"], e["device_id"]) == (current["session_id"], "new-hash")


def test_prev_device_without_a_previous_session_opens_one_under_the_new_id() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    e = ev(NOW, device="new-hash", _prev_device="old-hash")
    assert names(s.assign(e, NOW)) == ["session_start"]
    assert e["device_id"] == "new-hash" and "_prev_device" not in e
    assert list(s.live) == [("p1", "new-hash")]


@pytest.mark.parametrize("matches", [True, False])
def test_prev_device_with_a_client_session_id(matches: bool) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    before = ev(NOW, device="old-hash", sid="client-1")
    s.assign(before, NOW)
    # within the timeout: the client's id decides whether it is the same visit
    after = ev(
        NOW + TIMEOUT - 1,
        device="new-hash",
        _prev_device="old-hash",
        sid="client-1" if matches else "client-2",
    )
    markers = s.assign(after, NOW + TIMEOUT - 1)
    if matches:
        assert markers == []
        assert (after["session_id"], after["device_id"]) == ("client-1", "old-hash")
    else:
        assert names(markers) == ["session_start"]
        assert (after["session_id"], after["device_id"]) == ("client-2", "new-hash")


def test_prev_device_continuation_replays_to_the_same_state() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    log = feed(
        s,
        [
            ev(NOW, device="old-hash"),
            ev(NOW + MIN, device="new-hash", _prev_device="old-hash"),
            ev(NOW + 2 * MIN, device="new-hash", _prev_device="old-hash", name="click"),
        ],
    )
    replayed = Sessionizer(TIMEOUT, LATE)
    for rec in log:
        replayed.replay(rec)
    assert live_state(replayed) == live_state(s)
    assert next(iter(replayed.live.values())).events == 3


# property: snapshots agree with a direct computation ---------------------------------------------

DEVICES = ("a", "b", "c")
EVENT_NAMES = ("page_view", "screen_view", "click", "signup")
PATHS = ("", "/", "/x", "/y")
step = st.tuples(
    st.sampled_from(DEVICES),
    st.sampled_from([0, 1, 1000, MIN, TIMEOUT - 1, TIMEOUT, 2 * TIMEOUT]),  # gap before the event
    st.sampled_from(EVENT_NAMES),
    st.sampled_from(PATHS),
    st.sampled_from(("", "", "user-1", "user-2")),  # profile id
    st.booleans(),  # seal (take snapshots) after this event
)


def expected_sessions(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Sessions of each device computed directly: maximal runs with gaps under the timeout."""
    out: list[tuple[Any, ...]] = []
    for device in DEVICES:
        mine = [e for e in events if e["device_id"] == device]
        runs: list[list[dict[str, Any]]] = []
        for e in mine:
            if runs and e["created_at"] - runs[-1][-1]["created_at"] < TIMEOUT:
                runs[-1].append(e)
            else:
                runs.append([e])
        for run in runs:
            views = [e for e in run if e["name"] in ("page_view", "screen_view")]
            paths = [e["path"] for e in views if e["path"]]
            profiles = [e["profile_id"] for e in run if e["profile_id"]]
            start, end = run[0]["created_at"], run[-1]["created_at"]
            out.append(
                (
                    device,
                    start,
                    end,
                    (end - start) / 1000,
                    len(views),
                    len(run),
                    int(len(views) <= 1 and len(run) == len(views)),
                    paths[0] if paths else "",
                    paths[-1] if paths else "",
                    profiles[-1] if profiles else "",
                )
            )
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_newest_snapshots_agree_with_a_direct_computation(steps: list[tuple[Any, ...]]) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    t = NOW
    for i, (device, gap, name, path, profile, seal) in enumerate(steps):
        t += gap
        e = ev(t, device=device, name=name, path=path, profile_id=profile)
        e["id"] = f"e{i}"
        s.assign(e, t)
        events.append(e)
        s.expire(t)  # idle sessions of other devices end as time goes by
        if seal:
            rows += s.snapshots(t)
    rows += s.snapshots(t)
    # version strictly increases per session, in the order rows were written
    versions: dict[str, list[int]] = {}
    for r in rows:
        versions.setdefault(r["session_id"], []).append(r["version"])
    assert all(v == sorted(set(v)) for v in versions.values())
    newest = {
        sid: max((r for r in rows if r["session_id"] == sid), key=lambda r: r["version"]) for sid in versions
    }
    # every session an event was assigned to has a newest row, and nothing else has one
    assert set(newest) == {e["session_id"] for e in events}
    got = sorted(
        (
            r["device_id"],
            r["started_at"],
            r["ended_at"],
            r["duration"],
            r["page_views"],
            r["events"],
            r["is_bounce"],
            r["entry_path"],
            r["exit_path"],
            r["profile_id"],
        )
        for r in newest.values()
    )
    assert got == expected_sessions(events)
    # a session is closed exactly when it is no longer live
    live_ids = {x.session_id for x in s.live.values()}
    assert {sid for sid, r in newest.items() if not r["is_closed"]} == live_ids
    # and after everything expires, the final rows are all closed with the same content
    s.expire(t + TIMEOUT)
    final = s.snapshots(t + TIMEOUT)
    assert {r["session_id"] for r in final} == live_ids
    for r in final:
        assert r["is_closed"] == 1 and r["version"] > newest[r["session_id"]]["version"]
        assert {k: v for k, v in r.items() if k not in ("is_closed", "version")} == {
            k: v for k, v in newest[r["session_id"]].items() if k not in ("is_closed", "version")
        }


# formerly known gaps, fixed: regression tests ------------------------------------------


def test_entry_and_exit_paths_follow_page_view_time_not_arrival_order() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    # out of order but within the session: a click at the start, the page views arrive swapped
    feed(s, [ev(NOW + 10_000, path="/second"), ev(NOW, name="click"), ev(NOW + 5_000, path="/first")])
    s.assign(ev(NOW + 20_000, name="click"), NOW + 20_000)
    s.assign(ev(NOW + 15_000, path="/last"), NOW + 20_000)
    [row] = s.snapshots(NOW + 20_000)
    assert (row["entry_path"], row["exit_path"]) == ("/first", "/last")


def test_replay_skips_late_events_like_assign_does() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    log = feed(s, [ev(NOW, sid="client-1", received_at=NOW)])
    # an offline queue flushed: the client's session id, received now (as the pipeline stamps it)
    late = ev(NOW - LATE - MIN, sid="client-1", path="/offline-queue", received_at=NOW)
    log += s.assign(late, NOW)
    log.append(late)
    replayed = Sessionizer(TIMEOUT, LATE)
    for rec in log:
        replayed.replay(rec)
    assert live_state(replayed) == live_state(s)


def test_late_event_never_keeps_the_prev_device_hint() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    late = ev(NOW - LATE - 1, device="new-hash", _prev_device="old-hash")
    assert s.assign(late, NOW) == []
    assert "_prev_device" not in late


# a client session id reused after the timeout -----------------------------------------------------


def table_rows(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The ``sessions`` table read with FINAL: per key (project, day opened, session id) the row of
    the highest version; a later visit under the same key would replace an earlier one."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["project_id"], row["opened_at"] // 86_400_000, row["session_id"])
        if key not in out or row["version"] >= out[key]["version"]:
            out[key] = row
    return out


@pytest.mark.parametrize("expired", [True, False], ids=["after-expiry", "still-live"])
def test_a_client_session_id_reused_after_the_timeout_never_overwrites_the_first_visit(expired: bool) -> None:
    s = Sessionizer(TIMEOUT, LATE)
    rows: list[dict[str, Any]] = []
    log = feed(s, [ev(NOW, sid="abc", path="/a"), ev(NOW + MIN, sid="abc", path="/b")])
    rows += s.snapshots(NOW + MIN)
    if expired:  # the shard's reaper ran: the first visit is closed
        log += s.expire(NOW + MIN + TIMEOUT)
        rows += s.snapshots(NOW + MIN + TIMEOUT)
    # the same client id, two timeouts later (same day): a second visit
    second = [ev(NOW + 2 * TIMEOUT + MIN * k, sid="abc", path=f"/c{k}") for k in range(3)]
    log += feed(s, second)
    rows += s.snapshots(NOW + 3 * TIMEOUT)
    assert [e["session_id"] for e in second] == ["abc~2"] * 3
    starts = [m for m in log if m["name"] == "session_start"]
    assert [(m["session_id"], m["id"]) for m in starts] == [("abc", "abc:s"), ("abc~2", "abc~2:s")]
    final = table_rows(rows)
    assert sorted(
        (r["session_id"], r["page_views"], r["entry_path"], r["exit_path"]) for r in final.values()
    ) == [
        ("abc", 2, "/a", "/b"),
        ("abc~2", 3, "/c0", "/c2"),
    ]
    # the client keeps sending its own id (or adopts the answered one): the second visit goes on
    for sid in ("abc", "abc~2"):
        e = ev(NOW + 3 * TIMEOUT, sid=sid)
        assert s.assign(e, NOW + 3 * TIMEOUT) == [] and e["session_id"] == "abc~2"
    # a third visit: ~3
    third = ev(NOW + 5 * TIMEOUT, sid="abc")
    assert names(s.assign(third, NOW + 5 * TIMEOUT)) == ["session_end", "session_start"]
    assert third["session_id"] == "abc~3"


def test_the_reuse_count_survives_a_restart_and_a_rolled_back_change() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    log = feed(s, [ev(NOW, sid="abc"), ev(NOW + 2 * TIMEOUT, sid="abc")])
    open_rows = [as_read_back(r) for r in s.snapshots(NOW + 2 * TIMEOUT) if not r["is_closed"]]
    assert [r["session_id"] for r in open_rows] == ["abc~2"]
    # restarted from the stored open session: the next reuse is ~3
    restored = Sessionizer(TIMEOUT, LATE)
    restored.restore(open_rows)
    e = ev(NOW + 4 * TIMEOUT, sid="abc")
    restored.assign(e, NOW + 4 * TIMEOUT)
    assert e["session_id"] == "abc~3"
    # restarted from the log alone (nothing flushed): the same
    replayed = Sessionizer(TIMEOUT, LATE)
    for rec in log:
        replayed.replay(rec)
    e = ev(NOW + 4 * TIMEOUT, sid="abc")
    replayed.assign(e, NOW + 4 * TIMEOUT)
    assert e["session_id"] == "abc~3"
    # a change the log refused is forgotten, ordinal included: the retry gets the same id
    replayed.begin()
    e = ev(NOW + 6 * TIMEOUT, sid="abc")
    replayed.assign(e, NOW + 6 * TIMEOUT)
    assert e["session_id"] == "abc~4"
    replayed.rollback()
    assert [x.session_id for x in replayed.live.values()] == ["abc~3"]
    e = ev(NOW + 6 * TIMEOUT, sid="abc")
    replayed.assign(e, NOW + 6 * TIMEOUT)
    assert e["session_id"] == "abc~4"


def test_rollback_restores_every_touched_session_exactly() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    feed(s, [ev(NOW, device="a"), ev(NOW, device="b", sid="x")])
    s.snapshots(NOW)
    before = (
        live_state(s),
        [(x.dirty, x.version) for x in s.live.values()],
        list(s.closed),
        dict(s.client_ids),
    )
    s.begin()
    t = NOW + MIN
    s.assign(ev(t, device="a", path="/more"), t)  # extends a
    s.assign(ev(t, device="b", sid="y"), t)  # ends b, opens y
    s.assign(ev(t, device="c"), t)  # opens c
    s.expire(NOW + 10 * TIMEOUT)  # ends everything
    s.rollback()
    after = (
        live_state(s),
        [(x.dirty, x.version) for x in s.live.values()],
        list(s.closed),
        dict(s.client_ids),
    )
    assert after == before


# a visit the clock ended, continued by events arriving later -----------------------------------


def test_an_offline_queue_sent_one_request_at_a_time_is_one_visit() -> None:
    """An SDK's queue of a visit 40 minutes old, sent one event per request while the shard's clock
    ends idle sessions between them: one session holding every event, one start and one end marker."""
    s = Sessionizer(TIMEOUT, LATE)
    start = NOW - 40 * MIN
    markers: list[dict[str, Any]] = []
    events = [ev(start + k * MIN, sid="visit-1", path=f"/p{k}") for k in range(5)]
    for k, e in enumerate(events):
        clock = NOW + k * 1000
        s.begin()
        markers += s.assign(e, clock)
        markers += s.expire(clock)  # idle by the clock after every event
        s.commit()
    assert {e["session_id"] for e in events} == {"visit-1"}
    assert [(m["name"], m["session_id"]) for m in markers] == [
        ("session_start", "visit-1"),
        ("session_end", "visit-1"),
    ]
    rows = s.snapshots(NOW + 10_000)
    assert [
        (r["session_id"], r["page_views"], r["entry_path"], r["exit_path"], r["is_closed"]) for r in rows
    ] == [("visit-1", 5, "/p0", "/p4", 1)]
    # a later visit reusing the id past the timeout is still a second stored session
    late_visit = ev(NOW + 20_000, sid="visit-1")
    s.assign(late_visit, NOW + 20_000)
    assert late_visit["session_id"] == "visit-1~2"


def test_continuing_an_ended_visit_rolls_back_like_any_change() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    s.assign(ev(NOW - 40 * MIN), NOW)
    s.expire(NOW)
    s.snapshots(NOW)
    (ended,) = s.ended.values()
    before = (ended.page_views, ended.last_ms, ended.dirty, list(s.closed))
    s.begin()
    e = ev(NOW - 39 * MIN)
    s.assign(e, NOW + 1)
    assert e["session_id"] == ended.session_id and ended.page_views == 2
    s.rollback()
    assert (ended.page_views, ended.last_ms, ended.dirty, list(s.closed)) == before
    assert s.snapshots(NOW + 2) == []


def test_an_ended_visit_is_forgotten_once_no_event_could_continue_it() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    s.assign(ev(NOW), NOW)
    s.expire(NOW + TIMEOUT)
    s.snapshots(NOW + TIMEOUT)
    assert len(s.ended) == 1
    s.expire(NOW + LATE + TIMEOUT - 1)
    assert len(s.ended) == 1
    s.expire(NOW + LATE + TIMEOUT + 1)
    assert s.ended == {}


def test_restore_takes_each_devices_two_newest_closed_sessions_as_its_ended_ones() -> None:
    """Closed rows read back (sessions that ended recently) are not live: a device's newest is its
    last ended visit (an event inside it continues it), the one before that the visit before (an
    event older than the last visit continues it)."""
    s = Sessionizer(TIMEOUT, LATE)
    a, b = ev(NOW, sid="a"), ev(NOW + 5 * MIN, sid="b")
    s.assign(a, NOW)
    s.assign(b, NOW + 5 * MIN)  # "a" ends
    s.expire(NOW + 5 * MIN + TIMEOUT)  # the clock ends "b"
    rows = [as_read_back(r) for r in s.snapshots(NOW + 5 * MIN + TIMEOUT)]
    assert sorted((r["session_id"], r["is_closed"]) for r in rows) == [("a", 1), ("b", 1)]
    restarted = Sessionizer(TIMEOUT, LATE)
    restarted.restore(rows)
    assert restarted.live == {}
    key = ("p1", "d1")
    assert (restarted.ended[key].session_id, restarted.before[key].session_id) == ("b", "a")
    now = NOW + 5 * MIN + TIMEOUT + MIN
    older = ev(NOW + 3 * MIN, sid="a")  # older than "b", inside "a"
    inside = ev(NOW + 20 * MIN)  # inside "b"
    assert restarted.assign(older, now) == [] and restarted.assign(inside, now) == []
    assert (older["session_id"], inside["session_id"]) == ("a", "b")
    got = {r["session_id"]: (r["events"], r["is_closed"]) for r in restarted.snapshots(now)}
    assert got == {"a": (2, 1), "b": (2, 1)}


def test_an_event_older_than_a_visit_the_clock_ended_opens_nothing() -> None:
    s = Sessionizer(TIMEOUT, LATE)
    s.assign(ev(NOW + 10 * MIN, sid="a"), NOW + 10 * MIN)
    s.expire(NOW + 40 * MIN)
    e = ev(NOW - 30 * MIN, sid="b")  # older than "a" by the timeout: an offline queue
    assert s.assign(e, NOW + 41 * MIN) == []
    assert e["session_id"] == "b" and s.live == {}
