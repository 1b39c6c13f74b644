"""The core of a buffer shard, without Ray: log → ack → sessions → batch → flush.

``append`` makes records durable in the segment log and returns what the client is told;
``flush`` seals the active segment when it is due (size or age) and inserts every sealed segment,
oldest first, with the token ``<shard>:<log id>:<segment>:<table>``; a segment is deleted only after all of
its tables were inserted. The Ray actor (``eventlens.buffer.actor``) only schedules these calls.

Thread-safe: appends run on the actor's threads while one flusher thread inserts. The state lock
is never held across an insert, so a slow ClickHouse does not stall acknowledgements.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from eventlens.buffer.groups import group_book, link_rows, without_link
from eventlens.buffer.idempotency import IdIndex, day_of, first_copies, id_key, key_digest
from eventlens.buffer.profiles import ProfileBook, ProfileLoader
from eventlens.buffer.sessions import Sessionizer
from eventlens.config import Settings
from eventlens.records import TABLE_KEY, Duplicate, Record, Refused, table_of
from eventlens.storage.tables import group_by_table
from eventlens.storage.wal import Fenced, Segment, SegmentLog
from eventlens.storage.writer import Writer

log = logging.getLogger(__name__)

RECENT_IDS = 200_000
# Records of sealed segments kept in memory so a flush need not re-read and decode its own log;
# beyond this many (storage down, backlog growing) flushes read the segment back from the log.
CACHE_RECORDS = 150_000


class Overloaded(Exception):
    """The log holds as many unflushed records as it may; the client should retry later."""

    def __init__(self, pending: int, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{pending} events waiting for storage (limit {limit})")
        self.retry_after_s = retry_after_s


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class BufferConfig:
    """A shard's bounds; the defaults are the settings' (``BufferConfig.from_settings``)."""

    shard_id: str
    index: int = 0
    flush_max_events: int = _default("flush_max_events")
    flush_max_age_ms: int = _default("flush_max_age_ms")
    max_pending: int = _default("wal_max_pending_events")
    session_timeout_ms: int = _default("session_timeout_s") * 1000
    late_bound_ms: int = _default("late_event_bound_s") * 1000
    live_window_ms: int = _default("live_window_s") * 1000
    # inserts in flight at once: with 2, one table's insert body is built while the previous insert
    # runs in ClickHouse (the flush is otherwise a serial encode → wait → encode chain)
    insert_threads: int = _default("flush_insert_threads")

    @classmethod
    def from_settings(cls, s: Settings, index: int) -> BufferConfig:
        return cls(
            shard_id=f"{s.instance}-{index}",
            index=index,
            flush_max_events=s.flush_max_events,
            flush_max_age_ms=s.flush_max_age_ms,
            max_pending=s.wal_max_pending_events,
            session_timeout_ms=s.session_timeout_s * 1000,
            late_bound_ms=s.late_event_bound_s * 1000,
            live_window_ms=s.live_window_s * 1000,
            insert_threads=s.flush_insert_threads,
        )


def now_ms() -> int:
    return int(time.time() * 1000)


class FlushObserver(Protocol):
    """What a flush reports (``eventlens.metrics.ShardMetrics`` in the actor)."""

    def inserted(self, table: str, rows: int, seconds: float) -> None:
        """One table's insert of one segment succeeded."""

    def stored(self, lag_s: float) -> None:
        """A segment is stored in every table, ``lag_s`` after its oldest record was logged."""


class _Unobserved:
    def inserted(self, table: str, rows: int, seconds: float) -> None:
        pass

    def stored(self, lag_s: float) -> None:
        pass


class BufferCore:
    def __init__(
        self,
        config: BufferConfig,
        wal: SegmentLog,
        writer: Writer,
        open_sessions: Callable[[int], list[dict[str, Any]]] | None = None,
        load_profile: ProfileLoader | None = None,
        observer: FlushObserver | None = None,
        client_ids: Callable[[], list[dict[str, Any]]] | None = None,
        ids: IdIndex | None = None,
        load_group: ProfileLoader | None = None,
    ) -> None:
        self.config = config
        # the idempotency window (``buffer/idempotency.py``): ids stored within it are dropped.
        # Without one, only the recent ids in memory and the log are recognised.
        self.ids = ids
        self.unindexed: list[tuple[int, list[bytes]]] = []  # logged, not yet added (an add failed)
        self.observer: FlushObserver = observer or _Unobserved()
        self.profiles = ProfileBook(load_profile, RECENT_IDS // 4)
        self.groups = group_book(load_group, RECENT_IDS // 4)
        # Reads back the newest ``sessions`` rows of the still-open sessions this shard owns and
        # of those that ended recently enough for an event to continue them: the state every
        # flushed segment left behind (see ``recover``). Its argument: the earliest arrival time
        # the replay of the log decides at (sessions that ended before it can matter).
        self.open_sessions = open_sessions
        # Reads back the recently stored client session ids of this shard (``recovery.client_ids_loader``),
        # so a client id reused after a restart gets a new stored id (see sessions.py).
        self.client_ids = client_ids
        self.wal = wal
        self.writer = writer
        self.sessions = Sessionizer(config.session_timeout_ms, config.late_bound_ms)
        self.sealed: deque[Segment] = deque()
        self.active_count = 0
        self.active_since_ms = 0
        self.active_records: list[Record] = []
        self.cache: dict[int, list[Record]] = {}
        self.cached = 0
        # per sealed segment: when its oldest record was logged (ms), for the ack → stored lag;
        # unknown for segments replayed from the log
        self.opened_ms: dict[int, int] = {}
        self.recent: OrderedDict[str, dict[str, str]] = OrderedDict()
        self.presence: list[tuple[str, str, int]] = []
        self.stats = {"appended": 0, "duplicates": 0, "flushed": 0, "flush_errors": 0, "replayed": 0}
        self.last_error = ""
        # set once the log refused a write because another owner took it over: for good
        self.fenced: Fenced | None = None
        self.lock = threading.RLock()
        self.flush_lock = threading.Lock()
        self.pool = (
            ThreadPoolExecutor(config.insert_threads, thread_name_prefix="insert")
            if config.insert_threads > 1
            else None
        )

    # recovery --------------------------------------------------------------------------------
    def recover(self) -> int:
        """Queue every segment left in the log for flushing; rebuild recent ids, sessions, profiles.

        Live (and recently ended) sessions come back in two steps: the newest ``sessions`` rows in
        ClickHouse hold the state as of the last flushed segment (each segment carries snapshots
        of the sessions it changed), then the records of the segments still in the log are
        replayed on top.
        """
        segments = self.wal.recover()
        for row in reversed(self.client_ids() if self.client_ids is not None else []):  # oldest first
            self.sessions.note_stored(row["project_id"], row["session_id"])
        # the oldest segment holds the earliest arrivals: a logged event may continue a session
        # that ended (and was stored) long before this restart, but not long before its arrival
        first = self.wal.read(segments[0].number) if segments else []
        decided_since = min((int(r["received_at"]) for r in first if r.get("received_at")), default=now_ms())
        stored = self.open_sessions(min(decided_since, now_ms())) if self.open_sessions is not None else []
        self.sessions.restore(stored)
        stored_version = {r["session_id"]: int(r["version"]) for r in stored}
        by_day: dict[int, list[bytes]] = {}  # the logged event ids, for the index
        for seg in segments:
            self.sealed.append(seg)
            records = first if seg is segments[0] else self.wal.read(seg.number)
            # a segment whose sessions rows already reached storage is counted in the restored
            # state: replaying its events again would count them twice
            counted = {
                r["session_id"]
                for r in records
                if table_of(r) == "sessions" and stored_version.get(r["session_id"], -1) >= int(r["version"])
            }
            for rec in records:
                table = table_of(rec)
                if (
                    table == "events"
                    and rec.get("name") not in ("session_start", "session_end")
                    and f"{rec['project_id']}\x00{rec['id']}" in self.recent
                ):
                    # logged twice: a write whose outcome was unknown (rolled back, yet written)
                    # and its retry, with the same ids (see sessions.server_session_id): count once
                    continue
                if rec.get("session_id") not in counted:
                    self.sessions.replay(rec)
                if table == "profiles":
                    self.profiles.remember(rec)
                elif table == "groups":
                    self.groups.remember(rec)
                elif table == "events" and rec.get("name") not in ("session_start", "session_end"):
                    self._remember(rec)
                    if self.ids is not None:
                        at = int(rec.get("received_at") or rec["created_at"])
                        by_day.setdefault(day_of(at), []).append(id_key(rec["project_id"], rec["id"]))
        if self.ids is not None:
            # an id logged just before a crash may not have reached the index
            for day, keys in by_day.items():
                self.ids.add(keys, day)
            self.ids.durable()
        replayed = sum(s.count for s in segments)
        self.stats["replayed"] += replayed
        return replayed

    # the hot path ----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self.active_count + sum(s.count for s in self.sealed)

    def _remember(self, rec: Record) -> dict[str, str]:
        result = {"deviceId": rec.get("device_id", ""), "sessionId": rec.get("session_id", "")}
        key = f"{rec['project_id']}\x00{rec['id']}"
        self.recent[key] = result
        if len(self.recent) > RECENT_IDS:
            self.recent.popitem(last=False)
        return result

    def append(self, records: Sequence[Record], now: int | None = None) -> list[dict[str, str]]:
        """Durably log ``records``; returns per record what the client is told.

        The shard's state (sessions, profiles, recent ids, presence) takes the records only once
        the log holds them: a write that fails changes nothing, so the client's retry is counted
        once. "Holds" means ``write`` returned: the records are in the log every later read, flush
        and replay of this process sees. A ``sync`` that then fails (fsync error) is raised, so the
        client is not acknowledged and retries; the records stay in the state because they stay
        in the log, and the retry is recognised by its ids and answered once a sync succeeds.
        The records passed in are filled in (session and device ids) and not reusable for a retry.

        Raises ``Fenced`` (nothing logged, nothing to acknowledge) once the log has a newer owner.
        """
        forgotten: list[tuple[str, str, Duplicate]] = []
        with self.lock:
            if self.fenced is not None:
                raise self.fenced
            try:
                results, ticket = self._append(records, now_ms() if now is None else now, forgotten)
            except Fenced as exc:
                self.fenced = exc
                raise
        self.wal.sync(ticket)  # outside the lock: concurrent appends share one fsync
        if forgotten:
            self._answer_forgotten(forgotten)
        return results

    def _answer_forgotten(self, forgotten: list[tuple[str, str, Duplicate]]) -> None:
        """Retries the id index recognised but the shard no longer remembered (their first copy
        was stored before a restart, or left the recent ids): answered with the first copy's
        device and session as stored, read in one query outside the lock. Should storage not
        answer, they keep the device's id and current session."""
        try:
            found = first_copies(self.writer.query, ((p, i) for p, i, _ in forgotten))
        except Exception as exc:
            log.warning("shard %s: cannot read the first copies of retries (%s)", self.config.shard_id, exc)
            return
        remembered: list[tuple[str, dict[str, str]]] = []
        for project, ident, answer in forgotten:
            first = found.get((project, ident))
            if first is not None:
                answer.update(first)
                remembered.append((f"{project}\x00{ident}", first))
        with self.lock:  # a further retry is answered from memory
            for key, first in remembered:
                self.recent[key] = first
                if len(self.recent) > RECENT_IDS:
                    self.recent.popitem(last=False)

    def _replay(self, rec: Record) -> dict[str, str]:
        """A replay chunk joins the visit it recorded (unless the client named one); without one
        it is refused: a recording is only ever played as part of a session."""
        prev = rec.pop("_prev_device", "")
        if not rec["session_id"]:
            rec["session_id"] = self.sessions.visit_of(
                rec["project_id"], rec["device_id"], prev, rec["started_at"]
            )
        if not rec["session_id"]:
            return Refused(
                error="no_session",
                message="no visit of this device is in progress: track an event (a screen_view) "
                "before sending its replay chunks",
            )
        return {"sessionId": rec["session_id"], "deviceId": rec["device_id"]}

    def _append(
        self, records: Sequence[Record], now: int, forgotten: list[tuple[str, str, Duplicate]]
    ) -> tuple[list[dict[str, str]], int]:
        if self.pending + len(records) > self.config.max_pending:
            raise Overloaded(self.pending, self.config.max_pending, retry_after_s=5)
        to_log: list[Record] = []
        results: list[dict[str, str]] = []
        fresh: list[Record] = []
        # ids first seen in this call: a retry racing its original can share one (coalesced) call
        in_call: dict[str, dict[str, str]] = {}
        # profiles (and groups) merged by this call, remembered once the log holds them
        merged: dict[tuple[str, str], Record] = {}
        merged_groups: dict[tuple[str, str], Record] = {}
        duplicates = 0
        day = day_of(now)
        digests, stored = self._stored(records, day)
        fresh_digests: list[bytes] = []
        self.sessions.begin()
        try:
            for rec in records:
                table = table_of(rec)
                if table == "replays":
                    results.append(self._replay(rec))
                    if not isinstance(results[-1], Refused):
                        to_log.append(rec)
                    continue
                if table != "events":
                    if table == "profiles":
                        to_log.append(self.profiles.merge(rec, merged))
                    elif table == "groups":
                        to_log.append(self.groups.merge(without_link(rec), merged_groups))
                        to_log.extend(link_rows(rec))
                    elif table == "profile_groups":
                        to_log.extend(link_rows(rec))  # the message itself is not a row
                    else:
                        to_log.append(rec)
                    results.append({})
                    continue
                key = f"{rec['project_id']}\x00{rec['id']}"
                seen = self.recent.get(key) or in_call.get(key)
                if seen is None and stored and digests.get(key) in stored:
                    # stored within the window, no longer in memory: answered with the first copy's
                    # device and session read back from storage once the call is logged (see
                    # ``_answer_forgotten``), else with the device's id and its live session
                    live = self.sessions.live.get((rec["project_id"], rec["device_id"]))
                    answer = Duplicate(
                        {"deviceId": rec["device_id"], "sessionId": live.session_id if live else ""}
                    )
                    forgotten.append((rec["project_id"], rec["id"], answer))
                    duplicates += 1
                    results.append(answer)
                    continue
                if seen is not None:  # a retried event: already logged, answer as the first time
                    duplicates += 1
                    results.append(Duplicate(seen))
                    continue
                to_log.extend(self.sessions.assign(rec, now))
                to_log.append(rec)
                fresh.append(rec)
                if digests:
                    fresh_digests.append(digests[key])
                in_call[key] = {"deviceId": rec["device_id"], "sessionId": rec["session_id"]}
                results.append(in_call[key])
            # written now, durable once ``sync(ticket)`` returns (before the caller is answered); a
            # retried duplicate waits for the same ticket, so it is never answered before its original
            ticket = self.wal.write(to_log)
        except BaseException:
            self.sessions.rollback()  # the log does not hold them: as if this call never came
            raise
        self.sessions.commit()
        self.profiles.remember_all(merged.values())
        self.groups.remember_all(merged_groups.values())
        self.stats["duplicates"] += duplicates
        if fresh_digests:
            self._index(day, fresh_digests)
        live_after = now - self.config.live_window_ms
        for rec in fresh:
            self._remember(rec)
            # bots are stored and counted where asked for, but they are never "online now"
            if rec["created_at"] >= live_after and not rec.get("is_bot"):
                self.presence.append((rec["project_id"], rec["device_id"], rec["created_at"]))
        if to_log:
            if not self.active_count:
                self.active_since_ms = now
            self.active_count += len(to_log)
            self.active_records.extend(to_log)
            self.stats["appended"] += len(to_log)
            if self.active_count >= self.config.flush_max_events:
                # sealed now, not when the flusher next looks: a busy flusher must not let the
                # active segment grow past the size its insert (and the record cache) is made for
                try:
                    self.seal(now)
                except Fenced:
                    raise
                except Exception as exc:  # these records are logged: the flusher seals later
                    self.last_error = f"seal failed: {type(exc).__name__}: {exc}"[:500]
                    log.warning("shard %s: %s", self.config.shard_id, self.last_error)
        return results, ticket

    def _stored(self, records: Sequence[Record], day: int) -> tuple[dict[str, bytes], set[bytes]]:
        """The digests of this call's event ids not in memory (keyed like ``recent``), and those
        the index holds."""
        if self.ids is None:
            return {}, set()
        digests: dict[str, bytes] = {}
        recent = self.recent
        digest = key_digest
        for rec in records:
            if rec.get(TABLE_KEY, "events") == "events":
                key = f"{rec['project_id']}\x00{rec['id']}"
                if key not in recent and key not in digests:
                    digests[key] = digest(key)
        return digests, self.ids.seen(list(digests.values()), day) if digests else set()

    def _index(self, day: int, keys: list[bytes]) -> None:
        """Add logged ids to the index; one that fails is retried before the next segment is
        deleted (until then the log holds the event, and a restart adds it again)."""
        assert self.ids is not None
        try:
            self.ids.add(keys, day)
        except Exception as exc:
            self.unindexed.append((day, keys))
            self.last_error = f"id index add failed: {type(exc).__name__}: {exc}"[:500]
            log.warning("shard %s: %s", self.config.shard_id, self.last_error)

    def _index_durable(self) -> None:
        """Before a flushed segment leaves the log: every id it held is in the index, durably."""
        if self.ids is None:
            return
        with self.lock:
            retry, self.unindexed = self.unindexed, []
        try:
            for day, keys in retry:
                self.ids.add(keys, day)
            self.ids.durable()
        except BaseException:
            with self.lock:
                self.unindexed[:0] = retry
            raise

    def expire_sessions(self, now: int | None = None) -> int:
        """Log ``session_end`` for idle sessions; they leave the live state once logged."""
        now = now_ms() if now is None else now
        with self.lock:
            self.sessions.begin()
            try:
                markers = self.sessions.expire(now)
                if markers:
                    ticket = self.wal.write(markers)
            except BaseException:
                self.sessions.rollback()
                raise
            self.sessions.commit()
            if markers:
                if not self.active_count:
                    self.active_since_ms = now
                self.active_count += len(markers)
                self.active_records.extend(markers)
        if markers:
            self.wal.sync(ticket)
        return len(markers)

    def live_session(
        self, project: str, device_id: str, prev_device: str = "", now: int | None = None
    ) -> dict[str, str]:
        """``{deviceId, sessionId}`` of the device's live session (``GET /track/device-id``): what
        the next event of the device would be answered with; ``sessionId`` is ``""`` when none
        is live. Reads state only, logs nothing."""
        now = now_ms() if now is None else now
        with self.lock:
            device, session = self.sessions.current(project, device_id, prev_device, now)
        return {"deviceId": device, "sessionId": session}

    def take_presence(self) -> list[tuple[str, str, int]]:
        with self.lock:
            out, self.presence = self.presence, []
        return out

    # flushing --------------------------------------------------------------------------------
    def due(self, now: int | None = None) -> bool:
        now = now_ms() if now is None else now
        if self.sealed:
            return True
        return self.active_count > 0 and (
            self.active_count >= self.config.flush_max_events
            or now - self.active_since_ms >= self.config.flush_max_age_ms
        )

    def seal(self, now: int | None = None) -> None:
        # every segment carries complete snapshots of the sessions it changed (see sessions.py)
        # The sessions are marked written only once the log holds their rows: a failed write leaves
        # them changed, so the next seal writes them (a complete state, at a higher version). As in
        # ``append``, a failed sync after the write leaves them logged; the segment is not sealed.
        now = now_ms() if now is None else now
        rows, written = self.sessions.draft_snapshots(now)
        if rows:
            for row in rows:
                row["shard"] = self.config.index
            ticket = self.wal.write(rows)
            written()
            if not self.active_count:
                self.active_since_ms = now
            self.active_count += len(rows)
            self.active_records.extend(rows)
            self.wal.sync(ticket)
        seg = self.wal.seal()
        if seg is not None:
            self.sealed.append(seg)
            self.opened_ms[seg.number] = self.active_since_ms
            self.active_count = 0
            if self.cached + seg.count <= CACHE_RECORDS:
                self.cache[seg.number] = self.active_records
                self.cached += seg.count
            self.active_records = []

    def flush(self, force: bool = False) -> int:
        """Insert sealed segments (sealing the active one if due); raises if storage fails.

        Segments are inserted oldest first and deleted in that order once all their tables are in.
        With ``insert_threads`` > 1 the inserts of a segment's tables and of the next segment overlap;
        order does not matter for correctness: each insert has its own token, and every segment's
        session snapshots are complete states (see ``recover``).
        """
        with self.flush_lock:
            with self.lock:
                if force or self.due():
                    self.seal()
                segments = list(self.sealed)
            flushed = 0
            in_flight: deque[tuple[Segment, list[Future[Any]]]] = deque()
            try:
                overlap = 1 if self.pool is not None else 0  # segments left in flight
                for seg in segments:
                    in_flight.append((seg, self._insert_segment(seg)))
                    while len(in_flight) > overlap:
                        flushed += self._finish(*in_flight.popleft())
                while in_flight:
                    flushed += self._finish(*in_flight.popleft())
            finally:
                for _, futures in in_flight:  # a failure: let the others end before returning
                    for fut in futures:
                        fut.exception()
            return flushed

    def _insert_segment(self, seg: Segment) -> list[Future[Any]]:
        with self.lock:
            records = self.cache.get(seg.number)
        if records is None:
            records = self.wal.read(seg.number)  # a sealed segment is immutable
        futures: list[Future[Any]] = []
        for table, rows in sorted(group_by_table(records).items()):
            token = f"{self.config.shard_id}:{self.wal.log_id}:{seg.number}:{table}"
            if self.pool is not None:
                futures.append(self.pool.submit(self._insert, table, rows, token))
            else:
                fut: Future[Any] = Future()
                fut.set_result(self._insert(table, rows, token))  # raises here: nothing later starts
                futures.append(fut)
        return futures

    def _insert(self, table: str, rows: list[Record], token: str) -> Any:
        t0 = time.perf_counter()
        result = self.writer.insert(table, rows, token)
        self.observer.inserted(table, len(rows), time.perf_counter() - t0)
        return result

    def _finish(self, seg: Segment, futures: list[Future[Any]]) -> int:
        errors = [exc for exc in (fut.exception() for fut in futures) if exc is not None]
        if errors:
            raise errors[0]
        self._index_durable()
        with self.lock:
            self.wal.delete(seg.number)
            self.sealed.remove(seg)
            if self.cache.pop(seg.number, None) is not None:
                self.cached -= seg.count
            self.stats["flushed"] += seg.count
            opened = self.opened_ms.pop(seg.number, None)
        if opened is not None:
            self.observer.stored((now_ms() - opened) / 1000)
        return seg.count

    def close(self) -> None:
        """After the last flush: stop the insert threads and close the log."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.wal.close()
        if self.ids is not None:
            self.ids.close()

    def describe(self) -> dict[str, Any]:
        return {
            "shard": self.config.shard_id,
            "pending": self.pending,
            "sealed_segments": len(self.sealed),
            "live_sessions": len(self.sessions.live),
            "last_error": self.last_error,
            "fenced": self.fenced is not None,
            **self.stats,
        }
