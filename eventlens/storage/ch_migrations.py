"""Ordered ClickHouse migrations, applied once each and recorded in a ledger table.

Files are ``migrations/clickhouse/NNNN_name.sql``; statements are separated by ``;`` at a line end.
Discovery fails loudly on a duplicate number. The ledger is append-only: a migration that crashed
half-way is visible as missing and its ``IF NOT EXISTS`` statements make the re-run safe.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventlens.config import Settings
    from eventlens.storage.clickhouse import Warehouse

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "clickhouse"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line ends, dropping comment-only and empty chunks."""
    out: list[str] = []
    for chunk in re.split(r";\s*(?:\n|$)", sql):
        body = "\n".join(
            line for line in chunk.splitlines() if line.strip() and not line.strip().startswith("--")
        )
        if body.strip():
            out.append(chunk.strip())
    return out


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise ValueError(f"duplicate migration number {version:04d}: {found[version].name}, {path.name}")
        text = path.read_text()
        found[version] = Migration(
            version=version,
            name=path.stem,
            statements=tuple(split_statements(text)),
            checksum=hashlib.sha256(text.encode()).hexdigest(),
        )
    return [found[v] for v in sorted(found)]


def applied_versions(warehouse: Warehouse) -> set[int]:
    warehouse.command(LEDGER_DDL)
    return {int(r["version"]) for r in warehouse.query("SELECT version FROM schema_migrations")}


def apply_migrations(warehouse: Warehouse, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what the ledger lacks, in order; returns the names applied now."""
    done = applied_versions(warehouse)
    applied: list[str] = []
    for mig in discover(directory):
        if mig.version in done:
            continue
        for statement in mig.statements:
            warehouse.command(statement)
        warehouse.command(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES "
            "({v:UInt32}, {n:String}, {c:String})",
            {"v": mig.version, "n": mig.name, "c": mig.checksum},
        )
        applied.append(mig.name)
    return applied


def apply_clickhouse_migrations(settings: Settings) -> list[str]:
    """For the CLI: open the configured ClickHouse directly and migrate it.

    In embedded mode this must not run while a daemon owns the chDB directory.
    """
    from eventlens.storage.clickhouse import Warehouse

    wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        return apply_migrations(wh)
    finally:
        wh.close()


def describe(directory: Path = MIGRATIONS_DIR) -> list[dict[str, Any]]:
    return [
        {"version": m.version, "name": m.name, "statements": len(m.statements)} for m in discover(directory)
    ]
