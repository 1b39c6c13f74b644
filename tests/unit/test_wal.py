"""The write-ahead log (eventlens.storage.wal): frames, file segments and Redis segments."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.storage.wal import (
    Fenced,
    FileSegmentLog,
    RedisSegmentLog,
    Segment,
    decode_frames,
    encode_frame,
)
from tests.servers import REDIS_URL

# JSON-safe records: what the shards log (orjson round-trips these exactly).
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = (
    json_scalar
    | st.lists(json_scalar, max_size=3)
    | st.dictionaries(st.text(max_size=5), json_scalar, max_size=3)
)
record = st.dictionaries(st.text(max_size=8), json_value, max_size=4)
batch = st.lists(record, min_size=0, max_size=4)


def rec(i: int, **extra: Any) -> dict[str, Any]:
    return {"_t": "events", "id": f"e{i}", "n": i, **extra}


# frames ------------------------------------------------------------------------------------------


def test_frame_layout_is_length_crc_body() -> None:
    records = [rec(1), rec(2)]
    frame = encode_frame(records)
    body = orjson.dumps(records)
    assert frame[:8] == struct.pack("<II", len(body), zlib.crc32(body))
    assert frame[8:] == body


@pytest.mark.parametrize(
    "batches",
    [
        [],
        [[]],
        [[rec(1)]],
        [[rec(1), rec(2)], [rec(3)]],
        [[{"unicode": "ü→😀", "nested": {"a": [1, 2.5, None, True]}}]],
        [[rec(i) for i in range(100)], [], [rec(100)]],
    ],
)
def test_decode_round_trip(batches: list[list[dict[str, Any]]]) -> None:
    data = b"".join(encode_frame(b) for b in batches)
    records, valid = decode_frames(data)
    assert records == [r for b in batches for r in b]
    assert valid == len(data)


@settings(max_examples=60, deadline=None)
@given(st.lists(batch, max_size=5))
def test_decode_round_trip_property(batches: list[list[dict[str, Any]]]) -> None:
    data = b"".join(encode_frame(b) for b in batches)
    assert decode_frames(data) == ([r for b in batches for r in b], len(data))


def test_torn_tail_at_every_byte_of_the_last_frame_keeps_exactly_the_intact_frames() -> None:
    intact = [[rec(1), rec(2)], [rec(3, text="x" * 50)]]
    prefix = b"".join(encode_frame(b) for b in intact)
    last = encode_frame([rec(4), rec(5, big=list(range(20)))])
    expected = [r for b in intact for r in b]
    for cut in range(len(last)):  # 0 .. len-1 bytes of the last frame survived
        records, valid = decode_frames(prefix + last[:cut])
        assert records == expected, cut
        assert valid == len(prefix), cut
    assert decode_frames(prefix + last) == (
        [*expected, rec(4), rec(5, big=list(range(20)))],
        len(prefix + last),
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(batch, min_size=1, max_size=4), st.data())
def test_torn_tail_property(batches: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    frames = [encode_frame(b) for b in batches]
    prefix = b"".join(frames[:-1])
    cut = data.draw(st.integers(min_value=0, max_value=len(frames[-1]) - 1))
    records, valid = decode_frames(prefix + frames[-1][:cut])
    assert records == [r for b in batches[:-1] for r in b]
    assert valid == len(prefix)


@pytest.mark.parametrize("flip_at", ["crc", "body", "length"])
def test_corrupted_frame_stops_decoding(flip_at: str) -> None:
    first, second, third = encode_frame([rec(1)]), encode_frame([rec(2)]), encode_frame([rec(3)])
    broken = bytearray(second)
    index = {"length": 0, "crc": 4, "body": 10}[flip_at]
    broken[index] ^= 0xFF
    records, valid = decode_frames(first + bytes(broken) + third)
    assert records == [rec(1)]  # nothing after the bad frame is trusted
    assert valid == len(first)


def test_frame_with_valid_crc_but_invalid_json_stops_decoding() -> None:
    body = b"[not json"
    bad = struct.pack("<II", len(body), zlib.crc32(body)) + body
    good = encode_frame([rec(1)])
    assert decode_frames(good + bad + good) == ([rec(1)], len(good))


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00" * 7])
def test_decode_short_input(data: bytes) -> None:
    assert decode_frames(data) == ([], 0)


# file segments -----------------------------------------------------------------------------------


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"


@pytest.fixture
def wal(wal_dir: Path) -> Iterator[FileSegmentLog]:
    log = FileSegmentLog(wal_dir, fsync=False)
    assert log.recover() == []
    yield log
    log.close()


def wal_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wal"))


def test_recover_creates_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    log = FileSegmentLog(directory)
    assert log.recover() == []
    assert directory.is_dir()


def test_append_seal_read_delete(wal: FileSegmentLog, wal_dir: Path) -> None:
    assert wal.seal() is None  # nothing appended: nothing to seal
    wal.append([rec(1), rec(2)])
    wal.append([])  # no-op
    wal.append([rec(3)])
    seg = wal.seal()
    assert seg == Segment(0, 3)
    assert wal.read(0) == [rec(1), rec(2), rec(3)]
    wal.append([rec(4)])
    assert wal.seal() == Segment(1, 1)
    assert wal.seal() is None
    assert wal_files(wal_dir) == ["000000000000.wal", "000000000001.wal"]
    wal.delete(0)
    wal.delete(0)  # idempotent
    assert wal_files(wal_dir) == ["000000000001.wal"]
    assert wal.read(1) == [rec(4)]


def test_empty_append_does_not_create_a_segment(wal: FileSegmentLog, wal_dir: Path) -> None:
    wal.append([])
    assert wal_files(wal_dir) == []
    assert wal.seal() is None


def test_active_segment_is_readable_before_seal(wal: FileSegmentLog) -> None:
    wal.append([rec(1)])
    assert wal.read(0) == [rec(1)]


def test_fsync_mode_works(wal_dir: Path) -> None:
    log = FileSegmentLog(wal_dir, fsync=True)
    log.recover()
    log.append([rec(1)])
    assert log.seal() == Segment(0, 1)
    assert log.read(0) == [rec(1)]
    log.close()


class DiskFull:
    """The segment's file handle: the next ``writes`` write part of what they are given, then
    raise ENOSPC; ``truncates`` calls of ftruncate fail too (see ``broken_ftruncate``)."""

    def __init__(self, fh: Any, writes: int = 1) -> None:
        self.fh = fh
        self.writes = writes

    def write(self, data: memoryview) -> int:
        if self.writes:
            self.writes -= 1
            self.fh.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return self.fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


@pytest.mark.parametrize("truncate_fails", [False, True])
def test_a_failed_write_leaves_no_torn_frame_before_the_next_one(
    wal: FileSegmentLog, wal_dir: Path, monkeypatch: pytest.MonkeyPatch, truncate_fails: bool
) -> None:
    """Disk full in the middle of a frame: the write raises and its partial frame is cut off, so a
    later frame is not lost behind it at recovery (decoding stops at the first torn frame)."""
    wal.append([rec(1)])
    wal._fh = DiskFull(wal._fh)  # type: ignore[attr-defined]
    real_ftruncate = os.ftruncate
    if truncate_fails:  # cutting fails too at first: the next write cuts before writing
        monkeypatch.setattr(os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OSError):
        wal.append([rec(2, pad="x" * 100)])
    monkeypatch.setattr(os, "ftruncate", real_ftruncate)
    wal.append([rec(3)])
    assert wal.read(0) == [rec(1), rec(3)]
    assert wal.seal() == Segment(0, 2)
    fresh = FileSegmentLog(wal_dir, fsync=False)
    assert fresh.recover() == [Segment(0, 2)]
    assert fresh.read(0) == [rec(1), rec(3)]


def test_recover_after_restart_returns_sealed_and_active_segments(wal: FileSegmentLog, wal_dir: Path) -> None:
    wal.append([rec(1), rec(2)])
    wal.seal()
    wal.append([rec(3)])
    wal.seal()
    wal.delete(1)  # flushed
    wal.append([rec(4)])  # active, never sealed: the process dies here
    restarted = FileSegmentLog(wal_dir, fsync=False)
    assert restarted.recover() == [Segment(0, 2), Segment(2, 1)]
    assert restarted.read(0) == [rec(1), rec(2)]
    assert restarted.read(2) == [rec(4)]
    # numbering continues after the highest segment on disk; the old active one is not reopened
    restarted.append([rec(5)])
    assert restarted.seal() == Segment(3, 1)
    assert restarted.read(2) == [rec(4)]
    assert wal_files(wal_dir) == ["000000000000.wal", "000000000002.wal", "000000000003.wal"]
    restarted.close()


def test_numbering_never_reuses_a_flushed_segment_number(wal: FileSegmentLog, wal_dir: Path) -> None:
    """Tokens are derived from segment numbers: a reused number would make ClickHouse drop new data
    as a duplicate of the old batch, so numbers must keep growing even when every file was deleted."""
    for i in range(3):
        wal.append([rec(i)])
        seg = wal.seal()
        assert seg is not None
        wal.delete(seg.number)
    wal.close()
    assert wal_files(wal_dir) == []
    restarted = FileSegmentLog(wal_dir, fsync=False)
    assert restarted.recover() == []
    restarted.append([rec(9)])
    assert restarted.seal() == Segment(3, 1)
    restarted.close()
    again = FileSegmentLog(wal_dir, fsync=False)
    again.recover()
    again.append([rec(10)])
    assert again.seal() == Segment(4, 1)
    again.close()


@pytest.mark.parametrize("cut", [1, 4, 7, 8, 9, 15, -1])
def test_recover_truncates_a_torn_tail_on_disk(wal: FileSegmentLog, wal_dir: Path, cut: int) -> None:
    wal.append([rec(1)])
    wal.append([rec(2), rec(3)])
    wal.close()
    path = wal_dir / "000000000000.wal"
    intact = path.read_bytes()
    torn = encode_frame([rec(4)])
    path.write_bytes(intact + torn[:cut])
    restarted = FileSegmentLog(wal_dir, fsync=False)
    assert restarted.recover() == [Segment(0, 3)]
    assert path.read_bytes() == intact  # the torn frame is cut off on disk
    assert restarted.read(0) == [rec(1), rec(2), rec(3)]
    restarted.close()


def test_recover_removes_empty_and_fully_torn_segments(wal_dir: Path) -> None:
    wal_dir.mkdir(parents=True)
    (wal_dir / "000000000000.wal").write_bytes(b"")
    (wal_dir / "000000000001.wal").write_bytes(encode_frame([rec(1)])[:5])  # torn first frame
    (wal_dir / "000000000002.wal").write_bytes(encode_frame([rec(2)]))
    (wal_dir / "000000000003.wal").write_bytes(encode_frame([]))  # a frame with no records
    log = FileSegmentLog(wal_dir, fsync=False)
    assert log.recover() == [Segment(2, 1)]
    assert wal_files(wal_dir) == ["000000000002.wal"]
    log.append([rec(3)])
    assert log.seal() == Segment(4, 1)  # still after the removed ones
    log.close()


def test_recover_orders_segments_oldest_first(wal_dir: Path) -> None:
    wal_dir.mkdir(parents=True)
    for number in (12, 3, 100, 7):
        (wal_dir / f"{number:012d}.wal").write_bytes(encode_frame([rec(number)]))
    log = FileSegmentLog(wal_dir, fsync=False)
    assert [s.number for s in log.recover()] == [3, 7, 12, 100]
    log.append([rec(0)])
    assert log.seal() == Segment(101, 1)
    log.close()


def test_corrupted_middle_frame_recovers_the_prefix(wal: FileSegmentLog, wal_dir: Path) -> None:
    wal.append([rec(1)])
    wal.close()
    path = wal_dir / "000000000000.wal"
    good = path.read_bytes()
    bad = bytearray(encode_frame([rec(2)]))
    bad[-1] ^= 0x01
    path.write_bytes(good + bytes(bad) + encode_frame([rec(3)]))
    restarted = FileSegmentLog(wal_dir, fsync=False)
    assert restarted.recover() == [Segment(0, 1)]
    assert restarted.read(0) == [rec(1)]
    assert path.read_bytes() == good
    restarted.close()


# redis segments ----------------------------------------------------------------------------------


def keys(prefix: str) -> Any:
    return lambda *parts: ":".join((prefix, *(str(p) for p in parts)))


@pytest.fixture
def redis_client() -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.mark.redis
def test_redis_append_seal_read_delete(redis_client: Any, redis_prefix: str) -> None:
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    assert log.recover() == []
    assert log.seal() is None
    log.append([rec(1), rec(2)])
    log.append([])
    log.append([rec(3)])
    assert log.read(0) == [rec(1), rec(2), rec(3)]
    assert log.seal() == Segment(0, 3)
    log.append([rec(4)])
    assert log.seal() == Segment(1, 1)
    assert log.seal() is None
    members = {m.decode() for m in redis_client.zrange(f"{redis_prefix}:segs", 0, -1)}
    assert members == {"0", "1"}
    log.delete(0)
    assert redis_client.exists(f"{redis_prefix}:seg:0") == 0
    assert {m.decode() for m in redis_client.zrange(f"{redis_prefix}:segs", 0, -1)} == {"1"}
    assert log.read(0) == []
    assert log.read(1) == [rec(4)]
    log.close()


@pytest.mark.redis
def test_redis_recover_after_restart(redis_client: Any, redis_prefix: str) -> None:
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    log.recover()
    log.append([rec(1), rec(2)])
    log.seal()
    log.append([rec(3)])
    log.seal()
    log.delete(1)
    log.append([rec(4)])  # active when the process dies
    restarted = RedisSegmentLog(redis_client, keys(redis_prefix))
    assert restarted.recover() == [Segment(0, 2), Segment(2, 1)]
    assert restarted.read(2) == [rec(4)]
    restarted.append([rec(5)])
    assert restarted.seal() == Segment(3, 1)
    assert restarted.read(2) == [rec(4)]


@pytest.mark.redis
def test_redis_numbering_never_reuses_a_flushed_number(redis_client: Any, redis_prefix: str) -> None:
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    log.recover()
    for i in range(3):
        log.append([rec(i)])
        seg = log.seal()
        assert seg is not None
        log.delete(seg.number)
    restarted = RedisSegmentLog(redis_client, keys(redis_prefix))
    assert restarted.recover() == []
    restarted.append([rec(9)])
    assert restarted.seal() == Segment(3, 1)


@pytest.mark.redis
def test_redis_recover_drops_registered_but_empty_segments(redis_client: Any, redis_prefix: str) -> None:
    redis_client.zadd(f"{redis_prefix}:segs", {"5": 5})
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    assert log.recover() == []
    assert redis_client.zcard(f"{redis_prefix}:segs") == 0
    log.append([rec(1)])
    assert log.seal() == Segment(6, 1)


@pytest.mark.redis
def test_redis_separate_prefixes_are_independent(redis_client: Any, redis_prefix: str) -> None:
    a = RedisSegmentLog(redis_client, keys(f"{redis_prefix}:a"))
    b = RedisSegmentLog(redis_client, keys(f"{redis_prefix}:b"))
    a.recover()
    b.recover()
    a.append([rec(1)])
    b.append([rec(2)])
    assert a.read(0) == [rec(1)]
    assert b.read(0) == [rec(2)]


def _log_keys(client: Any, prefix: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)}


def _segs(client: Any, prefix: str) -> list[str]:
    return [m.decode() for m in client.zrange(f"{prefix}:segs", 0, -1)]


@pytest.mark.redis
def test_redis_takeover_fences_the_old_owner(redis_client: Any, redis_prefix: str) -> None:
    """Two live owners of one log: after B recovers it, A can neither append nor delete."""
    a = RedisSegmentLog(redis_client, keys(redis_prefix))
    a.recover()
    a.append([rec(1), rec(2)])
    assert a.seal() == Segment(0, 2)
    a.append([rec(3)])  # still active when B takes over
    b = RedisSegmentLog(redis_client, keys(redis_prefix))
    assert b.recover() == [Segment(0, 2), Segment(1, 1)]
    assert b.epoch == a.epoch + 1
    b.append([rec(10)])
    before_keys, before_segs = _log_keys(redis_client, redis_prefix), _segs(redis_client, redis_prefix)
    with pytest.raises(Fenced) as info:
        a.append([rec(4)])  # into its active segment 1
    assert info.value.mine == a.epoch and info.value.current == b.epoch
    assert redis_prefix in str(info.value)
    assert f"epoch {a.epoch}" in str(info.value) and f"epoch {b.epoch}" in str(info.value)
    a.seal()
    with pytest.raises(Fenced):
        a.append([rec(5)])  # would open segment 2, which B writes into: no stream, no registration
    with pytest.raises(Fenced):
        a.delete(0)
    assert _log_keys(redis_client, redis_prefix) == before_keys
    assert _segs(redis_client, redis_prefix) == before_segs
    assert b.read(0) == [rec(1), rec(2)]
    assert b.read(1) == [rec(3)]
    assert b.seal() == Segment(2, 1)
    assert b.read(2) == [rec(10)]  # only B's own record
    b.delete(0)  # the current owner still deletes
    assert _segs(redis_client, redis_prefix) == ["1", "2"]


@pytest.mark.redis
def test_redis_fenced_owner_cannot_write_into_a_segment_the_new_owner_deleted(
    redis_client: Any, redis_prefix: str
) -> None:
    a = RedisSegmentLog(redis_client, keys(redis_prefix))
    a.recover()
    a.append([rec(1)])
    b = RedisSegmentLog(redis_client, keys(redis_prefix))
    [seg] = b.recover()
    b.delete(seg.number)  # flushed by B
    with pytest.raises(Fenced):
        a.append([rec(2)])
    assert redis_client.exists(f"{redis_prefix}:seg:{seg.number}") == 0
    assert _segs(redis_client, redis_prefix) == []


@pytest.mark.redis
def test_redis_unrecovered_log_is_fenced(redis_client: Any, redis_prefix: str) -> None:
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    with pytest.raises(Fenced):
        log.append([rec(1)])
    assert _log_keys(redis_client, redis_prefix) == set()


@pytest.mark.redis
def test_redis_restart_of_the_same_owner_bumps_the_epoch_and_keeps_working(
    redis_client: Any, redis_prefix: str
) -> None:
    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    log.recover()
    first = log.epoch
    log.append([rec(1)])
    assert log.recover() == [Segment(0, 1)]  # the same object recovers again
    assert log.epoch == first + 1
    log.append([rec(2)])
    assert log.seal() == Segment(1, 1)
    log.delete(0)
    assert log.read(1) == [rec(2)]
    assert _segs(redis_client, redis_prefix) == ["1"]
    assert int(redis_client.get(f"{redis_prefix}:epoch")) == first + 1


def test_file_log_has_no_epoch_and_is_never_fenced(wal_dir: Path) -> None:
    a = FileSegmentLog(wal_dir, fsync=False)
    a.recover()
    a.append([rec(1)])
    b = FileSegmentLog(wal_dir, fsync=False)
    b.recover()
    a.append([rec(2)])  # node-local: a second owner is not a situation it guards against
    assert not hasattr(a, "epoch")


def test_group_commit_shares_fsyncs_and_every_write_is_synced(tmp_path: Path, monkeypatch: Any) -> None:
    """Concurrent writers each get durability before returning, with fewer fsyncs than writes."""
    import threading
    import time as _time

    import eventlens.storage.wal as wal_mod

    calls: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        _time.sleep(0.005)  # a disk flush takes a while: writers pile up behind it
        real_fsync(fd)

    monkeypatch.setattr(wal_mod.os, "fsync", slow_fsync)
    log = FileSegmentLog(tmp_path / "gc", fsync=True)
    log.recover()
    lock = threading.Lock()  # the shard's lock: writes are serialised, syncs are not

    def writer(k: int) -> None:
        for i in range(20):
            with lock:
                ticket = log.write([{"k": k, "i": i}])
            log.sync(ticket)
            assert log._synced >= ticket

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writes = 8 * 20
    file_syncs = len(calls) - 2  # the segment's directory entry and the `next` file
    assert file_syncs < writes
    seg = log.seal()
    assert seg is not None and seg.count == writes
    assert len(log.read(seg.number)) == writes


# an append whose reply is lost -------------------------------------------------------------------
class LostReply:
    """The log's append script, made to lose its reply: ``ran`` decides whether the script ran
    before the connection dropped; otherwise the request stays in flight and can be delivered
    later (``deliver``)."""

    def __init__(self, log: RedisSegmentLog, ran: bool) -> None:
        self.real = log._append_script
        self.ran = ran
        self.in_flight: list[tuple[Any, Any]] = []
        log._append_script = self  # type: ignore[assignment]
        self.log = log

    def __call__(self, keys: Any, args: Any) -> Any:
        import redis

        self.log._append_script = self.real  # only this one call loses its reply
        if self.ran:
            self.real(keys=keys, args=args)
        else:
            self.in_flight.append((keys, args))
        raise redis.ConnectionError("connection reset by peer (simulated)")

    def deliver(self) -> Any:
        keys, args = self.in_flight.pop()
        return self.real(keys=keys, args=args)


@pytest.mark.redis
@pytest.mark.parametrize("ran", [True, False], ids=["ran", "in-flight"])
def test_redis_append_with_a_lost_reply_leaves_nothing_in_the_log(
    redis_client: Any, redis_prefix: str, ran: bool
) -> None:
    """The shard answers 503 and rolls its state back; the client's retry must be the only copy in
    the log, whether the lost append ran or arrives later."""
    import redis

    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    log.recover()
    log.append([rec(1)])
    lost = LostReply(log, ran)
    with pytest.raises(redis.ConnectionError):
        log.append([rec(2), rec(3)])
    assert log.read(0) == [rec(1)]
    if not ran:
        assert lost.deliver() == 0  # delivered after it was settled: writes nothing
    log.append([rec(2), rec(3)])  # the retry
    assert log.seal() == Segment(0, 3)
    assert log.read(0) == [rec(1), rec(2), rec(3)]


@pytest.mark.redis
def test_redis_append_with_a_lost_reply_is_undone_once_redis_answers_again(
    redis_client: Any, redis_prefix: str
) -> None:
    """Redis is unreachable when the lost append is settled: nothing else happens on the log (no
    seal, no append) until it is, so the records can neither be flushed nor stored twice."""
    import redis

    log = RedisSegmentLog(redis_client, keys(redis_prefix))
    log.recover()
    LostReply(log, ran=True)
    real_settle = log._settle_script
    down = {"on": True}

    def settle(keys: Any, args: Any) -> Any:
        if down["on"]:
            raise redis.ConnectionError("Redis unreachable (simulated)")
        return real_settle(keys=keys, args=args)

    log._settle_script = settle  # type: ignore[assignment]
    with pytest.raises(redis.ConnectionError):
        log.append([rec(1)])
    assert log.read(0) == [rec(1)]  # it ran, and is not settled yet
    with pytest.raises(redis.ConnectionError):
        log.seal()
    with pytest.raises(redis.ConnectionError):
        log.append([rec(1)])
    down["on"] = False
    log.append([rec(1)])  # the retry, once Redis answers: the lost copy is undone first
    assert log.read(0) == [rec(1)]
    assert log.seal() == Segment(0, 1)
