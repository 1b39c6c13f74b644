"""One incoming body → one WAL record, through a short list of named steps.

Runs in the ingest replica, before anything touches a shard: everything here is pure and cheap,
so rejected input never costs a Ray call. Session assignment happens later, in the shard that owns
the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import uuid_utils
from pydantic import ValidationError

from eventlens.errors import ClientError, pydantic_details, validation_message
from eventlens.ingest.identity import device_hash, visitor_key
from eventlens.ingest.page import UTM_KEYS, split_page
from eventlens.ingest.properties import flatten
from eventlens.ingest.referrer import classify_referrer
from eventlens.ingest.timestamps import parse_timestamp
from eventlens.models import BODY_ADAPTER, AliasBody, IdentifyBody, IncrementBody, TrackBody
from eventlens.records import TABLE_KEY, Record


@dataclass(frozen=True)
class Limits:
    max_properties: int = 256
    max_property_key_length: int = 256
    max_property_value_length: int = 4096
    max_future_ms: int = 60_000


@dataclass(frozen=True)
class RequestContext:
    project_id: str
    ip: str
    user_agent: str
    now_ms: int
    salt: str
    prev_salt: str = ""
    server_side: bool = False
    sdk_name: str = ""
    sdk_version: str = ""
    origin: str = ""  # the request's Origin header: the page's site when paths come without one
    # per-request enrichment (user agent, geo): the same for every event of a batch
    enrichment: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """A validated record, the key that picks its shard, and its type for the response."""

    record: Record
    shard_key: str
    type: str


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


def validate_body(body: Any) -> TrackBody | IdentifyBody | IncrementBody | AliasBody:
    if not isinstance(body, dict):
        raise ClientError(400, "invalid_body", 'body must be a JSON object {"type": ..., "payload": {...}}')
    kind = body.get("type")
    if kind not in ("track", "identify", "increment", "decrement", "alias"):
        raise ClientError(
            400,
            "invalid_type",
            "type must be one of track, identify, increment, decrement, alias",
            [{"loc": "type", "msg": f"got {str(kind)[:40]!r}"}],
        )
    if not isinstance(body.get("payload"), dict):
        raise ClientError(400, "invalid_payload", "payload must be a JSON object")
    try:
        return BODY_ADAPTER.validate_python(body)
    except ValidationError as exc:
        details = pydantic_details(exc)
        raise ClientError(400, "invalid_payload", validation_message(details), details) from None


def prepare_track(body: TrackBody, ctx: RequestContext, limits: Limits) -> Prepared:
    p = body.payload
    props = p.properties or {}
    path = p.path if p.path is not None else _reserved_str(props, "__path")
    referrer = p.referrer if p.referrer is not None else _reserved_str(props, "__referrer")
    title = p.title if p.title is not None else _reserved_str(props, "__title")
    raw_ts = p.timestamp if p.timestamp is not None else props.get("__timestamp")
    if raw_ts is not None and not isinstance(raw_ts, str | int | float):
        raise ClientError(
            400, "invalid_timestamp", "timestamp must be an ISO-8601 string or epoch milliseconds"
        )
    device_id = p.deviceId or _reserved_str(props, "__deviceId")
    ip = ctx.ip
    if ctx.server_side and (forwarded_ip := _reserved_str(props, "__ip")):
        ip = forwarded_ip  # a server-side SDK forwards its visitor's address
    created_at = parse_timestamp(raw_ts, ctx.now_ms, limits.max_future_ms)
    extra: Record = {}
    if device_id:
        shard_key = device_id
    else:
        device_id = device_hash(ctx.project_id, ip, ctx.user_agent, ctx.salt)
        if ctx.prev_salt:
            # the shard continues a visit that began under the previous salt (see sessions.py)
            extra["_prev_device"] = device_hash(ctx.project_id, ip, ctx.user_agent, ctx.prev_salt)
        # routed without the salt, so both ids of one visitor reach the same shard
        shard_key = "anon:" + visitor_key(ip, ctx.user_agent)
    record: Record = {
        TABLE_KEY: "events",
        "id": p.id or new_id(),
        "project_id": ctx.project_id,
        "name": p.name,
        "device_id": device_id,
        "profile_id": p.profileId or "",
        "session_id": p.sessionId or "",
        "created_at": created_at,
        "received_at": ctx.now_ms,
        "title": title or "",
        "properties": _flat(props, limits),
        "sdk_name": ctx.sdk_name,
        "sdk_version": ctx.sdk_version,
        **ctx.enrichment,
        **extra,
    }
    page = split_page(path)
    if not page["origin"] and ctx.origin.startswith(("http://", "https://")):
        page["origin"] = ctx.origin.lower().rstrip("/")
    record.update(page)
    page_url = path if page["origin"] or not ctx.origin else ctx.origin + (path or "")
    utm = {k: page[k] for k in UTM_KEYS if page[k]}
    ref = classify_referrer(referrer, page_url, utm)
    record["referrer"], record["referrer_name"], record["referrer_type"] = ref
    return Prepared(record, shard_key, "track")


def prepare_identify(body: IdentifyBody, ctx: RequestContext, limits: Limits) -> Prepared:
    p = body.payload
    record: Record = {
        TABLE_KEY: "profiles",
        "project_id": ctx.project_id,
        "profile_id": p.profileId,
        "first_name": p.firstName or "",
        "last_name": p.lastName or "",
        "email": p.email or "",
        "avatar": p.avatar or "",
        "properties": _flat(p.properties, limits),
        "updated_at": ctx.now_ms,
        "event_id": new_id(),
    }
    return Prepared(record, f"profile:{p.profileId}", "identify")


def prepare_counter(body: IncrementBody, ctx: RequestContext) -> Prepared:
    p = body.payload
    delta = p.value if body.type == "increment" else -p.value
    record: Record = {
        TABLE_KEY: "profile_counters",
        "project_id": ctx.project_id,
        "profile_id": p.profileId,
        "property": p.property,
        "delta": float(delta),
        "created_at": ctx.now_ms,
        "event_id": new_id(),
    }
    return Prepared(record, f"profile:{p.profileId}", body.type)


def prepare_alias(body: AliasBody, ctx: RequestContext) -> Prepared:
    p = body.payload
    record: Record = {
        TABLE_KEY: "profile_aliases",
        "project_id": ctx.project_id,
        "alias": p.alias,
        "profile_id": p.profileId,
        "created_at": ctx.now_ms,
        "event_id": new_id(),
    }
    return Prepared(record, f"profile:{p.profileId}", "alias")


def prepare(body: Any, ctx: RequestContext, limits: Limits) -> Prepared:
    """Validate one ``{"type", "payload"}`` body and turn it into a WAL record."""
    model = validate_body(body)
    if isinstance(model, TrackBody):
        return prepare_track(model, ctx, limits)
    if isinstance(model, IdentifyBody):
        return prepare_identify(model, ctx, limits)
    if isinstance(model, IncrementBody):
        return prepare_counter(model, ctx)
    return prepare_alias(model, ctx)
