"""ClickHouse migration files (eventlens.storage.ch_migrations): splitting and discovery."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from eventlens.storage.ch_migrations import MIGRATIONS_DIR, describe, discover, split_statements


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
        # leading comments stay with their statement; comment-only chunks are dropped
        (
            "-- the events table\nCREATE TABLE t\n(\n  a UInt8\n)\nENGINE = Memory;\n\n-- trailing note;\n",
            ["-- the events table\nCREATE TABLE t\n(\n  a UInt8\n)\nENGINE = Memory"],
        ),
        (
            "CREATE TABLE t (a UInt8)\nENGINE = Memory;\n-- done\n",
            ["CREATE TABLE t (a UInt8)\nENGINE = Memory"],
        ),
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
    assert found[1].statements == ("SELECT 2", "SELECT 22")
    assert found[0].checksum == hashlib.sha256(b"-- first\nSELECT 1;\n").hexdigest()
    assert describe(d) == [
        {"version": 1, "name": "0001_first", "statements": 1},
        {"version": 2, "name": "0002_second", "statements": 2},
        {"version": 10, "name": "0010_later", "statements": 1},
    ]


def test_discover_empty_directory(tmp_path: Path) -> None:
    assert discover(write(tmp_path / "empty", {})) == []


def test_duplicate_numbers_fail(tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(ValueError, match="duplicate migration number 0001"):
        discover(d)


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
def test_badly_named_files_fail(tmp_path: Path, name: str) -> None:
    d = write(tmp_path / "m", {"0001_ok.sql": "SELECT 1;", name: "SELECT 2;"})
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        discover(d)


def test_the_shipped_migrations_are_valid() -> None:
    found = discover(MIGRATIONS_DIR)
    assert found
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    for m in found:
        assert m.statements
        for statement in m.statements:
            assert not statement.rstrip().endswith(";")
            # a crashed half-run can be repeated: DDL is IF NOT EXISTS, a backfill fills only an
            # empty table
            body = statement.upper()
            target = re.search(r"^INSERT INTO (\w+)", body, re.M)
            if target:
                assert f"WHERE (SELECT COUNT() FROM {target.group(1)}) = 0" in body
            else:
                assert "IF NOT EXISTS" in body
