"""Seeing what landed: pages of stored events, sessions and profiles, and one profile in full.

Newest first, ``limit`` rows a page, continued with a cursor (``insights.cursor``) holding the sort
key of the page's last row; each builder asks for one row more than the page to know whether
another page follows. Events are read ``FINAL`` (a duplicate row, a client retry that reached
ClickHouse twice, is one event) without the session markers unless asked; sessions ``FINAL`` (the
newest snapshot of each); profiles ``FINAL`` (the newest ``identify`` state). Range, time zone,
filters and bots apply as on every insight route: events by their time, sessions by the time they
opened (filters on visit attributes test the session, others select sessions holding a matching
event), profiles by their last update with filters on their own fields.

Every value is a bound parameter; the columns selected and the names they are answered under come
from the tables' column lists (``eventlens.records``), never from the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlens.errors import ClientError
from eventlens.insights.cursor import Kind, Position, encode_cursor
from eventlens.insights.filters import filter_sql
from eventlens.insights.models import EventsParams, ProfileParams, ProfilesParams, SessionsParams
from eventlens.insights.scope import RANGE, Scope, event_where, session_where
from eventlens.insights.sources import Json, Query, Rows, Sql, money
from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS

MAX_PROFILE_ID_LEN = 256  # as ingest accepts (``eventlens.models``)
MAX_ALIASES = 100

# rows strictly after a page's last row (newest first): the time bound alone lets ClickHouse skip
# granules by the table's key, the tie on equal times is broken by the id
AFTER = (
    " AND {time} <= fromUnixTimestamp64Milli({{after_ms:Int64}}, 'UTC')"
    " AND ({time} < fromUnixTimestamp64Milli({{after_ms:Int64}}, 'UTC') OR {id} < {{after_id:String}})"
)


def camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC time with milliseconds: ``2026-11-01T08:00:00.123Z``."""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _after(params: dict[str, Any], after: Position | None, time: str, ident: str) -> str:
    if after is None:
        return ""
    params["after_ms"], params["after_id"] = after.ms, after.id
    return AFTER.format(time=time, id=ident)


# events ----------------------------------------------------------------------------------------
EVENT_TIMES = ("created_at", "received_at")
EVENT_TEXT = tuple(
    c
    for c in EVENT_COLUMNS
    if c not in EVENT_TIMES and c not in ("project_id", "is_bot", "properties", "revenue")
)
EVENT_SELECT = ", ".join(
    [
        *EVENT_TEXT,
        "is_bot",
        "properties",
        "revenue",
        *(f"toUnixTimestamp64Milli({c}) AS {c}_ms" for c in EVENT_TIMES),
    ]
)


def events_sql(
    scope: Scope, limit: int, after: Position | None = None, markers: bool = False, person: str | None = None
) -> Sql:
    """A page of events (``limit`` + 1 rows), newest first by (created_at, id); with ``person``,
    only that profile's (``PERSON``)."""
    params = scope.params()
    params["limit"] = limit + 1
    where = event_where(scope, params, markers=markers) + _person(params, person)
    where += _after(params, after, "created_at", "id")
    sql = f"""
SELECT {EVENT_SELECT}
FROM events FINAL
WHERE {where}
ORDER BY created_at DESC, id DESC
LIMIT {{limit:UInt32}}"""
    return sql, params


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row["id"]}
    for c in EVENT_TEXT:
        out[camel(c)] = row[c]
    out["createdAt"] = iso_ms(row["created_at_ms"])
    out["receivedAt"] = iso_ms(row["received_at_ms"])
    out["isBot"] = bool(row["is_bot"])
    out["properties"] = dict(row["properties"] or {})
    out["revenue"] = money(row["revenue"])  # 0 (and currency "") unless it carried __revenue
    return out


# sessions --------------------------------------------------------------------------------------
SESSION_TIMES = ("started_at", "ended_at")
SESSION_NUMBERS = ("duration", "page_views", "events")
SESSION_FLAGS = ("is_bounce", "is_closed", "is_bot")
SESSION_TEXT = tuple(
    c
    for c in SESSION_COLUMNS
    if c not in (*SESSION_TIMES, *SESSION_NUMBERS, *SESSION_FLAGS)
    and c not in ("project_id", "opened_at", "entry_at", "exit_at", "version", "shard")
)
SESSION_SELECT = ", ".join(
    [
        *SESSION_TEXT,
        *SESSION_NUMBERS,
        *SESSION_FLAGS,
        *(f"toUnixTimestamp64Milli({c}) AS {c}_ms" for c in SESSION_TIMES),
    ]
)


def sessions_sql(scope: Scope, limit: int, after: Position | None = None, person: str | None = None) -> Sql:
    """A page of sessions (``limit`` + 1 rows), newest first by (opened_at, session_id): the time
    of the event that opened the session, which never changes (``startedAt`` moves back when an
    earlier event arrives late)."""
    params = scope.params()
    params["limit"] = limit + 1
    where = session_where(scope, params) + _person(params, person)
    where += _after(params, after, "opened_at", "session_id")
    sql = f"""
SELECT {SESSION_SELECT}, toUnixTimestamp64Milli(opened_at) AS opened_ms
FROM sessions FINAL
WHERE {where}
ORDER BY opened_at DESC, session_id DESC
LIMIT {{limit:UInt32}}"""
    return sql, params


def session_json(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row["session_id"]}
    for c in SESSION_TEXT:
        if c != "session_id":
            out[camel(c)] = row[c]
    out["startedAt"] = iso_ms(row["started_at_ms"])
    out["endedAt"] = iso_ms(row["ended_at_ms"])
    out["duration"] = float(row["duration"])
    out["pageViews"] = int(row["page_views"])
    out["events"] = int(row["events"])
    out["isBounce"] = bool(row["is_bounce"])
    out["isClosed"] = bool(row["is_closed"])
    out["isBot"] = bool(row["is_bot"])
    return out


# profiles --------------------------------------------------------------------------------------
PROFILE_SELECT = (
    "profile_id, first_name, last_name, email, avatar, properties,"
    " toUnixTimestamp64Milli(updated_at) AS updated_ms"
)


def profiles_sql(scope: Scope, limit: int, after: Position | None = None) -> Sql:
    """A page of profiles (``limit`` + 1 rows) updated in range, newest update first. ``FINAL``
    applies the conditions to each profile's newest state only."""
    params = scope.params()
    params["limit"] = limit + 1
    where = "project_id = {project:String} AND " + RANGE.format(col="updated_at")
    extra = filter_sql(scope.filters, params, "pf")
    if extra:
        where += " AND " + extra
    where += _after(params, after, "updated_at", "profile_id")
    sql = f"""
SELECT {PROFILE_SELECT}
FROM profiles FINAL
WHERE {where}
ORDER BY updated_at DESC, profile_id DESC
LIMIT {{limit:UInt32}}"""
    return sql, params


def profile_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["profile_id"],
        "firstName": row["first_name"],
        "lastName": row["last_name"],
        "email": row["email"],
        "avatar": row["avatar"],
        "properties": dict(row["properties"] or {}),
        "updatedAt": iso_ms(row["updated_ms"]),
    }


# one profile -----------------------------------------------------------------------------------
# the aliases whose newest link points at the profile (as insights resolve them: people.ALIASES)
ALIASES_OF = """
SELECT alias FROM profile_aliases
WHERE project_id = {project:String}
  AND alias IN (SELECT alias FROM profile_aliases WHERE project_id = {project:String} AND profile_id = {profile:String})
GROUP BY alias
HAVING argMax(profile_id, created_at) = {profile:String}"""
# a row's person is its profile id, else its device id; the profile's own id or one of its aliases
PERSON = (
    " AND (if(profile_id != '', profile_id, device_id) = {profile:String}"
    f" OR if(profile_id != '', profile_id, device_id) IN ({ALIASES_OF}))"
)


def profile_sql(project: str, profile_id: str) -> Sql:
    sql = f"""
SELECT {PROFILE_SELECT}
FROM profiles FINAL
WHERE project_id = {{project:String}} AND profile_id = {{profile:String}}"""
    return sql, {"project": project, "profile": profile_id}


def counters_sql(project: str, profile_id: str) -> Sql:
    """The sum of each counter's increments and decrements (one row per operation: ``FINAL``)."""
    sql = """
SELECT property, sum(delta) AS value
FROM profile_counters FINAL
WHERE project_id = {project:String} AND profile_id = {profile:String}
GROUP BY property ORDER BY property"""
    return sql, {"project": project, "profile": profile_id}


def aliases_sql(project: str, profile_id: str) -> Sql:
    sql = f"{ALIASES_OF}\nORDER BY alias LIMIT {{limit:UInt32}}"
    return sql, {"project": project, "profile": profile_id, "limit": MAX_ALIASES}


def _person(params: dict[str, Any], profile_id: str | None) -> str:
    if profile_id is None:
        return ""
    params["profile"] = profile_id
    return PERSON


def _number(value: Any) -> int | float:
    v = float(value)
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


# pages -----------------------------------------------------------------------------------------
def page(
    kind: Kind,
    rows: Rows,
    limit: int,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
    key: Callable[[dict[str, Any]], Position],
) -> Json:
    """``{"data": [...], "nextCursor": ...}``: the cursor of the last row when more rows follow."""
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(kind, key(rows[-1])) if more else None
    return {"data": [shape(r) for r in rows], "nextCursor": cursor}


def _event_key(row: dict[str, Any]) -> Position:
    return Position(int(row["created_at_ms"]), row["id"])


def _session_key(row: dict[str, Any]) -> Position:
    return Position(int(row["opened_ms"]), row["session_id"])


def _profile_key(row: dict[str, Any]) -> Position:
    return Position(int(row["updated_ms"]), row["profile_id"])


# route computes --------------------------------------------------------------------------------
async def events(project_id: str, params: EventsParams, query: Query) -> Json:
    sql = events_sql(params.scope(project_id), params.limit, params.after, params.includeMarkers)
    return page("events", await query(sql), params.limit, event_json, _event_key)


async def sessions(project_id: str, params: SessionsParams, query: Query) -> Json:
    sql = sessions_sql(params.scope(project_id), params.limit, params.after)
    return page("sessions", await query(sql), params.limit, session_json, _session_key)


async def profiles(project_id: str, params: ProfilesParams, query: Query) -> Json:
    sql = profiles_sql(params.scope(project_id), params.limit, params.after)
    return page("profiles", await query(sql), params.limit, profile_json, _profile_key)


def _not_found(profile_id: str) -> ClientError:
    return ClientError(
        404,
        "not_found",
        f"nothing is stored for profile {profile_id[:60]!r} in this project: no identify, counter,"
        " alias, and no session or event in the range",
    )


async def profile(project_id: str, params: ProfileParams, query: Query) -> Json:
    """The profile's newest state, counters and aliases, and its newest sessions and events in
    the range (the person's: its own and those of its aliases, as insights count people)."""
    profile_id = params.path_params["profile_id"]
    if not 0 < len(profile_id) <= MAX_PROFILE_ID_LEN:
        raise _not_found(profile_id)
    scope = params.scope(project_id)
    found, counters, aliases, sessions_rows, event_rows = await asyncio.gather(
        query(profile_sql(project_id, profile_id)),
        query(counters_sql(project_id, profile_id)),
        query(aliases_sql(project_id, profile_id)),
        query(sessions_sql(scope, params.limit, person=profile_id)),
        query(events_sql(scope, params.limit, person=profile_id)),
    )
    if not (found or counters or aliases or sessions_rows or event_rows):
        raise _not_found(profile_id)
    if found:
        body = profile_json(found[0])
    else:  # seen on events, counters or aliases, never identified
        body = {
            "id": profile_id,
            "firstName": "",
            "lastName": "",
            "email": "",
            "avatar": "",
            "properties": {},
            "updatedAt": None,
        }
    body["counters"] = {r["property"]: _number(r["value"]) for r in counters}
    body["aliases"] = [r["alias"] for r in aliases]
    body["sessions"] = [session_json(r) for r in sessions_rows[: params.limit]]
    body["events"] = [event_json(r) for r in event_rows[: params.limit]]
    return body
