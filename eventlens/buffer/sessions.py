"""Session assignment per device: a run of events with gaps under the timeout.

Pure state machine owned by the shard that owns the device:
- ``assign`` fills an event's ``session_id`` and returns the marker records to store with it
  (``session_start`` when a session opens, ``session_end`` for the one it replaces);
- ``expire`` closes sessions idle for the timeout (``session_end`` plus a final snapshot);
- ``snapshots`` returns a ``sessions`` row for every session that changed since the last call.
  The ``sessions`` table is a ReplacingMergeTree on ``version``: the newest snapshot of a session
  replaces the older ones, and ``FINAL`` (or ``argMax(…, version)``) reads exactly the newest, so a
  session that is still growing is exact at every flush. Each row is a complete state, never a
  delta, so there is nothing to cancel and no sign/version race as with VersionedCollapsingMergeTree.
- ``state``/``restore`` checkpoint live sessions so a restarted shard continues them.

Changes are undoable until the log holds their records: ``begin`` opens a change, ``assign`` and
``expire`` save the first state of every session they touch, ``rollback`` puts those states back
(the log refused the records) and ``commit`` forgets them (the log holds the records).
``draft_snapshots`` returns the rows without marking anything written; its ``written`` callback
marks them once they are logged. A failed log write so leaves the sessions exactly as they were.

A live session ends by the wall clock, once no event came for the timeout. An event that arrives
after that but whose own time falls inside the ended visit (under the timeout from it, as if the
session were live) continues it: an SDK's offline queue sent one request at a time, with past
timestamps, is one visit, not one per request. The ended session is written again (closed) with the
event; its ``session_end`` marker is not repeated. The shard remembers each device's last ended
session while an event could still continue it (``ended``: until the late bound plus the timeout),
and the one before it (``before``): an event older than the start of the device's last visit, live
or ended, continues the visit before if it falls inside it, else it is stored like a late event.
A restarted shard reads these back from storage (``restore``: the recently closed rows) and its
log's replay takes the same decisions as ``assign`` (``replay``).

A client ``sessionId`` names a visit: events carrying it continue the live session opened with it
while the gaps stay under the timeout, like server-assigned sessions. Reused after the timeout (the
visit ended), it opens a new stored session ``<client id>~2`` (then ``~3``, …): the ``sessions``
table is keyed by (project, day opened, session id), so reusing the id itself would replace the first
visit's row. The shard remembers the ordinals of recent client ids (``CLIENT_IDS``), rebuilt on
restart from the client ids stored in the last days (``recovery.CLIENT_ID_DAYS``, read back with
``note_stored``), the open sessions and the log.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uuid_utils

from eventlens.records import ENTRY_FIELDS, PAGE_VIEWS, TABLE_KEY, Record, table_of

_ENTRY_DEFAULTS: Record = dict.fromkeys(ENTRY_FIELDS, "")
# client session ids whose last stored ordinal a shard remembers (LRU), so a reuse gets a new one
CLIENT_IDS = 200_000
_REUSED = re.compile(r"(.*)~([0-9]{1,6})")


def server_session_id(event: Record) -> str:
    """The id the shard gives a session (or a late event) the client named none for: a uuid7 whose
    time is the event's and whose other bits hash (project, device, event id). Deterministic, so a
    log write whose outcome was unknown (a lost Redis reply: rolled back, yet written) and its retry
    log the same ids, which collapse in storage, instead of two sessions for one event."""
    if not event.get("id"):
        return str(uuid_utils.uuid7())
    key = f"{event['project_id']}\x00{event['device_id']}\x00{event['id']}".encode()
    raw = bytearray(int(event["created_at"]).to_bytes(8, "big", signed=True)[2:])
    raw += hashlib.blake2b(key, digest_size=10).digest()
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(raw)))


def client_base(session_id: str) -> tuple[str, int]:
    """The client id a stored session id was made from, and its ordinal (``abc~2`` → abc, 2)."""
    m = _REUSED.fullmatch(session_id)
    if m is None:
        return session_id, 1
    return m.group(1), int(m.group(2))


@dataclass
class Session:
    session_id: str
    started_ms: int
    last_ms: int
    first: Record  # the entry fields (a subset of ENTRY_FIELDS, in that order) of the opening event
    entry_path: str = ""
    exit_path: str = ""
    profile_id: str = ""
    page_views: int = 0
    events: int = 0
    version: int = 0
    dirty: bool = True
    entry_ms: int | None = None  # time of the page view that gave entry_path
    exit_ms: int | None = None
    opened_ms: int = 0  # the opening event's time: fixed, so it can key the sessions table
    client_sid: str = ""  # the client's id it was opened with ("" for server ids)

    def __post_init__(self) -> None:
        if not self.opened_ms:
            self.opened_ms = self.started_ms

    def add(self, event: Record) -> None:
        ts = event["created_at"]
        name = event.get("name", "")
        if name in PAGE_VIEWS:
            self.page_views += 1
            if event.get("path"):
                if self.entry_ms is None or ts < self.entry_ms:
                    self.entry_path, self.entry_ms = event["path"], ts
                if self.exit_ms is None or ts >= self.exit_ms:
                    self.exit_path, self.exit_ms = event["path"], ts
        self.events += 1
        if event.get("profile_id"):
            self.profile_id = event["profile_id"]
        self.started_ms = min(self.started_ms, ts)
        self.last_ms = max(self.last_ms, ts)
        self.dirty = True


def marker(name: str, session: Session, at_ms: int, now_ms: int) -> Record:
    rec: Record = dict(session.first)  # entry fields only (see Session.first)
    rec.update(
        {
            TABLE_KEY: "events",
            # deterministic ids: a replayed or repeated marker collapses onto the first one
            "id": f"{session.session_id}:{'s' if name == 'session_start' else 'e'}",
            "name": name,
            "session_id": session.session_id,
            "profile_id": session.profile_id,
            "path": session.entry_path if name == "session_start" else session.exit_path,
            # every events column present: the flush's column building takes its fast path
            "title": "",
            "properties": {},
            "created_at": at_ms,
            "received_at": now_ms,
        }
    )
    return rec


def snapshot(session: Session, now_ms: int, closed: bool) -> Record:
    """The session's complete row at a version above its last one (not recorded in the session:
    ``Sessionizer.draft_snapshots``' callback does that once the row is logged)."""
    version = max(session.version + 1, now_ms)
    bounce = session.page_views <= 1 and session.events == session.page_views
    # ``first`` holds entry fields only, in ENTRY_FIELDS order: two C-level merges, no Python loop
    row: Record = {**_ENTRY_DEFAULTS, **session.first}
    row.update(
        {
            TABLE_KEY: "sessions",
            "session_id": session.session_id,
            "profile_id": session.profile_id,
            "opened_at": session.opened_ms,
            "started_at": session.started_ms,
            "ended_at": session.last_ms,
            "duration": (session.last_ms - session.started_ms) / 1000,
            "entry_path": session.entry_path,
            "exit_path": session.exit_path,
            # when the entry and exit page views happened: a restarted shard needs them to place a
            # page view arriving out of order (0: no page view with a path)
            "entry_at": session.entry_ms or 0,
            "exit_at": session.exit_ms or 0,
            "page_views": session.page_views,
            "events": session.events,
            "is_bounce": 1 if bounce else 0,
            "is_closed": 1 if closed else 0,
            "version": version,
        }
    )
    row["is_bot"] = int(session.first.get("is_bot", 0) or 0)
    return row


class Sessionizer:
    def __init__(self, timeout_ms: int, late_bound_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.late_bound_ms = late_bound_ms
        self.live: dict[tuple[str, str], Session] = {}
        self.closed: list[Session] = []  # ended (or continued after ending) since the last snapshots()
        # each device's last ended session, while a (not late) event could still continue it
        self.ended: dict[tuple[str, str], Session] = {}
        # the session each device had before its last ended one: an event older than the device's
        # last visit continues the visit before it, whether or not the clock ended the last one
        self.before: dict[tuple[str, str], Session] = {}
        # (project, client session id) → the ordinal of its newest stored session (1: the id itself)
        self.client_ids: OrderedDict[tuple[str, str], int] = OrderedDict()
        # an open change (``begin``): every touch, in order, as (key, the session at ``live[key]``
        # (or, for an ended one, ``ended[key]``) before it or None, that session's changing fields
        # before it, whether it was live); rolled back in reverse
        self._undo: list[tuple[tuple[str, str], Session | None, tuple[Any, ...] | None, bool]] | None = None
        self._closed_mark = 0
        self._ended_undo: list[tuple[tuple[str, str], Session | None, Session | None]] = []
        self._ids_undo: dict[tuple[str, str], int | None] = {}

    # changes -----------------------------------------------------------------------------------
    def begin(self) -> None:
        """Open a change: what ``assign``/``expire`` do until ``commit`` can be rolled back."""
        self._undo = []
        self._ids_undo = {}
        self._ended_undo = []
        self._closed_mark = len(self.closed)

    def commit(self) -> None:
        self._undo = None
        self._ids_undo = {}
        self._ended_undo = []

    def rollback(self) -> None:
        """Put back every session (and client-id ordinal) as it was at ``begin``."""
        undo = self._undo
        if undo is None:
            return
        for key, session, fields, was_live in reversed(undo):
            if session is None:
                self.live.pop(key, None)
                continue
            (
                session.page_views,
                session.events,
                session.entry_path,
                session.entry_ms,
                session.exit_path,
                session.exit_ms,
                session.profile_id,
                session.started_ms,
                session.last_ms,
                session.dirty,
            ) = fields  # type: ignore[misc]
            if was_live:
                self.live[key] = session
        for key, ended, before in reversed(self._ended_undo):
            for mapping, session in ((self.ended, ended), (self.before, before)):
                if session is None:
                    mapping.pop(key, None)
                else:
                    mapping[key] = session
        del self.closed[self._closed_mark :]
        for cid, n in self._ids_undo.items():
            if n is None:
                self.client_ids.pop(cid, None)
            else:
                self.client_ids[cid] = n
        self.commit()

    def _save(self, key: tuple[str, str], session: Session | None, live: bool = True) -> None:
        """Before ``live[key]`` or ``session`` changes: note what they were (the fields ``add`` and
        ``_end`` change; the others never change in a change)."""
        undo = self._undo
        if undo is not None:
            undo.append(
                (
                    key,
                    session,
                    None
                    if session is None
                    else (
                        session.page_views,
                        session.events,
                        session.entry_path,
                        session.entry_ms,
                        session.exit_path,
                        session.exit_ms,
                        session.profile_id,
                        session.started_ms,
                        session.last_ms,
                        session.dirty,
                    ),
                    live,
                )
            )

    def _continues(self, session: Session, ts: int, client_sid: str) -> bool:
        if client_sid and client_sid != session.client_sid and client_sid != session.session_id:
            return False
        return ts - session.last_ms < self.timeout_ms and session.started_ms - ts < self.timeout_ms

    def _stored_id(self, project: str, client_sid: str) -> str:
        """The id a new session opened with ``client_sid`` is stored under: the id itself the first
        time, ``<id>~<n>`` when the client reuses it for a later visit."""
        key = (project, client_sid)
        prev = self.client_ids.get(key)
        if self._undo is not None and key not in self._ids_undo:
            self._ids_undo[key] = prev
        n = 1 if prev is None else prev + 1
        self._note_client_id(key, n)
        return client_sid if n == 1 else f"{client_sid}~{n}"

    def _note_client_id(self, key: tuple[str, str], n: int) -> None:
        if self.client_ids.get(key, 0) < n:
            self.client_ids[key] = n
        self.client_ids.move_to_end(key)
        if len(self.client_ids) > CLIENT_IDS:
            self.client_ids.popitem(last=False)

    def note_stored(self, project: str, session_id: str) -> str:
        """A stored session id read back (storage, the log): remember its client id's ordinal, so
        a reuse of the client id gets the next one. Returns the client id."""
        base, n = client_base(session_id)
        self._note_client_id((project, base), n)
        return base

    def _remember_stored(self, project: str, session: Session) -> None:
        session.client_sid = self.note_stored(project, session.session_id)

    def assign(self, event: Record, now_ms: int) -> list[Record]:
        """Fill ``event["session_id"]``; returns marker records to store alongside it."""
        project = event["project_id"]
        ts = event["created_at"]
        client_sid = event.get("session_id") or ""
        prev_device = event.pop("_prev_device", "")
        if ts < now_ms - self.late_bound_ms:
            # Late: stored with its own time, never opens or extends a live session.
            if not client_sid:
                event["session_id"] = server_session_id(event)
            return []
        key = (project, event["device_id"])
        current = self.live.get(key)
        if current is None and prev_device:
            # A visit that began before the salt rotated keeps its device id (and session).
            old = self.live.get((project, prev_device))
            if old is not None and self._continues(old, ts, client_sid):
                event["device_id"] = prev_device
                key, current = (project, prev_device), old
        markers: list[Record] = []
        if current is not None and self._continues(current, ts, client_sid):
            self._save(key, current)
            current.add(event)
            event["session_id"] = current.session_id
            return []
        older, ended = self._ended_home(key, current, ts, client_sid)
        if ended is not None:
            # inside a visit that already ended: continue it (written again, still closed)
            self._save(key, ended, live=False)
            if not ended.dirty:  # not already waiting in ``closed`` for its row
                self.closed.append(ended)
            ended.add(event)
            event["session_id"] = ended.session_id
            return []
        if older:
            # Older than the device's last visit (by more than the timeout, or of another client
            # session), and not of the visit before: an offline queue flushed while the device is
            # active (or was until the clock ended its visit). Stored with its own time like a late
            # event; ending the live visit for it would split the visit.
            if not client_sid:
                event["session_id"] = server_session_id(event)
            return []
        if current is not None:
            markers.append(self._end(key, current, now_ms))
        else:
            self._save(key, None)
        sid = self._stored_id(project, client_sid) if client_sid else server_session_id(event)
        event["session_id"] = sid
        session = Session(sid, ts, ts, {k: event[k] for k in ENTRY_FIELDS if k in event})
        session.client_sid = client_sid
        session.add(event)
        self.live[key] = session
        markers.append(marker("session_start", session, ts, now_ms))
        return markers

    def _ended_home(
        self, key: tuple[str, str], current: Session | None, ts: int, client_sid: str
    ) -> tuple[bool, Session | None]:
        """For an event (at ``ts``) that does not continue the live session ``current``: whether it
        is older than the start of the device's last visit (live or ended), and the ended session
        it continues (``None``: none). The last visit if the clock ended it, else, for an event
        older than the last visit, the visit before it (which the last one ended)."""
        ended = self.ended.get(key)
        if current is None:
            if ended is None:
                return False, None
            if self._continues(ended, ts, client_sid):
                return False, ended
            last, before = ended, self.before.get(key)
        else:
            last, before = current, ended
        if ts >= last.started_ms:
            return False, None
        if before is not None and self._continues(before, ts, client_sid):
            return True, before
        return True, None

    def current(self, project: str, device_id: str, prev_device: str, now_ms: int) -> tuple[str, str]:
        """(device id, session id) an event of the device at ``now_ms`` without a client session id
        would be answered with, when it continues a live session: the device's own, else (the
        salt rotated) the one opened under its previous id, as ``assign`` picks; else the device
        id and ``""`` (the event would open a new session)."""
        current = self.live.get((project, device_id))
        if current is None and prev_device:
            old = self.live.get((project, prev_device))
            if old is not None and self._continues(old, now_ms, ""):
                return prev_device, old.session_id
        if current is not None and self._continues(current, now_ms, ""):
            return device_id, current.session_id
        return device_id, ""

    def visit_of(self, project: str, device_id: str, prev_device: str, ts: int) -> str:
        """The session a replay chunk of the device recorded at ``ts`` belongs to: the visit in
        progress (the device's own, else, the salt rotated, the one under its previous id), else
        its last ended visit when ``ts`` falls inside it (within the timeout); ``""`` when none."""
        for device in (device_id, prev_device):
            live = self.live.get((project, device)) if device else None
            if live is not None:
                return live.session_id
        ended = self.ended.get((project, device_id))
        if ended is not None and ended.started_ms - self.timeout_ms < ts < ended.last_ms + self.timeout_ms:
            return ended.session_id
        return ""

    def _end(self, key: tuple[str, str], session: Session, now_ms: int) -> Record:
        self._save(key, session)
        self._retire(key, session)
        return marker("session_end", session, session.last_ms, now_ms)

    def _retire(self, key: tuple[str, str], session: Session) -> None:
        """The live ``session`` ended: it becomes the device's last ended one (its closed row is
        written by the next snapshots), the one ended before it the visit before."""
        del self.live[key]
        session.dirty = True
        self.closed.append(session)
        previous = self.ended.get(key)
        if self._undo is not None:
            self._ended_undo.append((key, previous, self.before.get(key)))
        if previous is None:
            self.before.pop(key, None)
        else:
            self.before[key] = previous
        self.ended[key] = session

    def expire(self, now_ms: int) -> list[Record]:
        """``session_end`` for every session idle past the timeout, and forget them."""
        markers = [
            self._end(key, s, now_ms)
            for key, s in list(self.live.items())
            if now_ms - s.last_ms >= self.timeout_ms
        ]
        # an ended session no event could continue any more: the next one that is not late is at
        # least ``now - late_bound``, and continuing needs it under the timeout from the session
        horizon = now_ms - self.late_bound_ms - self.timeout_ms
        for ended in (self.ended, self.before):
            for key, s in list(ended.items()):
                if s.last_ms < horizon and not s.dirty:
                    del ended[key]
        return markers

    def snapshots(self, now_ms: int) -> list[Record]:
        """A complete ``sessions`` row for every session changed since the last call."""
        rows, written = self.draft_snapshots(now_ms)
        written()
        return rows

    def draft_snapshots(self, now_ms: int) -> tuple[list[Record], Callable[[], None]]:
        """The rows ``snapshots`` would return, changing nothing; call ``written()`` once the log
        holds them (until then the sessions stay changed, so a failed write loses no update)."""
        closed = list(self.closed)
        dirty = [s for s in self.live.values() if s.dirty]
        rows = [snapshot(s, now_ms, closed=True) for s in closed]
        rows.extend(snapshot(s, now_ms, closed=False) for s in dirty)

        def written() -> None:
            for s, row in zip(closed + dirty, rows, strict=True):
                s.version = row["version"]
                s.dirty = False
            del self.closed[: len(closed)]

        return rows, written

    # recovery --------------------------------------------------------------------------------
    @staticmethod
    def _from_row(row: dict[str, Any]) -> Session:
        """The session a ``sessions`` row (read back, or logged) is the complete state of."""
        first = {k: row.get(k, "") for k in ENTRY_FIELDS}
        return Session(
            session_id=row["session_id"],
            started_ms=int(row["started_at"]),
            last_ms=int(row["ended_at"]),
            first=first,
            entry_path=row.get("entry_path", ""),
            exit_path=row.get("exit_path", ""),
            profile_id=row.get("profile_id", ""),
            page_views=int(row.get("page_views", 0)),
            events=int(row.get("events", 0)),
            version=int(row.get("version", 0)),
            dirty=False,
            # rows written before the columns existed hold 0: the session's start and end
            entry_ms=(int(row.get("entry_at") or 0) or int(row["started_at"]))
            if row.get("entry_path")
            else None,
            exit_ms=(int(row.get("exit_at") or 0) or int(row["ended_at"])) if row.get("exit_path") else None,
            opened_ms=int(row.get("opened_at") or row["started_at"]),
        )

    def restore(self, rows: list[dict[str, Any]]) -> int:
        """Sessions from their newest ``sessions`` rows (what a restarted shard reads back): the
        open ones live again; of the closed ones (those that ended recently, which an event could
        still continue), each device's newest is its last ended session and the one before that
        its visit before (see ``_ended_home``)."""
        closed: list[Session] = []
        for row in rows:
            s = self._from_row(row)
            self._remember_stored(s.first["project_id"], s)
            if row.get("is_closed"):
                closed.append(s)
            else:
                self.live[(s.first["project_id"], s.first["device_id"])] = s
        closed.sort(key=lambda s: s.opened_ms)  # a device's visits end in the order they opened
        for s in closed:
            self._place_ended((s.first["project_id"], s.first["device_id"]), s)
        return len(rows)

    def _place_ended(self, key: tuple[str, str], s: Session) -> None:
        """An ended session read back: the device's last ended one if it opened after that one,
        else the visit before if it opened after that one (else no event can continue it)."""
        ended = self.ended.get(key)
        if ended is None or ended.opened_ms <= s.opened_ms:
            if ended is not None:
                self.before[key] = ended
            self.ended[key] = s
            return
        before = self.before.get(key)
        if before is None or before.opened_ms <= s.opened_ms:
            self.before[key] = s

    def _replay_row(self, key: tuple[str, str], row: Record) -> None:
        """A logged ``sessions`` row is the session's complete state at that point of the log: the
        replay takes it as it is. Usually the replayed records already made that state; not when
        the segment holding them was stored and deleted without this row (the segment a crash
        left active carries no snapshots: they follow in the next one), so that a restart finds
        the session in neither storage nor its log's records, only in this row."""
        sid = row.get("session_id")
        version = int(row.get("version", 0))
        state = self._from_row(row)
        for s in (self.live.get(key), self.ended.get(key), self.before.get(key)):
            if s is not None and s.session_id == sid:
                s.started_ms, s.last_ms, s.profile_id = state.started_ms, state.last_ms, state.profile_id
                s.page_views, s.events = state.page_views, state.events
                s.entry_path, s.entry_ms = state.entry_path, state.entry_ms
                s.exit_path, s.exit_ms = state.exit_path, state.exit_ms
                s.version = max(s.version, version)
                if row.get("is_closed") and self.live.get(key) is s:
                    self._retire(key, s)  # its session_end was stored with a deleted segment
                return
        self._remember_stored(key[0], state)
        current = self.live.get(key)
        if row.get("is_closed"):
            self._place_ended(key, state)
        elif current is None or current.opened_ms < state.opened_ms:
            if current is not None:
                self._retire(key, current)
            self.live[key] = state

    def replay(self, record: Record) -> None:
        """Re-apply a logged record (its session already assigned) after a restart: an event joins
        the session it names only where ``assign`` put it there, so by the same decisions (the
        late bound, the live session, else the last ended one; an event of an offline queue that
        kept the client id of the live visit stays out of it)."""
        table = table_of(record)
        if table == "sessions":
            self._replay_row((record.get("project_id", ""), record.get("device_id", "")), record)
            return
        if table != "events" or not record.get("session_id"):
            return
        name = record.get("name")
        if (
            name != "session_end"  # its time is the session's last event's, however late it ended
            and record["created_at"] < record.get("received_at", record["created_at"]) - self.late_bound_ms
        ):
            return  # a late event never joined a live session (see assign)
        key = (record["project_id"], record["device_id"])
        sid = record["session_id"]
        current = self.live.get(key)
        if name == "session_end":
            if current is not None and current.session_id == sid:
                # ended in the unflushed log: its closed row is written by the next seal (the
                # crashed shard may never have written it)
                self._retire(key, current)
            return
        if name == "session_start":
            if current is None or current.session_id != sid:
                first = {k: record[k] for k in ENTRY_FIELDS if k in record}
                session = Session(sid, record["created_at"], record["created_at"], first)
                self._remember_stored(record["project_id"], session)
                self.live[key] = session
            return
        # ``assign``'s decision, the stored session id standing for the client's (an event that
        # joined a session carries its id; one stored on its own, none that a session it could
        # have joined carries)
        ts = record["created_at"]
        if current is not None and self._continues(current, ts, sid):
            if current.session_id == sid:
                current.add(record)
            return
        _, ended = self._ended_home(key, current, ts, sid)
        if ended is not None and ended.session_id == sid:
            # it continued an ended visit (see ``assign``): its row is written again, closed
            if not ended.dirty:
                self.closed.append(ended)
            ended.add(record)
