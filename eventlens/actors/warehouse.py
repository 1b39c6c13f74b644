"""The actor that owns an embedded chDB directory; everyone else reaches ClickHouse through it."""

from __future__ import annotations

from typing import Any

import orjson
import ray

from eventlens.config import Settings
from eventlens.gctune import tune_gc
from eventlens.storage.clickhouse import Warehouse
from eventlens.storage.migrations import migrate_clickhouse
from eventlens.storage.versions import VersionCounter, projects_in


class StorageUnavailable(RuntimeError):
    """Inserts are refused for now (maintenance pause); shards keep the events in their logs."""


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=8)
class WarehouseActor:
    def __init__(self, settings_args: dict[str, Any]) -> None:
        settings = Settings(**settings_args)
        self.wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)
        # Migrations run in the owning process: no other process may open the chDB directory.
        self.applied = migrate_clickhouse(self.wh)
        self.paused = False
        # per-project data versions: insight caches key on them, so a flush invalidates
        self.versions = VersionCounter()
        tune_gc()

    def insert_columns(
        self, table: str, names: list[str], columns: bytes | list[list[Any]], token: str
    ) -> int:
        if isinstance(columns, bytes):
            columns = orjson.loads(columns)
        if self.paused:
            raise StorageUnavailable("writes are paused (maintenance)")
        sent = self.wh.insert_columns(table, names, columns, token)
        if "project_id" in names:
            self.versions.bump(projects_in(table, columns[names.index("project_id")]))
        return sent

    def insert_json(self, table: str, body: bytes, projects: list[str], token: str) -> None:
        """The shards' path: a JSONEachRow body built in the shard (``tables.to_json_rows``)."""
        if self.paused:
            raise StorageUnavailable("writes are paused (maintenance)")
        self.wh.insert_json(table, body, token)
        self.versions.bump(projects_in(table, projects))

    def data_version(self, project: str) -> str:
        return self.versions.get(project)

    def pause_writes(self, paused: bool) -> None:
        """Maintenance switch: refuse inserts (shards keep events in their logs) and report not ready."""
        self.paused = paused

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.wh.query(sql, parameters)

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.wh.command(sql, parameters)

    def ping(self) -> bool:
        return not self.paused and self.wh.ping()

    def migrations(self) -> list[str]:
        return self.applied

    def pid(self) -> int:
        """The owning process (fault tests freeze or kill it)."""
        import os

        return os.getpid()

    def close(self) -> None:
        self.wh.close()
