"""The buffer shard's core without Ray (eventlens.buffer.core.BufferCore).

A real FileSegmentLog in tmp_path and a fake inserter that records every call and can be told to
fail, per table or for all. A "crash" is a new BufferCore (and log) on the same directory.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eventlens.buffer.core import BufferConfig, BufferCore, Overloaded, now_ms
from eventlens.records import TABLES
from eventlens.storage.tables import to_columns
from eventlens.storage.wal import Fenced, FileSegmentLog, RedisSegmentLog, Segment
from tests.servers import REDIS_URL

T0 = 1_750_000_000_000  # a fixed "now" for tests that never look at the real clock
MIN = 60_000
SHARD = "test-3"


class StorageDown(Exception):
    """The fake ClickHouse refuses an insert."""


def _strip_log_id(token: str) -> str:
    shard, _log, segment, table = token.rsplit(":", 3)
    return f"{shard}:{segment}:{table}"


class FakeInserter:
    """Records (table, names, columns, token) of each insert, the rows laid out as columns the way
    ``tables.to_columns`` does; fails for the tables in ``failing`` ("*" = all)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], list[list[Any]], str]] = []
        self.failing: set[str] = set()
        self.attempts: list[str] = []

    def __call__(self, table: str, rows: list[dict[str, Any]], token: str) -> int:
        self.attempts.append(token)
        if "*" in self.failing or table in self.failing:
            raise StorageDown(f"insert into {table} failed")
        names, columns = to_columns(table, rows)
        self.calls.append((table, names, columns, token))
        return len(rows)

    def insert(self, table: str, rows: list[dict[str, Any]], token: str) -> int:
        return self(table, rows, token)

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    @property
    def tokens(self) -> list[str]:
        """Tokens without their log-id part (``shard:log:segment:table`` → ``shard:segment:table``)."""
        return [_strip_log_id(c[3]) for c in self.calls]

    @property
    def log_ids(self) -> set[str]:
        return {c[3].split(":")[1] for c in self.calls}

    def rows(self, table: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for t, names, columns, _ in self.calls:
            if t == table:
                out.extend(dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True))
        return out


def event(
    i: int | str, *, device: str = "dev-1", project: str = "p1", at: int = T0, **extra: Any
) -> dict[str, Any]:
    """A track record as the pipeline prepares it (no session yet)."""
    return {
        "_t": "events",
        "id": f"ev-{i}",
        "project_id": project,
        "name": "page_view",
        "device_id": device,
        "profile_id": "",
        "session_id": "",
        "created_at": at,
        "received_at": at,
        "path": f"/p/{i}",
        **extra,
    }


def profile(i: int, project: str = "p1") -> dict[str, Any]:
    return {
        "_t": "profiles",
        "project_id": project,
        "profile_id": f"user-{i}",
        "first_name": "Ada",
        "properties": {"plan": "pro"},
        "updated_at": T0,
        "event_id": f"pe-{i}",
    }


def counter(i: int) -> dict[str, Any]:
    return {
        "_t": "profile_counters",
        "project_id": "p1",
        "profile_id": "user-1",
        "property": "visits",
        "delta": 1.0,
        "created_at": T0,
        "event_id": f"pc-{i}",
    }


def make(
    directory: Path,
    inserter: FakeInserter | None = None,
    open_sessions: Callable[[int], list[dict[str, Any]]] | None = None,
    **overrides: Any,
) -> tuple[BufferCore, FakeInserter]:
    # one insert at a time unless a test asks for more: the order of inserts is then deterministic
    options: dict[str, Any] = {"flush_max_events": 1_000_000, "flush_max_age_ms": 10**12, "insert_threads": 1}
    options.update(overrides)
    ins = inserter or FakeInserter()
    core = BufferCore(
        BufferConfig(shard_id=SHARD, **options), FileSegmentLog(directory, fsync=False), ins, open_sessions
    )
    core.recover()
    return core, ins


def newest_sessions(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``sessions FINAL`` reads: per session the highest version (the later insert on a tie)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = out.get(row["session_id"])
        if kept is None or row["version"] >= kept["version"]:
            out[row["session_id"]] = row
    return out


def logged(core: BufferCore) -> list[dict[str, Any]]:
    """Every record in the log: sealed segments, then the active one."""
    numbers = [s.number for s in core.sealed]
    active = core.wal._active_no  # type: ignore[attr-defined]
    if core.active_count:
        numbers.append(active)
    return [r for n in numbers for r in core.wal.read(n)]


def names_of(records: list[dict[str, Any]]) -> list[str]:
    return [r.get("name", r["_t"]) for r in records]


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "shard-003"


# append ------------------------------------------------------------------------------------------


def test_append_answers_device_and_session_per_track_record(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    results = core.append(
        [event(1), profile(1), event(2, device="dev-2"), event(3, at=T0 + MIN), counter(1)], now=T0 + MIN
    )
    track_answer = {"deviceId", "sessionId"}
    assert [set(r) for r in results] == [track_answer, set(), track_answer, track_answer, set()]
    assert results[0]["deviceId"] == "dev-1"
    assert results[2]["deviceId"] == "dev-2"
    assert results[0]["sessionId"] and results[2]["sessionId"]
    assert results[0]["sessionId"] != results[2]["sessionId"]  # different devices, different sessions
    assert results[3]["sessionId"] == results[0]["sessionId"]  # same device one minute later
    assert core.stats["appended"] == len(logged(core)) == core.pending


def test_append_keeps_a_client_session_id(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    [result] = core.append([event(1, session_id="client-sid")], now=T0)
    assert result == {"deviceId": "dev-1", "sessionId": "client-sid"}


def test_appended_records_are_durable_before_the_answer(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    core.append([event(1), profile(1)], now=T0)
    # a fresh reader of the directory sees them: nothing is held only in memory
    on_disk = FileSegmentLog(wal_dir, fsync=False)
    segments = on_disk.recover()
    assert names_of([r for s in segments for r in on_disk.read(s.number)]) == [
        "session_start",
        "page_view",
        "profiles",
    ]


@pytest.mark.parametrize("later_call", [True, False], ids=["retry-in-later-call", "duplicate-in-same-call"])
def test_duplicate_event_id_is_logged_once_and_answered_the_same(wal_dir: Path, later_call: bool) -> None:
    core, _ = make(wal_dir)
    first = event(1)
    retry = copy.deepcopy(first)
    if later_call:
        [a] = core.append([first], now=T0)
        [b] = core.append([retry], now=T0 + 1000)
    else:
        a, b = core.append([first, retry], now=T0)
    assert a == b
    events = [r for r in logged(core) if r["name"] == "page_view"]
    assert [r["id"] for r in events] == ["ev-1"]
    assert core.stats["duplicates"] == 1


def test_same_event_id_in_another_project_is_not_a_duplicate(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    a, b = core.append([event(1, project="p1"), event(1, project="p2")], now=T0)
    assert a["sessionId"] != b["sessionId"]
    assert [(r["project_id"], r["id"]) for r in logged(core) if r["name"] == "page_view"] == [
        ("p1", "ev-1"),
        ("p2", "ev-1"),
    ]
    assert core.stats["duplicates"] == 0


def test_duplicate_after_flush_is_still_recognised(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    [a] = core.append([event(1)], now=T0)
    core.flush(force=True)
    [b] = core.append([event(1)], now=T0 + 5)
    assert a == b
    assert core.pending == 0
    assert [r["id"] for r in ins.rows("events") if r["name"] == "page_view"] == ["ev-1"]


# flushing ----------------------------------------------------------------------------------------


def test_flush_by_size(wal_dir: Path) -> None:
    core, ins = make(wal_dir, flush_max_events=3)
    core.append([profile(1), profile(2)], now=T0)
    assert not core.due(now=T0)
    assert core.flush() == 0
    assert ins.calls == []
    core.append([profile(3)], now=T0)
    assert core.due(now=T0)
    assert core.flush() == 3
    assert ins.tokens == [f"{SHARD}:0:profiles"]
    assert [r["profile_id"] for r in ins.rows("profiles")] == ["user-1", "user-2", "user-3"]
    assert core.pending == 0
    assert not core.due(now=T0)
    assert list(wal_dir.glob("*.wal")) == []


def test_flush_by_age(wal_dir: Path) -> None:
    core, ins = make(wal_dir, flush_max_age_ms=1000)
    start = now_ms()
    core.append([profile(1)], now=start)
    assert not core.due(now=start)
    assert not core.due(now=start + 999)
    assert core.due(now=start + 1000)
    core.append([profile(2)], now=start + 900)  # the age counts from the first record of the segment
    assert core.due(now=start + 1000)
    assert core.flush() == 0  # the real clock says it is too young
    assert ins.calls == []
    # a segment whose first record is older than the bound (by the real clock) is flushed
    core2, ins2 = make(wal_dir.parent / "other", flush_max_age_ms=1000)
    core2.append([profile(1)], now=now_ms() - 1500)
    assert core2.flush() == 1
    assert ins2.tokens == [f"{SHARD}:0:profiles"]


def test_nothing_to_flush(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    assert not core.due(now=T0 + 10**9)
    assert core.flush(force=True) == 0
    assert ins.attempts == []


def test_records_of_several_tables_go_to_their_tables_with_segment_tokens(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    core.append([event(1), profile(1), counter(1), event(2)], now=T0)
    # 2 events + 1 session_start + profile + counter + the snapshot of the session they changed
    assert core.flush(force=True) == 6
    core.append([counter(2)], now=T0)
    assert core.flush(force=True) == 1  # no track event: no session changed, no snapshot
    assert ins.tokens == [
        f"{SHARD}:0:events",
        f"{SHARD}:0:profile_counters",
        f"{SHARD}:0:profiles",
        f"{SHARD}:0:sessions",
        f"{SHARD}:1:profile_counters",
    ]
    table, names, columns, _ = ins.calls[0]
    assert table == "events"
    sent = ins.rows("events")
    assert [r["name"] for r in sent] == ["session_start", "page_view", "page_view"]
    assert names == list(TABLES["events"])
    # columns are complete: one value per row in every column, defaults for what a record lacks
    assert all(len(c) == 3 for c in columns)
    assert sent[1]["country"] == "" and sent[1]["is_bot"] == 0 and sent[1]["properties"] == {}
    assert [r["event_id"] for r in ins.rows("profile_counters")] == ["pc-1", "pc-2"]
    assert ins.rows("profiles")[0]["properties"] == {"plan": "pro"}
    assert "_t" not in names
    [snap] = ins.rows("sessions")
    assert snap["session_id"] == sent[0]["session_id"] == sent[1]["session_id"] == sent[2]["session_id"]
    assert (snap["device_id"], snap["started_at"], snap["ended_at"]) == ("dev-1", T0, T0)
    assert (snap["page_views"], snap["events"], snap["is_bounce"], snap["is_closed"]) == (2, 2, 0, 0)
    assert (snap["entry_path"], snap["exit_path"]) == ("/p/1", "/p/2")
    assert snap["shard"] == 0  # the default BufferConfig.index
    sessions_call = next(c for c in ins.calls if c[0] == "sessions")
    assert sessions_call[1] == list(TABLES["sessions"])


def test_failing_insert_keeps_the_segment_and_retries_with_the_same_token(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    core.append([event(1), profile(1)], now=T0)
    assert core.pending == 3
    ins.failing = {"*"}
    with pytest.raises(StorageDown):
        core.flush(force=True)
    # sealing added the snapshot of the session the segment changed: it is part of the segment
    assert core.pending == 4
    assert names_of(core.wal.read(0)) == ["session_start", "page_view", "profiles", "sessions"]
    assert [s.number for s in core.sealed] == [0]
    assert len(list(wal_dir.glob("*.wal"))) == 1
    core.append([event(2)], now=T0 + 10)  # keeps accepting into the next segment
    assert core.pending == 5
    with pytest.raises(StorageDown):
        core.flush(force=True)
    assert [s.number for s in core.sealed] == [0, 1]
    assert names_of(core.wal.read(1)) == ["page_view", "sessions"]
    ins.failing = set()
    assert core.flush() == 6  # sealed segments are always due
    assert ins.tokens == [
        f"{SHARD}:0:events",
        f"{SHARD}:0:profiles",
        f"{SHARD}:0:sessions",
        f"{SHARD}:1:events",
        f"{SHARD}:1:sessions",
    ]
    # one session, two complete snapshots: the newer one has the higher version and both events
    first, second = ins.rows("sessions")
    assert first["session_id"] == second["session_id"]
    assert (first["events"], second["events"]) == (1, 2)
    assert (first["ended_at"], second["ended_at"]) == (T0, T0)
    assert second["version"] > first["version"]
    assert core.pending == 0
    assert list(wal_dir.glob("*.wal")) == []
    assert core.stats["flushed"] == 6


def test_partial_failure_reinserts_the_whole_segment_with_the_same_tokens(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    core.append([event(1), profile(1)], now=T0)
    ins.failing = {"profiles"}
    with pytest.raises(StorageDown):
        core.flush(force=True)
    assert ins.tokens == [f"{SHARD}:0:events"]  # events went in, profiles (and sessions) did not
    assert ins.attempts[1:] == [ins.attempts[0].replace(":events", ":profiles")]
    assert core.pending == 4  # session_start, page_view, profile, sessions snapshot
    ins.failing = set()
    assert core.flush() == 4
    # events are sent again with the same token: ClickHouse drops the repeat
    assert ins.tokens == [
        f"{SHARD}:0:events",
        f"{SHARD}:0:events",
        f"{SHARD}:0:profiles",
        f"{SHARD}:0:sessions",
    ]
    assert ins.calls[0][2] == ins.calls[1][2]
    [snap] = ins.rows("sessions")
    assert (snap["events"], snap["page_views"], snap["is_bounce"]) == (1, 1, 1)


def test_crash_replays_unflushed_segments_with_the_same_tokens(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    [answer] = core.append([event(1), profile(1)], now=T0)[:1]
    ins.failing = {"*"}
    with pytest.raises(StorageDown):
        core.flush(force=True)  # seals segment 0 (with its sessions snapshot), insert fails
    tokens_before_crash = [_strip_log_id(t) for t in ins.attempts]
    assert tokens_before_crash == [f"{SHARD}:0:events"]  # first table failed, the rest not tried
    core.append([event(2), counter(1)], now=T0 + 10)  # active segment 1, never sealed
    sealed_rows = core.wal.read(0)
    active_rows = core.wal.read(1)
    assert names_of(sealed_rows) == ["session_start", "page_view", "profiles", "sessions"]
    assert names_of(active_rows) == ["page_view", "profile_counters"]  # no snapshot: never sealed
    # crash: no drain, no close; a new shard opens the same directory
    restarted, ins2 = make(wal_dir)
    assert restarted.stats["replayed"] == len(sealed_rows) + len(active_rows)
    assert [s.number for s in restarted.sealed] == [0, 1]
    assert restarted.pending == len(sealed_rows) + len(active_rows)
    # the replayed log rebuilt the live session; its first flush adds the snapshot segment 1 lacked
    assert restarted.flush() == restarted.stats["replayed"] + 1
    assert ins2.tokens == [
        f"{SHARD}:0:events",
        f"{SHARD}:0:profiles",
        f"{SHARD}:0:sessions",
        f"{SHARD}:1:events",
        f"{SHARD}:1:profile_counters",
        f"{SHARD}:2:sessions",
    ]
    assert ins2.tokens[0] == tokens_before_crash[0]
    assert ins2.calls[0][3] == ins.attempts[0]  # the very same token, log id included
    # the rows are the ones logged before the crash, byte for byte the same batch
    assert [r["id"] for r in ins2.rows("events")] == [
        r["id"] for r in sealed_rows + active_rows if r["_t"] == "events"
    ]
    before, after = ins2.rows("sessions")
    assert before["session_id"] == after["session_id"] == answer["sessionId"]
    assert (before["events"], after["events"]) == (1, 2)
    assert after["version"] > before["version"]
    # a client retry of a pre-crash event is recognised and answered as the first time
    [again] = restarted.append([event(1)], now=T0 + 20)
    assert again == answer
    assert restarted.stats["duplicates"] == 1
    # new segments continue after the replayed ones
    restarted.append([profile(2)], now=T0 + 30)
    restarted.flush(force=True)
    assert ins2.tokens[-1] == f"{SHARD}:3:profiles"


def test_crash_before_any_seal_replays_with_the_token_a_flush_would_have_used(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    core.append([profile(1)], now=T0)
    would_be = core.wal._active_no  # type: ignore[attr-defined]
    restarted, ins = make(wal_dir)
    restarted.flush()
    assert ins.tokens == [f"{SHARD}:{would_be}:profiles"]


def test_restart_after_everything_was_flushed_never_reuses_a_token(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    core.append([profile(1)], now=T0)
    core.flush(force=True)
    core.wal.close()
    restarted, ins2 = make(wal_dir)
    restarted.append([profile(2)], now=T0)
    restarted.flush(force=True)
    assert ins.tokens == [f"{SHARD}:0:profiles"]
    assert ins2.tokens == [f"{SHARD}:1:profiles"]


# back pressure -----------------------------------------------------------------------------------


def test_overloaded_once_pending_would_exceed_max_pending(wal_dir: Path) -> None:
    core, ins = make(wal_dir, max_pending=4)
    ins.failing = {"*"}  # storage is down: the log fills up
    core.append([profile(1), profile(2), profile(3)], now=T0)
    with pytest.raises(StorageDown):
        core.flush(force=True)
    core.append([profile(4)], now=T0)
    assert core.pending == 4
    with pytest.raises(Overloaded) as info:
        core.append([profile(5)], now=T0)
    assert info.value.retry_after_s > 0
    assert core.pending == 4  # nothing of the refused call was logged
    assert len(logged(core)) == 4
    with pytest.raises(Overloaded):
        core.append([event(9)], now=T0)
    ins.failing = set()
    core.flush(force=True)
    assert core.pending == 0
    assert core.append([profile(5)], now=T0) == [{}]


def test_a_single_call_larger_than_max_pending_is_refused(wal_dir: Path) -> None:
    core, _ = make(wal_dir, max_pending=2)
    with pytest.raises(Overloaded):
        core.append([profile(1), profile(2), profile(3)], now=T0)
    assert core.pending == 0
    assert core.append([profile(1), profile(2)], now=T0) == [{}, {}]


# sessions ----------------------------------------------------------------------------------------


def test_session_start_is_logged_before_the_first_event_of_a_session(wal_dir: Path) -> None:
    core, _ = make(wal_dir, session_timeout_ms=30 * MIN)
    [a] = core.append([event(1, at=T0)], now=T0)
    [b] = core.append([event(2, at=T0 + 29 * MIN)], now=T0 + 29 * MIN)
    [c] = core.append([event(3, at=T0 + 60 * MIN)], now=T0 + 60 * MIN)  # 31 minutes of silence
    assert a["sessionId"] == b["sessionId"] != c["sessionId"]
    records = logged(core)
    assert names_of(records) == [
        "session_start",
        "page_view",
        "page_view",
        "session_end",
        "session_start",
        "page_view",
    ]
    start, _, _, end, start2, _ = records
    assert start["session_id"] == end["session_id"] == a["sessionId"]
    assert start["id"] == f"{a['sessionId']}:s" and end["id"] == f"{a['sessionId']}:e"
    assert start["created_at"] == T0 and end["created_at"] == T0 + 29 * MIN
    assert start2["session_id"] == c["sessionId"]
    assert start["device_id"] == "dev-1" and start["path"] == "/p/1"  # copied from the first event


def test_expire_sessions_logs_session_end(wal_dir: Path) -> None:
    core, ins = make(wal_dir, session_timeout_ms=30 * MIN)
    [a] = core.append([event(1, at=T0)], now=T0)
    [b] = core.append([event(2, device="dev-2", at=T0 + 10 * MIN)], now=T0 + 10 * MIN)
    core.flush(force=True)
    assert core.expire_sessions(now=T0 + 30 * MIN - 1) == 0
    assert core.expire_sessions(now=T0 + 30 * MIN) == 1  # dev-1 idle for the timeout
    assert core.pending == 1
    assert core.expire_sessions(now=T0 + 40 * MIN) == 1  # dev-2
    assert core.expire_sessions(now=T0 + 99 * MIN) == 0
    assert core.due(now=T0 + 40 * MIN + 10**12)
    core.flush(force=True)
    ends = [r for r in ins.rows("events") if r["name"] == "session_end"]
    assert [(r["session_id"], r["created_at"]) for r in ends] == [
        (a["sessionId"], T0),
        (b["sessionId"], T0 + 10 * MIN),
    ]
    # the device comes back: a new session opens
    [c] = core.append([event(3, at=T0 + 100 * MIN)], now=T0 + 100 * MIN)
    assert c["sessionId"] not in (a["sessionId"], b["sessionId"])
    assert names_of(logged(core)) == ["session_start", "page_view"]


def test_late_event_gets_no_markers_and_does_not_touch_the_live_session(wal_dir: Path) -> None:
    core, _ = make(wal_dir, late_bound_ms=60 * MIN, session_timeout_ms=30 * MIN)
    now = T0 + 120 * MIN
    [live] = core.append([event(1, at=now)], now=now)
    [late] = core.append([event(2, at=now - 61 * MIN)], now=now)
    assert late["sessionId"] != live["sessionId"]
    assert names_of(logged(core)) == ["session_start", "page_view", "page_view"]
    assert core.take_presence() == [("p1", "dev-1", now)]  # late events are not "online now"


# pass-through and presence -----------------------------------------------------------------------


def test_profile_records_pass_through_unchanged(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    records = [
        profile(1),
        counter(1),
        {"_t": "profile_aliases", "project_id": "p1", "alias": "a", "profile_id": "u"},
    ]
    assert core.append(copy.deepcopy(records), now=T0) == [{}, {}, {}]
    assert logged(core) == records
    assert core.sessions.live == {}
    core.flush(force=True)
    assert ins.rows("profile_aliases")[0]["alias"] == "a"
    assert ins.rows("profile_aliases")[0]["created_at"] == 0  # default for a missing column


def test_take_presence_returns_recent_devices_once(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    core.append([event(1, at=T0), event(2, device="dev-2", at=T0 - 301_000)], now=T0)
    assert core.take_presence() == [("p1", "dev-1", T0)]
    assert core.take_presence() == []


def test_describe(wal_dir: Path) -> None:
    core, _ = make(wal_dir)
    core.append([event(1)], now=T0)
    state = core.describe()
    assert state["shard"] == SHARD
    assert state["pending"] == 2
    assert state["live_sessions"] == 1
    assert state["sealed_segments"] == 0
    assert state["appended"] == 2


def test_sealed_segment_numbers_match_the_log(wal_dir: Path) -> None:
    core, ins = make(wal_dir)
    ins.failing = {"*"}
    for i in range(3):
        core.append([profile(i)], now=T0)
        with pytest.raises(StorageDown):
            core.flush(force=True)
    assert list(core.sealed) == [Segment(0, 1), Segment(1, 1), Segment(2, 1)]


def test_tokens_carry_a_log_id_stable_across_restarts_and_new_for_a_fresh_log(tmp_path: Path) -> None:
    core, ins = make(tmp_path / "a")
    core.append([event(1)], now=T0)
    core.flush(force=True)
    core2, _ = make(tmp_path / "a", ins)
    core2.append([event(2)], now=T0)
    core2.flush(force=True)
    assert len(ins.log_ids) == 1
    fresh, other = make(tmp_path / "b")
    fresh.append([event(3)], now=T0)
    fresh.flush(force=True)
    assert other.log_ids.isdisjoint(ins.log_ids)


def read_back_open_sessions(ins: FakeInserter, shard: int) -> list[dict[str, Any]]:
    """What ``open_sessions`` returns: the newest row of each open session of ``shard`` as read from
    ClickHouse (every column; started_at/ended_at as epoch milliseconds)."""
    rows = newest_sessions(ins.rows("sessions")).values()
    out = [dict(r) for r in rows if r["shard"] == shard and not r["is_closed"]]
    for r in out:
        r["started_at"], r["ended_at"] = int(r["started_at"]), int(r["ended_at"])
    return out


def crash_then_flush_some(wal_dir: Path) -> tuple[FakeInserter, dict[str, str]]:
    """A shard that flushed some segments (sessions rows included), then lost its storage and
    crashed with one sealed and one active segment unflushed. Returns its inserter and the session
    id of each device."""
    core, ins = make(wal_dir, index=3, session_timeout_ms=30 * MIN)
    sid: dict[str, str] = {}
    answers = core.append(
        [event(1, at=T0), event(2, device="dev-2", at=T0), event(3, device="dev-3", at=T0)], now=T0
    )
    sid.update({f"dev-{n}": a["sessionId"] for n, a in zip((1, 2, 3), answers, strict=True)})
    assert core.flush(force=True) == 9  # 3 session_start, 3 page views, 3 snapshots
    core.append([event(4, at=T0 + 10 * MIN, name="click")], now=T0 + 10 * MIN)
    [d4] = core.append([event(10, device="dev-4", at=T0 + 20 * MIN)], now=T0 + 20 * MIN)
    sid["dev-4"] = d4["sessionId"]
    assert core.flush(force=True) == 5  # click, dev-4's start and page view, 2 snapshots
    assert core.expire_sessions(now=T0 + 30 * MIN) == 2  # dev-2 and dev-3
    assert core.flush(force=True) == 4  # 2 session_end, 2 closed snapshots
    assert [(r["device_id"], r["events"], r["is_closed"]) for r in ins.rows("sessions")] == [
        ("dev-1", 1, 0),
        ("dev-2", 1, 0),
        ("dev-3", 1, 0),
        ("dev-1", 2, 0),
        ("dev-4", 1, 0),
        ("dev-2", 1, 1),
        ("dev-3", 1, 1),
    ]
    assert {r["shard"] for r in ins.rows("sessions")} == {3}
    # storage goes away: one sealed segment and the active one stay in the log
    ins.failing = {"*"}
    core.append([event(5, at=T0 + 31 * MIN)], now=T0 + 31 * MIN)
    with pytest.raises(StorageDown):
        core.flush(force=True)
    _, d5 = core.append(
        [event(6, device="dev-4", at=T0 + 32 * MIN), event(7, device="dev-5", at=T0 + 32 * MIN)],
        now=T0 + 32 * MIN,
    )
    sid["dev-5"] = d5["sessionId"]
    assert names_of(logged(core)) == ["page_view", "sessions", "page_view", "session_start", "page_view"]
    ins.failing = set()
    return ins, sid  # crash: no drain, no close


def test_restart_continues_live_sessions_from_storage_and_the_log(wal_dir: Path) -> None:
    ins, sid = crash_then_flush_some(wal_dir)
    stored = read_back_open_sessions(ins, 3)
    assert sorted((r["device_id"], r["events"]) for r in stored) == [("dev-1", 2), ("dev-4", 1)]
    loads: list[int] = []

    def open_sessions(decided_since_ms: int) -> list[dict[str, Any]]:
        loads.append(1)
        return copy.deepcopy(stored)

    restarted, ins2 = make(wal_dir, open_sessions=open_sessions, index=3, session_timeout_ms=30 * MIN)
    assert loads == [1]
    live = {k[1]: v for k, v in restarted.sessions.live.items()}
    assert {d: live[d].session_id for d in live} == {d: sid[d] for d in ("dev-1", "dev-4", "dev-5")}
    # restored counts plus the replayed unflushed events (dev-5 opened in the unflushed log)
    assert {d: live[d].events for d in live} == {"dev-1": 3, "dev-4": 2, "dev-5": 1}
    # dev-1 comes back 9 minutes after its replayed event (a whole timeout after the last flushed
    # one): the same session, no session_start
    [a] = restarted.append([event(8, at=T0 + 40 * MIN)], now=T0 + 40 * MIN)
    [b] = restarted.append([event(9, device="dev-4", at=T0 + 40 * MIN)], now=T0 + 40 * MIN)
    assert (a["sessionId"], b["sessionId"]) == (sid["dev-1"], sid["dev-4"])
    assert names_of(restarted.wal.read(restarted.wal._active_no)) == ["page_view", "page_view"]  # type: ignore[attr-defined]
    # a client retry of an unflushed pre-crash event gets its original answer
    [retry] = restarted.append([event(5, at=T0 + 31 * MIN)], now=T0 + 41 * MIN)
    assert retry == {"deviceId": "dev-1", "sessionId": sid["dev-1"]}
    restarted.flush(force=True)
    assert ins2.tokens == [
        f"{SHARD}:3:events",
        f"{SHARD}:3:sessions",
        f"{SHARD}:4:events",
        f"{SHARD}:5:events",
        f"{SHARD}:5:sessions",
    ]
    starts = [r["session_id"] for r in ins2.rows("events") if r["name"] == "session_start"]
    assert starts == [sid["dev-5"]]  # only the session that opened in the unflushed log
    # what the sessions table reads (FINAL) across both lifetimes of the shard
    final = newest_sessions(ins.rows("sessions") + ins2.rows("sessions"))
    assert set(final) == set(sid.values())
    dev1 = final[sid["dev-1"]]
    assert (dev1["page_views"], dev1["events"], dev1["is_bounce"], dev1["is_closed"]) == (3, 4, 0, 0)
    assert (dev1["started_at"], dev1["ended_at"], dev1["duration"]) == (T0, T0 + 40 * MIN, 40 * 60.0)
    assert (dev1["entry_path"], dev1["exit_path"]) == ("/p/1", "/p/8")
    assert (final[sid["dev-4"]]["events"], final[sid["dev-4"]]["exit_path"]) == (3, "/p/9")
    assert (final[sid["dev-5"]]["events"], final[sid["dev-5"]]["is_bounce"]) == (1, 1)
    assert [final[sid[d]]["is_closed"] for d in ("dev-2", "dev-3")] == [1, 1]
    assert {r["shard"] for r in ins2.rows("sessions")} == {3}


def test_restart_without_stored_sessions_continues_only_what_the_log_holds(tmp_path: Path) -> None:
    """The control: the same crash, but nothing read back from storage. dev-1's session started in a
    flushed segment, but the sealed segment left in the log carries its complete snapshot, which
    the replay takes; dev-4's started in a flushed segment and has no snapshot in the log: the log
    alone cannot continue it."""
    wal_dir = tmp_path / "shard"
    _, sid = crash_then_flush_some(wal_dir)
    restarted, _ = make(wal_dir, index=3, session_timeout_ms=30 * MIN)
    assert {k[1]: s.session_id for k, s in restarted.sessions.live.items()} == {
        "dev-1": sid["dev-1"],
        "dev-5": sid["dev-5"],
    }
    assert restarted.sessions.live[("p1", "dev-1")].events == 3
    [a] = restarted.append([event(8, device="dev-4", at=T0 + 40 * MIN)], now=T0 + 40 * MIN)
    assert a["sessionId"] != sid["dev-4"]
    assert names_of(restarted.wal.read(restarted.wal._active_no)) == ["session_start", "page_view"]  # type: ignore[attr-defined]


class Killed(Exception):
    """The process dies at this point (simulated crash between two inserts)."""


def test_crash_after_the_sessions_insert_does_not_count_a_segment_twice(wal_dir: Path) -> None:
    """Every table of a segment was inserted, then the shard died before deleting the segment: the
    sessions rows read back already contain its events, so replaying them must not add them again."""
    ins = FakeInserter()
    real_call = ins.__call__

    def dies_after_sessions(table: str, rows: list[dict[str, Any]], token: str) -> int:
        n = real_call(table, rows, token)
        if table == "sessions":
            raise Killed
        return n

    core = BufferCore(
        BufferConfig(
            shard_id=SHARD, index=3, flush_max_events=10**6, flush_max_age_ms=10**12, insert_threads=1
        ),
        FileSegmentLog(wal_dir, fsync=False),
        SimpleNamespace(insert=dies_after_sessions),  # type: ignore[arg-type]
    )
    core.recover()
    [a] = core.append([event(1, at=T0), event(2, at=T0 + MIN)], now=T0 + MIN)[:1]
    with pytest.raises(Killed):
        core.flush(force=True)
    assert len(list(wal_dir.glob("*.wal"))) == 1  # not deleted: it is replayed
    stored = read_back_open_sessions(ins, 3)
    assert [(r["session_id"], r["events"]) for r in stored] == [(a["sessionId"], 2)]
    restarted, _ = make(wal_dir, open_sessions=lambda _since: copy.deepcopy(stored), index=3)
    [live] = restarted.sessions.live.values()
    assert (live.session_id, live.events, live.page_views) == (a["sessionId"], 2, 2)


def test_a_segment_is_sealed_by_the_append_that_fills_it(wal_dir: Path) -> None:
    """A busy flusher must not let the active segment grow past ``flush_max_events``."""
    core, ins = make(wal_dir, flush_max_events=3)
    core.append([profile(1), profile(2)], now=T0)
    assert not core.sealed
    core.append([profile(3), profile(4)], now=T0)
    assert [(s.number, s.count) for s in core.sealed] == [(0, 4)]  # sealed without a flush
    assert core.active_count == 0
    core.append([profile(5)], now=T0)
    assert [(s.number, s.count) for s in core.sealed] == [(0, 4)]
    assert core.flush() == 5 and core.pending == 0  # a flush takes the active segment along
    assert ins.tokens == [f"{SHARD}:0:profiles", f"{SHARD}:1:profiles"]


class SlowInserter(FakeInserter):
    """Each insert takes a while; counts how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self.guard = threading.Lock()

    def __call__(self, table: str, rows: list[dict[str, Any]], token: str) -> int:
        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)
            with self.guard:
                return super().__call__(table, rows, token)
        finally:
            with self.guard:
                self.running -= 1


def test_overlapping_inserts_store_every_segment_once_and_delete_them_in_order(wal_dir: Path) -> None:
    ins = SlowInserter()
    core, _ = make(wal_dir, inserter=ins, insert_threads=2)
    ins.failing = {"*"}
    for k in range(4):  # four sealed segments pile up while storage is down
        core.append([event(k, device=f"d{k}"), profile(k)], now=T0 + k)
        with pytest.raises(StorageDown):
            core.flush(force=True)
    assert [s.number for s in core.sealed] == [0, 1, 2, 3]
    ins.failing = {"sessions"}  # events and profiles go in, sessions fail: nothing may be deleted
    with pytest.raises(StorageDown):
        core.flush()
    assert [s.number for s in core.sealed] == [0, 1, 2, 3]
    assert len(list(wal_dir.glob("*.wal"))) == 4
    ins.failing = set()
    ins.calls.clear()
    assert core.flush() == core.stats["flushed"] == 4 * 4  # marker, event, profile, snapshot each
    assert ins.most == 2  # two inserts were in flight at once
    assert sorted(ins.tokens) == sorted(
        f"{SHARD}:{n}:{t}" for n in range(4) for t in ("events", "profiles", "sessions")
    )
    assert sorted(r["id"] for r in ins.rows("events") if r["name"] == "page_view") == [
        f"ev-{k}" for k in range(4)
    ]
    assert core.pending == 0 and not core.sealed
    assert list(wal_dir.glob("*.wal")) == []


def test_identify_merges_into_the_stored_profile_after_a_restart(wal_dir: Path) -> None:
    """A shard that has not seen a profile since it started merges into the stored state."""
    stored = {
        "project_id": "p1",
        "profile_id": "user-1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "",
        "avatar": "",
        "properties": {"plan": "free", "team": "a"},
        "updated_at": T0 + 5_000,
    }
    loads: list[tuple[str, str]] = []

    def load_profile(project: str, profile_id: str) -> dict[str, Any] | None:
        loads.append((project, profile_id))
        return dict(stored) if profile_id == "user-1" else None

    ins = FakeInserter()
    core = BufferCore(
        BufferConfig(shard_id=SHARD, flush_max_events=1_000_000, flush_max_age_ms=10**12, insert_threads=1),
        FileSegmentLog(wal_dir, fsync=False),
        ins,
        load_profile=load_profile,
    )
    core.recover()
    update = {**profile(1), "first_name": "", "email": "ada@example.com", "properties": {"plan": "pro"}}
    core.append([update], now=T0)
    core.append([{**profile(2), "first_name": "Grace"}], now=T0)  # no stored state: as sent
    core.append([{**profile(1), "first_name": "", "properties": {"seat": "3"}}], now=T0)  # cached now
    first, second, third = [r for r in logged(core) if r.get("_t") == "profiles"]
    assert (first["first_name"], first["last_name"], first["email"]) == ("Ada", "Lovelace", "ada@example.com")
    assert first["properties"] == {"plan": "pro", "team": "a"}
    assert first["updated_at"] > stored["updated_at"]  # the newest row wins in the ReplacingMergeTree
    assert second["first_name"] == "Grace"
    assert third["properties"] == {"plan": "pro", "team": "a", "seat": "3"}
    assert third["updated_at"] > first["updated_at"]
    assert loads == [("p1", "user-1"), ("p1", "user-2")]  # the store is read once per profile


# a shared (Redis) log taken over by a replacement ------------------------------------------------


def redis_core(prefix: str, ins: FakeInserter) -> BufferCore:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    wal = RedisSegmentLog(client, lambda *parts: ":".join((prefix, *(str(p) for p in parts))))
    core = BufferCore(
        BufferConfig(shard_id=SHARD, flush_max_events=1_000_000, flush_max_age_ms=10**12, insert_threads=1),
        wal,
        ins,
    )
    core.recover()
    return core


def stored_events(*inserters: FakeInserter) -> Counter[str]:
    """Page views per event id as ClickHouse keeps them: a repeated insert token is dropped."""
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for ins in inserters:
        for table, names, columns, token in ins.calls:
            if table != "events" or token in seen:
                continue
            seen.add(token)
            for row in zip(*columns, strict=True):
                rec = dict(zip(names, row, strict=True))
                if rec["name"] == "page_view":
                    counts[rec["id"]] += 1
    return counts


@pytest.mark.redis
def test_a_fenced_shard_acknowledges_nothing_and_its_replacement_flushes_everything_once(
    redis_prefix: str,
) -> None:
    a = redis_core(redis_prefix, ins_a := FakeInserter())
    a.append([event(1), event(2, device="dev-2")], now=T0)
    assert a.flush(force=True) > 0  # segment 0: inserted and deleted by A
    a.append([event(3)], now=T0 + 1)
    a.seal(T0 + 1)  # sealed, not yet flushed
    a.append([event(4)], now=T0 + 2)
    a.seal(T0 + 2)
    appended = a.stats["appended"]

    b = redis_core(redis_prefix, ins_b := FakeInserter())
    assert b.pending > 0
    with pytest.raises(Fenced):
        a.flush()  # inserts segment 1 (the token B will use too), then its delete is refused
    kept = a.sealed[0].number
    assert len(a.sealed) == 2
    assert f"{SHARD}:{kept}:events" in ins_a.tokens
    assert b.wal.read(kept)  # still there for B
    for i in (5, 6):  # the old owner's later appends raise: the client is told nothing
        with pytest.raises(Fenced):
            a.append([event(i)], now=T0 + 3)
    assert isinstance(a.fenced, Fenced)
    assert a.stats["appended"] == appended
    assert a.describe()["fenced"] is True
    b.append([event(7)], now=T0 + 4)
    b.flush(force=True)
    assert b.pending == 0
    assert f"{SHARD}:{kept}:events" in ins_b.tokens  # B's replay carries the token A used
    assert stored_events(ins_a, ins_b) == {f"ev-{i}": 1 for i in (1, 2, 3, 4, 7)}
    assert b.wal.recover() == []  # nothing left behind


@pytest.mark.redis
def test_a_redis_append_whose_reply_was_lost_and_its_retry_are_stored_once(redis_prefix: str) -> None:
    """The script ran but the connection dropped before its reply: the shard answers 503 with its
    state rolled back, the log undoes the append, and the client's retry is the one copy stored,
    in raw rows, however the shard goes on (flush, or a crash and replay)."""
    import redis

    core = redis_core(redis_prefix, ins := FakeInserter())
    [first] = core.append([event(1)], now=T0)
    before = session_state(core)
    real = core.wal._append_script

    def ran_then_dropped(keys: Any, args: Any) -> Any:
        core.wal._append_script = real
        real(keys=keys, args=args)
        raise redis.ConnectionError("connection reset by peer (simulated)")

    core.wal._append_script = ran_then_dropped
    with pytest.raises(redis.ConnectionError):
        core.append([event(2, at=T0 + MIN)], now=T0 + MIN)
    assert session_state(core) == before
    [retry] = core.append([event(2, at=T0 + MIN)], now=T0 + MIN)
    assert retry["sessionId"] == first["sessionId"]
    replayed = redis_core(redis_prefix, replay_ins := FakeInserter())  # a crash: the log replayed
    replayed.flush(force=True)
    assert stored_events(replay_ins) == {"ev-1": 1, "ev-2": 1}
    assert ins.calls == []


def test_the_shard_answers_a_fenced_append_as_unavailable_and_logs_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``BufferShard.append`` (the plain class behind the Ray actor, no Ray started)."""
    from eventlens.buffer.actor import BufferShard
    from eventlens.buffer.client import BufferClient, ShardUnavailable

    fenced = Fenced("eventlens:x:wal:3", 4, 5)

    def refuse(records: Any) -> Any:
        raise fenced

    shard = object.__new__(BufferShard.__ray_actor_class__)
    shard.index = 3
    shard.core = SimpleNamespace(append=refuse)
    shard._fenced_logged = False
    shard._fenced_lock = threading.Lock()
    with caplog.at_level("ERROR", logger="eventlens.buffer.actor"):
        replies = [shard.append([event(i)]) for i in range(3)]
    assert all(r["ok"] is False and r["error"] == "fenced" for r in replies)
    assert "epoch 4" in replies[0]["message"] and "epoch 5" in replies[0]["message"]
    assert len([r for r in caplog.records if "fenced" in r.getMessage()]) == 1
    with pytest.raises(ShardUnavailable) as info:  # what the ingest replica makes of it: 503
        BufferClient._resolve_batch([], replies[0])
    assert info.value.retry_after_s == 1


# presence ------------------------------------------------------------------------------------


def test_bots_are_stored_but_never_reach_presence(wal_dir: Path) -> None:
    """/live counts people online now: a bot's events are logged (insights count them with
    includeBots=true) but never sent to the presence actor."""
    core, _ = make(wal_dir)
    core.append(
        [
            event(1, at=T0, is_bot=1),
            event(2, device="dev-2", at=T0, is_bot=0),
            event(3, device="dev-3", at=T0),
        ],
        now=T0,
    )
    assert core.take_presence() == [("p1", "dev-2", T0), ("p1", "dev-3", T0)]
    assert [r["id"] for r in logged(core) if r["name"] == "page_view"] == ["ev-1", "ev-2", "ev-3"]


# a log that fails ----------------------------------------------------------------------------


class LogDown(OSError):
    """The fake disk (or Redis) refuses a log operation."""


class FlakyLog:
    """A FileSegmentLog whose operations named in ``failing`` (write, append, seal, sync) raise
    ``LogDown`` until removed; a refused write or append writes nothing (the file log cuts a torn
    frame off, see test_wal), a refused sync happens after its write was made."""

    def __init__(self, inner: FileSegmentLog) -> None:
        self.inner = inner
        self.failing: set[str] = set()
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check(self, op: str) -> None:
        if op in self.failing:
            self.refused.append(op)
            raise LogDown(28, f"{op}: no space left on device")

    def write(self, records: list[dict[str, Any]]) -> int:
        self._check("write")
        ticket = self.inner.write(records)
        self._check("lost-reply")  # written, but the caller cannot know (a Redis reply lost)
        return ticket

    def append(self, records: list[dict[str, Any]]) -> None:
        self._check("append")
        self.inner.write(records)
        self._check("sync")
        self.inner.append([])

    def sync(self, ticket: int) -> None:
        self._check("sync")
        self.inner.sync(ticket)

    def seal(self) -> Segment | None:
        self._check("seal")
        return self.inner.seal()


def flaky(directory: Path, **overrides: Any) -> tuple[BufferCore, FakeInserter, FlakyLog]:
    options: dict[str, Any] = {"flush_max_events": 1_000_000, "flush_max_age_ms": 10**12, "insert_threads": 1}
    options.update(overrides)
    ins = FakeInserter()
    wal = FlakyLog(FileSegmentLog(directory, fsync=False))
    core = BufferCore(BufferConfig(shard_id=SHARD, **options), wal, ins)  # type: ignore[arg-type]
    core.recover()
    return core, ins, wal


SESSION_FIELDS = ("device_id", "opened_at", "started_at", "ended_at", "entry_path", "exit_path")
SESSION_COUNTS = ("page_views", "events", "is_bounce", "is_closed")


def stored_state(ins: FakeInserter, profile_times: bool = True) -> dict[str, Any]:
    """What storage reads, without the random session ids: events (markers by name), the newest
    session rows, the newest profile rows (with ``profile_times``, their ``updated_at``)."""
    events = sorted(
        (r["name"], r["id"] if r["name"].startswith("session_") is False else "") for r in ins.rows("events")
    )
    sessions = sorted(
        tuple(r[f] for f in SESSION_FIELDS + SESSION_COUNTS)
        for r in newest_sessions(ins.rows("sessions")).values()
    )
    profiles = {
        r["profile_id"]: (
            r["first_name"],
            r["email"],
            r["properties"],
            r["updated_at"] if profile_times else 0,
        )
        for r in ins.rows("profiles")
    }
    return {"events": events, "sessions": sessions, "profiles": profiles}


def session_state(core: BufferCore) -> list[tuple[Any, ...]]:
    return sorted(
        (k, s.session_id, s.page_views, s.events, s.last_ms, s.exit_path, s.dirty, s.version)
        for k, s in core.sessions.live.items()
    )


def identify(i: int, **fields: Any) -> dict[str, Any]:
    rec = profile(i)
    rec.update(fields)
    return rec


# the story every scenario tells: two visits of dev-1 (the second after the timeout), dev-2, and two
# identifies of one profile, in calls of a few records
CALLS: list[tuple[int, list[dict[str, Any]]]] = [
    (T0, [event(1, at=T0), identify(1, properties={"plan": "free"})]),
    (T0 + MIN, [event(2, at=T0 + MIN), event(3, device="dev-2", at=T0 + MIN)]),
    (
        T0 + 2 * MIN,
        [event(4, at=T0 + 2 * MIN, name="click"), identify(1, first_name="", email="a@x.io", updated_at=T0)],
    ),
    (T0 + 40 * MIN, [event(5, at=T0 + 40 * MIN)]),
]


def run_story(
    core: BufferCore,
    fail_at: int | None = None,
    op: str = "write",
    wal: FlakyLog | None = None,
    finish: bool = True,
) -> list[Any]:
    answers: list[Any] = []
    for n, (now, records) in enumerate(CALLS):
        if n == fail_at:
            assert wal is not None
            wal.failing = {op}
            before = (session_state(core), dict(core.recent), dict(core.profiles.profiles), core.pending)
            with pytest.raises(LogDown):
                core.append(copy.deepcopy(records), now=now)
            wal.failing = set()
            if op in ("write", "lost-reply"):  # nothing (known to be) logged: no state changed
                after = (session_state(core), dict(core.recent), dict(core.profiles.profiles), core.pending)
                assert after == before
                assert core.take_presence() == []
        answers.append(core.append(copy.deepcopy(records), now=now))  # the client's retry
        core.take_presence()
    if not finish:
        return answers
    core.expire_sessions(now=T0 + 80 * MIN)
    core.flush(force=True)
    return answers


@pytest.mark.parametrize("fail_at", range(len(CALLS)))
@pytest.mark.parametrize("op", ["write", "sync"])
def test_a_failed_append_then_its_retry_store_what_one_append_stores(
    tmp_path: Path, fail_at: int, op: str
) -> None:
    """Disk full or Redis down during an append: the client gets an error and retries. Sessions
    (page views, events, one session_start each), profile merges and the log end up as if the
    append had succeeded the first time. A failed sync leaves the records logged: the retry is a
    duplicate answered like the original."""
    ref, ref_ins, _ = flaky(tmp_path / "ref", session_timeout_ms=30 * MIN)
    expected_answers = run_story(ref)
    core, ins, wal = flaky(tmp_path / "flaky", session_timeout_ms=30 * MIN)
    answers = run_story(core, fail_at, op, wal)
    assert wal.refused == [op]
    # after a failed sync an identify is logged twice (profile records carry no id to recognise a
    # retry by): the same merged profile, its updated_at one millisecond later
    assert stored_state(ins, op == "write") == stored_state(ref_ins, op == "write")
    starts = Counter(r["session_id"] for r in ins.rows("events") if r["name"] == "session_start")
    assert len(starts) == 3 and set(starts.values()) == {1}
    # the same answers up to the random server session ids: same visit, same id
    assert [len({a["sessionId"] for a in call if a}) for call in answers] == [
        len({a["sessionId"] for a in call if a}) for call in expected_answers
    ]
    assert answers[0][0]["sessionId"] == answers[1][0]["sessionId"] == answers[2][0]["sessionId"]
    assert core.stats["duplicates"] == (
        len(CALLS[fail_at][1]) - sum(r["_t"] != "events" for r in CALLS[fail_at][1]) if op == "sync" else 0
    )


@pytest.mark.parametrize("op", ["write", "sync", "seal"])
def test_a_failed_seal_loses_no_session_update(tmp_path: Path, op: str) -> None:
    """The session snapshots of a seal are written to the log, then the segment is sealed: when the
    log refuses either, the sessions stay changed and the next flush writes them."""
    ref, ref_ins, _ = flaky(tmp_path / "ref")
    core, ins, wal = flaky(tmp_path / "flaky")
    for c in (ref, core):
        c.append([event(1, at=T0), event(2, device="dev-2", at=T0)], now=T0)
        c.flush(force=True)
        c.append([event(3, at=T0 + MIN)], now=T0 + MIN)
    ref.flush(force=True)
    wal.failing = {op}
    with pytest.raises(LogDown):
        core.flush(force=True)
    wal.failing = set()
    if op == "write":
        assert [s.dirty for _, s in sorted(core.sessions.live.items())] == [True, False]
    core.flush(force=True)
    assert stored_state(ins) == stored_state(ref_ins)
    assert core.pending == 0


def test_a_failed_expiry_keeps_the_session_live_until_its_session_end_is_logged(tmp_path: Path) -> None:
    core, ins, wal = flaky(tmp_path / "flaky", session_timeout_ms=30 * MIN)
    [a] = core.append([event(1, at=T0)], now=T0)
    wal.failing = {"write"}
    with pytest.raises(LogDown):
        core.expire_sessions(now=T0 + 30 * MIN)
    assert [s.session_id for s in core.sessions.live.values()] == [a["sessionId"]]
    assert core.sessions.closed == []
    wal.failing = set()
    assert core.expire_sessions(now=T0 + 31 * MIN) == 1
    core.flush(force=True)
    assert [r["name"] for r in ins.rows("events")] == ["session_start", "page_view", "session_end"]
    [row] = newest_sessions(ins.rows("sessions")).values()
    assert (row["is_closed"], row["events"]) == (1, 1)


def test_an_append_whose_seal_fails_is_still_acknowledged(tmp_path: Path) -> None:
    """The append that fills the segment seals it; the records are logged before, so a seal that
    fails does not fail the append (the flusher seals later)."""
    core, ins, wal = flaky(tmp_path / "flaky", flush_max_events=2)
    wal.failing = {"seal"}
    [a] = core.append([event(1, at=T0)], now=T0)
    assert a["sessionId"] and "seal" in core.last_error and not core.sealed
    wal.failing = set()
    core.flush(force=True)
    assert [r["name"] for r in ins.rows("events")] == ["session_start", "page_view"]
    assert [r["events"] for r in ins.rows("sessions")] == [1]


def test_a_client_session_id_stored_before_a_restart_is_not_reused(wal_dir: Path) -> None:
    """The first visit closed and was flushed before the restart: neither the log nor the open
    sessions hold it, today's stored client ids do (``recovery.client_ids_loader``)."""
    core, ins = make(wal_dir, session_timeout_ms=30 * MIN)
    [a] = core.append([event(1, at=T0, session_id="visit")], now=T0)
    core.expire_sessions(now=T0 + 31 * MIN)
    core.flush(force=True)
    stored = [{"project_id": r["project_id"], "session_id": r["session_id"]} for r in ins.rows("sessions")]
    restarted = BufferCore(
        BufferConfig(shard_id=SHARD, flush_max_age_ms=10**12, insert_threads=1),
        FileSegmentLog(wal_dir, fsync=False),
        ins,
        client_ids=lambda: stored,
    )
    restarted.recover()
    [b] = restarted.append([event(2, at=T0 + 40 * MIN, session_id="visit")], now=T0 + 40 * MIN)
    assert (a["sessionId"], b["sessionId"]) == ("visit", "visit~2")


def live_counts(core: BufferCore) -> list[tuple[Any, ...]]:
    return sorted(
        (k, s.session_id, s.page_views, s.events, s.started_ms, s.last_ms, s.exit_path)
        for k, s in core.sessions.live.items()
    )


@pytest.mark.parametrize("fail_at", range(len(CALLS)))
def test_a_write_whose_outcome_was_unknown_and_its_retry_count_once(tmp_path: Path, fail_at: int) -> None:
    """The log held the records but the caller got an error (a Redis reply lost after the script
    ran): the state is rolled back and the retry logged again. Server session ids derive from the
    opening event, so both copies carry the same ids: storage collapses them (events by id, the
    newest session row counts the retry once) and a replay of the log counts them once."""
    ref, ref_ins, _ = flaky(tmp_path / "ref", session_timeout_ms=30 * MIN)
    run_story(ref, finish=False)
    core, ins, wal = flaky(tmp_path / "flaky", session_timeout_ms=30 * MIN)
    run_story(core, fail_at, "lost-reply", wal, finish=False)
    assert wal.refused == ["lost-reply"]
    assert live_counts(core) == live_counts(ref)
    # a crash now: the restarted shard replays the log, which holds the call twice
    restarted = BufferCore(
        BufferConfig(shard_id=SHARD, session_timeout_ms=30 * MIN, flush_max_age_ms=10**12, insert_threads=1),
        FileSegmentLog(tmp_path / "flaky", fsync=False),
        ins,
    )
    restarted.recover()
    assert live_counts(restarted) == live_counts(ref)
    for c in (ref, restarted):
        c.expire_sessions(now=T0 + 80 * MIN)
        c.flush(force=True)

    def stored(i: FakeInserter) -> tuple[Any, ...]:
        events = sorted({(r["name"], r["id"]) for r in i.rows("events")})
        sessions = sorted(
            tuple(r[f] for f in ("session_id", *SESSION_FIELDS, *SESSION_COUNTS))
            for r in newest_sessions(i.rows("sessions")).values()
        )
        return events, sessions

    assert stored(ins) == stored(ref_ins)


def test_a_session_that_ended_in_the_unflushed_log_gets_its_closed_row_after_a_crash(wal_dir: Path) -> None:
    core, _ = make(wal_dir, session_timeout_ms=30 * MIN)
    a, _ = core.append([event(1, at=T0), event(2, at=T0 + MIN)], now=T0 + MIN)
    [b] = core.append([event(3, at=T0 + 40 * MIN)], now=T0 + 40 * MIN)  # ends a, opens b
    # crash before any seal: no sessions row was ever written
    restarted, ins = make(wal_dir, session_timeout_ms=30 * MIN)
    restarted.flush(force=True)
    final = newest_sessions(ins.rows("sessions"))
    assert {sid: (r["page_views"], r["is_closed"]) for sid, r in final.items()} == {
        a["sessionId"]: (2, 1),
        b["sessionId"]: (1, 0),
    }


# groups (B2B accounts) ----------------------------------------------------------------------------


def test_group_messages_merge_into_the_stored_group_and_links_become_rows(wal_dir: Path) -> None:
    """``group`` merges like ``identify`` (empty name or type and unnamed properties keep the stored
    values, created_at stays the first); a link (assign_group, or group with a profileId) becomes one
    ``profile_groups`` row per group, and the message itself is never a row."""
    stored = {
        "type": "company",
        "name": "Acme",
        "properties": {"plan": "free", "seats": "3"},
        "created_at": T0 - 86_400_000,
        "updated_at": T0 + 5_000,
    }
    loads: list[tuple[str, str]] = []

    def load_group(project: str, group_id: str) -> dict[str, Any] | None:
        loads.append((project, group_id))
        return dict(stored) if group_id == "acme" else None

    ins = FakeInserter()
    core = BufferCore(
        BufferConfig(shard_id=SHARD, flush_max_events=1_000_000, flush_max_age_ms=10**12, insert_threads=1),
        FileSegmentLog(wal_dir, fsync=False),
        ins,
        load_group=load_group,
    )
    core.recover()

    def group(gid: str, **fields: Any) -> dict[str, Any]:
        return {"_t": "groups", "project_id": "p1", "group_id": gid, "type": "", "name": "",
                "properties": {}, "created_at": T0, "updated_at": T0, **fields}  # fmt: skip

    link = {"profile_id": "user-1", "group_ids": ["acme"]}
    assign = {"_t": "profile_groups", "project_id": "p1", "profile_id": "user-2", "assigned_at": T0,
              "_link": {"profile_id": "user-2", "group_ids": ["acme", "globex"]}}  # fmt: skip
    results = core.append(
        [group("acme", properties={"plan": "pro"}, _link=link), group("globex", name="Globex"), assign],
        now=T0,
    )
    assert results == [{}, {}, {}]
    core.append([group("acme", name="Acme Inc")], now=T0)  # merged onto the state just logged
    rows = logged(core)
    assert [r["_t"] for r in rows] == ["groups", "profile_groups", "groups", "profile_groups",
                                      "profile_groups", "groups"]  # fmt: skip
    first, globex, third = [r for r in rows if r["_t"] == "groups"]
    assert "_link" not in first
    assert (first["type"], first["name"]) == ("company", "Acme")
    assert first["properties"] == {"plan": "pro", "seats": "3"}
    assert first["created_at"] == stored["created_at"]
    assert first["updated_at"] > stored["updated_at"]
    assert (globex["name"], globex["created_at"]) == ("Globex", T0)
    assert (third["name"], third["type"], third["properties"]) == ("Acme Inc", "company", first["properties"])
    assert third["updated_at"] > first["updated_at"]
    links = [(r["profile_id"], r["group_id"], r["assigned_at"]) for r in rows if r["_t"] == "profile_groups"]
    assert links == [("user-1", "acme", T0), ("user-2", "acme", T0), ("user-2", "globex", T0)]
    assert loads == [("p1", "acme"), ("p1", "globex")]  # the store is read once per group
    core.flush(force=True)
    assert {r["group_id"] for r in ins.rows("profile_groups")} == {"acme", "globex"}
    assert len(ins.rows("groups")) == 3
