"""The shard's write-ahead log: numbered segments of framed records.

A shard appends every accepted record to the active segment before the ingest request is
answered. A flush *seals* the active segment and inserts exactly that segment into ClickHouse, one
insert per table, each with the token ``<shard>:<log id>:<segment>:<table>`` (``buffer.core``);
only after every insert succeeded is the segment deleted. A restarted shard replays every segment
still present with the same tokens, so a segment that was inserted but not yet deleted is dropped
by ClickHouse's insert deduplication: at-least-once delivery, exactly-once storage of the batch.
The log id is random per log, so a log recreated from scratch never reuses a token.

Two back ends share the segment model: files on local disk (default) and Redis Streams.

Frame format (files): ``u32 length | u32 crc32 | orjson(list of records)``. A torn tail frame after a
crash fails its length or checksum and is cut off: it was never acknowledged, because
acknowledgement happens only after the write (and fsync) returned.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import redis

from eventlens.records import Record

_HEADER = struct.Struct("<II")


def encode_frame(records: list[Record]) -> bytes:
    body = orjson.dumps(records)
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def decode_frames(data: bytes) -> tuple[list[Record], int]:
    """All records of the intact frames, and the byte length those frames cover."""
    records: list[Record] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            batch = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            break
        records.extend(batch)
        pos = end
    return records, pos


@dataclass(frozen=True)
class Segment:
    """A sealed segment: its number and how many records it holds (records stay in the log)."""

    number: int
    count: int


class SegmentLog(Protocol):
    """A shard's log. ``append``/``write`` and ``delete`` of a shared log (Redis) raise ``Fenced``,
    changing nothing, once another owner has recovered it; a node-local log (files) never does."""

    log_id: str  # random per log, so a log started afresh never reuses an old log's tokens

    def recover(self) -> list[Segment]: ...
    def append(self, records: list[Record]) -> None: ...
    def write(self, records: list[Record]) -> int: ...
    def sync(self, ticket: int) -> None: ...
    def seal(self) -> Segment | None: ...
    def read(self, number: int) -> list[Record]: ...
    def delete(self, number: int) -> None: ...
    def close(self) -> None: ...


class FileSegmentLog:
    """Segments as files ``<dir>/<number>.wal``; ``fsync=True`` makes each append durable.

    ``<dir>/next`` keeps the next segment number, so numbers (and with them insert tokens) are never
    reused after a restart that finds every segment already flushed and deleted: ClickHouse would
    drop a new batch carrying an old batch's token as a duplicate.
    """

    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync
        self._active_no = 0
        self._active_count = 0
        self._fh: Any = None
        self._size = 0  # bytes of whole frames in the active segment's file
        # a failed write left part of a frame at this offset and it could not be cut off yet: the
        # next write cuts it first (a frame after a torn one would be lost at recovery)
        self._torn: int | None = None
        self.log_id = ""
        # group commit: writers append under the shard's lock, then fsync outside it; one fsync
        # covers every write before it, so concurrent appends share it
        self._written = 0
        self._synced = 0
        self._sync_lock = threading.Lock()

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.wal"

    def _write_next(self, number: int) -> None:
        tmp = self.directory / "next.tmp"
        with open(tmp, "w") as fh:
            fh.write(str(number))
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, self.directory / "next")

    def _sync_dir(self) -> None:
        if self.fsync:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def recover(self) -> list[Segment]:
        """Every segment left on disk, oldest first; the next append opens a new segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        id_file = self.directory / "log-id"
        if not id_file.exists():
            tmp = self.directory / "log-id.tmp"
            tmp.write_text(secrets.token_hex(6))
            os.replace(tmp, id_file)
            self._sync_dir()
        self.log_id = id_file.read_text().strip()
        segments: list[Segment] = []
        for path in sorted(self.directory.glob("*.wal")):
            number = int(path.stem)
            data = path.read_bytes()
            records, valid = decode_frames(data)
            if valid < len(data):  # torn tail: never acknowledged, cut it off
                with open(path, "r+b") as fh:
                    fh.truncate(valid)
            if records:
                segments.append(Segment(number, len(records)))
            else:
                path.unlink()
            self._active_no = max(self._active_no, number + 1)
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._active_no = max(self._active_no, int((self.directory / "next").read_text()))
        return segments

    def read(self, number: int) -> list[Record]:
        return decode_frames(self._path(number).read_bytes())[0]

    def append(self, records: list[Record]) -> None:
        self.sync(self.write(records))

    def write(self, records: list[Record]) -> int:
        """Write without waiting for the disk; returns a ticket for ``sync``.

        All or nothing: a write that fails (disk full, I/O error) leaves no part of its frame in
        the segment, so the frames written after it survive recovery."""
        if not records:
            return self._written
        frame = encode_frame(records)
        if self._fh is None:
            self._write_next(self._active_no + 1)
            # unbuffered: a failed write leaves nothing behind in a buffer to be written later
            self._fh = open(self._path(self._active_no), "ab", buffering=0)  # noqa: SIM115 - kept open
            self._size = self._fh.seek(0, os.SEEK_END)
            self._sync_dir()
        try:
            self._uncut()
            view = memoryview(frame)
            while view:
                view = view[self._fh.write(view) :]
        except BaseException:
            self._cut(self._size)
            raise
        self._size += len(frame)
        self._active_count += len(records)
        self._written += 1
        return self._written

    def _cut(self, size: int) -> None:
        """After a failed write: cut the segment back to its whole frames (O_APPEND writes go on
        from there); if even that fails, the next write or seal cuts it first."""
        try:
            os.ftruncate(self._fh.fileno(), size)
        except OSError:
            self._torn = size

    def _uncut(self) -> None:
        if self._torn is not None:
            os.ftruncate(self._fh.fileno(), self._torn)
            self._torn = None

    def sync(self, ticket: int) -> None:
        """Return once everything written up to ``ticket`` is on disk."""
        if not self.fsync:
            return
        with self._sync_lock:
            if self._synced >= ticket:
                return  # another writer's fsync already covered it
            target, fh = self._written, self._fh
            if fh is not None:
                os.fsync(fh.fileno())
            self._synced = max(self._synced, target)

    def seal(self) -> Segment | None:
        if not self._active_count:
            return None
        if self._fh is not None:
            self._uncut()
            with self._sync_lock:  # a segment is closed only once it is on disk
                if self.fsync:
                    os.fsync(self._fh.fileno())
                self._synced = self._written
                self._fh.close()
                self._fh = None
        seg = Segment(self._active_no, self._active_count)
        self._active_no += 1
        self._active_count = 0
        return seg

    def delete(self, number: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(number).unlink()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class WalError(Exception):
    """The write-ahead log refused an operation."""


class Fenced(WalError):
    """Another owner took this log over (``recover`` with a newer epoch): this one may not write.

    Raised before anything was written or deleted, so the caller must not acknowledge the records.
    """

    def __init__(self, log: str, mine: int, current: int | None) -> None:
        super().__init__(
            f"shard log {log} is fenced: this owner holds epoch {mine}, the log is at epoch {current}"
        )
        self.log = log
        self.mine = mine
        self.current = current


# KEYS: epoch, segment stream, segment list, next, last append, settled tokens; ARGV: my epoch,
# frame, segment number, register, token. The epoch check and the write are one script, so no
# write of a superseded owner lands after a takeover. Registering (ZADD + next) rides the first
# append of a segment. ``last`` names the entry this append wrote (token, stream, entry id), so an
# append whose reply was lost can be undone (_SETTLE); a token settled before the append ran (its
# request still in flight on a dropped connection) writes nothing.
_APPEND = """
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return {'fenced', cur or ''} end
if redis.call('SISMEMBER', KEYS[6], ARGV[5]) == 1 then return 0 end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
  redis.call('SET', KEYS[4], ARGV[3] + 1)
end
local entry = redis.call('XADD', KEYS[2], '*', 'd', ARGV[2])
redis.call('HSET', KEYS[5], 't', ARGV[5], 's', KEYS[2], 'i', entry)
return 1
"""

# KEYS: epoch, last append, settled tokens; ARGV: my epoch, token. Settles an append whose reply
# was lost as "not written": undone (XDEL) if it ran, else marked so that it never runs. Either way
# the records are not in the log and the caller's rollback is exact.
_SETTLE = """
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return {'fenced', cur or ''} end
if redis.call('HGET', KEYS[2], 't') == ARGV[2] then
  redis.call('XDEL', redis.call('HGET', KEYS[2], 's'), redis.call('HGET', KEYS[2], 'i'))
  redis.call('HDEL', KEYS[2], 't')
  return 2
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], 86400)
return 1
"""

# KEYS: epoch, segment stream, segment list; ARGV: my epoch, segment number
_DELETE = """
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return {'fenced', cur or ''} end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""

# KEYS: epoch, next; ARGV: my epoch, next segment number (never lowered)
_ADVANCE = """
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return {'fenced', cur or ''} end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
"""


class RedisSegmentLog:
    """Segments as Redis Streams (key ``seg, <number>``), listed in a sorted set (key ``segs``).

    Keys ``next`` (next segment number, never reused), ``id`` (the log id) and ``epoch`` (fencing
    token) sit beside them. ``recover`` takes the log over: it increments ``epoch`` and keeps the
    value. Every append and delete is one Lua script that first checks ``epoch`` still holds that
    value and otherwise changes nothing and raises ``Fenced``: a superseded owner (a shard cut off
    from the cluster while its replacement replays the same keys) can neither add events its
    successor would never see nor delete a segment its successor still has to flush.

    Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` (or a replica
    and ``WAIT``) when a Redis failure must not lose acknowledged events.

    An append whose reply is lost (the connection dropped or timed out: the script may or may not
    have run) raises, and is *settled* as not written before the log does anything else: undone if
    it ran, barred from running if its request is still on its way. So a failed append never leaves
    records in the log, the shard's rollback is exact, and the client's retry is logged once.
    """

    def __init__(self, client: Any, key: Callable[..., str]) -> None:
        self.r = client
        self.key = key  # builds this log's Redis keys from their parts (``backends.redis_key``)
        self._active_no = 0
        self._active_count = 0
        self._registered = False
        self.log_id = ""
        self.epoch = 0  # 0: not recovered yet, so every write is fenced
        self._append_script = client.register_script(_APPEND)
        self._delete_script = client.register_script(_DELETE)
        self._advance_script = client.register_script(_ADVANCE)
        self._settle_script = client.register_script(_SETTLE)
        self._unsettled: str | None = None  # token of an append whose reply was lost

    def _key(self, number: int) -> str:
        return self.key("seg", number)

    def _check(self, reply: Any) -> None:
        if reply == 1:
            return
        current = reply[1].decode() if isinstance(reply, list) else ""
        raise Fenced(self.key(), self.epoch, int(current) if current else None)

    def recover(self) -> list[Segment]:
        """Take the log over (a new epoch) and return every segment it holds, oldest first."""
        pipe = self.r.pipeline(transaction=True)
        pipe.incr(self.key("epoch"))
        pipe.set(self.key("id"), secrets.token_hex(6), nx=True)
        pipe.get(self.key("id"))
        self.epoch, _, log_id = pipe.execute()
        self.log_id = log_id.decode()
        self._settle()  # an append of this process whose reply was lost is not replayed
        segments: list[Segment] = []
        numbers = sorted(int(n) for n in self.r.zrange(self.key("segs"), 0, -1))
        for number in numbers:
            count = len(self.read(number))
            if count:
                segments.append(Segment(number, count))
            else:
                self.delete(number)
        last = int(self.r.get(self.key("next")) or 0)
        self._active_no = max([last, *(n + 1 for n in numbers)])
        self._check(
            self._advance_script(
                keys=[self.key("epoch"), self.key("next")], args=[self.epoch, self._active_no]
            )
        )
        self._active_count = 0
        self._registered = False
        return segments

    def write(self, records: list[Record]) -> int:
        self.append(records)  # Redis acknowledges a write once it holds it: nothing to wait for
        return 0

    def sync(self, ticket: int) -> None:
        return None

    def read(self, number: int) -> list[Record]:
        records: list[Record] = []
        for _id, fields in self.r.xrange(self._key(number)):
            records.extend(orjson.loads(fields[b"d"]))
        return records

    def append(self, records: list[Record]) -> None:
        """One round trip (EVALSHA); raises ``Fenced``, having written nothing, after a takeover.
        Any other failure also leaves nothing written (see the class: settled)."""
        if not records:
            return
        self._settle()
        token = secrets.token_hex(8)
        keys = [
            self.key("epoch"),
            self._key(self._active_no),
            self.key("segs"),
            self.key("next"),
            self.key("last"),
            self.key("settled"),
        ]
        args = [self.epoch, orjson.dumps(records), self._active_no, 0 if self._registered else 1, token]
        try:
            reply = self._append_script(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError):
            self._unsettled = token  # it may have run: undo it before anything else
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                self._settle()
            raise
        if reply == 0:  # settled before it ran: cannot happen for a token not yet settled
            raise WalError(f"shard log {self.key()}: append {token} was settled before it ran")
        self._check(reply)
        self._registered = True
        self._active_count += len(records)

    def _settle(self) -> None:
        """Settle the append whose reply was lost, if any, as not written (raises while Redis is
        unreachable: the log does nothing else until then)."""
        if self._unsettled is None:
            return
        keys = [self.key("epoch"), self.key("last"), self.key("settled")]
        self._check_settled(self._settle_script(keys=keys, args=[self.epoch, self._unsettled]))
        self._unsettled = None

    def _check_settled(self, reply: Any) -> None:
        if reply in (1, 2):
            return
        self._check(reply)

    def seal(self) -> Segment | None:
        self._settle()  # nothing sealed for a flush may hold an append that failed
        if not self._active_count:
            return None
        seg = Segment(self._active_no, self._active_count)
        self._active_no += 1
        self._active_count = 0
        self._registered = False
        return seg

    def delete(self, number: int) -> None:
        """Delete a flushed segment; raises ``Fenced``, deleting nothing, after a takeover."""
        keys = [self.key("epoch"), self._key(number), self.key("segs")]
        self._check(self._delete_script(keys=keys, args=[self.epoch, number]))

    def close(self) -> None:
        """Nothing to release: the Redis client's pool belongs to the caller."""
