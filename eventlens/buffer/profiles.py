"""``identify`` merges into a profile's stored state: what it leaves out keeps its value.

Exact because every profile operation goes through the profile's one shard, in order: the shard
keeps the newest state of recently seen profiles and reads an unseen one back from storage once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from eventlens.records import Record

ProfileLoader = Callable[[str, str], dict[str, Any] | None]
Merge = Callable[[dict[str, Any] | None, Record], Record]
NAME_FIELDS = ("first_name", "last_name", "email", "avatar")


def merge_profile(prev: dict[str, Any] | None, rec: Record) -> Record:
    """``rec`` on top of ``prev``: empty fields and unnamed properties keep their stored values."""
    if not prev:
        return rec
    merged = dict(rec)
    for f in NAME_FIELDS:
        if not merged.get(f):
            merged[f] = prev.get(f, "")
    merged["properties"] = {**(prev.get("properties") or {}), **(rec.get("properties") or {})}
    # the newest row must win in the ReplacingMergeTree even within one millisecond
    merged["updated_at"] = max(int(rec["updated_at"]), int(prev.get("updated_at", 0)) + 1)
    return merged


class ProfileBook:
    """The newest state of the profiles a shard saw lately (LRU), loading others on demand.

    Groups keep their state the same way (``key`` ``group_id``, ``merge`` ``groups.merge_group``)."""

    def __init__(
        self,
        load: ProfileLoader | None,
        capacity: int,
        key: str = "profile_id",
        merge: Merge = merge_profile,
    ) -> None:
        self.load = load
        self.capacity = capacity
        self.key = key
        self.merge_fn = merge
        self.profiles: OrderedDict[tuple[str, str], Record] = OrderedDict()

    def merge(self, rec: Record, pending: dict[tuple[str, str], Record] | None = None) -> Record:
        """``rec`` merged onto the profile's newest state. With ``pending`` the result is kept there
        (later merges of the same call build on it) and remembered only by ``remember_all``, once
        the log holds it; without, it is remembered at once."""
        key = (rec["project_id"], rec[self.key])
        prev = pending.get(key) if pending is not None else None
        if prev is None:
            prev = self.profiles.get(key)
        if prev is None and self.load is not None:
            prev = self.load(*key)
        rec = self.merge_fn(prev, rec)
        if pending is None:
            self.remember(rec)
        else:
            pending[key] = rec
        return rec

    def remember_all(self, recs: Iterable[Record]) -> None:
        for rec in recs:
            self.remember(rec)

    def remember(self, rec: Record) -> None:
        key = (rec["project_id"], rec[self.key])
        self.profiles[key] = rec
        self.profiles.move_to_end(key)
        if len(self.profiles) > self.capacity:
            self.profiles.popitem(last=False)
