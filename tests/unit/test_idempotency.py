"""The idempotency window: the file store (memory + per-day files) and the Redis store, and the
shard core dropping an id stored within the window after its memory of recent ids is gone."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventlens.buffer import idempotency
from eventlens.buffer.core import BufferConfig, BufferCore
from eventlens.buffer.idempotency import FileIdIndex, RedisIdIndex, day_of, id_key, rebuild
from eventlens.records import Duplicate
from eventlens.storage.wal import FileSegmentLog
from tests.unit.conftest import REDIS_URL
from tests.unit.test_buffer_core import FakeInserter, event

DAY = 20_400  # a UTC day number
T0 = DAY * idempotency.DAY_MS + 3_600_000


def keys(n: int, project: str = "p1") -> list[bytes]:
    return [id_key(project, str(uuid.uuid4())) for _ in range(n)]


# the file store --------------------------------------------------------------------------------


@pytest.mark.parametrize("merged", [False, True], ids=["in-memory", "merged-into-arrays"])
def test_file_index_answers_what_it_holds_within_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merged: bool
) -> None:
    if merged:
        monkeypatch.setattr(idempotency, "_MERGE_AT", 10)
    ix = FileIdIndex(tmp_path, 0, window_days=7, today=DAY)
    old, new, other = keys(30), keys(30), keys(30)
    ix.add(old, DAY - 7)
    ix.add(new, DAY)
    assert ix.seen(old + new + other, DAY) == set(old + new)
    # a day later the oldest bucket is past the window
    assert ix.seen(old + new + other, DAY + 1) == set(new)
    assert ix.seen([], DAY) == set()


def test_file_index_survives_a_restart_and_loads_every_shards_files(tmp_path: Path) -> None:
    a = FileIdIndex(tmp_path, 0, window_days=7, today=DAY)
    b = FileIdIndex(tmp_path, 1, window_days=7, today=DAY)
    ka, kb = keys(5), keys(5)
    a.add(ka, DAY)
    b.add(kb, DAY - 2)
    a.close()
    b.close()
    # shard 2 (a new shard count) knows both shards' ids
    c = FileIdIndex(tmp_path, 2, window_days=7, today=DAY)
    assert c.seen(ka + kb + keys(5), DAY) == set(ka + kb)
    assert c.size() == 10


def test_file_index_drops_expired_files_and_a_torn_record(tmp_path: Path) -> None:
    a = FileIdIndex(tmp_path, 0, window_days=3, today=DAY)
    expired, kept = keys(4), keys(4)
    a.add(expired, DAY - 5)
    a.add(kept, DAY)
    a.close()
    with open(tmp_path / "shard-000" / f"{DAY}.ids", "ab") as f:
        f.write(b"\x01" * 7)  # a crash mid-write
    b = FileIdIndex(tmp_path, 0, window_days=3, today=DAY)
    assert not (tmp_path / "shard-000" / f"{DAY - 5}.ids").exists()
    assert b.seen(expired + kept, DAY) == set(kept)
    more = keys(3)
    b.add(more, DAY)  # appended after the torn record was cut: still aligned
    b.close()
    c = FileIdIndex(tmp_path, 0, window_days=3, today=DAY)
    assert c.seen(kept + more, DAY) == set(kept + more)
    assert os.path.getsize(tmp_path / "shard-000" / f"{DAY}.ids") == 16 * 7


def test_file_index_confirms_the_low_half_of_a_matching_high_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "_MERGE_AT", 1)
    ix = FileIdIndex(tmp_path, 0, window_days=7, today=DAY)
    stored = b"\x07" * 8 + b"\x01" * 8
    twin = b"\x07" * 8 + b"\x02" * 8  # same high half, another id
    ix.add([stored], DAY)
    assert ix.seen([stored, twin], DAY) == {stored}


def test_rebuild_refills_a_lost_window_from_storage_once(tmp_path: Path) -> None:
    ix = FileIdIndex(tmp_path, 0, window_days=7, today=DAY)
    assert not ix.complete()
    calls: list[dict[str, Any]] = []

    def query(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        calls.append(params)
        return [{"project_id": "p1", "id": "a", "day": DAY - 1}, {"project_id": "p2", "id": "a", "day": DAY}]

    assert rebuild(ix, query) == 2
    assert calls == [{"days": 8}]
    assert ix.complete() and rebuild(ix, query) == 0 and len(calls) == 1
    assert ix.seen([id_key("p1", "a"), id_key("p2", "a"), id_key("p3", "a")], DAY) == {
        id_key("p1", "a"),
        id_key("p2", "a"),
    }


# the Redis store --------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_index_answers_within_the_window_and_expires_its_days(redis_prefix: str) -> None:
    import redis

    redis_client = redis.Redis.from_url(REDIS_URL)
    prefix = f"{redis_prefix}:ids"
    ix = RedisIdIndex(redis_client, lambda *parts: ":".join((prefix, *map(str, parts))), window_days=7)
    today = day_of(int(time.time() * 1000))  # a past day's set would expire at once
    old, new, other = keys(20), keys(20), keys(20)
    ix.add(old, today - 7)
    ix.add(new, today)
    assert ix.seen(old + new + other, today) == set(old + new)
    assert ix.seen(old + new + other, today + 1) == set(new)
    assert ix.size() == 40
    # each day's set expires once its last counting day has passed
    assert redis_client.expiretime(f"{prefix}:{today}") == (today + 9) * 86_400
    assert not ix.complete()
    ix.mark_complete()
    assert ix.complete()


# the shard core ---------------------------------------------------------------------------------


def make(tmp_path: Path, shard: int = 0, ins: FakeInserter | None = None) -> tuple[BufferCore, FakeInserter]:
    ins = ins or FakeInserter()
    ix = FileIdIndex(tmp_path / "ids", shard, window_days=7, today=day_of(T0))
    core = BufferCore(
        BufferConfig(shard_id=f"s{shard}", flush_max_events=10**6, flush_max_age_ms=10**12, insert_threads=1),
        FileSegmentLog(tmp_path / f"wal-{shard}", fsync=False),
        ins,
        ids=ix,
    )
    core.recover()
    return core, ins


def stored_ids(ins: FakeInserter) -> list[str]:
    return [r["id"] for r in ins.rows("events") if r["name"] == "page_view"]


def test_a_retry_after_a_flush_and_a_restart_is_stored_once(tmp_path: Path) -> None:
    core, ins = make(tmp_path)
    core.append([event(1, at=T0), event(2, at=T0)], now=T0)
    core.flush(force=True)
    core.close()  # the flushed segment is gone from the log: only the index remembers the ids
    core, _ = make(tmp_path, ins=ins)
    assert core.recent == {}
    a, b, c = core.append(
        [event(1, at=T0), event(2, device="dev-2", at=T0), event(3, at=T0)], now=T0 + 3_600_000
    )
    assert isinstance(a, Duplicate) and isinstance(b, Duplicate) and not isinstance(c, Duplicate)
    assert a["deviceId"] == "dev-1"
    core.flush(force=True)
    assert sorted(stored_ids(ins)) == ["ev-1", "ev-2", "ev-3"]
    assert core.stats["duplicates"] == 2


class StoredEvents(FakeInserter):
    """An inserter whose ``query`` answers the first-copies lookup from what it stored."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[dict[str, Any]] = []

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(params)
        return [
            {
                "project_id": r["project_id"],
                "id": r["id"],
                "device_id": r["device_id"],
                "session_id": r["session_id"],
            }
            for r in self.rows("events")
            if r["project_id"] in params["projects"] and r["id"] in params["ids"]
        ]


def test_a_retry_after_a_restart_is_answered_with_its_first_copys_device_and_session(tmp_path: Path) -> None:
    """The restarted shard remembers the ids only in its index: the retries' answers are read from
    their stored first copies, in one query for the call (rare path: none for new events)."""
    ins = StoredEvents()
    core, _ = make(tmp_path, ins=ins)
    first = core.append([event(1, at=T0), event(2, device="dev-2", at=T0)], now=T0)
    core.flush(force=True)
    core.close()
    core, _ = make(tmp_path, ins=ins)
    [fresh] = core.append([event(3, at=T0 + 40 * 60_000)], now=T0 + 40 * 60_000)
    assert ins.queries == []  # nothing recognised by the index alone: no query
    a, b, c = core.append(
        [event(1, at=T0), event(2, device="dev-2", at=T0), event(1, at=T0)], now=T0 + 41 * 60_000
    )
    assert [dict(x) for x in (a, b, c)] == [first[0], first[1], first[0]] and fresh["sessionId"] != a[
        "sessionId"
    ]
    assert all(isinstance(x, Duplicate) for x in (a, b, c)) and len(ins.queries) == 1
    [again] = core.append([event(2, device="dev-2", at=T0)], now=T0 + 42 * 60_000)
    assert dict(again) == first[1] and len(ins.queries) == 1  # remembered since


def test_a_retry_routed_to_another_shard_after_a_reshard_is_stored_once(tmp_path: Path) -> None:
    core, ins = make(tmp_path, shard=0)
    core.append([event(1, at=T0)], now=T0)
    core.flush(force=True)
    core.close()
    other, _ = make(tmp_path, shard=1, ins=ins)
    [r] = other.append([event(1, at=T0)], now=T0 + 60_000)
    assert isinstance(r, Duplicate)
    other.flush(force=True)
    assert stored_ids(ins) == ["ev-1"]


def test_a_retry_past_the_window_is_a_new_event(tmp_path: Path) -> None:
    core, _ = make(tmp_path)
    core.append([event(1, at=T0)], now=T0)
    core.flush(force=True)
    core.recent.clear()
    [r] = core.append([event(1, at=T0 + 8 * idempotency.DAY_MS)], now=T0 + 8 * idempotency.DAY_MS)
    assert not isinstance(r, Duplicate)


def test_an_id_logged_before_a_crash_is_indexed_by_the_restart(tmp_path: Path) -> None:
    core, ins = make(tmp_path)
    core.ids.add = lambda keys, day: None  # type: ignore[union-attr,method-assign] # crashed before the add
    core.append([event(1, at=T0)], now=T0)
    # crash: the log holds the event, the index does not; the restart adds it from the log
    core, _ = make(tmp_path, ins=ins)
    core.flush(force=True)
    core.recent.clear()
    [r] = core.append([event(1, at=T0)], now=T0 + 1000)
    assert isinstance(r, Duplicate)


def test_a_failed_index_add_is_retried_before_the_segment_leaves_the_log(tmp_path: Path) -> None:
    core, _ = make(tmp_path)
    assert core.ids is not None
    real_add = core.ids.add
    failing = {"on": True}

    def add(keys: list[bytes], day: int) -> None:
        if failing["on"]:
            raise OSError("disk full")
        real_add(keys, day)

    core.ids.add = add  # type: ignore[method-assign]
    [r] = core.append([event(1, at=T0)], now=T0)  # acknowledged: the log holds it
    assert r["deviceId"] == "dev-1" and core.unindexed
    with pytest.raises(OSError):
        core.flush(force=True)
    assert core.pending > 0  # the segment stays in the log while its ids are not indexed
    failing["on"] = False
    core.flush(force=True)
    assert core.pending == 0 and core.unindexed == []
    core.recent.clear()
    [again] = core.append([event(1, at=T0)], now=T0 + 1000)
    assert isinstance(again, Duplicate)


def test_file_index_merges_runs_like_an_lsm_tree_and_drops_a_day_leaving_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "_MERGE_AT", 10)
    ix = FileIdIndex(tmp_path, 0, window_days=2, today=DAY)
    first = keys(10)
    ix.add(first, DAY)
    later = [keys(10) for _ in range(40)]
    for batch in later:
        ix.add(batch, DAY)
    sizes = [len(r) for r in ix.runs]
    assert sum(sizes) == 410 and len(sizes) <= 6 and sizes == sorted(sizes, reverse=True)
    everything = first + [k for b in later for k in b]
    assert ix.seen(everything + keys(50), DAY) == set(everything)
    # two days on, the first day's ids leave the window (memory and files)
    newer = keys(10)
    ix.add(newer, DAY + 3)
    assert ix.size() == 10 and ix.seen(everything + newer, DAY + 3) == set(newer)
    assert not (tmp_path / "shard-000" / f"{DAY}.ids").exists()
