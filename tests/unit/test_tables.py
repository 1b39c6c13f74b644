"""Table column lists (eventlens.storage.tables) and, once, the real schema: part of the storage
suite, on the ClickHouse server in EVENTLENS_TEST_CLICKHOUSE_URL when set, else on an embedded chDB.

Only one chDB directory may be open per process, so the chDB test lives in this module alone and
closes its warehouse at teardown.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.records import TABLES, TIMESTAMP_COLUMNS
from eventlens.storage.migrations import migrate_clickhouse
from eventlens.storage.tables import group_by_table, to_columns, to_json_rows
from tests.storage import stop_merges


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


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_413_791_999_999))
def test_json_rows_write_milliseconds_as_exact_decimal_seconds(ms: int) -> None:
    """ClickHouse parses a JSON number into DateTime64(3) as decimal seconds: the text must be exact
    over the whole range the column holds (to 2299; a double is exact far beyond, to 2**53 ms)."""
    [row] = orjson.loads(to_json_rows("events", [{"created_at": ms, "received_at": ms, "id": "x"}]))
    text = orjson.dumps(row["created_at"]).decode()
    whole, _, frac = text.partition(".")
    assert int(whole) == ms // 1000
    assert frac.ljust(3, "0") == f"{ms % 1000:03d}"


def test_json_rows_leave_records_alone_and_keep_other_values() -> None:
    rec = {"_t": "sessions", "session_id": "s", "opened_at": 1_000, "started_at": 2_500, "page_views": 3}
    before = dict(rec)
    [row] = orjson.loads(to_json_rows("sessions", [rec]))
    assert rec == before  # the flush may be retried with the same records
    assert row == {**rec, "opened_at": 1.0, "started_at": 2.5}
    assert set(TIMESTAMP_COLUMNS) == set(TABLES)
    for table, stamps in TIMESTAMP_COLUMNS.items():
        assert set(stamps) <= set(TABLES[table])


def test_group_by_table_defaults_to_events_and_keeps_order() -> None:
    records = [{"id": 1}, {"_t": "profiles", "n": 1}, {"_t": "events", "id": 2}, {"_t": "profiles", "n": 2}]
    assert group_by_table(records) == {
        "events": [{"id": 1}, {"_t": "events", "id": 2}],
        "profiles": [{"_t": "profiles", "n": 1}, {"_t": "profiles", "n": 2}],
    }
    assert group_by_table([]) == {}


# the real schema ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(storage_warehouse: Any) -> Any:
    """The storage suite's warehouse: a server from EVENTLENS_TEST_CLICKHOUSE_URL, else chDB."""
    return storage_warehouse


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
            "groups": ["acme", f"g{i}"],
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
        "replays": {
            "project_id": "p",
            "session_id": f"s{i}",
            "chunk_index": i,
            "started_at": ts,
            "ended_at": ts,
            "payload": "[]",
            "received_at": ts,
        },
        "groups": {
            "project_id": "p",
            "group_id": f"g{i}",
            "type": "company",
            "name": "Acme",
            "properties": {"plan": "pro"},
            "created_at": ts,
            "updated_at": ts,
        },
        "profile_groups": {"project_id": "p", "profile_id": "u", "group_id": f"g{i}", "assigned_at": ts},
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


@pytest.mark.storage
@pytest.mark.chdb
def test_migrations_match_the_column_lists_and_dedup_by_token(warehouse: Any) -> None:
    applied = migrate_clickhouse(warehouse)
    assert applied  # a fresh warehouse gets every migration
    assert applied == sorted(applied)
    assert migrate_clickhouse(warehouse) == []  # nothing twice

    for table, spec in TABLES.items():
        described = warehouse.query(f"DESCRIBE TABLE {table}")
        assert [row["name"] for row in described] == list(spec), table
        # a column a JSON row leaves out takes the type's default, the same as in TABLES
        assert [row["default_type"] for row in described] == [""] * len(spec), table
        # every millisecond column is converted for JSON input (to_json_rows)
        stamps = [row["name"] for row in described if row["type"].startswith("DateTime64")]
        assert stamps == list(TIMESTAMP_COLUMNS[table]), table

    for table in TABLES:
        stop_merges(warehouse, table)  # only insert deduplication may collapse rows
        rows = [{"_t": table, **sample(table, 1)}, sample(table, 2)]
        assert warehouse.insert_rows(table, rows, f"test:0:{table}") == 2
        assert warehouse.insert_rows(table, rows, f"test:0:{table}") == 2  # a replay
        assert warehouse.query(f"SELECT count() AS c FROM {table}") == [{"c": 2}], table
        # the same rows with another token are another batch: proves the token did the work
        warehouse.insert_rows(table, rows, f"test:1:{table}")
        assert warehouse.query(f"SELECT count() AS c FROM {table}") == [{"c": 4}], table
        # the columnar path (benchmark loader, tests) deduplicates the same way
        names, columns = to_columns(table, rows)
        assert warehouse.insert_columns(table, names, columns, f"test:2:{table}") == 2
        assert warehouse.insert_columns(table, names, columns, f"test:2:{table}") == 2
        assert warehouse.query(f"SELECT count() AS c FROM {table}") == [{"c": 6}], table

    # values survive the round trip in the column types the shards write
    row = warehouse.query(
        "SELECT id, toUnixTimestamp64Milli(created_at) AS ms, properties FROM events ORDER BY id LIMIT 1"
    )
    assert row == [{"id": "e1", "ms": 1_750_000_000_001, "properties": {"k": "1"}}]
    assert warehouse.insert_columns("events", *to_columns("events", []), "test:empty") == 0
    assert warehouse.insert_rows("events", [], "test:empty") == 0

    # sessions: the newest version of a session replaces the older snapshots when read FINAL
    newer = {
        **sample("sessions", 1),
        "ended_at": 1_750_000_120_001,
        "page_views": 5,
        "version": 1_750_000_200_000,
    }
    older = {**sample("sessions", 1), "page_views": 1, "version": 1_750_000_100_000}
    warehouse.insert_rows("sessions", [newer], "test:3:sessions")
    warehouse.insert_rows("sessions", [older], "test:4:sessions")  # arrives late
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


@pytest.mark.storage
@pytest.mark.chdb
@pytest.mark.parametrize("fmt", ["json", "columnar"])
def test_both_insert_formats_store_the_records_exactly(warehouse: Any, fmt: str) -> None:
    """A sparse record (defaults), extra keys, odd text and millisecond edges, read back exactly,
    whether the shard sends a JSONEachRow body (default) or Native columns (insert_format)."""
    migrate_clickhouse(warehouse)
    ms = [31_536_000_001, 978_307_200_999, 1_750_000_000_000, 1_750_000_000_010, 7_258_118_399_999]
    records = [
        {
            "_t": "events",
            "_prev_device": "d0",
            "id": f"rt{i}",
            "project_id": f"rt-{fmt}",
            "name": 'quote " backslash \\ nul \x00 emoji 😀',
            "created_at": at,
            "received_at": at + 1,
            "properties": {"k": "v\n", "": "empty key"},
            "is_bot": i % 2,
            # the extremes of Decimal(18, 4), as ingest writes amounts (exact text)
            "revenue": ["99999999999999.9999", "-99999999999999.9999", "0.0001", "19.9900", "0"][i],
            "currency": ["USD", "EUR", "JPY", "", ""][i],
        }
        for i, at in enumerate(ms)
    ]
    records.append({"_t": "events", "id": "rt-sparse", "project_id": f"rt-{fmt}"})
    assert warehouse.insert_rows("events", records, f"test:rt:{fmt}", fmt) == len(records)
    got = warehouse.query(
        "SELECT * EXCEPT (created_at, received_at), toUnixTimestamp64Milli(created_at) AS created_at,"
        " toUnixTimestamp64Milli(received_at) AS received_at FROM events WHERE project_id = {p:String} ORDER BY id",
        {"p": f"rt-{fmt}"},
    )
    names, columns = to_columns("events", records)
    expected = sorted(
        (dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)), key=lambda r: r["id"]
    )
    for r in expected:
        r["revenue"] = Decimal(r["revenue"])  # the column reads back as a Decimal, every digit kept
    assert [{k: r[k] for k in names} for r in got] == expected


@pytest.mark.storage
@pytest.mark.chdb
def test_0013_upgrades_an_events_table_that_has_rows(warehouse: Any) -> None:
    """An events table as 0001 made it, holding rows, takes the later migrations' columns (0012's
    revenue, 0013's groups): old rows read no groups, new rows keep theirs, and running the
    statements again changes nothing."""
    if getattr(warehouse, "cluster", None):
        pytest.skip("checks the single-node statement; the cluster form is in test_cluster_ddl")
    from eventlens.storage.migrations import CLICKHOUSE_DIR, discover

    by_version = {m.version: m for m in discover(CLICKHOUSE_DIR)}
    [create] = [s for s in by_version[1].statements if s.startswith("CREATE TABLE IF NOT EXISTS events")]
    alters = [
        s for v in sorted(by_version) for s in by_version[v].statements if s.startswith("ALTER TABLE events ")
    ]
    assert any(" groups " in a for a in alters)
    probe = "events_upgrade_probe"
    warehouse.command(f"DROP TABLE IF EXISTS {probe}")
    warehouse.command(create.replace("IF NOT EXISTS events", f"IF NOT EXISTS {probe}", 1))
    warehouse.command(f"INSERT INTO {probe} (id, project_id, name) VALUES ('old', 'p', 'n')")
    for _ in range(2):
        for alter in alters:
            warehouse.command(alter.replace("ALTER TABLE events ", f"ALTER TABLE {probe} ", 1))
    warehouse.command(
        f"INSERT INTO {probe} (id, project_id, name, groups) VALUES ('new', 'p', 'n', ['acme'])"
    )
    rows = warehouse.query(f"SELECT id, groups FROM {probe} ORDER BY id")
    assert rows == [{"id": "new", "groups": ["acme"]}, {"id": "old", "groups": []}]
    assert [r["name"] for r in warehouse.query(f"DESCRIBE TABLE {probe}")] == list(TABLES["events"])
    warehouse.command(f"DROP TABLE {probe}")
