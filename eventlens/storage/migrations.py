"""Ordered SQL migrations for ClickHouse and for the metadata database: one runner, two ledgers.

Files are ``NNNN_name.sql`` (``migrations/clickhouse``, ``migrations/metadata``); statements end
with ``;`` at a line end. Each database records what it applied in a ``schema_migrations`` ledger
table with the file's SHA-256, and the runner compares it on every run: a migration edited after it
was applied is an error naming the file, because the database does not hold what the file now says.
Changes go into a new migration instead.

The ClickHouse ledger is append-only and unlocked (one process owns the schema at start-up; the DDL
is ``IF NOT EXISTS``, so a run that crashed half-way is visible as pending and safe to repeat). A
migration that adds a materialized view and backfills its table may run while the database keeps
receiving inserts: ``storage.backfill`` attaches the view and bounds the backfill so every row is
counted once, and resets what a crashed run of it left before running it again. The
metadata ledger applies each migration under the backend's exclusive lock and re-checks the ledger
after taking it, so concurrent processes apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from eventlens.storage.metadata_backends import Backend, MetadataError, SQLiteBackend

if TYPE_CHECKING:
    from eventlens.config import Settings
    from eventlens.storage.clickhouse import Warehouse

__all__ = [
    "CLICKHOUSE_DIR",
    "METADATA_DIR",
    "Applied",
    "ClickHouseLedger",
    "Ledger",
    "MetadataLedger",
    "Migration",
    "MigrationError",
    "MigrationStatus",
    "apply_clickhouse_migrations",
    "apply_migrations",
    "clickhouse_status",
    "discover",
    "migrate_clickhouse",
    "migration_status",
    "split_statements",
]

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[2] / "migrations"
CLICKHOUSE_DIR = _ROOT / "clickhouse"
METADATA_DIR = _ROOT / "metadata"

_NAME_RE = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")
_STATEMENT_END_RE = re.compile(r";[ \t]*$", re.MULTILINE)


class MigrationError(MetadataError):
    """Migration files are inconsistent (bad name, duplicate number, edited after being applied) or
    one failed to apply. A ``MetadataError``, so the metadata store's callers handle it as before."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file stem, "0001_initial": what the ledger records
    path: Path
    statements: tuple[str, ...]
    checksum: str  # SHA-256 of the file's text


@dataclass(frozen=True)
class Applied:
    """One ledger row."""

    version: int
    name: str
    checksum: str


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    state: Literal["applied", "pending"]
    # None when there is nothing to compare: pending, or applied but its file is gone
    checksum_match: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "checksum_match": self.checksum_match,
        }


# --- files ------------------------------------------------------------------------------------
def split_statements(sql: str) -> list[str]:
    """Statements end with ``;`` at the end of a line (a ``;`` inside a line is not a separator).
    Whole-line ``--`` comments are dropped first: MySQL rejects a comment-only query as empty, and
    a ``;`` ending a comment line must not end a statement."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    chunks = _STATEMENT_END_RE.split("\n".join(lines))
    return [chunk.strip() for chunk in chunks if chunk.strip()]


def discover(directory: Path) -> list[Migration]:
    """``NNNN_name.sql`` files in version order. A duplicate number or a ``.sql`` file that does not
    follow the pattern fails loudly rather than being skipped."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path} is not named NNNN_name.sql (e.g. 0001_name.sql)")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"duplicate migration number {version:04d}: {found[version].path}, {path}")
        text = path.read_text(encoding="utf-8")
        found[version] = Migration(
            version=version,
            name=path.stem,
            path=path,
            statements=tuple(split_statements(text)),
            checksum=hashlib.sha256(text.encode()).hexdigest(),
        )
    return [found[v] for v in sorted(found)]


def _run_statements(migration: Migration, execute: Callable[[str], object]) -> None:
    for statement in migration.statements:
        try:
            execute(statement)
        except Exception as exc:
            raise MigrationError(f"migration {migration.path} failed: {exc}") from exc


# --- ledgers ----------------------------------------------------------------------------------
class Ledger(Protocol):
    kind: str  # "clickhouse" or "metadata", for logs

    def create(self) -> None:
        """Create the ledger table if missing."""

    def recorded(self) -> dict[int, Applied]:
        """Ledger rows by version; empty (and nothing created) when the table does not exist."""

    def apply(self, migration: Migration) -> bool:
        """Run the statements and record the migration; False if another process already had."""

    def prepare(self, migrations: list[Migration]) -> list[Migration]:
        """The migrations as this database runs them (their statements may be rewritten)."""


class ClickHouseLedger:
    """The ledger in ClickHouse, through a ``Warehouse``."""

    kind = "clickhouse"
    DDL = """
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

    def __init__(self, warehouse: Warehouse) -> None:
        self._wh = warehouse
        self.cluster: str | None = getattr(warehouse, "cluster", None)

    def create(self) -> None:
        if self.cluster:
            from eventlens.storage.cluster_ddl import ledger_ddl

            self._wh.command(ledger_ddl(self.cluster))  # replicated to every node, no Distributed
        else:
            self._wh.command(self.DDL)

    def prepare(self, migrations: list[Migration]) -> list[Migration]:
        """On a cluster, every statement in its ``ON CLUSTER`` form (``cluster_ddl``); all files
        are rewritten, applied or not, since a later file refers to earlier files' tables."""
        if not self.cluster:
            return migrations
        from eventlens.storage.cluster_ddl import for_cluster

        return for_cluster(migrations, self.cluster, self._wh.database)

    def recorded(self) -> dict[int, Applied]:
        exists = self._wh.query(
            "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            {"t": "schema_migrations"},
        )
        if not exists or not exists[0]["n"]:
            return {}
        rows = self._wh.query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version, applied_at"
        )
        out: dict[int, Applied] = {}
        for row in rows:
            # append-only: a version recorded twice (a concurrent start) keeps its first row
            out.setdefault(int(row["version"]), Applied(int(row["version"]), row["name"], row["checksum"]))
        return out

    def apply(self, migration: Migration) -> bool:
        from eventlens.storage.backfill import apply_with_views, views_with_backfills

        try:
            live = not self.cluster and bool(views_with_backfills(migration))
        except Exception as exc:
            raise MigrationError(f"migration {migration.path} failed: {exc}") from exc
        if live:
            # a view over a table that may be receiving inserts, and the backfill of what the
            # table held before it: each row counted once (storage/backfill.py says how). On a
            # cluster the statements run as written (the backfill fills an empty table only):
            # pause the writers there while a migration that backfills runs.
            try:
                apply_with_views(self._wh, migration)
            except Exception as exc:
                raise MigrationError(f"migration {migration.path} failed: {exc}") from exc
        else:
            _run_statements(migration, self._wh.command)
        self._wh.command(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES "
            "({v:UInt32}, {n:String}, {c:String})",
            {"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        return True


class MetadataLedger:
    """The ledger in the metadata database (SQLite or MariaDB/MySQL), through its backend. The
    caller serialises use of the backend's connection (``MetadataStore`` holds its lock)."""

    kind = "metadata"
    # version is the zero-padded text "0001", as existing databases hold it
    DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version VARCHAR(255) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    checksum VARCHAR(64) NOT NULL,
    applied_at VARCHAR(32) NOT NULL
)
"""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def prepare(self, migrations: list[Migration]) -> list[Migration]:
        return migrations

    def create(self) -> None:
        self._backend.execute(self.DDL)

    def _exists(self) -> bool:
        if isinstance(self._backend, SQLiteBackend):
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
        return bool(self._backend.execute(sql, ("schema_migrations",)))

    def recorded(self) -> dict[int, Applied]:
        if not self._exists():
            return {}
        rows = self._backend.execute("SELECT version, name, checksum FROM schema_migrations")
        return {int(v): Applied(int(v), str(n), str(c)) for v, n, c in rows}

    def apply(self, migration: Migration) -> bool:
        version = f"{migration.version:04d}"
        with self._backend.exclusive("migrate"):
            if self._backend.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                return False  # another process applied it while we waited for the lock
            _run_statements(migration, self._backend.execute)
            applied_at = datetime.now(UTC).isoformat(timespec="microseconds")
            try:
                self._backend.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    (version, migration.name, migration.checksum, applied_at),
                )
            except self._backend.integrity_errors:
                return False  # recorded concurrently; the statements are idempotent
            return True


# --- the runner -------------------------------------------------------------------------------
def _check_unchanged(migrations: list[Migration], recorded: Mapping[int, Applied]) -> None:
    edited = [m for m in migrations if m.version in recorded and recorded[m.version].checksum != m.checksum]
    if edited:
        files = ", ".join(str(m.path) for m in edited)
        raise MigrationError(
            f"migration edited after it was applied (checksum differs from the ledger): {files}; "
            "restore the applied text and put the change in a new migration"
        )


def apply_migrations(ledger: Ledger, directory: Path) -> list[str]:
    """Apply what the ledger lacks, in order; returns the names applied now. Fails before applying
    anything if an applied migration's file was edited."""
    migrations = discover(directory)
    migrations = ledger.prepare(migrations)  # fails before anything runs if a statement is not understood
    ledger.create()
    recorded = ledger.recorded()
    _check_unchanged(migrations, recorded)
    applied: list[str] = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        if ledger.apply(migration):
            log.info("applied %s migration %s", ledger.kind, migration.name)
            applied.append(migration.name)
    return applied


def migration_status(ledger: Ledger | None, directory: Path) -> list[MigrationStatus]:
    """Applied and pending migrations in version order; changes nothing (not even the ledger table).
    ``ledger`` None stands for a database that does not exist yet: everything is pending."""
    files = {m.version: m for m in discover(directory)}
    recorded = ledger.recorded() if ledger is not None else {}
    out: list[MigrationStatus] = []
    for version in sorted(files.keys() | recorded.keys()):
        migration, row = files.get(version), recorded.get(version)
        if row is None:
            assert migration is not None  # in one of the two by construction
            out.append(MigrationStatus(version, migration.name, "pending", None))
        elif migration is None:
            out.append(MigrationStatus(version, row.name, "applied", None))
        else:
            out.append(
                MigrationStatus(version, migration.name, "applied", row.checksum == migration.checksum)
            )
    return out


# --- ClickHouse entry points ------------------------------------------------------------------
def migrate_clickhouse(warehouse: Warehouse, directory: Path = CLICKHOUSE_DIR) -> list[str]:
    """Bring an open warehouse's schema up to date; returns the names applied now."""
    return apply_migrations(ClickHouseLedger(warehouse), directory)


def apply_clickhouse_migrations(settings: Settings) -> list[str]:
    """Open the configured ClickHouse directly and migrate it (the CLI, a server-mode daemon).

    In embedded mode this must not run while a daemon owns the chDB directory.
    """
    from eventlens.storage.clickhouse import Warehouse  # pulls in the ClickHouse client

    wh = Warehouse.from_settings(settings)
    try:
        return migrate_clickhouse(wh)
    finally:
        wh.close()


def clickhouse_status(settings: Settings, directory: Path = CLICKHOUSE_DIR) -> list[MigrationStatus]:
    """The configured ClickHouse's migration status. An embedded chDB directory that does not exist
    yet is reported as all pending without creating it."""
    dsn = settings.clickhouse_dsn
    if dsn.startswith("chdb://") and not Path(dsn.removeprefix("chdb://")).exists():
        return migration_status(None, directory)
    from eventlens.storage.clickhouse import Warehouse

    wh = Warehouse.from_settings(settings)
    try:
        return migration_status(ClickHouseLedger(wh), directory)
    finally:
        wh.close()
