"""The vocabulary every layer shares: the record, its table key, the tables' columns, event kinds.

A record is one row on its way to ClickHouse, as it travels from an ingest replica through a
shard's write-ahead log to an insert: a plain dict whose ``TABLE_KEY`` names its table (events when
absent) and whose other keys are that table's columns (any it lacks takes the default below).
The column lists mirror ``migrations/clickhouse``; a test compares them with ``DESCRIBE TABLE``.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]

# The key naming a record's table; not a column, so inserts skip it.
TABLE_KEY = "_t"
DEFAULT_TABLE = "events"
# The key of a message's profile-to-group links (``group``, ``assign_group``): not a column either;
# the shard turns it into ``profile_groups`` rows before logging (``buffer.groups.link_rows``).
LINK_KEY = "_link"


def table_of(record: Record) -> str:
    return record.get(TABLE_KEY, DEFAULT_TABLE)


class Duplicate(dict[str, str]):
    """A shard's answer to an event whose id it already logged (a client retry): the first
    answer, equal to it and serialised like it, whose type tells the replica to count a duplicate."""


class Refused(dict[str, str]):
    """A shard's answer to a record it will not log: ``error`` (a code) and ``message`` (what to
    fix), answered to the client as a 409 (single) or a rejected item (batch)."""


# Event names with a meaning of their own.
PAGE_VIEWS = frozenset(("page_view", "screen_view"))
MARKERS = frozenset(("session_start", "session_end"))

# Campaign, geo and device columns: on every event and copied onto its session's row.
ATTRIBUTION_COLUMNS: dict[str, Any] = {
    "utm_source": "",
    "utm_medium": "",
    "utm_campaign": "",
    "utm_term": "",
    "utm_content": "",
    "country": "",
    "region": "",
    "city": "",
    "browser": "",
    "browser_version": "",
    "os": "",
    "os_version": "",
    "device": "",
    "brand": "",
    "model": "",
    "is_bot": 0,
}

EVENT_COLUMNS: dict[str, Any] = {
    "id": "",
    "project_id": "",
    "name": "",
    "device_id": "",
    "profile_id": "",
    "session_id": "",
    "created_at": 0,
    "received_at": 0,
    "origin": "",
    "path": "",
    "title": "",
    "referrer": "",
    "referrer_name": "",
    "referrer_type": "",
    **ATTRIBUTION_COLUMNS,
    "properties": {},
    "sdk_name": "",
    "sdk_version": "",
    # an event that carried ``__revenue``: the amount as exact decimal text (``Decimal(18, 4)``;
    # text, so the write-ahead log's JSON keeps every digit) and its ISO-4217 code; else 0 and ''
    "revenue": "0",
    "currency": "",
    # the ids of the groups (B2B accounts) the event belongs to, as the client sent them (0013)
    "groups": [],
}
# the revenue column's text becomes a ``Decimal`` for a columnar (Native) insert
DECIMAL_COLUMNS: dict[str, tuple[str, ...]] = {"events": ("revenue",)}

PROFILE_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "profile_id": "",
    "first_name": "",
    "last_name": "",
    "email": "",
    "avatar": "",
    "properties": {},
    "updated_at": 0,
    "event_id": "",
}

COUNTER_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "profile_id": "",
    "property": "",
    "delta": 0.0,
    "created_at": 0,
    "event_id": "",
}

ALIAS_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "alias": "",
    "profile_id": "",
    "created_at": 0,
    "event_id": "",
}

# ``group``: a group's state, merged like a profile's (the newest row per (project, group) wins)
GROUP_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "group_id": "",
    "type": "",
    "name": "",
    "properties": {},
    "created_at": 0,
    "updated_at": 0,
}

# ``assign_group``: one row per (profile, group) link
PROFILE_GROUP_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "profile_id": "",
    "group_id": "",
    "assigned_at": 0,
}

SESSION_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "session_id": "",
    "device_id": "",
    "profile_id": "",
    "opened_at": 0,
    "started_at": 0,
    "ended_at": 0,
    "duration": 0.0,
    "entry_path": "",
    "exit_path": "",
    "entry_at": 0,  # the entry page view's time (0: none, or a row written before migration 0010)
    "exit_at": 0,
    "origin": "",
    "referrer": "",
    "referrer_name": "",
    "referrer_type": "",
    **ATTRIBUTION_COLUMNS,
    "sdk_name": "",
    "sdk_version": "",
    "page_views": 0,
    "events": 0,
    "is_bounce": 0,
    "is_closed": 0,
    "version": 0,
    "shard": 0,
}

# A session replay chunk (``replay`` messages); never an event.
REPLAY_COLUMNS: dict[str, Any] = {
    "project_id": "",
    "session_id": "",
    "device_id": "",
    "chunk_index": 0,
    "started_at": 0,
    "ended_at": 0,
    "events_count": 0,
    "is_full_snapshot": 0,
    "payload": "",
    "received_at": 0,
}

TABLES: dict[str, dict[str, Any]] = {
    "events": EVENT_COLUMNS,
    "profiles": PROFILE_COLUMNS,
    "profile_counters": COUNTER_COLUMNS,
    "profile_aliases": ALIAS_COLUMNS,
    "sessions": SESSION_COLUMNS,
    "replays": REPLAY_COLUMNS,
    "groups": GROUP_COLUMNS,
    "profile_groups": PROFILE_GROUP_COLUMNS,
}


# The DateTime64(3) columns of each table: records hold epoch milliseconds there (see to_json_rows).
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("created_at", "received_at"),
    "profiles": ("updated_at",),
    "profile_counters": ("created_at",),
    "profile_aliases": ("created_at",),
    "sessions": ("opened_at", "started_at", "ended_at", "entry_at", "exit_at"),
    "replays": ("started_at", "ended_at", "received_at"),
    "groups": ("created_at", "updated_at"),
    "profile_groups": ("assigned_at",),
}


# Copied from a session's first event onto its markers and its sessions row.
ENTRY_FIELDS = (
    "project_id",
    "device_id",
    "origin",
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
