"""Groups (B2B accounts) in the shard: ``group`` merges into the group's stored state like
``identify`` does for a profile, and a message's profile links become ``profile_groups`` rows.

A group's every ``group`` message goes through the group's one shard (ingest routes it by
``group:<id>``), in order, so the merge is exact as for profiles (``buffer.profiles``).
"""

from __future__ import annotations

from typing import Any

from eventlens.buffer.profiles import ProfileBook, ProfileLoader
from eventlens.records import LINK_KEY, TABLE_KEY, Record

GROUP_NAME_FIELDS = ("type", "name")


def merge_group(prev: dict[str, Any] | None, rec: Record) -> Record:
    """``rec`` on top of ``prev``: an empty type or name and unnamed properties keep their stored
    values; ``created_at`` stays the first time the group was seen."""
    if not prev:
        return rec
    merged = dict(rec)
    for f in GROUP_NAME_FIELDS:
        if not merged.get(f):
            merged[f] = prev.get(f, "")
    merged["properties"] = {**(prev.get("properties") or {}), **(rec.get("properties") or {})}
    if prev.get("created_at"):
        merged["created_at"] = min(int(prev["created_at"]), int(rec.get("created_at") or prev["created_at"]))
    # the newest row must win in the ReplacingMergeTree even within one millisecond
    merged["updated_at"] = max(int(rec["updated_at"]), int(prev.get("updated_at", 0)) + 1)
    return merged


def group_book(load: ProfileLoader | None, capacity: int) -> ProfileBook:
    return ProfileBook(load, capacity, key="group_id", merge=merge_group)


def link_rows(rec: Record) -> list[Record]:
    """The ``profile_groups`` rows of a message's links: one per (profile, group)."""
    link = rec.get(LINK_KEY)
    if not link:
        return []
    at = int(rec.get("assigned_at") or rec.get("updated_at") or 0)
    return [
        {
            TABLE_KEY: "profile_groups",
            "project_id": rec["project_id"],
            "profile_id": link["profile_id"],
            "group_id": group_id,
            "assigned_at": at,
        }
        for group_id in link["group_ids"]
    ]


def without_link(rec: Record) -> Record:
    return {k: v for k, v in rec.items() if k != LINK_KEY} if LINK_KEY in rec else rec
