"""The buffer's batch writer: where a shard's flush stores its rows, and reads its state back.

One interface, two implementations, picked once by ``eventlens.backends``:
- ``ActorWriter``: embedded chDB, through the actor that owns the directory. The insert body is
  built here, in the shard, so the one chDB owner process only parses and stores it.
- ``ServerWriter``: straight to a ClickHouse server; bumps the insight cache's data versions in
  Redis after each stored insert when Redis is configured.
Every insert carries its deduplication token, so a replayed segment is stored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import orjson

from eventlens.records import Record
from eventlens.storage.clickhouse import Warehouse
from eventlens.storage.tables import to_columns, to_json_rows
from eventlens.storage.versions import RedisVersionBump, projects_in

InsertFormat = Literal["json", "columnar"]
# a hung insert fails loudly instead of stalling the flush for ever
ACTOR_CALL_TIMEOUT_S = 120


class Writer(Protocol):
    def insert(self, table: str, rows: Sequence[Record], token: str) -> Any:
        """Store ``rows`` in ``table`` with the deduplication ``token``; raises if storage fails."""
        ...

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


class ActorWriter:
    def __init__(self, actor: Any, fmt: InsertFormat = "json") -> None:
        self.actor = actor
        self.fmt = fmt

    def insert(self, table: str, rows: Sequence[Record], token: str) -> Any:
        import ray

        if self.fmt == "columnar":
            names, columns = to_columns(table, rows)
            call = self.actor.insert_columns.remote(table, names, orjson.dumps(columns), token)
            return ray.get(call, timeout=ACTOR_CALL_TIMEOUT_S)
        body = to_json_rows(table, rows)
        projects = sorted({r["project_id"] for r in rows})
        return ray.get(
            self.actor.insert_json.remote(table, body, projects, token), timeout=ACTOR_CALL_TIMEOUT_S
        )

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        import ray

        return ray.get(self.actor.query.remote(sql, params), timeout=ACTOR_CALL_TIMEOUT_S)


class ServerWriter:
    def __init__(
        self, warehouse: Warehouse, fmt: InsertFormat = "json", versions: RedisVersionBump | None = None
    ) -> None:
        self.wh = warehouse
        self.fmt = fmt
        self.versions = versions

    def insert(self, table: str, rows: Sequence[Record], token: str) -> int:
        sent = self.wh.insert_rows(table, rows, token, self.fmt)
        if self.versions is not None:
            # insight caches key on the project's data version: bump it once the rows are stored
            self.versions.bump(projects_in(table, (r["project_id"] for r in rows)))
        return sent

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.wh.query(sql, params)
