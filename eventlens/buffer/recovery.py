"""What a (re)started shard reads back from storage: its open (and recently ended) sessions, the
client session ids it used, and stored profiles.

The shard's log holds what was not flushed; storage holds the rest. A restarted shard restores
the newest ``sessions`` rows of its still-open sessions and of those an event could still
continue, replays its log on top
(``BufferCore.recover``), and loads a profile's stored state the first time ``identify`` names it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlens.buffer.idempotency import IdIndex, rebuild
from eventlens.config import Settings

log = logging.getLogger(__name__)

Query = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

# The shard's open sessions, and those that ended recently enough for an event to continue them
# (their last event within the late bound plus the timeout: DEFINITIONS.md, Sessions, rule 3).
OPEN_SESSIONS_SQL = """
SELECT * EXCEPT (opened_at, started_at, ended_at, entry_at, exit_at),
    toUnixTimestamp64Milli(opened_at) AS opened_ms, toUnixTimestamp64Milli(started_at) AS started_ms,
    toUnixTimestamp64Milli(ended_at) AS ended_ms, toUnixTimestamp64Milli(entry_at) AS entry_ms,
    toUnixTimestamp64Milli(exit_at) AS exit_ms
FROM sessions FINAL
WHERE shard = {shard:UInt16} AND opened_at >= {since_start:DateTime64(3, 'UTC')}
    AND (is_closed = 0 OR ended_at >= {ended_since:DateTime64(3, 'UTC')})
"""

PROFILE_SQL = """
SELECT first_name, last_name, email, avatar, properties, toUnixTimestamp64Milli(updated_at) AS updated_at
FROM profiles FINAL
WHERE project_id = {p:String} AND profile_id = {id:String}
"""

GROUP_SQL = """
SELECT type, name, properties, toUnixTimestamp64Milli(created_at) AS created_at,
    toUnixTimestamp64Milli(updated_at) AS updated_at
FROM groups FINAL
WHERE project_id = {p:String} AND group_id = {id:String}
"""

# Client session ids of the shard's sessions opened in the last ``CLIENT_ID_DAYS`` UTC days (today
# included): a client id reused after a restart gets the next ordinal (``<id>~<n>``), never an id
# an earlier visit is stored under, whichever day that visit opened (the sessions table is keyed by
# project, day opened and session id, so a visit of another day would not even be replaced: two
# visits would share one session id). Server ids (uuid7: 36 characters, version digit 7) never
# repeat and are left out; the newest first, as many as the shard remembers.
CLIENT_IDS_SQL = """
SELECT project_id, session_id
FROM sessions
WHERE shard = {shard:UInt16} AND opened_at >= {since:DateTime64(3, 'UTC')}
    AND NOT (length(session_id) = 36 AND substring(session_id, 15, 1) = '7'
             AND match(session_id, '^[0-9a-f-]+$'))
GROUP BY project_id, session_id
ORDER BY max(opened_at) DESC
LIMIT {limit:UInt32}
"""

# how many UTC days of client session ids a restarted shard reads back: as long as the
# idempotency window, the span a client's retries and queues are expected to stay within
CLIENT_ID_DAYS = 7

# sessions that timed out while the shard was down come back too: the first expire() closes them
# with a session_end and a final snapshot
OPEN_SESSION_HORIZON = timedelta(days=2)
# how long after its last event an ended session can still be continued (by default; the actor
# passes its settings'): an event that is not late is at most the late bound old, and continues a
# session its time is under the timeout from
ENDED_WITHIN_MS = (
    Settings.model_fields["late_event_bound_s"].default + Settings.model_fields["session_timeout_s"].default
) * 1000


def profile_loader(query: Query) -> Callable[[str, str], dict[str, Any] | None]:
    def load(project: str, profile_id: str) -> dict[str, Any] | None:
        rows = query(PROFILE_SQL, {"p": project, "id": profile_id})
        return rows[0] if rows else None

    return load


def group_loader(query: Query) -> Callable[[str, str], dict[str, Any] | None]:
    """A group's stored state, read the first time a ``group`` message names it in this shard."""

    def load(project: str, group_id: str) -> dict[str, Any] | None:
        rows = query(GROUP_SQL, {"p": project, "id": group_id})
        return rows[0] if rows else None

    return load


def client_ids_loader(
    index: int, query: Query, limit: int, days: int = CLIENT_ID_DAYS
) -> Callable[[], list[dict[str, Any]]]:
    """The client session ids of shard ``index`` opened in the last ``days`` UTC days, today
    included (best effort: [] when storage does not answer)."""

    def load() -> list[dict[str, Any]]:
        now = datetime.now(UTC).replace(tzinfo=None)
        since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=max(days, 1) - 1)
        try:
            return query(CLIENT_IDS_SQL, {"shard": index, "since": since, "limit": limit})
        except Exception as exc:
            log.warning("shard %s: cannot read the recent client session ids (%s)", index, exc)
            return []

    return load


def open_sessions_loader(
    index: int, query: Query, attempts: int = 10, ended_within_ms: int = ENDED_WITHIN_MS
) -> Callable[..., list[dict[str, Any]]]:
    """The newest rows of shard ``index``'s open sessions and of those whose last event lies within
    ``ended_within_ms`` (the late bound plus the session timeout) before ``decided_since_ms`` (the
    earliest arrival of a record the restart replays; now by default): ``Sessionizer.restore``
    tells them apart by ``is_closed``."""

    def load(decided_since_ms: int | None = None) -> list[dict[str, Any]]:
        now = datetime.now(UTC).replace(tzinfo=None)
        since = now
        if decided_since_ms is not None:
            since = min(now, datetime.fromtimestamp(decided_since_ms / 1000, UTC).replace(tzinfo=None))
        params = {
            "shard": index,
            "since_start": since - OPEN_SESSION_HORIZON,
            "ended_since": since - timedelta(milliseconds=ended_within_ms),
        }
        for attempt in range(attempts):  # storage may still be starting; sessions restart if it stays down
            try:
                rows = query(OPEN_SESSIONS_SQL, params)
            except Exception as exc:
                log.warning("shard %s: cannot read open sessions (%s), attempt %d", index, exc, attempt + 1)
                time.sleep(min(0.5 * 2**attempt, 5))
                continue
            for r in rows:
                r["opened_at"] = r.pop("opened_ms")
                r["started_at"], r["ended_at"] = r.pop("started_ms"), r.pop("ended_ms")
                r["entry_at"], r["exit_at"] = r.pop("entry_ms"), r.pop("exit_ms")
            return rows
        return []

    return load


def rebuild_ids(ids: IdIndex, query: Query, index: int, attempts: int = 10) -> None:
    """Refill an idempotency window that was lost (or never built) from the ``events`` table.
    Storage may still be starting: retried; if it stays down the shard starts anyway with what the
    index holds, and the next start tries again (the index stays marked incomplete)."""
    if ids.complete():
        return
    for attempt in range(attempts):
        try:
            added = rebuild(ids, query)
            log.warning("shard %s: idempotency window rebuilt from storage (%d ids)", index, added)
            return
        except Exception as exc:
            if attempt == attempts - 1:
                log.error("shard %s: cannot rebuild the idempotency window (%s)", index, exc)
                return
            time.sleep(min(0.2 * 2**attempt, 3.0))
