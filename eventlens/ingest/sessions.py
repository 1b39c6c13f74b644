"""Session assignment per device: a run of events with gaps under the timeout.

Pure state machine owned by the shard that owns the device. ``assign`` returns the session id and
the marker records to emit (``session_start`` when a session opens, ``session_end`` for the one it
replaces); ``expire`` closes sessions idle longer than the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

import uuid_utils

from eventlens.storage.wal import Record


@dataclass
class Session:
    session_id: str
    started_ms: int
    last_ms: int
    first: Record  # the event that opened it: the markers copy its device and page fields


MARKER_FIELDS = (
    "project_id",
    "device_id",
    "profile_id",
    "origin",
    "path",
    "referrer",
    "referrer_name",
    "referrer_type",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "region",
    "city",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device",
    "brand",
    "model",
    "is_bot",
    "sdk_name",
    "sdk_version",
)


def marker(name: str, session: Session, at_ms: int, now_ms: int) -> Record:
    rec: Record = {k: session.first[k] for k in MARKER_FIELDS if k in session.first}
    rec.update(
        {
            "_t": "events",
            # deterministic ids: a replayed or repeated marker collapses onto the first one
            "id": f"{session.session_id}:{'s' if name == 'session_start' else 'e'}",
            "name": name,
            "session_id": session.session_id,
            "created_at": at_ms,
            "received_at": now_ms,
        }
    )
    return rec


class Sessionizer:
    def __init__(self, timeout_ms: int, late_bound_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.late_bound_ms = late_bound_ms
        self.live: dict[tuple[str, str], Session] = {}

    def assign(self, event: Record, now_ms: int) -> list[Record]:
        """Fill ``event["session_id"]``; returns marker records to store alongside it."""
        key = (event["project_id"], event["device_id"])
        ts = event["created_at"]
        client_sid = event.get("session_id") or ""
        if ts < now_ms - self.late_bound_ms:
            # Late: stored with its own time, never opens or extends a live session.
            if not client_sid:
                event["session_id"] = str(uuid_utils.uuid7())
            return []
        current = self.live.get(key)
        markers: list[Record] = []
        if current is not None:
            same = client_sid == current.session_id if client_sid else ts - current.last_ms < self.timeout_ms
            if same:
                current.last_ms = max(current.last_ms, ts)
                event["session_id"] = current.session_id
                return []
            markers.append(marker("session_end", current, current.last_ms, now_ms))
        sid = client_sid or str(uuid_utils.uuid7())
        event["session_id"] = sid
        session = Session(sid, ts, ts, event)
        self.live[key] = session
        markers.append(marker("session_start", session, ts, now_ms))
        return markers

    def expire(self, now_ms: int) -> list[Record]:
        """``session_end`` for every session idle past the timeout, and forget them."""
        out: list[Record] = []
        for key, s in list(self.live.items()):
            if now_ms - s.last_ms >= self.timeout_ms:
                out.append(marker("session_end", s, s.last_ms, now_ms))
                del self.live[key]
        return out
