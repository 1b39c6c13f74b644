"""The idempotency window: which event ids a project already stored, for ``window_days`` days.

A client retry (a timeout, an SDK's offline queue sent again, a retry after a shard restart or a
reshard) carries the event's ``id``; the shard asks the index before logging an event and drops an
id it already holds, so the event is stored once in ``events`` and so in every rollup. An event
without a client id gets a server id per request, so its retries cannot be recognised.

Keys are a 128-bit digest (XXH3-128) of (project, id). Entries carry the UTC day the shard received them (the
bucket) and count for ``window_days`` whole days after it, then expire with their bucket.

Two stores, chosen with the log (``eventlens.backends.open_ids``):

- ``FileIdIndex`` (embedded): the window in memory as sorted ``uint64`` arrays (high half of the
  digest, low half, day), about 18 bytes per id, plus a dict of the ids added since the last merge;
  every add is appended to a per-shard, per-day file ``<dir>/shard-NNN/<day>.ids`` (16 bytes per
  id) that ``durable`` fsyncs before the shard deletes a flushed log segment. A shard loads every
  shard's files at start, so an event whose device moved to another shard (a new shard count) is
  still recognised; ids another *running* shard adds are not seen (a device's events go to one
  shard while the shard count stays the same). The arrays are sorted runs of falling sizes, merged
  like an LSM tree, so adding an id costs O(log n) copies, not a sort of the whole window.
- ``RedisIdIndex`` (cluster): one Redis set per day (``…:ids:<day>``, members the 16-byte digests)
  that expires with its window, shared by every shard on every node.

Either can be lost (a deleted directory, a flushed Redis): ``rebuild`` refills the window from the
``events`` table; a store that was never marked complete is rebuilt by the first shard that starts.
A shard also adds the ids in its unflushed log on every start, so an id logged just before a crash
(logged, not yet added) is in the index again before the shard takes traffic.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from xxhash import xxh3_128_digest

DAY_MS = 86_400_000
_MERGE_AT = 65_536  # ids added before they are merged into the sorted arrays
_SCALAR_UP_TO = 3  # a call with at most this many ids looks each up alone (numpy call overhead)
_REBUILD_SQL = """
SELECT project_id, id, toUInt32(toDate(received_at)) AS day
FROM events
WHERE received_at >= now64(3) - INTERVAL {days:UInt32} DAY
  AND name NOT IN ('session_start', 'session_end')
"""


# The first copies of retries the index recognised but the shard no longer remembers (flushed before
# a restart, or out of its recent ids): their answer is the first copy's device and session. One
# query per call that has such retries, never on the hot path; the window bounds the arrival.
_FIRST_COPIES_SQL = """
SELECT project_id, id, any(device_id) AS device_id, any(session_id) AS session_id
FROM events
WHERE project_id IN {projects:Array(String)} AND id IN {ids:Array(String)}
  AND name NOT IN ('session_start', 'session_end')
GROUP BY project_id, id
"""


def first_copies(
    query: Callable[..., list[dict[str, Any]]], keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, str]]:
    """(project, event id) → the stored first copy's answer (``deviceId``, ``sessionId``), for the
    ``keys`` found in ``events``."""
    wanted = set(keys)
    if not wanted:
        return {}
    params = {"projects": sorted({p for p, _ in wanted}), "ids": sorted({i for _, i in wanted})}
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in query(_FIRST_COPIES_SQL, params):
        key = (row["project_id"], row["id"])
        if key in wanted:
            out[key] = {"deviceId": row["device_id"], "sessionId": row["session_id"]}
    return out


def id_key(project_id: str, event_id: str) -> bytes:
    """XXH3-128 of (project, id): 0.3 µs against blake2b's 1.4. Not collision-resistant against an
    attacker, but a collision only drops the later of two events, and forging one needs the other
    event's id in advance (client ids are random; server ids are uuid7s)."""
    return xxh3_128_digest(f"{project_id}\x00{event_id}")


# the digest of an already joined ``project\x00id`` key (the shard's key for its recent ids)
key_digest = xxh3_128_digest


def day_of(ms: int) -> int:
    return ms // DAY_MS


class IdIndex(Protocol):
    window_days: int

    def seen(self, keys: Sequence[bytes], day: int) -> set[bytes]:
        """The keys stored within the window that ends on ``day``."""

    def add(self, keys: Sequence[bytes], day: int) -> None:
        """Record keys the log now holds (received on ``day``)."""

    def durable(self) -> None:
        """Make every added key survive a power cut (before a log segment is deleted)."""

    def complete(self) -> bool:
        """Whether the store holds the whole window (never lost since it was marked so)."""

    def mark_complete(self) -> None: ...

    def exclusive(self) -> Any:
        """A context manager held while rebuilding, so one shard rebuilds and the others wait."""

    def close(self) -> None: ...


def rebuild(index: IdIndex, query: Callable[..., list[dict[str, Any]]]) -> int:
    """Refill the window from the ``events`` table (the store was lost); returns ids added."""
    with index.exclusive():
        if index.complete():  # another shard rebuilt it while this one waited
            return 0
        rows = query(_REBUILD_SQL, {"days": index.window_days + 1})
        by_day: dict[int, list[bytes]] = {}
        for row in rows:
            by_day.setdefault(int(row["day"]), []).append(id_key(row["project_id"], row["id"]))
        for day, keys in sorted(by_day.items()):
            index.add(keys, day)
        index.durable()
        index.mark_complete()
        return len(rows)


# --- embedded: memory + per-day files ------------------------------------------------------------
def _halves(keys: Iterable[bytes]) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(b"".join(keys), dtype="<u8")
    return raw[0::2].copy(), raw[1::2].copy()


class _Run:
    """Ids sorted by the high half of their digest, with the low half and the day beside it."""

    __slots__ = ("days", "hi", "lo")

    def __init__(self, hi: np.ndarray, lo: np.ndarray, days: np.ndarray, ordered: bool = False) -> None:
        if not ordered:
            order = np.argsort(hi, kind="stable")
            hi, lo, days = hi[order], lo[order], days[order]
        self.hi, self.lo, self.days = hi, lo, days

    def __len__(self) -> int:
        return len(self.hi)

    def nbytes(self) -> int:
        return self.hi.nbytes + self.lo.nbytes + self.days.nbytes

    def keep_from(self, first: int) -> _Run:
        keep = self.days >= first
        return self if keep.all() else _Run(self.hi[keep], self.lo[keep], self.days[keep], ordered=True)

    @staticmethod
    def merge(a: _Run, b: _Run) -> _Run:
        # a stable sort of two sorted runs is one linear merge (timsort finds the runs)
        return _Run(
            np.concatenate((a.hi, b.hi)), np.concatenate((a.lo, b.lo)), np.concatenate((a.days, b.days))
        )

    def has(self, key: bytes, first: int) -> bool:
        """One id (a few numpy scalar calls: cheaper than the vector path for a handful)."""
        h, lo = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
        hi = self.hi
        i = int(hi.searchsorted(np.uint64(h)))
        while i < len(hi) and int(hi[i]) == h:
            if int(self.lo[i]) == lo and int(self.days[i]) >= first:
                return True
            i += 1
        return False

    def found(self, keys: Sequence[bytes], qhi: np.ndarray, qlo: np.ndarray, first: int) -> set[bytes]:
        hi = self.hi
        at = hi.searchsorted(qhi)
        np.minimum(at, len(hi) - 1, out=at)
        candidates = np.flatnonzero(hi[at] == qhi)
        if not len(candidates):
            return set()
        where = at[candidates]
        exact = candidates[(self.lo[where] == qlo[candidates]) & (self.days[where] >= first)]
        found = {keys[c] for c in exact.tolist()}
        # a high half matched, the low half (or day) did not: the id may sit in a run of equal
        # high halves after it, or be there twice with another day (checked, so none is missed)
        for c in np.setdiff1d(candidates, exact, assume_unique=True).tolist():
            i, h, lo = int(at[c]) + 1, int(qhi[c]), int(qlo[c])
            while i < len(hi) and int(hi[i]) == h:
                if int(self.lo[i]) == lo and int(self.days[i]) >= first:
                    found.add(keys[c])
                    break
                i += 1
        return found


class FileIdIndex:
    def __init__(self, directory: Path, shard: int, window_days: int, today: int) -> None:
        self.dir = directory
        self.window_days = window_days
        self.mine = directory / f"shard-{shard:03d}"
        self.mine.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        # sorted runs, each at most half the size of the one before (an LSM tree in memory): a
        # merge touches ids in proportion to its own size, so an id is copied O(log n) times
        self.runs: list[_Run] = []
        self.fresh: dict[bytes, int] = {}  # added since the last merge → day
        self.files: dict[int, int] = {}  # day → fd of this shard's file
        self.dirty: set[int] = set()  # fds written since the last durable()
        self.today = today
        self._load(today)

    # files -------------------------------------------------------------------------------------
    def _load(self, today: int) -> None:
        """Every shard's files of the window; older files are deleted (their day has expired)."""
        first = today - self.window_days
        chunks: list[np.ndarray] = []
        day_parts: list[np.ndarray] = []
        for path in sorted(self.dir.glob("shard-*/*.ids")):
            day = int(path.stem) if path.stem.isdigit() else -1
            if day < first:
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            data = data[: len(data) - len(data) % 16]  # a record torn by a crash mid-write
            if data:
                chunks.append(np.frombuffer(data, dtype="<u8"))
                day_parts.append(np.full(len(data) // 16, day, dtype="<u4"))
        if chunks:
            raw = np.concatenate(chunks)
            self.runs = [_Run(raw[0::2], raw[1::2], np.concatenate(day_parts))]

    def _fd(self, day: int) -> int:
        fd = self.files.get(day)
        if fd is None:
            fd = os.open(self.mine / f"{day}.ids", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            if size % 16:  # a torn record at the end: cut it, so later records stay aligned
                os.ftruncate(fd, size - size % 16)
            self.files[day] = fd
        return fd

    # the index ---------------------------------------------------------------------------------
    def seen(self, keys: Sequence[bytes], day: int) -> set[bytes]:
        if not keys:
            return set()
        first = day - self.window_days
        with self.lock:
            fresh = self.fresh
            found = {k for k in keys if fresh.get(k, -1) >= first}
            if self.runs and len(keys) <= _SCALAR_UP_TO:
                for k in keys:
                    if k not in found and any(run.has(k, first) for run in self.runs):
                        found.add(k)
            elif self.runs:
                qhi, qlo = _halves(keys)
                for run in self.runs:
                    found |= run.found(keys, qhi, qlo, first)
        return found

    def add(self, keys: Sequence[bytes], day: int) -> None:
        if not keys:
            return
        with self.lock:
            fd = self._fd(day)
            os.write(fd, b"".join(keys))
            self.dirty.add(fd)
            fresh = self.fresh
            if day > self.today:
                self._new_day(day)
            if day == self.today:  # the usual case: no key can hold a later day
                fresh.update(dict.fromkeys(keys, day))
            else:  # an older day (a rebuild, a restart's log): never lower a key's day
                for k in keys:
                    if fresh.get(k, -1) < day:
                        fresh[k] = day
            if len(fresh) >= _MERGE_AT:
                self._merge()

    def _merge(self) -> None:
        """Fold the fresh ids into a run of their own, then merge runs of similar size."""
        hi, lo = _halves(self.fresh)
        days = np.fromiter(self.fresh.values(), dtype="<u4", count=len(self.fresh))
        self.runs.append(_Run(hi, lo, days))
        self.fresh = {}
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            b = self.runs.pop()
            self.runs[-1] = _Run.merge(self.runs[-1], b)

    def _new_day(self, day: int) -> None:
        """Once a day: drop the ids (and this shard's files) whose day left the window."""
        self.today = day
        first = day - self.window_days
        self.runs = [r for r in (run.keep_from(first) for run in self.runs) if len(r)]
        for old in [d for d in self.files if d < first]:
            fd = self.files.pop(old)
            self.dirty.discard(fd)
            os.close(fd)
        for path in self.mine.glob("*.ids"):
            if path.stem.isdigit() and int(path.stem) < first:
                path.unlink(missing_ok=True)

    def durable(self) -> None:
        with self.lock:
            fds, self.dirty = self.dirty, set()
        for fd in fds:
            os.fsync(fd)

    def complete(self) -> bool:
        return (self.dir / "complete").exists()

    def mark_complete(self) -> None:
        (self.dir / "complete").touch()
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def exclusive(self) -> Any:
        return _FileLock(self.dir / ".rebuild.lock")

    def size(self) -> int:
        with self.lock:
            return sum(len(r) for r in self.runs) + len(self.fresh)

    def memory(self) -> int:
        """Bytes held: the runs' arrays and the dict of fresh ids."""
        import sys

        with self.lock:
            fresh = sys.getsizeof(self.fresh) + sum(sys.getsizeof(k) for k in self.fresh)
            return sum(r.nbytes() for r in self.runs) + fresh

    def close(self) -> None:
        self.durable()
        with self.lock:
            for fd in self.files.values():
                os.close(fd)
            self.files = {}


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# --- cluster: Redis sets per day ------------------------------------------------------------------
# KEYS: the window's day sets, newest first; ARGV: the digests. Returns one byte per digest.
_SEEN = """
local n = #ARGV
local hit = {}
for i = 1, n do hit[i] = '0' end
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    for from = 1, n, 4000 do
      local to = math.min(from + 3999, n)
      local flags = redis.call('SMISMEMBER', key, unpack(ARGV, from, to))
      for i, f in ipairs(flags) do
        if f == 1 then hit[from + i - 1] = '1' end
      end
    end
  end
end
return table.concat(hit)
"""


class RedisIdIndex:
    def __init__(self, client: Any, key: Callable[..., str], window_days: int) -> None:
        self.r = client
        self.key = key  # builds this index's keys (``backends.redis_key``)
        self.window_days = window_days
        self._seen_script = client.register_script(_SEEN)

    def seen(self, keys: Sequence[bytes], day: int) -> set[bytes]:
        if not keys:
            return set()
        days = [self.key(d) for d in range(day, day - self.window_days - 1, -1)]
        # one string of 0/1 per batch: parsing a reply per key and day costs the client more
        # than Redis spends on the lookups
        flags = self._seen_script(keys=days, args=list(keys))
        return {k for k, hit in zip(keys, flags, strict=True) if hit == 49}  # b"1"

    def add(self, keys: Sequence[bytes], day: int) -> None:
        if not keys:
            return
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(self.key(day), *keys)
        # kept until the last day it counts for has passed
        pipe.expireat(self.key(day), (day + self.window_days + 2) * 86_400)
        pipe.execute()

    def durable(self) -> None:
        """Redis's own durability (``appendfsync always``, as the log requires)."""

    def complete(self) -> bool:
        return bool(self.r.exists(self.key("complete")))

    def mark_complete(self) -> None:
        self.r.set(self.key("complete"), 1)

    def exclusive(self) -> Any:
        return self.r.lock(self.key("rebuild-lock"), timeout=600, blocking_timeout=600)

    def size(self) -> int:
        """Ids held (every day set); a scan, for tests and the benchmark."""
        days = [k for k in self.r.scan_iter(match=self.key("*")) if k.rsplit(b":", 1)[-1].isdigit()]
        return sum(self.r.scard(k) for k in days)

    def close(self) -> None:
        """The client's pool belongs to the caller."""
