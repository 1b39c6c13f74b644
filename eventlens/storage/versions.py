"""Per-project data versions, bumped by every stored insert that insights read.

Insight caches key on a project's version (``insights.cache``), so an answer is never older than
the newest stored data. The version lives where every writer and reader can see it: in the chDB
owner actor (embedded: all inserts pass through it), or in a Redis hash (a ClickHouse server).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

# the tables insights read (profile_aliases: profile funnels and retention resolve aliases)
VERSIONED_TABLES = frozenset({"events", "sessions", "profile_aliases"})


def projects_in(table: str, project_ids: Iterable[str]) -> set[str]:
    """Projects an insert touches (empty for tables no insight reads)."""
    if table not in VERSIONED_TABLES:
        return set()
    return set(project_ids)


class VersionCounter:
    """Per-project versions held in one process; a boot id keeps versions unique across restarts."""

    def __init__(self) -> None:
        self.boot = uuid.uuid4().hex[:12]
        self.counts: dict[str, int] = {}

    def bump(self, projects: Iterable[str]) -> None:
        for p in projects:
            self.counts[p] = self.counts.get(p, 0) + 1

    def get(self, project: str) -> str:
        return f"{self.boot}:{self.counts.get(project, 0)}"


class RedisVersionBump:
    """Bumps versions in a Redis hash after a direct insert into a ClickHouse server."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def bump(self, projects: Iterable[str]) -> None:
        projects = list(projects)
        if not projects:
            return
        pipe = self.client.pipeline(transaction=False)
        for p in projects:
            pipe.hincrby(self.key, p, 1)
        pipe.execute()
