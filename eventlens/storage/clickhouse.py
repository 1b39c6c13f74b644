"""ClickHouse access through clickhouse-connect: chDB (embedded) or a server, one API.

``Warehouse`` is a plain class (no Ray). In embedded mode exactly one process may open a chDB
directory, so the warehouse actor holds the only ``Warehouse`` and everyone else goes through it;
with a server URL every shard and insight replica holds its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from eventlens.records import DECIMAL_COLUMNS, Record
from eventlens.storage.cluster_ddl import create_database, validate_cluster
from eventlens.storage.tables import TABLES, to_columns, to_json_rows

if TYPE_CHECKING:
    from eventlens.config import Settings

# Settings named per purpose, never scattered literals.
INSERT_SETTINGS: dict[str, Any] = {"insert_deduplicate": 1, "async_insert": 0}
# JSONEachRow bodies carry WAL records as they are: extra keys (``_t``) are not columns
JSON_INSERT_SETTINGS: dict[str, Any] = {**INSERT_SETTINGS, "input_format_skip_unknown_fields": 1}
QUERY_SETTINGS: dict[str, Any] = {"max_execution_time": 30, "readonly": 2}
MIGRATE_SETTINGS: dict[str, Any] = {"max_execution_time": 300}
# On a cluster (``clickhouse_cluster``) the application writes and reads the Distributed tables.
# - An insert returns only once every shard stored its part (by default a Distributed insert is
#   queued on the receiving node and sent later: the shard would drop its write-ahead log for
#   rows that exist only in a queue). The shard's part carries the insert's settings, so the
#   batch's insert_deduplication_token deduplicates a replay there; the split is the sharding
#   key's, so a replay splits the same way. The migrations' backfills insert the same way, so a
#   re-run's "only into an empty table" guard sees what the crashed run stored.
# - Views below a deduplicated block skip it too (rollups count a replayed batch once).
CLUSTER_INSERT_SETTINGS: dict[str, Any] = {
    "distributed_foreground_insert": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}
# - A query on one Distributed table with a subquery or JOIN on another (aliases, the session
#   filter's ``IN (SELECT ... FROM events)``) is refused by default ("double-distributed"); GLOBAL
#   computes the inner one once on the initiator and sends it to the shards: the same answer as
#   on one node, since aliases are not sharded by device.
CLUSTER_QUERY_SETTINGS: dict[str, Any] = {"distributed_product_mode": "global"}


def decimal_columns(
    table: str, names: Sequence[str], columns: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    """The decimal columns' text (records keep amounts as text: ``records.DECIMAL_COLUMNS``) as
    ``Decimal`` values, which the Native encoder needs."""
    wanted = DECIMAL_COLUMNS.get(table, ())
    if not wanted:
        return columns
    out = list(columns)
    for i, name in enumerate(names):
        if name in wanted:
            out[i] = [v if isinstance(v, Decimal) else Decimal(str(v)) for v in out[i]]
    return out


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


def open_clickhouse(dsn: str, database: str, cluster: str | None = None) -> Client:
    """A client bound to ``database``, created first if missing (on every node of ``cluster``)."""
    bootstrap = _connect(dsn, None)
    if cluster:
        bootstrap.command(create_database(database, cluster))
    else:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    if dsn.startswith("chdb://"):
        bootstrap.command(f"USE `{database}`")
        return bootstrap
    bootstrap.close()
    return _connect(dsn, database)


class Warehouse:
    """Inserts and queries on one ClickHouse database; safe to share between threads."""

    def __init__(self, dsn: str, database: str, cluster: str | None = None) -> None:
        if cluster is not None:
            validate_cluster(cluster)
            if dsn.startswith("chdb://"):
                raise ValueError("a ClickHouse cluster needs a server URL: embedded chDB has no clusters")
        self.dsn = dsn
        self.database = database
        # the cluster whose Distributed tables this warehouse uses (migrations write them ON CLUSTER)
        self.cluster = cluster
        extra_insert = CLUSTER_INSERT_SETTINGS if cluster else {}
        self._insert_settings = {**INSERT_SETTINGS, **extra_insert}
        self._json_insert_settings = {**JSON_INSERT_SETTINGS, **extra_insert}
        self._query_settings = {**QUERY_SETTINGS, **(CLUSTER_QUERY_SETTINGS if cluster else {})}
        self._migrate_settings = {**MIGRATE_SETTINGS, **extra_insert}
        # Separate clients for writes and reads, so a dashboard query never waits behind a flush.
        self._write = open_clickhouse(dsn, database, cluster)
        self._read = self._write if dsn.startswith("chdb://") else _connect(dsn, database)
        # reentrant: a thread holding them (``exclusive``) still issues its own statements
        self._write_lock = threading.RLock()
        self._read_lock = threading.RLock() if self._read is not self._write else self._write_lock

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        return cls(settings.clickhouse_dsn, settings.clickhouse_database, settings.clickhouse_cluster)

    # writes ------------------------------------------------------------------------------------
    def insert_columns(
        self, table: str, column_names: Sequence[str], columns: Sequence[Sequence[Any]], token: str
    ) -> int:
        """Columnar insert with a deterministic deduplication token; returns rows sent."""
        if not columns or not columns[0]:
            return 0
        settings = dict(self._insert_settings, insert_deduplication_token=token)
        columns = decimal_columns(table, column_names, columns)
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
        settings = dict(self._json_insert_settings, insert_deduplication_token=token)
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

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Nothing else runs through this warehouse (inserts, queries of other threads) until the
        block ends; the calling thread's own statements inside it do. Other processes' inserts are
        not held (the migrations' view attachment, ``storage.backfill``, detects those)."""
        with self._write_lock, self._read_lock:
            yield

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._write_lock:
            return self._write.command(
                sql, parameters=dict(parameters or {}), settings=self._migrate_settings
            )

    # reads -------------------------------------------------------------------------------------
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts; every value in ``parameters`` is bound server side, never interpolated."""
        with self._read_lock:
            result = self._read.query(sql, parameters=dict(parameters or {}), settings=self._query_settings)
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
