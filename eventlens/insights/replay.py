"""``GET /insights/{p}/sessions/{sessionId}/replay``: a visit's session recording, chunk by chunk.

The web SDK records a visit with rrweb and sends it in chunks (``replay`` messages); the shard
stores each with the visit it belongs to (``replays``). A player asks for the chunks in order, a
page at a time: ``fromChunk`` is the first chunk index wanted, ``nextChunk`` in the answer the one to
ask for next (``null``: no more). Each chunk's rrweb events are returned as the JSON the SDK sent,
spliced into the answer without being parsed again.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import Field

from eventlens.errors import ClientError
from eventlens.insights.models import Scoped
from eventlens.insights.sources import Json, Query, Sql

MAX_SESSION_ID_LEN = 256
MAX_CHUNKS = 50


class ReplayParams(Scoped):
    """Chunks of one session's recording; the route takes no range or filters (a session id
    names the visit) and no ``includeBots`` (bots run no recorder)."""

    kind: ClassVar[str] = "replay"
    fromChunk: int = Field(0, ge=0, le=1_000_000, description="first chunk index to return")
    limit: int = Field(10, ge=1, le=MAX_CHUNKS, description="chunks per page (each up to about 1 MiB)")

    def scope_fields(self) -> tuple[str | None, str | None, str | None, str | list[Any] | None]:
        return None, None, None, None

    def include_bots(self) -> bool:
        return False


def replay_sql(project_id: str, session_id: str, first: int, limit: int) -> Sql:
    sql = """
SELECT chunk_index, toUnixTimestamp64Milli(started_at) AS started, toUnixTimestamp64Milli(ended_at) AS ended,
       events_count, is_full_snapshot, payload
FROM replays FINAL
WHERE project_id = {p:String} AND session_id = {s:String} AND chunk_index >= {first:UInt32}
ORDER BY chunk_index
LIMIT {n:UInt32}"""
    return sql, {"p": project_id, "s": session_id, "first": first, "n": limit + 1}


def _iso(ms: Any) -> str:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def chunk_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": int(row["chunk_index"]),
        "startedAt": _iso(row["started"]),
        "endedAt": _iso(row["ended"]),
        "eventsCount": int(row["events_count"]),
        "isFullSnapshot": bool(int(row["is_full_snapshot"])),
        "events": orjson.Fragment(row["payload"]),  # validated as a JSON array when it was sent
    }


async def replay(project_id: str, params: ReplayParams, query: Query) -> Json:
    session_id = params.path_params["session_id"]
    if not 0 < len(session_id) <= MAX_SESSION_ID_LEN:
        raise _not_found(session_id)
    rows = await query(replay_sql(project_id, session_id, params.fromChunk, params.limit))
    if not rows and params.fromChunk == 0:
        raise _not_found(session_id)
    page = rows[: params.limit]
    return {
        "sessionId": session_id,
        "chunks": [chunk_json(r) for r in page],
        "nextChunk": int(rows[params.limit]["chunk_index"]) if len(rows) > params.limit else None,
    }


def _not_found(session_id: str) -> ClientError:
    return ClientError(
        404,
        "not_found",
        f"no replay is stored for session {session_id[:60]!r} in this project (recordings are kept"
        " 30 days; the web SDK records only with sessionReplay enabled)",
    )
