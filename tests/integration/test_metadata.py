"""The metadata store against embedded SQLite and a real MariaDB server.

Every store test runs on both back ends through the parametrised ``dsn`` fixture; MariaDB runs
get a fresh database per test, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from eventlens.goals import GoalSpec, PropertyMatch
from eventlens.security import verify_secret
from eventlens.storage.metadata import (
    MetadataError,
    MetadataStore,
    MigrationError,
    open_metadata,
)
from eventlens.storage.migrations import METADATA_DIR, discover
from tests.servers import MARIADB, MARIADB_URL, need

# the shipped metadata migrations, in order: a new database gets them all
SHIPPED = [m.name for m in discover(METADATA_DIR)]


def _mariadb_admin():  # type: ignore[no-untyped-def]
    import pymysql

    need("mariadb")  # a skip, or a failure under EVENTLENS_REQUIRE_SERVICES=1, naming the address
    return pymysql.connect(**MARIADB, autocommit=True, connect_timeout=3)


@contextlib.contextmanager
def _fresh_mariadb_dsn() -> Iterator[str]:
    """DSN of a not-yet-existing MariaDB database, dropped on exit."""
    admin = _mariadb_admin()
    name = f"eventlens_test_{secrets.token_hex(6)}"
    try:
        yield f"{MARIADB_URL}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A DSN for an empty metadata database, on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'dir' / 'metadata.sqlite3'}"
        return
    with _fresh_mariadb_dsn() as mysql_dsn:
        yield mysql_dsn


@pytest.fixture
def mariadb_dsn() -> Iterator[str]:
    with _fresh_mariadb_dsn() as mysql_dsn:
        yield mysql_dsn


@pytest.fixture
def store(dsn: str) -> Iterator[MetadataStore]:
    s = open_metadata(dsn)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def _write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql, encoding="utf-8")


def _run_processes(code: str, args_list: list[list[str]]) -> list[str]:
    """Start one Python process per argument list at once; return their stdout (all must succeed)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in args_list
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


# --- migrations ---------------------------------------------------------------------------------
def test_migrate_applies_once_and_rerun_is_noop(dsn: str) -> None:
    with open_metadata(dsn) as s:
        assert s.migrate() == SHIPPED
        assert s.migrate() == []
    # A new connection (a restarted process) sees the ledger too.
    with open_metadata(dsn) as s:
        assert s.migrate() == []
        s.ping()


def test_migrate_applies_new_files_in_order(dsn: str, tmp_path: Path) -> None:
    mig = tmp_path / "migs"
    _write(mig, "0001_first.sql", "CREATE TABLE IF NOT EXISTS t1 (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    with open_metadata(dsn) as s:
        assert s.migrate(mig) == ["0001_first"]
        _write(
            mig,
            "0003_third.sql",
            "-- a comment line\nCREATE TABLE IF NOT EXISTS t3 (id VARCHAR(10) NOT NULL PRIMARY KEY);\n",
        )
        _write(
            mig,
            "0002_second.sql",
            "CREATE TABLE IF NOT EXISTS t2 (id VARCHAR(10) NOT NULL PRIMARY KEY);\n"
            "ALTER TABLE t1 ADD COLUMN note VARCHAR(20) NULL;\n",
        )
        assert s.migrate(mig) == ["0002_second", "0003_third"]
        assert s.migrate(mig) == []


def test_failed_migration_is_not_recorded(dsn: str, tmp_path: Path) -> None:
    mig = tmp_path / "migs"
    _write(mig, "0001_ok.sql", "CREATE TABLE IF NOT EXISTS ok1 (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    _write(mig, "0002_broken.sql", "CREATE TABLE IF NOT EXISTS ok2 (id VARCHAR(10));\nNOT VALID SQL;\n")
    with open_metadata(dsn) as s:
        with pytest.raises(MigrationError, match="0002_broken"):
            s.migrate(mig)
        # The fixed file applies on the next run; the good one before it stayed applied.
        _write(mig, "0002_broken.sql", "CREATE TABLE IF NOT EXISTS ok2 (id VARCHAR(10));\n")
        assert s.migrate(mig) == ["0002_broken"]


def test_duplicate_migration_numbers_fail_loudly(dsn: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "SELECT 1;\n")
    _write(tmp_path, "0001_b.sql", "SELECT 1;\n")
    with (
        open_metadata(dsn) as s,
        pytest.raises(MigrationError, match="duplicate migration number 0001") as err,
    ):
        s.migrate(tmp_path)
    assert "0001_a.sql" in str(err.value) and "0001_b.sql" in str(err.value)


def test_badly_named_migration_fails_loudly(dsn: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_initial.sql", "SELECT 1;\n")
    _write(tmp_path, "2_next.sql", "SELECT 1;\n")
    with open_metadata(dsn) as s, pytest.raises(MigrationError, match=r"2_next\.sql"):
        s.migrate(tmp_path)


def test_missing_migrations_dir_fails(tmp_path: Path) -> None:
    with (
        open_metadata(f"sqlite:///{tmp_path / 'm.sqlite3'}") as s,
        pytest.raises(MigrationError, match="not found"),
    ):
        s.migrate(tmp_path / "nope")


def test_repository_migrations_are_discoverable() -> None:
    names = [m.name for m in discover(METADATA_DIR)]
    assert names[0] == "0001_initial"


def _states(store: MetadataStore, directory: Path) -> list[tuple[str, str, bool | None]]:
    return [(m.name, m.state, m.checksum_match) for m in store.migration_status(directory)]


def test_status_before_and_after_migrating(dsn: str, tmp_path: Path) -> None:
    mig = tmp_path / "migs"
    _write(mig, "0001_a.sql", "CREATE TABLE IF NOT EXISTS a (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    _write(mig, "0002_b.sql", "CREATE TABLE IF NOT EXISTS b (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    with open_metadata(dsn) as s:
        assert _states(s, mig) == [("0001_a", "pending", None), ("0002_b", "pending", None)]
        # status changes nothing, not even the ledger table
        with pytest.raises(Exception, match="schema_migrations"):
            s._backend.execute("SELECT 1 FROM schema_migrations")
        assert s.migrate(mig) == ["0001_a", "0002_b"]
        assert _states(s, mig) == [("0001_a", "applied", True), ("0002_b", "applied", True)]
        # the ledger keeps the zero-padded text version existing databases hold
        assert sorted(s._backend.execute("SELECT version, name FROM schema_migrations")) == [
            ("0001", "0001_a"),
            ("0002", "0002_b"),
        ]
        (mig / "0002_b.sql").unlink()
        assert _states(s, mig) == [("0001_a", "applied", True), ("0002_b", "applied", None)]
        assert s.migrate(mig) == []


def test_edited_applied_migration_is_an_error_naming_the_file(dsn: str, tmp_path: Path) -> None:
    mig = tmp_path / "migs"
    _write(mig, "0001_a.sql", "CREATE TABLE IF NOT EXISTS a (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    with open_metadata(dsn) as s:
        assert s.migrate(mig) == ["0001_a"]
    _write(mig, "0001_a.sql", "CREATE TABLE IF NOT EXISTS a (id VARCHAR(20) NOT NULL PRIMARY KEY);\n")
    _write(mig, "0002_b.sql", "CREATE TABLE IF NOT EXISTS b (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    with open_metadata(dsn) as s:
        with pytest.raises(MigrationError, match="edited after it was applied") as err:
            s.migrate(mig)
        assert str(mig / "0001_a.sql") in str(err.value)
        # nothing applied past the check
        assert _states(s, mig) == [("0001_a", "applied", False), ("0002_b", "pending", None)]
        # restoring the applied text lets the run go on
        _write(mig, "0001_a.sql", "CREATE TABLE IF NOT EXISTS a (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
        assert s.migrate(mig) == ["0002_b"]


def test_ledger_written_before_is_read(dsn: str) -> None:
    # a database whose ledger holds the shipped files with their checksums: nothing to do
    with open_metadata(dsn) as s:
        s.migrate()
        s._backend.execute("DELETE FROM schema_migrations")
        for m in discover(METADATA_DIR):
            s._backend.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                (f"{m.version:04d}", m.name, m.checksum, "2024-01-01T00:00:00.000000+00:00"),
            )
        assert s.migrate() == []
        assert _states(s, METADATA_DIR)[0] == ("0001_initial", "applied", True)


_MIGRATE_CODE = """
import json, sys
from pathlib import Path
from eventlens.storage.metadata import open_metadata
with open_metadata(sys.argv[1]) as s:
    print(json.dumps(s.migrate(Path(sys.argv[2]))))
"""


def test_concurrent_migrate_from_processes_applies_each_once(dsn: str, tmp_path: Path) -> None:
    # 0002 is not idempotent (a second ADD COLUMN fails), so this only passes if the processes
    # really serialise on the migration lock and re-check the ledger.
    mig = tmp_path / "migs"
    _write(mig, "0001_t.sql", "CREATE TABLE IF NOT EXISTS t (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    _write(mig, "0002_col.sql", "ALTER TABLE t ADD COLUMN extra VARCHAR(20) NULL;\n")
    _write(mig, "0003_u.sql", "CREATE TABLE IF NOT EXISTS u (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    outputs = _run_processes(_MIGRATE_CODE, [[dsn, str(mig)] for _ in range(4)])
    applied = [name for out in outputs for name in json.loads(out)]
    assert sorted(applied) == ["0001_t", "0002_col", "0003_u"]
    with open_metadata(dsn) as s:
        assert s.migrate(mig) == []


def test_a_database_at_0001_with_projects_gets_the_currency_column(dsn: str) -> None:
    """0002 on a database that holds projects and clients: they read USD, and it can be set."""
    with open_metadata(dsn) as s:
        s.migrate(_only(METADATA_DIR, 1))
        s._backend.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
            ("old", "Old", "2024-01-01T00:00:00.000000+00:00"),
        )
        assert s.migrate() == SHIPPED[1:]
        assert s.get_project("old").currency == "USD"  # type: ignore[union-attr]
        client, _ = s.create_client("old", "write")
        assert s.get_client(client.id).project_currency == "USD"  # type: ignore[union-attr]
        s.set_project_currency("old", "eur")
        assert s.get_client(client.id).project_currency == "EUR"  # type: ignore[union-attr]
        assert [p.currency for p in s.list_projects()] == ["EUR"]


def test_shipped_migrations_are_the_three_known_ones() -> None:
    assert SHIPPED == ["0001_initial", "0002_project_currency", "0003_goals"]


def test_a_database_at_0002_with_projects_gets_the_goals_table(dsn: str) -> None:
    """0003 on a database that holds a project: it has no goals, then can have them."""
    with open_metadata(dsn) as s:
        s.migrate(_only(METADATA_DIR, 2))
        s._backend.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
            ("old", "Old", "2024-01-01T00:00:00.000000+00:00"),
        )
        assert s.migrate() == SHIPPED[2:]
        assert s.list_goals("old") == []
        goal = s.create_goal("old", GoalSpec(name="Docs", path="/docs/*"))
        assert s.list_goals("old") == [goal]


def _only(directory: Path, last: int) -> Path:
    """A copy of ``directory`` with the migrations up to ``last``."""
    import shutil
    import tempfile

    out = Path(tempfile.mkdtemp())
    for m in discover(directory):
        if m.version <= last:
            shutil.copy(m.path, out / m.path.name)
    return out


def test_concurrent_migrate_from_threads(dsn: str) -> None:
    s = open_metadata(dsn)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(s.migrate())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    assert sorted(name for names in results for name in names) == SHIPPED


# --- projects -----------------------------------------------------------------------------------
def test_create_get_list_projects(store: MetadataStore) -> None:
    a = store.create_project("Site A")
    b = store.create_project("  Site B  ", id="site-b")
    assert b.id == "site-b" and b.name == "Site B"
    assert len(a.id) == 12
    assert store.get_project(a.id) == a
    assert store.get_project("missing") is None
    assert [p.id for p in store.list_projects()] == [a.id, b.id]
    assert a.created_at.tzinfo is not None


def test_project_validation(store: MetadataStore) -> None:
    store.create_project("One", id="one")
    with pytest.raises(ValueError, match="already exists"):
        store.create_project("Again", id="one")
    with pytest.raises(ValueError, match="project name"):
        store.create_project("   ")
    with pytest.raises(ValueError, match="project id"):
        store.create_project("Bad", id="Has Spaces")
    with pytest.raises(ValueError, match="project id"):
        store.create_project("Upper", id="ONE")


def test_values_are_bound_not_interpolated(store: MetadataStore) -> None:
    nasty = "x'); DROP TABLE projects; -- \" ? %s"
    project = store.create_project(nasty)
    assert store.get_project(project.id) == project
    assert store.get_project("' OR '1'='1") is None
    assert store.list_projects()[0].name == nasty


def test_lookups_are_case_sensitive(store: MetadataStore) -> None:
    store.create_project("P", id="abc")
    client, _ = store.create_client("abc", "read")
    assert store.get_client(client.id.upper()) is None


# --- clients ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ctype", "can_write", "can_read"), [("write", True, False), ("read", False, True), ("root", True, True)]
)
def test_create_client_with_secret(store: MetadataStore, ctype: str, can_write: bool, can_read: bool) -> None:
    project = store.create_project("P")
    client, secret = store.create_client(project.id, ctype, name="backend")
    assert secret is not None
    stored = store.get_client(client.id)
    assert stored == client
    assert stored.type == ctype and stored.name == "backend" and stored.project_id == project.id
    assert (stored.can_write, stored.can_read) == (can_write, can_read)
    assert stored.has_secret and stored.secret_hash and secret not in stored.secret_hash
    assert verify_secret(secret, stored.secret_hash)
    assert not verify_secret(secret + "x", stored.secret_hash)


def test_secretless_browser_client(store: MetadataStore) -> None:
    project = store.create_project("P")
    client, secret = store.create_client(
        project.id,
        "write",
        origins=["https://Example.com/", "*.example.com", "https://example.com"],
        with_secret=False,
    )
    assert secret is None
    stored = store.get_client(client.id)
    assert stored is not None and stored.secret_hash is None and not stored.has_secret
    assert stored.origins == ["https://example.com", "*.example.com"]  # normalised, deduplicated
    assert stored.allows_origin("https://www.example.com")
    assert not stored.allows_origin("https://evil.com")


def test_client_validation(store: MetadataStore) -> None:
    project = store.create_project("P")
    with pytest.raises(ValueError, match="must be of type 'write'"):
        store.create_client(project.id, "read", origins=["example.com"], with_secret=False)
    with pytest.raises(ValueError, match="must be of type 'write'"):
        store.create_client(project.id, "root", origins=["example.com"], with_secret=False)
    with pytest.raises(ValueError, match="at least one allowed origin"):
        store.create_client(project.id, "write", with_secret=False)
    with pytest.raises(ValueError, match="unknown project 'nope'"):
        store.create_client("nope", "write")
    with pytest.raises(ValueError, match="client type"):
        store.create_client(project.id, "admin")
    with pytest.raises(ValueError, match="invalid origin"):
        store.create_client(project.id, "write", origins=["https://example.com/path"], with_secret=False)
    assert store.list_clients() == []


def test_list_clients_filters_by_project(store: MetadataStore) -> None:
    p1, p2 = store.create_project("One"), store.create_project("Two")
    c1, _ = store.create_client(p1.id, "write")
    c2, _ = store.create_client(p1.id, "read")
    c3, _ = store.create_client(p2.id, "root")
    assert [c.id for c in store.list_clients(p1.id)] == [c1.id, c2.id]
    assert [c.id for c in store.list_clients(p2.id)] == [c3.id]
    assert {c.id for c in store.list_clients()} == {c1.id, c2.id, c3.id}
    assert store.list_clients("missing") == []
    assert store.get_client("missing") is None


def test_store_is_thread_safe(store: MetadataStore) -> None:
    project = store.create_project("P")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                client, _ = store.create_client(project.id, "write", origins=["a.com"], with_secret=False)
                assert store.get_client(client.id) == client
                store.list_clients(project.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_clients(project.id)) == 40


# --- salts --------------------------------------------------------------------------------------
def test_salt_is_stable_per_day(store: MetadataStore) -> None:
    today = store.get_or_create_salt(date(2024, 3, 1))
    assert len(today) == 64 and int(today, 16) >= 0
    assert store.get_or_create_salt(date(2024, 3, 1)) == today
    assert store.get_or_create_salt(date(2024, 3, 2)) != today


_SALT_CODE = """
import sys
from datetime import date
from eventlens.storage.metadata import open_metadata
with open_metadata(sys.argv[1]) as s:
    print(s.get_or_create_salt(date(2024, 5, 17)))
"""


def test_salt_race_across_processes_agrees(store: MetadataStore, dsn: str) -> None:
    outputs = _run_processes(_SALT_CODE, [[dsn] for _ in range(6)])
    assert len(set(outputs)) == 1
    assert store.get_or_create_salt(date(2024, 5, 17)) == outputs[0]


# --- lifecycle ----------------------------------------------------------------------------------
def test_ping_and_close(dsn: str) -> None:
    s = open_metadata(dsn)
    s.ping()
    s.close()
    s.close()  # idempotent
    with pytest.raises(MetadataError, match="closed"):
        s.ping()


@pytest.mark.mariadb(suite_server=False)  # the MySQL driver tries to connect (to a closed port)
def test_url_never_shows_a_password() -> None:
    with pytest.raises(MetadataError) as info:
        open_metadata("mysql://root:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgres://x/y", "must start with"),
        ("mysql://root@127.0.0.1:3306/", "database name"),
        ("mysql://root@127.0.0.1:3306/bad-name", "database name"),
        ("mysql://root@127.0.0.1:3306/db?foo=1", "unsupported metadata url option"),
        ("sqlite://", "file path"),
    ],
)
def test_bad_dsns(dsn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_metadata(dsn)


def test_sqlite_dsn_forms_and_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a" / "meta.sqlite3"
    # Three slashes before an absolute path, or four (what Settings.metadata_dsn produces).
    for dsn in (f"sqlite://{target}", f"sqlite:///{target}"):
        with open_metadata(dsn) as s:
            s.migrate()
            assert s.url == f"sqlite://{target}"
    assert target.exists()
    import sqlite3

    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    monkeypatch.chdir(tmp_path)
    with open_metadata("sqlite://rel/meta.sqlite3") as s:
        s.migrate()
    assert (tmp_path / "rel" / "meta.sqlite3").exists()


# --- MariaDB specifics --------------------------------------------------------------------------
@pytest.mark.mariadb
def test_mariadb_database_is_created_binary_collated(mariadb_dsn: str) -> None:
    dsn = mariadb_dsn
    with open_metadata(dsn) as s:
        s.migrate()
    name = dsn.rsplit("/", 1)[1]
    admin = _mariadb_admin()
    with admin.cursor() as cur:
        cur.execute(
            "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
        )
        assert cur.fetchone()[0] == "utf8mb4_bin"
    admin.close()


@pytest.mark.mariadb
def test_mariadb_reconnects_after_connection_loss(mariadb_dsn: str) -> None:
    with open_metadata(mariadb_dsn) as s:
        s.migrate()
        project = s.create_project("P")
        # The server ends our session, as wait_timeout or a restart would.
        (conn_id,) = s._backend.execute("SELECT CONNECTION_ID()")[0]
        admin = _mariadb_admin()
        with admin.cursor() as cur:
            cur.execute("KILL %s", (conn_id,))
        admin.close()
        assert s.get_project(project.id) == project
        s.ping()


@pytest.mark.mariadb
def test_mariadb_uses_an_existing_database(mariadb_dsn: str) -> None:
    # An administrator may create the database beforehand (the app user then needs no CREATE).
    name = mariadb_dsn.rsplit("/", 1)[1]
    admin = _mariadb_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    admin.close()
    with open_metadata(mariadb_dsn) as s:
        assert s.migrate() == SHIPPED


# --- goals --------------------------------------------------------------------------------------
def test_goals_are_created_listed_and_deleted(store: MetadataStore) -> None:
    p = store.create_project("P")
    other = store.create_project("Q")
    page = store.create_goal(p.id, GoalSpec(name="Blog", path="/blog/*"))
    signup = store.create_goal(p.id, GoalSpec(name="Signup", event="signup"))
    pro = store.create_goal(
        p.id, GoalSpec(name="Pro signup", event="signup", property=PropertyMatch(key="plan", value="pro"))
    )
    assert (page.kind, page.path, page.event) == ("page_view", "/blog/*", None)
    assert (signup.kind, signup.event, signup.property) == ("event", "signup", None)
    assert pro.property == {"key": "plan", "value": "pro"}
    assert store.list_goals(p.id) == [page, signup, pro]
    assert store.list_goals(other.id) == []
    # names are unique per project, not across projects
    with pytest.raises(ValueError, match="already has a goal named 'Blog'"):
        store.create_goal(p.id, GoalSpec(name="Blog", event="x"))
    assert store.create_goal(other.id, GoalSpec(name="Blog", event="x")).project_id == other.id
    with pytest.raises(ValueError, match="unknown project"):
        store.create_goal("nope", GoalSpec(name="x", event="x"))
    # by id (only within its project) and by name
    assert store.delete_goal(other.id, page.id) is None
    assert store.delete_goal(p.id, page.id) == page
    assert store.delete_goal(p.id, page.id) is None
    assert store.delete_goal(p.id, name="Pro signup") == pro
    assert store.list_goals(p.id) == [signup]
    assert store.get_goal(p.id, signup.id) == signup


def test_goal_values_are_stored_verbatim(store: MetadataStore) -> None:
    """Hostile text is data: quotes, %, _, regex metacharacters, non-ASCII, long values."""
    p = store.create_project("P")
    weird = "/a'b\"%_[x]*(?:y)+$^é" + "z" * 900
    goal = store.create_goal(
        p.id,
        GoalSpec(
            name="'; DROP TABLE goals; --",
            event="ev%_'",
            property=PropertyMatch(key="k'=%", value="v=1' OR '1'='1" * 10),
        ),
    )
    page = store.create_goal(p.id, GoalSpec(name="ü " * 50, path=weird))
    assert store.list_goals(p.id) == [goal, page]
    assert store.get_goal(p.id, page.id).path == weird  # type: ignore[union-attr]
