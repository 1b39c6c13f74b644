"""The migrations' ON CLUSTER form (eventlens.storage.cluster_ddl), checked on the DDL text only:
no ClickHouse server, Keeper or cluster was available to run it (see the README)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from eventlens.config import Settings
from eventlens.storage.cluster_ddl import (
    SHARDING_KEYS,
    ClusterDDLError,
    ClusterRewriter,
    create_database,
    for_cluster,
    ledger_ddl,
)
from eventlens.storage.migrations import CLICKHOUSE_DIR, ClickHouseLedger, discover, migrate_clickhouse

CLUSTER = "analytics"
DB = "eventlens"
ON = f"ON CLUSTER '{CLUSTER}'"

CREATE_RE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*\(", re.S)
MV_RE = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+(.*)$", re.S)


def original() -> list[str]:
    return [s for m in discover(CLICKHOUSE_DIR) for s in m.statements]


def rewritten() -> list[str]:
    return [s for m in for_cluster(discover(CLICKHOUSE_DIR), CLUSTER, DB) for s in m.statements]


def tables_in_files() -> dict[str, str]:
    """Table name -> its CREATE statement, from the migration files."""
    return {m.group(1): s for s in original() if (m := CREATE_RE.match(s))}


def by_head(statements: list[str]) -> dict[str, str]:
    return {" ".join(s.split()[:6]): s for s in statements}


def test_every_shipped_statement_is_understood_and_every_table_has_a_sharding_key() -> None:
    assert set(tables_in_files()) == set(SHARDING_KEYS)
    out = rewritten()
    creates = [s for s in original() if CREATE_RE.match(s)]
    views = [s for s in original() if MV_RE.match(s)]
    inserts = [s for s in original() if s.startswith("INSERT INTO")]
    settings = [s for s in original() if re.match(r"^ALTER TABLE \w+ MODIFY SETTING ", s)]
    columns = [s for s in original() if re.match(r"^ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS ", s)]
    # nothing else in the files
    assert len(creates) + len(views) + len(inserts) + len(settings) + len(columns) == len(original())
    # a column goes to the local table and to the Distributed table over it
    assert len(out) == 2 * len(creates) + len(views) + len(inserts) + len(settings) + 2 * len(columns)


def test_a_new_column_goes_to_the_local_and_the_distributed_table() -> None:
    alters = [s for s in rewritten() if s.startswith("ALTER TABLE") and " ADD COLUMN " in s]
    # 0013: the events' group ids
    assert f"ALTER TABLE events_local {ON} ADD COLUMN IF NOT EXISTS groups Array(String)" in alters
    assert f"ALTER TABLE events {ON} ADD COLUMN IF NOT EXISTS groups Array(String)" in alters
    assert len(alters) % 2 == 0 and all(
        a.replace("_local ", " ", 1) in alters for a in alters if a.split()[2].endswith("_local")
    )


def test_setting_changes_go_to_the_local_tables_with_the_replicated_window() -> None:
    alters = [s for s in rewritten() if s.startswith("ALTER TABLE") and "MODIFY SETTING" in s]
    assert alters  # 0009: the rollups' deduplication window
    for sql in alters:
        assert re.match(
            rf"^ALTER TABLE \w+_local {ON} MODIFY SETTING replicated_deduplication_window = 10000$", sql
        )


def test_added_columns_go_to_the_local_and_the_distributed_table() -> None:
    alters = [s for s in rewritten() if s.startswith("ALTER TABLE") and " ADD COLUMN " in s]
    assert alters  # 0010: the sessions' entry and exit page view times
    for local, dist in zip(alters[::2], alters[1::2], strict=True):
        m = re.match(rf"^ALTER TABLE (\w+)_local {ON} (ADD COLUMN IF NOT EXISTS .*)$", local)
        assert m is not None, local
        assert dist == f"ALTER TABLE {m.group(1)} {ON} {m.group(2)}"


def test_every_ddl_statement_runs_on_the_cluster() -> None:
    for statement in rewritten():
        if statement.startswith(("CREATE", "ALTER")):
            assert ON in statement.split("\n", 1)[0], statement[:120]
        else:
            assert statement.startswith("INSERT INTO") and "ON CLUSTER" not in statement


@pytest.mark.parametrize("table", sorted(SHARDING_KEYS))
def test_each_table_becomes_a_replicated_local_table_and_a_distributed_table(table: str) -> None:
    source = tables_in_files()[table]
    out = {s.split("\n", 1)[0]: s for s in rewritten() if s.startswith("CREATE TABLE")}
    local = out[f"CREATE TABLE IF NOT EXISTS {table}_local {ON}"]
    dist = out[f"CREATE TABLE IF NOT EXISTS {table} {ON} AS {table}_local"]

    # the same columns, keys and settings; only the engine (and the dedup window's name) differ
    engine = re.search(r"ENGINE = (\w+)(\((.*?)\))?\n", source + "\n")
    assert engine is not None
    kind, args = engine.group(1), engine.group(3)
    assert kind.endswith("MergeTree")
    path = f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'"
    expected_engine = f"ENGINE = Replicated{kind}({path}{', ' + args if args else ''})"
    assert expected_engine in local
    body = lambda s: s[s.index("(") : s.index("ENGINE")]  # noqa: E731
    assert body(local) == body(source)
    tail = lambda s: s[s.index("\n", s.index("ENGINE")) :].strip() if "\n" in s[s.index("ENGINE") :] else ""  # noqa: E731
    assert tail(local) == tail(source).replace(
        "non_replicated_deduplication_window", "replicated_deduplication_window"
    )
    assert "non_replicated" not in local

    key = ", ".join(SHARDING_KEYS[table])
    assert dist.endswith(f"ENGINE = Distributed('{CLUSTER}', '{DB}', '{table}_local', cityHash64({key}))")


def test_sharding_keys_keep_what_final_collapses_on_one_shard() -> None:
    # events: a retried event has the same device; sessions: a session's snapshots share its device
    assert SHARDING_KEYS["events"] == ("project_id", "device_id")
    assert SHARDING_KEYS["sessions"] == ("project_id", "device_id")
    assert SHARDING_KEYS["profiles"] == ("project_id", "profile_id")
    assert SHARDING_KEYS["profile_aliases"] == ("project_id", "alias")
    for table, columns in SHARDING_KEYS.items():
        assert columns[0] == "project_id", table


def test_the_deduplication_window_stays_on_every_table_that_had_one() -> None:
    for table, source in tables_in_files().items():
        local = next(s for s in rewritten() if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local "))
        had = "non_replicated_deduplication_window = 10000" in source
        assert ("replicated_deduplication_window = 10000" in local) == had, table


def test_materialized_views_read_and_write_the_local_tables() -> None:
    views = {m.group(1): (m.group(2), m.group(3)) for s in original() if (m := MV_RE.match(s))}
    assert views  # the rollups
    out = {s.split()[6]: s for s in rewritten() if s.startswith("CREATE MATERIALIZED VIEW")}
    assert set(out) == set(views)
    for name, (target, select) in views.items():
        sql = out[name]
        assert sql.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {ON} TO {target}_local AS\n")
        sources = re.findall(r"\bFROM (\w+)", select)
        assert len(sources) == 1 and sources[0] in SHARDING_KEYS
        assert f"FROM {sources[0]}_local\n" in sql
        # nothing else in the query changed
        assert sql.split(" AS\n", 1)[1] == select.replace(
            f"FROM {sources[0]}\n", f"FROM {sources[0]}_local\n"
        )
    # the daily rollups chain on the hourly local tables
    assert "FROM events_hourly_local" in out["events_daily_mv"]
    assert "FROM events_dims_hourly_local" in out["events_dims_daily_mv"]
    # ARRAY JOIN of an expression is not a table reference
    assert "ARRAY JOIN arrayConcat(" in out["events_dims_hourly_mv"]


def test_backfills_go_through_the_distributed_tables_unchanged() -> None:
    before = [s for s in original() if s.startswith("INSERT INTO")]
    after = [s for s in rewritten() if s.startswith("INSERT INTO")]
    assert before and after == before
    for s in after:
        assert "_local" not in s


def test_local_tables_come_before_their_distributed_table_and_views_after_both() -> None:
    out = rewritten()
    heads = [s.split("\n", 1)[0] for s in out]
    for table in SHARDING_KEYS:
        local = heads.index(f"CREATE TABLE IF NOT EXISTS {table}_local {ON}")
        dist = heads.index(f"CREATE TABLE IF NOT EXISTS {table} {ON} AS {table}_local")
        assert local + 1 == dist
    for i, s in enumerate(out):
        if s.startswith("CREATE MATERIALIZED VIEW"):
            target = s.split(" TO ", 1)[1].split()[0]
            assert any(h.startswith(f"CREATE TABLE IF NOT EXISTS {target} ") for h in heads[:i])


def test_the_files_themselves_are_unchanged_without_a_cluster() -> None:
    """No cluster, a new database: the runner executes the files' statements as written (and the
    ledger as before). A view that comes with a backfill is created with merges on its source
    stopped meanwhile (storage.backfill); its backfill has nothing to read and does not run."""
    runner = FakeWarehouse(cluster=None)
    migrate_clickhouse(runner)  # type: ignore[arg-type]
    ddl = [sql for sql in runner.commands if not sql.startswith("INSERT INTO schema_migrations")]
    merges = [sql for sql in ddl if sql.startswith("SYSTEM ")]
    backfills = [s for s in original() if s.startswith("INSERT INTO ")]
    assert len(backfills) == 8
    assert [sql for sql in ddl if sql not in merges] == [
        ClickHouseLedger.DDL,
        *(s for s in original() if s not in backfills),
    ]
    # stopped before the migration's first view on the source, started again at its end
    assert merges == [
        *("SYSTEM STOP MERGES events", "SYSTEM START MERGES events") * 4,  # 0004-0007
        "SYSTEM STOP MERGES events_hourly",
        "SYSTEM STOP MERGES events_dims_hourly",
        "SYSTEM START MERGES events_hourly",
        "SYSTEM START MERGES events_dims_hourly",
        "SYSTEM STOP MERGES events",  # 0012: the revenue rollup
        "SYSTEM START MERGES events",
    ]
    assert ddl.index("SYSTEM STOP MERGES events") < ddl.index(next(s for s in original() if "_mv TO" in s))
    assert not any("ON CLUSTER" in sql or "_local" in sql for sql in runner.commands)


def test_the_runner_applies_the_cluster_form_and_a_replicated_ledger() -> None:
    runner = FakeWarehouse(cluster=CLUSTER)
    applied = migrate_clickhouse(runner)  # type: ignore[arg-type]
    assert applied == [m.name for m in discover(CLICKHOUSE_DIR)]
    ddl = [sql for sql in runner.commands if not sql.startswith("INSERT INTO schema_migrations")]
    assert ddl == [ledger_ddl(CLUSTER), *rewritten()]
    # the ledger records the files' names and checksums, whichever form ran
    recorded = [
        p for sql, p in zip(runner.commands, runner.params, strict=True) if "schema_migrations (" in sql
    ]
    assert [p["c"] for p in recorded] == [m.checksum for m in discover(CLICKHOUSE_DIR)]


def test_ledger_is_one_replication_group_across_the_cluster() -> None:
    sql = ledger_ddl(CLUSTER)
    assert f"CREATE TABLE IF NOT EXISTS schema_migrations {ON}" in sql
    assert (
        "ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}')"
        in sql
    )
    assert "Distributed" not in sql
    assert create_database(DB, CLUSTER) == f"CREATE DATABASE IF NOT EXISTS `{DB}` {ON}"


# what the rewrite does not understand raises ------------------------------------------------------
EVENTS = """CREATE TABLE IF NOT EXISTS events
(
    project_id String,
    device_id String,
    id String
)
ENGINE = MergeTree
ORDER BY (project_id, id)"""


def rewriter() -> ClusterRewriter:
    r = ClusterRewriter(CLUSTER, DB)
    r.rewrite(EVENTS)
    return r


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DROP TABLE IF EXISTS events", "not understood"),
        ("CREATE VIEW v AS SELECT 1", "not understood"),
        ("CREATE TABLE IF NOT EXISTS mem (x UInt8) ENGINE = Memory", "not of the MergeTree family"),
        ("CREATE TABLE IF NOT EXISTS logs (x UInt8) ENGINE = Log", "not of the MergeTree family"),
        ("CREATE TABLE IF NOT EXISTS other (x UInt8) ENGINE = MergeTree ORDER BY x", "no sharding key"),
        ("CREATE TABLE IF NOT EXISTS events_local (x UInt8) ENGINE = MergeTree ORDER BY x", "reserved"),
        (EVENTS, "created twice"),
        ("CREATE MATERIALIZED VIEW v TO nowhere AS SELECT * FROM events", "not a table"),
        ("CREATE MATERIALIZED VIEW v TO events AS SELECT * FROM elsewhere", "not a table"),
        (
            "CREATE MATERIALIZED VIEW v TO events AS SELECT * FROM events AS e JOIN events AS f USING id",
            "JOIN",
        ),
        ("CREATE MATERIALIZED VIEW v TO events AS SELECT 1 AS id", "exactly one table"),
        ("INSERT INTO elsewhere SELECT * FROM events", "not a table"),
        ("INSERT INTO events VALUES ('p', 'd', 'i')", "not understood"),
        ("ALTER TABLE elsewhere ADD COLUMN x UInt8", "not a table"),
        ("ALTER TABLE events DELETE WHERE 1", "command not understood"),
        ("ALTER TABLE events UPDATE id = '' WHERE 1", "command not understood"),
        ("SELECT 1", "not understood"),
    ],
)
def test_statements_it_does_not_understand_raise(statement: str, message: str) -> None:
    with pytest.raises(ClusterDDLError, match=message):
        rewriter().rewrite(statement)


def test_a_sharding_key_on_a_missing_column_raises() -> None:
    r = ClusterRewriter(CLUSTER, DB, {"t": ("project_id", "device_id")})
    with pytest.raises(ClusterDDLError, match="missing columns"):
        r.rewrite("CREATE TABLE t (project_id String) ENGINE = MergeTree ORDER BY project_id")


def test_alter_runs_on_the_local_tables_and_column_changes_on_the_distributed_table() -> None:
    r = rewriter()
    assert r.rewrite("ALTER TABLE events ADD COLUMN IF NOT EXISTS x UInt8, MODIFY SETTING a = 1") == [
        f"ALTER TABLE events_local {ON} ADD COLUMN IF NOT EXISTS x UInt8, MODIFY SETTING a = 1",
        f"ALTER TABLE events {ON} ADD COLUMN IF NOT EXISTS x UInt8",
    ]
    assert r.rewrite("ALTER TABLE events MODIFY TTL toDate(now()) + 1") == [
        f"ALTER TABLE events_local {ON} MODIFY TTL toDate(now()) + 1"
    ]


def test_a_plain_merge_tree_table_without_engine_arguments() -> None:
    local, dist = ClusterRewriter(CLUSTER, DB).rewrite(EVENTS)
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')\n"
        in local
    )
    assert local.endswith("ORDER BY (project_id, id)")
    assert "cityHash64(project_id, device_id)" in dist


@pytest.mark.parametrize("name", ["", "a'b", "a b", "1abc", "a;DROP", "x" * 64, "a.b", "{cluster}"])
def test_cluster_names_are_strict_identifiers(name: str) -> None:
    with pytest.raises(ClusterDDLError, match="must match"):
        ClusterRewriter(name, DB)
    with pytest.raises(ValueError):
        Settings(clickhouse_url="http://ch:8123", clickhouse_cluster=name or "'")


def test_database_names_are_strict_identifiers() -> None:
    with pytest.raises(ClusterDDLError, match="must match"):
        ClusterRewriter(CLUSTER, "db'; DROP")


def test_the_setting_needs_a_server() -> None:
    with pytest.raises(ValueError, match="needs a ClickHouse server"):
        Settings(clickhouse_cluster="analytics")
    with pytest.raises(ValueError, match="needs a ClickHouse server"):
        Settings(clickhouse_url="chdb:///tmp/x", clickhouse_cluster="analytics")
    s = Settings(clickhouse_url="http://ch:8123", clickhouse_cluster="prod-cluster_1")
    assert s.clickhouse_cluster == "prod-cluster_1"
    assert Settings(clickhouse_url="http://ch:8123").clickhouse_cluster is None


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLENS_CLICKHOUSE_URL", "https://ch.example:8443")
    monkeypatch.setenv("EVENTLENS_CLICKHOUSE_CLUSTER", "analytics")
    assert Settings().clickhouse_cluster == "analytics"


# the warehouse's client calls on a cluster (a fake client: no server) -------------------------------
class FakeWarehouse:
    """What the migration runner needs of a ``Warehouse``, recording every command."""

    def __init__(self, cluster: str | None) -> None:
        self.cluster = cluster
        self.database = DB
        self.commands: list[str] = []
        self.params: list[dict[str, Any]] = []

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        self.commands.append(sql)
        self.params.append(dict(parameters or {}))

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if "FROM system.parts" in sql:
            return []  # a new database: the views' sources hold no parts
        if "now64" in sql and "system.processes" not in sql:
            return [{"t": 0}]
        return [{"n": 0}]  # no ledger, no table, no insert running

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        yield


class FakeClient:
    def __init__(self, calls: list[tuple[str, Any, Any]]) -> None:
        self.calls = calls

    def command(self, sql: str, parameters: Any = None, settings: Any = None) -> int:
        self.calls.append(("command", sql, settings))
        return 1

    def raw_insert(self, table: str, columns: Any, body: bytes, settings: Any, fmt: str) -> None:
        self.calls.append(("raw_insert", table, settings))

    def insert(self, table: str, data: Any, **kwargs: Any) -> None:
        self.calls.append(("insert", table, kwargs["settings"]))

    def query(self, sql: str, parameters: Any = None, settings: Any = None) -> Any:
        self.calls.append(("query", sql, settings))

        class Result:
            column_names: tuple[str, ...] = ()
            result_rows: list[Any] = []

        return Result()

    def close(self) -> None:
        pass


@pytest.mark.parametrize("cluster", [None, CLUSTER])
def test_a_cluster_warehouse_inserts_synchronously_with_tokens_and_queries_globally(
    monkeypatch: pytest.MonkeyPatch, cluster: str | None
) -> None:
    from eventlens.storage import clickhouse

    calls: list[tuple[str, Any, Any]] = []
    dsns: list[str] = []

    def get_client(**kwargs: Any) -> FakeClient:
        dsns.append(kwargs["dsn"])
        return FakeClient(calls)

    monkeypatch.setattr(clickhouse.clickhouse_connect, "get_client", get_client)
    settings = Settings(clickhouse_url="http://ch:8123", clickhouse_cluster=cluster)
    wh = clickhouse.Warehouse.from_settings(settings)
    assert wh.cluster == cluster and dsns == ["http://ch:8123"] * 3
    created = calls[0][1]
    assert created == (
        f"CREATE DATABASE IF NOT EXISTS `eventlens` {ON}"
        if cluster
        else "CREATE DATABASE IF NOT EXISTS `eventlens`"
    )
    wh.insert_rows("events", [{"id": "e", "project_id": "p"}], "tok-1")
    wh.insert_rows("events", [{"id": "e", "project_id": "p"}], "tok-2", fmt="columnar")
    wh.query("SELECT 1")
    wh.command("SELECT 1")
    json_insert, columnar, query, command = calls[1:]
    for kind, settings_sent in ((json_insert[0], json_insert[2]), (columnar[0], columnar[2])):
        assert settings_sent["insert_deduplication_token"].startswith("tok-"), kind
        assert settings_sent["insert_deduplicate"] == 1
        assert ("distributed_foreground_insert" in settings_sent) == bool(cluster)
        if cluster:
            assert settings_sent["distributed_foreground_insert"] == 1
            assert settings_sent["deduplicate_blocks_in_dependent_materialized_views"] == 1
    assert query[2].get("distributed_product_mode") == ("global" if cluster else None)
    assert command[2].get("distributed_foreground_insert") == (1 if cluster else None)


def test_a_cluster_warehouse_refuses_chdb() -> None:
    from eventlens.storage.clickhouse import Warehouse

    with pytest.raises(ValueError, match="server URL"):
        Warehouse("chdb:///nowhere", DB, CLUSTER)
