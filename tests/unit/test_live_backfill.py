"""Rollups added by a migration to a database that already holds events and keeps receiving them
(eventlens.storage.backfill): every event is counted exactly once, by the backfill (stored before
the view existed) or by the view (stored after), never both, never neither.

Part of the storage suite: on the ClickHouse server in EVENTLENS_TEST_CLICKHOUSE_URL when set, else
on chDB. A writer thread stores batches of events the way a shard's flush does (``ServerWriter``,
with a deduplication token) while the migration runs: through the migrating ``Warehouse`` itself
(as every insert into an embedded chDB does), or through a connection of its own (another process
writing to a ClickHouse server).
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlens.records import EVENT_COLUMNS
from eventlens.storage.clickhouse import Warehouse
from eventlens.storage.migrations import CLICKHOUSE_DIR, discover, migrate_clickhouse
from eventlens.storage.writer import ServerWriter

pytestmark = [pytest.mark.storage, pytest.mark.chdb]

HOUR = 3_600_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % HOUR  # a whole hour in November 2026
# Another connection's writer flushes a batch every 200 ms, as one shard does with the test
# daemons' flush_max_age_ms (a busier one leaves no gap for the view's creation: see
# storage.backfill); one through the migrating warehouse writes as fast as it can.
OWN_PAUSE_S = 0.2
NAMES = ("page_view", "page_view", "screen_view", "click", "signup", "session_start", "session_end")
PATHS = ("/", "/pricing", "/docs", "/blog")


@pytest.fixture(scope="module")
def wh(storage_warehouse: Any) -> Any:
    if storage_warehouse.cluster:
        pytest.skip("a cluster runs a migration's backfill as written: writers must be paused there")
    return storage_warehouse


def other_connection(wh: Any) -> Any:
    """A second connection to the same database: what another process writing to a server has."""
    return Warehouse(wh.dsn, wh.database, wh.cluster)


def events(project: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        name = rng.choice(NAMES)
        out.append(
            {
                **EVENT_COLUMNS,
                "id": uuid.uuid4().hex,
                "project_id": project,
                "name": name,
                "device_id": f"d{rng.randrange(40)}",
                "profile_id": rng.choice(["", "", f"u{rng.randrange(10)}"]),
                "session_id": f"s{rng.randrange(60)}",
                "created_at": T0 + rng.randrange(6 * HOUR),
                "received_at": T0 + 6 * HOUR,
                "path": rng.choice(PATHS),
                "is_bot": int(rng.random() < 0.1),
                "properties": {"plan": "pro"} if rng.random() < 0.3 else {},
            }
        )
    return out


class Writer(threading.Thread):
    """Stores a batch of 20 events, then pauses ``pause_s``, until stopped; keeps when each insert
    ran."""

    def __init__(self, target: Any, project: str, pause_s: float, fmt: str = "json") -> None:
        super().__init__(daemon=True)
        self.writer = ServerWriter(target, fmt)  # type: ignore[arg-type]
        self.project = project
        self.pause_s = pause_s
        self.rng = random.Random(project)
        self.stop = threading.Event()
        self.inserting = threading.Event()
        self.spans: list[tuple[float, float]] = []
        self.error: BaseException | None = None

    @property
    def stored(self) -> int:
        return 20 * len(self.spans)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                rows = events(self.project, 20, self.rng)
                started = time.monotonic()
                self.inserting.set()
                self.writer.insert("events", rows, f"t-{uuid.uuid4().hex}")
                self.inserting.clear()
                self.spans.append((started, time.monotonic()))
                time.sleep(self.pause_s)
        except BaseException as exc:  # reported by the test
            self.error = exc


class Writing:
    """What a writer did around a migration (the ``with writing(...)`` block)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.start = self.end = 0.0

    @property
    def stored(self) -> int:
        return self.writer.stored

    def overlapping(self) -> int:
        """Inserts that ran while the migration did (for a part of the time at least)."""
        return sum(1 for a, b in self.writer.spans if a < self.end and b > self.start)

    def started_during(self) -> int:
        return sum(1 for a, _ in self.writer.spans if self.start < a < self.end)


@contextlib.contextmanager
def writing(target: Any, project: str, pause_s: float) -> Iterator[Writing]:
    """A writer storing events before, during (the block: the migration) and after it."""
    w = Writer(target, project, pause_s)
    seen = Writing(w)
    w.start()
    try:
        deadline = time.monotonic() + 60
        while len(w.spans) < 3 and w.error is None and time.monotonic() < deadline:
            time.sleep(0.005)
        w.inserting.wait(30)  # the migration starts while an insert runs
        seen.start = time.monotonic()
        yield seen
        seen.end = time.monotonic()
        while (
            not any(a > seen.end for a, _ in w.spans) and w.error is None and time.monotonic() < deadline + 60
        ):
            time.sleep(0.005)
    finally:
        w.stop.set()
        w.join(60)
    if w.error is not None:
        raise w.error


class Interleaved:
    """The migrating warehouse, with a batch of events stored through another connection right
    after each view is first created and right before each backfill: where an insert does the most
    harm (run one statement after the other, the view counts it, then the emptiness guard skips
    the backfill, or without the guard the backfill counts it again)."""

    def __init__(self, wh: Any, other: Any, project: str) -> None:
        self._wh = wh
        self._writer = ServerWriter(other)
        self._project = project
        self._rng = random.Random(f"{project}-interleaved")
        self._views: set[str] = set()
        self.stored = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wh, name)

    def _store(self) -> None:
        self._writer.insert("events", events(self._project, 10, self._rng), f"t-{uuid.uuid4().hex}")
        self.stored += 10

    def command(self, sql: str, parameters: Any = None) -> Any:
        text = sql.lstrip()
        if re.match(r"INSERT\s+INTO\s+\w+\s+SELECT\b", text, re.I):
            self._store()
        result = self._wh.command(sql, parameters)
        view = re.match(r"CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.I)
        if view is not None and view[1] not in self._views:
            self._views.add(view[1])
            self._store()
        return result


def store(wh: Any, project: str, batches: int, seed: int = 1) -> int:
    """Batches stored before the migration, each a part of its own (merges stopped)."""
    wh.command("SYSTEM STOP MERGES events")
    rng = random.Random(seed)
    writer = ServerWriter(wh)
    for _ in range(batches):
        writer.insert("events", events(project, 50, rng), f"t-{uuid.uuid4().hex}")
    return batches * 50


def event_parts(wh: Any) -> int:
    rows = wh.query(
        "SELECT count() AS n FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active"
    )
    return int(rows[0]["n"])


def same(wh: Any, project: str, rollup_sql: str, raw_sql: str) -> list[tuple[Any, ...]]:
    """Both queries' rows for ``project``, which must be equal (and not empty); returns them."""
    got = sorted(tuple(r.values()) for r in wh.query(rollup_sql, {"p": project}))
    want = sorted(tuple(r.values()) for r in wh.query(raw_sql, {"p": project}))
    assert got, rollup_sql
    assert got == want, (
        rollup_sql,
        [g for g in got if g not in want][:5],
        [w for w in want if w not in got][:5],
    )
    return got


CLIENT = "project_id = {p:String} AND name NOT IN ('session_start', 'session_end')"


def check_shipped_rollups(wh: Any, project: str, stored: int) -> None:
    """Every rollup of migrations 0004-0008 equals the aggregate recomputed from ``events``."""
    raw_total = wh.query("SELECT count() AS n FROM events WHERE project_id = {p:String}", {"p": project})
    assert raw_total[0]["n"] == stored
    same(
        wh,
        project,
        "SELECT toUnixTimestamp(hour), is_bot, uniqExactMerge(visitors), sum(events), sum(page_views) "
        "FROM events_hourly WHERE project_id = {p:String} GROUP BY hour, is_bot",
        "SELECT toUnixTimestamp(toStartOfHour(created_at)) AS h, is_bot, uniqExact(device_id), count(), "
        f"countIf(name IN ('page_view', 'screen_view')) FROM events WHERE {CLIENT} GROUP BY h, is_bot",
    )
    same(
        wh,
        project,
        "SELECT toString(day), is_bot, uniqExactMerge(visitors), sum(events), sum(page_views) "
        "FROM events_daily WHERE project_id = {p:String} GROUP BY day, is_bot",
        "SELECT toString(toDate(created_at)) AS d, is_bot, uniqExact(device_id), count(), "
        f"countIf(name IN ('page_view', 'screen_view')) FROM events WHERE {CLIENT} GROUP BY d, is_bot",
    )
    same(
        wh,
        project,
        "SELECT toString(day), name, property_key, is_bot, sum(events) FROM event_catalog "
        "WHERE project_id = {p:String} GROUP BY day, name, property_key, is_bot",
        "SELECT toString(toDate(created_at)) AS d, name, arrayJoin(arrayConcat([''], mapKeys(properties))) "
        f"AS k, is_bot, count() FROM events WHERE {CLIENT} GROUP BY d, name, k, is_bot",
    )
    same(
        wh,
        project,
        "SELECT DISTINCT is_bot, toUnixTimestamp(hour), user FROM user_hours WHERE project_id = {p:String}",
        "SELECT DISTINCT is_bot, toUnixTimestamp(toStartOfHour(created_at)), "
        f"if(profile_id != '', profile_id, device_id) FROM events WHERE {CLIENT}",
    )
    same(  # a row per event: every duplicate would show
        wh,
        project,
        "SELECT name, toUnixTimestamp64Milli(created_at), is_bot, device, session, profile "
        "FROM funnel_events WHERE project_id = {p:String}",
        "SELECT name, toUnixTimestamp64Milli(created_at), is_bot, sipHash64(device_id), "
        f"sipHash64(session_id), if(profile_id = '', 0, sipHash64(profile_id)) FROM events WHERE {CLIENT}",
    )
    for table, bucket, raw_bucket in (
        ("events_dims_hourly", "toString(hour)", "toString(toStartOfHour(created_at))"),
        ("events_dims_daily", "toString(day)", "toString(toDate(created_at))"),
    ):
        for dim in ("path", "name"):
            same(
                wh,
                project,
                f"SELECT {bucket} AS b, is_bot, value, uniqExactMerge(visitors), sum(events), "
                f"sum(page_views) FROM {table} WHERE project_id = {{p:String}} AND dim = '{dim}' "
                "GROUP BY b, is_bot, value",
                f"SELECT {raw_bucket} AS b, is_bot, {dim} AS v, uniqExact(device_id), count(), "
                f"countIf(name IN ('page_view', 'screen_view')) FROM events WHERE {CLIENT} GROUP BY b, is_bot, v",
            )


def test_the_shipped_rollups_added_to_a_live_database_count_each_event_once(wh: Any, tmp_path: Path) -> None:
    """An upgrade from a database of migrations 0001-0003 holding events, written to throughout by
    another connection (and right after each view's creation and before each backfill): 0004-0009
    add every rollup, each equal to the events afterwards. (The module's database is new: this
    test runs first and leaves it fully migrated.)"""
    shipped = discover(CLICKHOUSE_DIR)
    early = tmp_path / "early"
    early.mkdir()
    for m in shipped[:3]:
        shutil.copy(m.path, early)
    assert migrate_clickhouse(wh, early) == [m.name for m in shipped[:3]]
    project = "p-upgrade"
    before = store(wh, project, batches=6)
    assert event_parts(wh) >= 6
    other = other_connection(wh)
    interleaved = Interleaved(wh, other, project)
    try:
        with writing(other, project, OWN_PAUSE_S) as w:
            applied = migrate_clickhouse(interleaved)
    finally:
        other.close()
    assert applied == [m.name for m in shipped[3:]]
    assert w.started_during() >= 3, (w.end - w.start, w.writer.spans)
    assert interleaved.stored == 10 * (7 + 7)  # after each view's creation, before each backfill
    check_shipped_rollups(wh, project, before + w.stored + interleaved.stored)
    ledger = wh.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in ledger] == [
        (m.version, m.name, m.checksum) for m in shipped
    ]


# test-only migrations take numbers after the shipped ones (the module's database holds those)
AFTER_SHIPPED = discover(CLICKHOUSE_DIR)[-1].version


def rollup_migration(directory: Path, version: int, table: str) -> Path:
    """A test-only migration adding a rollup the way the shipped ones do: table, view, guarded
    backfill."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{version:04d}_{table}.sql"
    path.write_text(
        f"""-- test-only: events and visitors per project, event name and hour
CREATE TABLE IF NOT EXISTS {table}
(
    project_id LowCardinality(String),
    name LowCardinality(String),
    hour DateTime('UTC'),
    visitors AggregateFunction(uniqExact, String),
    events SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, name, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS
SELECT project_id, name, toStartOfHour(created_at) AS hour, uniqExactState(device_id) AS visitors,
       toUInt64(count()) AS events
FROM events
GROUP BY project_id, name, hour;

INSERT INTO {table}
SELECT * FROM (
    SELECT project_id, name, toStartOfHour(created_at) AS hour, uniqExactState(device_id), toUInt64(count())
    FROM events
    GROUP BY project_id, name, hour
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM {table}) = 0;
"""
    )
    return path


@pytest.fixture
def rollup(wh: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a test rollup (its view dropped afterwards, so later inserts do not feed it)."""
    migrate_clickhouse(wh)
    table = f"test_rollup_{uuid.uuid4().hex[:8]}"
    yield table
    wh.command(f"DROP VIEW IF EXISTS {table}_mv")
    wh.command(f"DROP TABLE IF EXISTS {table}")


def check_rollup(wh: Any, table: str, project: str, stored: int) -> None:
    raw_total = wh.query("SELECT count() AS n FROM events WHERE project_id = {p:String}", {"p": project})
    assert raw_total[0]["n"] == stored
    got = same(
        wh,
        project,
        f"SELECT name, toUnixTimestamp(hour), uniqExactMerge(visitors), sum(events) FROM {table} "
        "WHERE project_id = {p:String} GROUP BY name, hour",
        "SELECT name, toUnixTimestamp(toStartOfHour(created_at)) AS h, uniqExact(device_id), count() "
        "FROM events WHERE project_id = {p:String} GROUP BY name, h",
    )
    assert sum(r[3] for r in got) == stored


@pytest.mark.parametrize("connection", ["migrating", "own"])
def test_a_rollup_added_while_events_arrive_counts_each_event_once(
    wh: Any, rollup: str, tmp_path: Path, connection: str
) -> None:
    """``migrating``: the writer shares the migrating ``Warehouse`` (embedded chDB: every insert
    goes through the owner's); ``own``: its own connection (another process on a server)."""
    project = f"p-{rollup}"
    before = store(wh, project, batches=5)
    assert event_parts(wh) >= 5
    version = AFTER_SHIPPED + {"migrating": 1, "own": 2}[connection]
    path = rollup_migration(tmp_path / "m", version, rollup)
    other = other_connection(wh) if connection == "own" else None
    try:
        with writing(other or wh, project, OWN_PAUSE_S if other else 0.001) as w:
            applied = migrate_clickhouse(wh, path.parent)
    finally:
        if other is not None:
            other.close()
    assert applied == [path.stem]
    assert w.overlapping() >= 1, "nothing was written while the migration ran"
    check_rollup(wh, rollup, project, before + w.stored)
    recorded = wh.query(
        "SELECT checksum FROM schema_migrations WHERE version = {v:UInt32} AND name = {n:String}",
        {"v": version, "n": path.stem},
    )
    assert [r["checksum"] for r in recorded] == [discover(path.parent)[0].checksum]


def test_an_insert_in_flight_across_the_views_creation_is_counted_once(
    wh: Any, rollup: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An insert (another connection) whose pipeline was built before the view existed and whose
    part is stored after the parts were listed: neither the view nor a backfill of the listed parts
    would count it. The runner sees it running, detaches the view, waits for it and tries again."""
    project = f"p-{rollup}"
    before = store(wh, project, batches=3)
    path = rollup_migration(tmp_path / "m", AFTER_SHIPPED + 3, rollup)
    other = other_connection(wh)
    slow = threading.Thread(
        target=other.command,
        args=(
            "INSERT INTO events (id, project_id, name, device_id, created_at) "
            "SELECT concat('slow-', toString(number)), {p:String}, 'click', concat('d', toString(number)), "
            "fromUnixTimestamp64Milli(toInt64({t:Int64}), 'UTC') FROM numbers(5) WHERE sleepEachRow(0.3) = 0 "
            "SETTINGS function_sleep_max_microseconds_per_block = 10000000, max_block_size = 1",
            {"p": project, "t": T0},
        ),
    )
    try:
        slow.start()
        deadline = time.monotonic() + 10
        while not wh.query("SELECT count() AS n FROM system.processes WHERE query_kind = 'Insert'")[0]["n"]:
            assert time.monotonic() < deadline, "the slow insert did not start"
            time.sleep(0.005)
        time.sleep(0.1)  # its pipeline is built
        with caplog.at_level(logging.INFO, logger="eventlens.storage.backfill"):
            assert migrate_clickhouse(wh, path.parent) == [path.stem]
        slow.join(30)
    finally:
        other.close()
    assert "detaching it to retry" in caplog.text
    check_rollup(wh, rollup, project, before + 5)


def test_inserts_right_after_the_views_creation_and_before_its_backfill_are_counted_once(
    wh: Any, rollup: str, tmp_path: Path
) -> None:
    project = f"p-{rollup}"
    before = store(wh, project, batches=3)
    path = rollup_migration(tmp_path / "m", AFTER_SHIPPED + 4, rollup)
    other = other_connection(wh)
    try:
        interleaved = Interleaved(wh, other, project)
        assert migrate_clickhouse(interleaved, path.parent) == [path.stem]
    finally:
        other.close()
    assert interleaved.stored == 20
    check_rollup(wh, rollup, project, before + 20)


@pytest.mark.parametrize("ran", [2, 3], ids=["died-before-the-backfill", "died-after-the-backfill"])
def test_a_rerun_after_a_crash_counts_each_event_once(wh: Any, rollup: str, tmp_path: Path, ran: int) -> None:
    """A run that died before its ledger row, after its first ``ran`` statements (table, view,
    then the backfill, one after the other as the old runner ran them), with events stored through
    the view since: the rerun counts every event once."""
    project = f"p-{rollup}"
    before = store(wh, project, batches=3)
    path = rollup_migration(tmp_path / "m", AFTER_SHIPPED + 4 + ran, rollup)
    for statement in discover(path.parent)[0].statements[:ran]:
        wh.command(statement)
    after = store(wh, project, batches=2, seed=2)  # counted by the view
    assert migrate_clickhouse(wh, path.parent) == [path.stem]
    check_rollup(wh, rollup, project, before + after)
