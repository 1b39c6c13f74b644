"""One incoming body → one record, through a literal list of named steps.

Runs in the ingest replica, before anything touches a shard: every step is a function of the
event being built and the request's context (no I/O, no shared state), so rejected input never
costs a Ray call. ``STEPS`` lists, per message type, the steps in the order they run; reading it is
reading the ingest path. A rejected event is a value (``Dropped``: its index in the request, the
step that refused it and why), not an exception that escapes. Sessions are assigned later, in the
shard that owns the device (``eventlens.buffer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uuid_utils
from pydantic import ValidationError

from eventlens.errors import ClientError, pydantic_details, validation_message
from eventlens.ingest.context import RequestContext
from eventlens.ingest.identity import device_hash, visitor_key
from eventlens.ingest.page import UTM_KEYS, split_page
from eventlens.ingest.properties import flatten
from eventlens.ingest.referrer import classify_referrer
from eventlens.ingest.revenue import revenue_columns
from eventlens.ingest.timestamps import parse_timestamp
from eventlens.models import BODY_ADAPTER, EVENT_TYPES, Body
from eventlens.records import LINK_KEY, TABLE_KEY, Record


@dataclass(frozen=True)
class Limits:
    max_properties: int = 256
    max_property_key_length: int = 256
    max_property_value_length: int = 4096
    max_future_ms: int = 60_000
    max_replay_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class Prepared:
    """A validated record, the key that picks its shard, and its type for the response."""

    record: Record
    shard_key: str
    type: str


@dataclass(frozen=True)
class Dropped:
    """An event the pipeline refused: where it was in the request, at which step, and why."""

    index: int
    step: str
    error: ClientError


@dataclass(slots=True)
class Draft:
    """The event being built: the validated body, the request's context, and the record so far."""

    body: Any
    ctx: RequestContext
    limits: Limits
    record: Record = field(default_factory=dict)
    shard_key: str = ""
    ip: str = ""
    # reserved ``__*`` properties read by the track steps, and the page URL the referrer is judged by
    props: dict[str, Any] = field(default_factory=dict)
    page_url: str = ""


Step = tuple[str, Callable[[Draft], None]]


def new_id() -> str:
    return str(uuid_utils.uuid7())


def _reserved_str(props: dict[str, Any], key: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ClientError(422, "invalid_property", f"properties.{key} must be a string")


def _flat(props: dict[str, Any] | None, limits: Limits) -> dict[str, str]:
    if not props:
        return {}
    return flatten(
        props,
        max_keys=limits.max_properties,
        max_key_len=limits.max_property_key_length,
        max_value_len=limits.max_property_value_length,
    )


# --- parse -----------------------------------------------------------------------------------
def validate_body(body: Any) -> Body:
    if not isinstance(body, dict):
        raise ClientError(400, "invalid_body", 'body must be a JSON object {"type": ..., "payload": {...}}')
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise ClientError(
            400,
            "invalid_type",
            f"type must be one of {', '.join(EVENT_TYPES)}",
            [{"loc": "type", "msg": f"got {str(kind)[:40]!r}"}],
        )
    if not isinstance(body.get("payload"), dict):
        raise ClientError(400, "invalid_payload", "payload must be a JSON object")
    try:
        return BODY_ADAPTER.validate_python(body)
    except ValidationError as exc:
        details = pydantic_details(exc)
        raise ClientError(400, "invalid_payload", validation_message(details), details) from None


# --- track steps -----------------------------------------------------------------------------
def start_event(d: Draft) -> None:
    p = d.body.payload
    d.props = p.properties or {}
    d.ip = d.ctx.ip
    if d.ctx.server_side and (forwarded_ip := _reserved_str(d.props, "__ip")):
        d.ip = forwarded_ip  # a server-side SDK forwards its visitor's address
    title = p.title if p.title is not None else _reserved_str(d.props, "__title")
    d.record = {
        TABLE_KEY: "events",
        "id": p.id or new_id(),
        "project_id": d.ctx.project_id,
        "name": p.name,
        "device_id": "",
        "profile_id": p.profileId or "",
        "session_id": p.sessionId or "",
        "created_at": 0,
        "received_at": d.ctx.now_ms,
        "title": title or "",
        "properties": {},
        "sdk_name": d.ctx.sdk_name,
        "sdk_version": d.ctx.sdk_version,
        **d.ctx.enrichment,
        "groups": distinct(p.groups) if p.groups else [],
    }


def put_timestamp(d: Draft) -> None:
    raw = d.body.payload.timestamp
    if raw is None:
        raw = d.props.get("__timestamp")
    if raw is not None and not isinstance(raw, str | int | float):
        raise ClientError(
            400, "invalid_timestamp", "timestamp must be an ISO-8601 string or epoch milliseconds"
        )
    d.record["created_at"] = parse_timestamp(raw, d.ctx.now_ms, d.limits.max_future_ms)


def put_device(d: Draft) -> None:
    """The client's device id, else the cookieless hash of (project, IP, user agent, salt)."""
    ctx = d.ctx
    device_id = d.body.payload.deviceId or _reserved_str(d.props, "__deviceId")
    if device_id:
        d.shard_key = device_id
    else:
        device_id = device_hash(ctx.project_id, d.ip, ctx.user_agent, ctx.salt)
        if ctx.prev_salt:
            # the shard continues a visit that began under the previous salt (buffer.sessions)
            d.record["_prev_device"] = device_hash(ctx.project_id, d.ip, ctx.user_agent, ctx.prev_salt)
        # routed without the salt, so both ids of one visitor reach the same shard
        d.shard_key = "anon:" + visitor_key(d.ip, ctx.user_agent)
    d.record["device_id"] = device_id


def put_properties(d: Draft) -> None:
    d.record["properties"] = _flat(d.props, d.limits)


def put_revenue(d: Draft) -> None:
    """``__revenue`` (and ``currency``, else the project's) into the typed columns: a 400 naming
    the property when either is not acceptable (``ingest.revenue``)."""
    columns = revenue_columns(d.props, d.ctx.currency)
    if columns is not None:
        d.record.update(columns)


def put_page(d: Draft) -> None:
    """Origin, path and UTM parameters of the page; the request's Origin when the path has none."""
    p = d.body.payload
    path = p.path if p.path is not None else _reserved_str(d.props, "__path")
    origin = d.ctx.origin
    page = split_page(path)
    if not page["origin"] and origin.startswith(("http://", "https://")):
        page["origin"] = origin.lower().rstrip("/")
    d.record.update(page)
    d.page_url = path if page["origin"] or not origin else origin + (path or "")


def put_referrer(d: Draft) -> None:
    p = d.body.payload
    referrer = p.referrer if p.referrer is not None else _reserved_str(d.props, "__referrer")
    utm = {k: d.record[k] for k in UTM_KEYS if d.record[k]}
    ref = classify_referrer(referrer, d.page_url, utm)
    d.record["referrer"], d.record["referrer_name"], d.record["referrer_type"] = ref


def distinct(ids: list[str]) -> list[str]:
    """``ids`` without repeats, in the order sent: an event counts once per group."""
    return list(dict.fromkeys(ids))


# --- profile steps ---------------------------------------------------------------------------
def put_profile(d: Draft) -> None:
    p = d.body.payload
    d.record = {
        TABLE_KEY: "profiles",
        "project_id": d.ctx.project_id,
        "profile_id": p.profileId,
        "first_name": p.firstName or "",
        "last_name": p.lastName or "",
        "email": p.email or "",
        "avatar": p.avatar or "",
        "properties": _flat(p.properties, d.limits),
        "updated_at": d.ctx.now_ms,
        "event_id": new_id(),
    }
    d.shard_key = f"profile:{p.profileId}"  # every operation on one profile goes through one shard


def put_counter(d: Draft) -> None:
    body = d.body
    p = body.payload
    d.record = {
        TABLE_KEY: "profile_counters",
        "project_id": d.ctx.project_id,
        "profile_id": p.profileId,
        "property": p.property,
        "delta": float(p.value if body.type == "increment" else -p.value),
        "created_at": d.ctx.now_ms,
        "event_id": new_id(),
    }
    d.shard_key = f"profile:{p.profileId}"


def put_alias(d: Draft) -> None:
    p = d.body.payload
    d.record = {
        TABLE_KEY: "profile_aliases",
        "project_id": d.ctx.project_id,
        "alias": p.alias,
        "profile_id": p.profileId,
        "created_at": d.ctx.now_ms,
        "event_id": new_id(),
    }
    d.shard_key = f"profile:{p.profileId}"


# --- replay steps ----------------------------------------------------------------------------
def start_replay(d: Draft) -> None:
    """A chunk of the web SDK's session recording: its rrweb events must be a JSON array of
    objects within the size limit; they are stored as sent. The shard adds the visit's id."""
    p = d.body.payload
    size = len(p.payload.encode())
    if size > d.limits.max_replay_bytes:
        raise ClientError(
            413,
            "replay_too_large",
            f"payload is {size} bytes; a replay chunk may carry at most {d.limits.max_replay_bytes}"
            " (split it: the web SDK's maxPayloadBytes)",
        )
    try:
        events = orjson.loads(p.payload)
    except orjson.JSONDecodeError:
        events = None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ClientError(
            400, "invalid_replay", "payload must be the JSON text of an array of rrweb event objects"
        )
    started = parse_timestamp(p.started_at, d.ctx.now_ms, d.limits.max_future_ms)
    ended = parse_timestamp(p.ended_at, d.ctx.now_ms, d.limits.max_future_ms)
    if ended < started:
        raise ClientError(400, "invalid_replay", "ended_at must not be before started_at")
    d.props = {}
    d.ip = d.ctx.ip
    d.record = {
        TABLE_KEY: "replays",
        "project_id": d.ctx.project_id,
        "session_id": p.sessionId or "",
        "device_id": "",
        "chunk_index": p.chunk_index,
        "started_at": started,
        "ended_at": ended,
        "events_count": p.events_count,
        "is_full_snapshot": int(p.is_full_snapshot),
        "payload": p.payload,
        "received_at": d.ctx.now_ms,
    }


# --- group steps -----------------------------------------------------------------------------
def put_group(d: Draft) -> None:
    """``group`` (upsertGroup): the group's state, merged onto the stored one in the group's shard;
    with a ``profileId`` the profile is also linked to the group."""
    p = d.body.payload
    d.record = {
        TABLE_KEY: "groups",
        "project_id": d.ctx.project_id,
        "group_id": p.id,
        "type": p.type or "",
        "name": p.name or "",
        "properties": _flat(p.properties, d.limits),
        "created_at": d.ctx.now_ms,
        "updated_at": d.ctx.now_ms,
    }
    if p.profileId:
        d.record[LINK_KEY] = {"profile_id": p.profileId, "group_ids": [p.id]}
    d.shard_key = f"group:{p.id}"  # every operation on one group goes through one shard


def put_assignment(d: Draft) -> None:
    """``assign_group`` (setGroup/setGroups): one ``profile_groups`` row per group, made by the shard."""
    p = d.body.payload
    d.record = {
        TABLE_KEY: "profile_groups",
        "project_id": d.ctx.project_id,
        "profile_id": p.profileId,
        "assigned_at": d.ctx.now_ms,
        LINK_KEY: {"profile_id": p.profileId, "group_ids": distinct(p.groupIds)},
    }
    d.shard_key = f"profile:{p.profileId}"


# The ingest path, per message type, in order. ``parse`` (``validate_body``) runs before all of them.
TRACK_STEPS: tuple[Step, ...] = (
    ("event", start_event),
    ("timestamp", put_timestamp),
    ("device", put_device),
    # before the properties: a bad amount or currency is a 400 naming it, whatever its length
    ("revenue", put_revenue),
    ("properties", put_properties),
    ("page", put_page),
    ("referrer", put_referrer),
)
STEPS: dict[str, tuple[Step, ...]] = {
    "track": TRACK_STEPS,
    "identify": (("profile", put_profile),),
    "increment": (("counter", put_counter),),
    "decrement": (("counter", put_counter),),
    "alias": (("alias", put_alias),),
    # the device as for an event, so the chunk reaches the shard holding the device's visit
    "replay": (("replay", start_replay), ("device", put_device)),
    "group": (("group", put_group),),
    "assign_group": (("assign_group", put_assignment),),
}


def run(body: Any, ctx: RequestContext, limits: Limits, index: int = 0) -> Prepared | Dropped:
    """Parse ``body`` and run its type's steps: the record, or why it was dropped."""
    step = "parse"
    try:
        model = validate_body(body)
        draft = Draft(model, ctx, limits)
        for step, fn in STEPS[model.type]:  # noqa: B007 - ``step`` names the failing step below
            fn(draft)
    except ClientError as err:
        return Dropped(index, step, err)
    return Prepared(draft.record, draft.shard_key, model.type)


def prepare(body: Any, ctx: RequestContext, limits: Limits) -> Prepared:
    """``run`` for one event, raising the drop's ``ClientError``."""
    result = run(body, ctx, limits)
    if isinstance(result, Dropped):
        raise result.error
    return result
