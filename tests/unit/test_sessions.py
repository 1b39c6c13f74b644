"""Session assignment per device (eventlens.ingest.sessions.Sessionizer)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest.sessions import MARKER_FIELDS, Sessionizer

MIN = 60_000
TIMEOUT = 30 * MIN
LATE = 6 * 60 * MIN
NOW = 1_750_000_000_000


def ev(at: int, *, device: str = "d1", project: str = "p1", sid: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "_t": "events",
        "id": f"e-{device}-{at}-{sid}",
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
    # far past the timeout, the client still says it is the same session: it is
    b = ev(NOW + 3 * TIMEOUT, sid="client-a")
    assert s.assign(b, NOW + 3 * TIMEOUT) == []
    assert b["session_id"] == "client-a"
    # a different client id one second later: a new session, the old one ends
    c = ev(NOW + 3 * TIMEOUT + 1000, sid="client-b")
    markers = s.assign(c, NOW + 3 * TIMEOUT + 1000)
    assert names(markers) == ["session_end", "session_start"]
    assert [m["session_id"] for m in markers] == ["client-a", "client-b"]
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
    assert start["path"] == "/landing" and start["country"] == "DE" and start["browser"] == "Firefox"
    assert "title" not in start and "properties" not in start
    assert set(start) <= {*MARKER_FIELDS, "_t", "id", "name", "session_id", "created_at", "received_at"}
    s.assign(ev(NOW + MIN, path="/second"), NOW + MIN)
    [end] = s.expire(NOW + MIN + TIMEOUT)
    assert end["id"] == f"{sid}:e"
    assert end["path"] == "/landing"  # the opening event's page
    assert end["created_at"] == NOW + MIN


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
