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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uuid_utils

from eventlens.records import ENTRY_FIELDS, PAGE_VIEWS, TABLE_KEY, Record, table_of

_ENTRY_DEFAULTS: Record = dict.fromkeys(ENTRY_FIELDS, "")


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
    session.version = max(session.version + 1, now_ms)
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
            "page_views": session.page_views,
            "events": session.events,
            "is_bounce": 1 if bounce else 0,
            "is_closed": 1 if closed else 0,
            "version": session.version,
        }
    )
    row["is_bot"] = int(session.first.get("is_bot", 0) or 0)
    return row


class Sessionizer:
    def __init__(self, timeout_ms: int, late_bound_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.late_bound_ms = late_bound_ms
        self.live: dict[tuple[str, str], Session] = {}
        self.closed: list[Session] = []  # ended since the last snapshots() call

    def _continues(self, session: Session, ts: int, client_sid: str) -> bool:
        if client_sid:
            return client_sid == session.session_id
        return ts - session.last_ms < self.timeout_ms and session.started_ms - ts < self.timeout_ms

    def assign(self, event: Record, now_ms: int) -> list[Record]:
        """Fill ``event["session_id"]``; returns marker records to store alongside it."""
        project = event["project_id"]
        ts = event["created_at"]
        client_sid = event.get("session_id") or ""
        prev_device = event.pop("_prev_device", "")
        if ts < now_ms - self.late_bound_ms:
            # Late: stored with its own time, never opens or extends a live session.
            if not client_sid:
                event["session_id"] = str(uuid_utils.uuid7())
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
        if current is not None:
            if self._continues(current, ts, client_sid):
                current.add(event)
                event["session_id"] = current.session_id
                return []
            if ts < current.started_ms:
                # Older than the live visit (by more than the timeout, or of another client
                # session): an offline queue flushed while the device is active. Stored with its
                # own time like a late event; ending the live visit for it would split the visit.
                if not client_sid:
                    event["session_id"] = str(uuid_utils.uuid7())
                return []
            markers.append(self._end(key, current, now_ms))
        sid = client_sid or str(uuid_utils.uuid7())
        event["session_id"] = sid
        session = Session(sid, ts, ts, {k: event[k] for k in ENTRY_FIELDS if k in event})
        session.add(event)
        self.live[key] = session
        markers.append(marker("session_start", session, ts, now_ms))
        return markers

    def _end(self, key: tuple[str, str], session: Session, now_ms: int) -> Record:
        del self.live[key]
        session.dirty = True
        self.closed.append(session)
        return marker("session_end", session, session.last_ms, now_ms)

    def expire(self, now_ms: int) -> list[Record]:
        """``session_end`` for every session idle past the timeout, and forget them."""
        return [
            self._end(key, s, now_ms)
            for key, s in list(self.live.items())
            if now_ms - s.last_ms >= self.timeout_ms
        ]

    def snapshots(self, now_ms: int) -> list[Record]:
        """A complete ``sessions`` row for every session changed since the last call."""
        rows = [snapshot(s, now_ms, closed=True) for s in self.closed]
        self.closed = []
        for s in self.live.values():
            if s.dirty:
                rows.append(snapshot(s, now_ms, closed=False))
                s.dirty = False
        return rows

    # recovery --------------------------------------------------------------------------------
    def restore(self, rows: list[dict[str, Any]]) -> int:
        """Live sessions from their newest ``sessions`` rows (what a restarted shard reads back)."""
        for row in rows:
            first = {k: row.get(k, "") for k in ENTRY_FIELDS}
            s = Session(
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
                entry_ms=int(row["started_at"]) if row.get("entry_path") else None,
                exit_ms=int(row["ended_at"]) if row.get("exit_path") else None,
                opened_ms=int(row.get("opened_at") or row["started_at"]),
            )
            self.live[(first["project_id"], first["device_id"])] = s
        return len(rows)

    def replay(self, record: Record) -> None:
        """Re-apply a logged record (its session already assigned) after a restart."""
        table = table_of(record)
        if table == "sessions":
            # a logged snapshot's version must stay below the next one we write
            live = self.live.get((record.get("project_id", ""), record.get("device_id", "")))
            if live is not None and live.session_id == record.get("session_id"):
                live.version = max(live.version, int(record.get("version", 0)))
            return
        if table != "events" or not record.get("session_id"):
            return
        if record["created_at"] < record.get("received_at", record["created_at"]) - self.late_bound_ms:
            return  # a late event never joined a live session (see assign)
        key = (record["project_id"], record["device_id"])
        name = record.get("name")
        current = self.live.get(key)
        if name == "session_end":
            if current is not None and current.session_id == record["session_id"]:
                del self.live[key]
            return
        if name == "session_start":
            if current is None or current.session_id != record["session_id"]:
                first = {k: record[k] for k in ENTRY_FIELDS if k in record}
                self.live[key] = Session(
                    record["session_id"], record["created_at"], record["created_at"], first
                )
            return
        if current is not None and current.session_id == record["session_id"]:
            current.add(record)
