"""Table column lists (eventlens.storage.tables) and, once, the real schema in an embedded chDB.

Only one chDB directory may be open per process, so the chDB test lives in this module alone and
closes its warehouse at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlens.storage.tables import TABLES, group_by_table, to_columns


@pytest.mark.parametrize("table", sorted(TABLES))
def test_to_columns_fills_defaults(table: str) -> None:
    names, columns = to_columns(table, [{}, {"_t": table}])
    assert names == list(TABLES[table])
    assert columns == [[default, default] for default in TABLES[table].values()]


def test_to_columns_takes_values_and_ignores_unknown_keys() -> None:
    records = [
        {"_t": "events", "id": "a", "name": "x", "created_at": 5, "properties": {"k": "v"}, "junk": 1},
        {"_t": "events", "id": "b", "is_bot": 1},
    ]
    names, columns = to_columns("events", records)
    by_name = dict(zip(names, columns, strict=True))
    assert "_t" not in by_name and "junk" not in by_name
    assert by_name["id"] == ["a", "b"]
    assert by_name["name"] == ["x", ""]
    assert by_name["created_at"] == [5, 0]
    assert by_name["properties"] == [{"k": "v"}, {}]
    assert by_name["is_bot"] == [0, 1]
    assert all(len(c) == 2 for c in columns)


def test_to_columns_of_no_records() -> None:
    names, columns = to_columns("profiles", [])
    assert names == list(TABLES["profiles"])
    assert columns == [[] for _ in names]


def test_to_columns_unknown_table() -> None:
    with pytest.raises(KeyError):
        to_columns("nope", [{}])


def test_group_by_table_defaults_to_events_and_keeps_order() -> None:
    records = [{"id": 1}, {"_t": "profiles", "n": 1}, {"_t": "events", "id": 2}, {"_t": "profiles", "n": 2}]
    assert group_by_table(records) == {
        "events": [{"id": 1}, {"_t": "events", "id": 2}],
        "profiles": [{"_t": "profiles", "n": 1}, {"_t": "profiles", "n": 2}],
    }
    assert group_by_table([]) == {}


# the real schema ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from eventlens.storage.clickhouse import Warehouse

    path: Path = tmp_path_factory.mktemp("chdb")
    wh = Warehouse(f"chdb://{path}/ch", "eventlens")
    try:
        yield wh
    finally:
        wh.close()


def sample(table: str, i: int) -> dict[str, Any]:
    ts = 1_750_000_000_000 + i
    return {
        "events": {
            "id": f"e{i}",
            "project_id": "p",
            "name": "n",
            "created_at": ts,
            "received_at": ts,
            "properties": {"k": str(i)},
        },
        "profiles": {"project_id": "p", "profile_id": f"u{i}", "updated_at": ts, "properties": {"a": "b"}},
        "profile_counters": {
            "project_id": "p",
            "profile_id": "u",
            "property": "x",
            "delta": 1.5,
            "created_at": ts,
            "event_id": f"c{i}",
        },
        "profile_aliases": {
            "project_id": "p",
            "alias": f"a{i}",
            "profile_id": "u",
            "created_at": ts,
            "event_id": f"a{i}",
        },
        "sessions": {
            "project_id": "p",
            "session_id": f"s{i}",
            "device_id": "d",
            "started_at": ts - 60_000,
            "ended_at": ts,
            "duration": 60.0,
            "entry_path": "/in",
            "exit_path": "/out",
            "page_views": 2,
            "events": 3,
            "version": ts,
            "shard": 3,
        },
    }[table]


@pytest.mark.chdb
def test_migrations_match_the_column_lists_and_dedup_by_token(warehouse: Any) -> None:
    applied = warehouse.migrate()
    assert applied  # a fresh warehouse gets every migration
    assert applied == sorted(applied)
    assert warehouse.migrate() == []  # nothing twice

    for table, spec in TABLES.items():
        described = [row["name"] for row in warehouse.query(f"DESCRIBE TABLE {table}")]
        assert described == list(spec), table

    for table in TABLES:
        warehouse.command(f"SYSTEM STOP MERGES {table}")  # only insert deduplication may collapse rows
        names, columns = to_columns(table, [sample(table, 1), sample(table, 2)])
        assert warehouse.insert_columns(table, names, columns, f"test:0:{table}") == 2
        assert warehouse.insert_columns(table, names, columns, f"test:0:{table}") == 2  # a replay
        assert warehouse.query(f"SELECT count() AS c FROM {table}") == [{"c": 2}], table
        # the same rows with another token are another batch: proves the token did the work
        warehouse.insert_columns(table, names, columns, f"test:1:{table}")
        assert warehouse.query(f"SELECT count() AS c FROM {table}") == [{"c": 4}], table

    # values survive the round trip in the column types the shards write
    row = warehouse.query(
        "SELECT id, toUnixTimestamp64Milli(created_at) AS ms, properties FROM events ORDER BY id LIMIT 1"
    )
    assert row == [{"id": "e1", "ms": 1_750_000_000_001, "properties": {"k": "1"}}]
    assert warehouse.insert_columns("events", *to_columns("events", []), "test:empty") == 0

    # sessions: the newest version of a session replaces the older snapshots when read FINAL
    newer = {
        **sample("sessions", 1),
        "ended_at": 1_750_000_120_001,
        "page_views": 5,
        "version": 1_750_000_200_000,
    }
    older = {**sample("sessions", 1), "page_views": 1, "version": 1_750_000_100_000}
    warehouse.insert_columns("sessions", *to_columns("sessions", [newer]), "test:2:sessions")
    warehouse.insert_columns("sessions", *to_columns("sessions", [older]), "test:3:sessions")  # arrives late
    final = warehouse.query(
        "SELECT session_id, page_views, toUnixTimestamp64Milli(started_at) AS start_ms,"
        " toUnixTimestamp64Milli(ended_at) AS end_ms, shard FROM sessions FINAL ORDER BY session_id"
    )
    assert final == [
        {
            "session_id": "s1",
            "page_views": 5,
            "start_ms": 1_749_999_940_001,
            "end_ms": 1_750_000_120_001,
            "shard": 3,
        },
        {
            "session_id": "s2",
            "page_views": 2,
            "start_ms": 1_749_999_940_002,
            "end_ms": 1_750_000_000_002,
            "shard": 3,
        },
    ]
