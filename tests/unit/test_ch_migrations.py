"""The migration runner (eventlens.storage.migrations): splitting, discovery, and the ClickHouse
ledger, part of the storage suite: on the ClickHouse server in EVENTLENS_TEST_CLICKHOUSE_URL when
set, else on an embedded chDB.

Only one chDB directory may be open per process, so this module opens one (module-scoped, closed
at teardown) and every chDB test here shares it, resetting the ledger and its tables first.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from eventlens.config import Settings
from eventlens.storage.migrations import (
    CLICKHOUSE_DIR,
    METADATA_DIR,
    ClickHouseLedger,
    MigrationError,
    MigrationStatus,
    clickhouse_status,
    discover,
    migrate_clickhouse,
    migration_status,
    split_statements,
)


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("", []),
        ("   \n\n", []),
        ("-- only a comment\n-- and another;\n", []),
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1;\nSELECT 2;\n", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1;   \n\n\nSELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1;\r\nSELECT 2;\r\n", ["SELECT 1", "SELECT 2"]),
        # a ; inside a line is not a separator
        ("SELECT 'a;b', 2;\nSELECT 3;", ["SELECT 'a;b', 2", "SELECT 3"]),
        # whole-line comments are dropped (MySQL rejects a comment-only statement), also indented
        # ones and one ending in ";", which must not end a statement
        (
            "-- the events table\nCREATE TABLE t\n(\n  a UInt8\n)\nENGINE = Memory;\n\n-- trailing note;\n",
            ["CREATE TABLE t\n(\n  a UInt8\n)\nENGINE = Memory"],
        ),
        (
            "CREATE TABLE t (a UInt8)\nENGINE = Memory;\n-- done\n",
            ["CREATE TABLE t (a UInt8)\nENGINE = Memory"],
        ),
        (
            "-- header\nCREATE TABLE a (x TEXT);\n\n  -- note\nINSERT INTO a VALUES ('x;y');  \nSELECT 1",
            ["CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('x;y')", "SELECT 1"],
        ),
        ("CREATE TABLE t (\n  -- a column;\n  a UInt8\n);\n", ["CREATE TABLE t (\n  a UInt8\n)"]),
        # a trailing comment on a code line stays (only whole lines are comments)
        ("SELECT 1; -- one\nSELECT 2;\n", ["SELECT 1; -- one\nSELECT 2"]),
    ],
)
def test_split_statements(sql: str, statements: list[str]) -> None:
    assert split_statements(sql) == statements


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_discover_orders_by_number_and_splits(tmp_path: Path) -> None:
    d = write(
        tmp_path / "m",
        {
            "0010_later.sql": "SELECT 10;\n",
            "0002_second.sql": "SELECT 2;\nSELECT 22;\n",
            "0001_first.sql": "-- first\nSELECT 1;\n",
            "README.md": "not a migration",
        },
    )
    found = discover(d)
    assert [(m.version, m.name) for m in found] == [(1, "0001_first"), (2, "0002_second"), (10, "0010_later")]
    assert [m.path for m in found] == [d / "0001_first.sql", d / "0002_second.sql", d / "0010_later.sql"]
    assert found[1].statements == ("SELECT 2", "SELECT 22")
    assert found[0].statements == ("SELECT 1",)
    assert found[0].checksum == hashlib.sha256(b"-- first\nSELECT 1;\n").hexdigest()


def test_discover_empty_directory(tmp_path: Path) -> None:
    assert discover(write(tmp_path / "empty", {})) == []


def test_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        discover(tmp_path / "nope")


def test_duplicate_numbers_fail_naming_both_files(tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(MigrationError, match="duplicate migration number 0001") as err:
        discover(d)
    assert "0001_a.sql" in str(err.value) and "0001_b.sql" in str(err.value)


@pytest.mark.parametrize(
    "name",
    [
        "1_short.sql",
        "00001_five_digits.sql",
        "0001-dash.sql",
        "0001_Upper.sql",
        "0001_.sql",
        "abcd_x.sql",
        "0001_a b.sql",
    ],
)
def test_badly_named_files_fail_naming_the_file(tmp_path: Path, name: str) -> None:
    d = write(tmp_path / "m", {"0001_ok.sql": "SELECT 1;", name: "SELECT 2;"})
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql") as err:
        discover(d)
    assert name in str(err.value)


def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    found = discover(CLICKHOUSE_DIR)
    assert [m.version for m in found] == list(range(1, len(found) + 1))


def test_the_shipped_migrations_are_valid() -> None:
    found = discover(CLICKHOUSE_DIR)
    assert found
    for m in found:
        assert m.statements
        for statement in m.statements:
            assert not statement.rstrip().endswith(";")
            # a crashed half-run can be repeated: DDL is IF NOT EXISTS, a backfill fills only an
            # empty table (a cluster relies on that guard; on one node the runner replaces it with
            # a bounded backfill and resets a crashed run's view and rows: storage/backfill.py)
            body = statement.upper()
            target = re.search(r"^INSERT INTO (\w+)", body, re.M)
            if target:
                assert f"WHERE (SELECT COUNT() FROM {target.group(1)}) = 0" in body
            elif body.startswith("ALTER TABLE"):
                # setting a table setting to a value, or adding a column if it is not there, is
                # idempotent; nothing else is altered
                assert re.match(
                    r"^ALTER TABLE \w+ (MODIFY SETTING \w+ = \w+|ADD COLUMN IF NOT EXISTS \w+ .+)$", body
                ), body
            else:
                assert "IF NOT EXISTS" in body
    assert next(m.name for m in discover(METADATA_DIR)) == "0001_initial"


def test_status_of_a_chdb_directory_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    found = clickhouse_status(settings)
    assert [s.name for s in found] == [m.name for m in discover(CLICKHOUSE_DIR)]
    assert {s.state for s in found} == {"pending"}
    assert {s.checksum_match for s in found} == {None}
    assert not (tmp_path / "data").exists()


# the ClickHouse ledger on chDB ---------------------------------------------------------------------


@pytest.fixture
def wh(storage_warehouse: Any) -> Any:
    """The shared warehouse with no ledger and none of the tables the tests create."""
    if storage_warehouse.cluster:
        # these migrations create Memory tables of their own, which the cluster rewrite refuses
        # (it knows only the shipped tables); the shipped migrations run on the cluster in
        # test_tables, with the cluster's ledger
        pytest.skip("the ledger tests' own tables are not cluster tables")
    for table in ("schema_migrations", "mig_a", "mig_b", "mig_c"):
        storage_warehouse.command(f"DROP TABLE IF EXISTS {table}")
    return storage_warehouse


def _tables(wh: Any) -> set[str]:
    return {r["name"] for r in wh.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}


def _states(found: list[MigrationStatus]) -> list[tuple[str, str, bool | None]]:
    return [(s.name, s.state, s.checksum_match) for s in found]


_A = "CREATE TABLE IF NOT EXISTS mig_a (x UInt8) ENGINE = Memory;\n"
_B = "-- b\nCREATE TABLE IF NOT EXISTS mig_b (x UInt8) ENGINE = Memory;\n"


@pytest.mark.storage
@pytest.mark.chdb
def test_clickhouse_applies_in_order_once_and_reports_status(wh: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": _A, "0002_b.sql": _B})
    ledger = ClickHouseLedger(wh)
    # status changes nothing, not even the ledger table
    assert _states(migration_status(ledger, d)) == [("0001_a", "pending", None), ("0002_b", "pending", None)]
    assert "schema_migrations" not in _tables(wh)

    assert migrate_clickhouse(wh, d) == ["0001_a", "0002_b"]
    assert migrate_clickhouse(wh, d) == []
    assert {"mig_a", "mig_b", "schema_migrations"} <= _tables(wh)
    assert _states(migration_status(ledger, d)) == [("0001_a", "applied", True), ("0002_b", "applied", True)]

    write(d, {"0003_c.sql": "CREATE TABLE IF NOT EXISTS mig_c (x UInt8) ENGINE = Memory;\n"})
    assert [s.state for s in migration_status(ledger, d)] == ["applied", "applied", "pending"]
    assert migrate_clickhouse(wh, d) == ["0003_c"]


@pytest.mark.storage
@pytest.mark.chdb
def test_clickhouse_ledger_schema_is_unchanged(wh: Any, tmp_path: Path) -> None:
    migrate_clickhouse(wh, write(tmp_path / "m", {"0001_a.sql": _A}))
    described = wh.query("DESCRIBE TABLE schema_migrations")
    assert [(r["name"], r["type"]) for r in described] == [
        ("version", "UInt32"),
        ("name", "String"),
        ("checksum", "String"),
        ("applied_at", "DateTime64(3, 'UTC')"),
    ]
    rows = wh.query("SELECT version, name, checksum FROM schema_migrations")
    assert rows == [{"version": 1, "name": "0001_a", "checksum": hashlib.sha256(_A.encode()).hexdigest()}]


@pytest.mark.storage
@pytest.mark.chdb
def test_clickhouse_edited_applied_migration_is_an_error_naming_the_file(wh: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": _A})
    assert migrate_clickhouse(wh, d) == ["0001_a"]
    write(d, {"0001_a.sql": _A + "-- an afterthought\n", "0002_b.sql": _B})
    with pytest.raises(MigrationError, match=r"edited after it was applied") as err:
        migrate_clickhouse(wh, d)
    assert str(d / "0001_a.sql") in str(err.value)
    assert "mig_b" not in _tables(wh)  # nothing applied past the check
    assert _states(migration_status(ClickHouseLedger(wh), d)) == [
        ("0001_a", "applied", False),
        ("0002_b", "pending", None),
    ]


@pytest.mark.storage
@pytest.mark.chdb
def test_clickhouse_failed_migration_names_the_file_and_is_not_recorded(wh: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": _A, "0002_b.sql": "NOT VALID SQL;\n"})
    with pytest.raises(MigrationError, match=r"0002_b\.sql"):
        migrate_clickhouse(wh, d)
    assert [s.state for s in migration_status(ClickHouseLedger(wh), d)] == ["applied", "pending"]
    write(d, {"0002_b.sql": _B})
    assert migrate_clickhouse(wh, d) == ["0002_b"]


@pytest.mark.storage
@pytest.mark.chdb
def test_clickhouse_status_lists_a_recorded_migration_whose_file_is_gone(wh: Any, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": _A})
    migrate_clickhouse(wh, d)
    (d / "0001_a.sql").unlink()
    assert _states(migration_status(ClickHouseLedger(wh), d)) == [("0001_a", "applied", None)]
