"""Where the storage suite runs: the ClickHouse in ``EVENTLENS_TEST_CLICKHOUSE_URL`` when set, else
an embedded chDB directory.

The storage suite (tests marked ``storage``: the migrations applied for real, inserts with
deduplication tokens landing once, every insight query against the reference) takes its
warehouse from the ``storage_warehouse`` fixture (tests/conftest.py), which asks this module.
With a server URL each test module gets a database of its own (``eventlens_test_<random>``),
dropped at teardown; ``EVENTLENS_TEST_CLICKHOUSE_CLUSTER`` additionally runs it in cluster mode
(``ON CLUSTER`` DDL, Distributed tables).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_ENV = "EVENTLENS_TEST_CLICKHOUSE_URL"
CLUSTER_ENV = "EVENTLENS_TEST_CLICKHOUSE_CLUSTER"


@dataclass(frozen=True)
class StorageTarget:
    dsn: str
    database: str
    cluster: str | None = None

    @property
    def server(self) -> bool:
        return not self.dsn.startswith("chdb://")


def storage_target(chdb_dir: Path, environ: Mapping[str, str] | None = None) -> StorageTarget:
    """The ClickHouse the storage suite uses: a server from the environment, else chDB in
    ``chdb_dir``."""
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV, "").strip()
    cluster = env.get(CLUSTER_ENV, "").strip() or None
    if not url:
        if cluster:
            raise ValueError(f"{CLUSTER_ENV} needs {URL_ENV}: embedded chDB has no clusters")
        return StorageTarget(f"chdb://{chdb_dir}/ch", "eventlens")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{URL_ENV} must be an http(s):// URL of a ClickHouse server, not {url!r}")
    return StorageTarget(url, f"eventlens_test_{uuid.uuid4().hex[:12]}", cluster)


def open_storage(target: StorageTarget) -> Any:
    from eventlens.storage.clickhouse import Warehouse

    return Warehouse(target.dsn, target.database, target.cluster)


def release_storage(wh: Any, target: StorageTarget) -> None:
    """Close; on a server also drop the test's database (on every node of a cluster)."""
    try:
        if target.server:
            on = f" ON CLUSTER '{target.cluster}'" if target.cluster else ""
            wh.command(f"DROP DATABASE IF EXISTS `{target.database}`{on} SYNC")
    finally:
        wh.close()


def local_table(wh: Any, table: str) -> str:
    """Where ``table``'s rows are stored: itself, or its ``_local`` table on a cluster."""
    return f"{table}_local" if getattr(wh, "cluster", None) else table


def stop_merges(wh: Any, table: str) -> None:
    """Only insert deduplication may collapse rows from now on (on every node of a cluster)."""
    if getattr(wh, "cluster", None):
        wh.command(f"SYSTEM STOP MERGES ON CLUSTER '{wh.cluster}' {local_table(wh, table)}")
    else:
        wh.command(f"SYSTEM STOP MERGES {table}")
