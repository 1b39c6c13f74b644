"""ClickHouse access through clickhouse-connect: chDB (embedded) or a server, one API.

``Warehouse`` is a plain class (no Ray). In embedded mode exactly one process may open a chDB
directory, so the warehouse actor holds the only ``Warehouse`` and everyone else goes through it;
with a server URL every shard and insight replica holds its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from eventlens.records import Record
from eventlens.storage.tables import TABLES, to_columns, to_json_rows

# Settings named per purpose, never scattered literals.
INSERT_SETTINGS: dict[str, Any] = {"insert_deduplicate": 1, "async_insert": 0}
# JSONEachRow bodies carry WAL records as they are: extra keys (``_t``) are not columns
JSON_INSERT_SETTINGS: dict[str, Any] = {**INSERT_SETTINGS, "input_format_skip_unknown_fields": 1}
QUERY_SETTINGS: dict[str, Any] = {"max_execution_time": 30, "readonly": 2}
MIGRATE_SETTINGS: dict[str, Any] = {"max_execution_time": 300}


def _connect(dsn: str, database: str | None) -> Client:
    kwargs: dict[str, Any] = {"dsn": dsn}
    if database:
        kwargs["database"] = database
    if not dsn.startswith("chdb://"):
        # one session per client would serialise queries; we hold one client per thread instead
        kwargs["autogenerate_session_id"] = False
        kwargs["connect_timeout"] = 5
        kwargs["send_receive_timeout"] = 60
    return clickhouse_connect.get_client(**kwargs)


def open_clickhouse(dsn: str, database: str) -> Client:
    """A client bound to ``database``, created first if missing."""
    bootstrap = _connect(dsn, None)
    bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    if dsn.startswith("chdb://"):
        bootstrap.command(f"USE `{database}`")
        return bootstrap
    bootstrap.close()
    return _connect(dsn, database)


class Warehouse:
    """Inserts and queries on one ClickHouse database; safe to share between threads."""

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database
        # Separate clients for writes and reads, so a dashboard query never waits behind a flush.
        self._write = open_clickhouse(dsn, database)
        self._read = self._write if dsn.startswith("chdb://") else _connect(dsn, database)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock() if self._read is not self._write else self._write_lock

    # writes ------------------------------------------------------------------------------------
    def insert_columns(
        self, table: str, column_names: Sequence[str], columns: Sequence[Sequence[Any]], token: str
    ) -> int:
        """Columnar insert with a deterministic deduplication token; returns rows sent."""
        if not columns or not columns[0]:
            return 0
        settings = dict(INSERT_SETTINGS, insert_deduplication_token=token)
        with self._write_lock:
            self._write.insert(
                table,
                list(columns),
                column_names=list(column_names),
                column_oriented=True,
                settings=settings,
            )
        return len(columns[0])

    def insert_json(self, table: str, body: bytes, token: str) -> None:
        """Insert a JSONEachRow body (``tables.to_json_rows``) with a deterministic deduplication token."""
        if table not in TABLES:  # identifiers come from the whitelist only
            raise ValueError(f"unknown table {table!r}")
        settings = dict(JSON_INSERT_SETTINGS, insert_deduplication_token=token)
        with self._write_lock:
            self._write.raw_insert(table, None, body, settings=settings, fmt="JSONEachRow")

    def insert_rows(self, table: str, rows: Sequence[Record], token: str, fmt: str = "json") -> int:
        """Insert WAL records into ``table`` as a JSONEachRow body or as Native columns; returns
        rows sent."""
        if not rows:
            return 0
        if fmt == "columnar":
            if table not in TABLES:  # identifiers come from the whitelist only
                raise ValueError(f"unknown table {table!r}")
            names, columns = to_columns(table, rows)
            return self.insert_columns(table, names, columns, token)
        self.insert_json(table, to_json_rows(table, rows), token)
        return len(rows)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._write_lock:
            return self._write.command(sql, parameters=dict(parameters or {}), settings=MIGRATE_SETTINGS)

    # reads -------------------------------------------------------------------------------------
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts; every value in ``parameters`` is bound server side, never interpolated."""
        with self._read_lock:
            result = self._read.query(sql, parameters=dict(parameters or {}), settings=QUERY_SETTINGS)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def ping(self) -> bool:
        try:
            with self._read_lock:
                return self._read.command("SELECT 1") == 1
        except Exception:
            return False

    def close(self) -> None:
        with self._write_lock:
            self._write.close()
            if self._read is not self._write:
                self._read.close()
