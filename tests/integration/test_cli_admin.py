"""The admin commands (migrate, project, client) through typer's CliRunner, on real databases."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from eventlens.cli import migrate as migrate_module
from eventlens.cli.main import app
from eventlens.config import Settings
from eventlens.security import verify_secret
from eventlens.storage.metadata import MigrationError, open_metadata
from eventlens.storage.migrations import CLICKHOUSE_DIR, METADATA_DIR, discover
from tests.servers import MARIADB, MARIADB_URL, need

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own EVENTLENS_* settings must not leak into these tests.
    for key in list(os.environ):
        if key.startswith("EVENTLENS_"):
            monkeypatch.delenv(key)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(data_dir: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--data-dir", str(data_dir)])


def run_json(data_dir: Path, *args: str) -> Any:
    result = run(data_dir, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_usage_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def stored_hash(data_dir: Path, client_id: str) -> str | None:
    settings = Settings(data_dir=data_dir)
    with open_metadata(settings.metadata_dsn) as store:
        client = store.get_client(client_id)
        assert client is not None
        return client.secret_hash


# --- migrate ------------------------------------------------------------------------------------
def test_migrate_metadata_only(data_dir: Path) -> None:
    first = run_json(data_dir, "migrate", "--skip-clickhouse")
    assert first["metadata"]["applied"] == [m.name for m in discover(METADATA_DIR)]
    assert first["clickhouse"] == {"skipped": "--skip-clickhouse"}
    assert (data_dir / "metadata.sqlite3").exists()
    again = run(data_dir, "migrate", "--skip-clickhouse")
    assert again.exit_code == 0
    assert "metadata: up to date" in again.stdout


def test_migrate_calls_clickhouse_migrations_with_settings(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Settings] = []

    def fake(settings: Settings) -> list[str]:
        seen.append(settings)
        return ["0001_events"]

    monkeypatch.setattr(migrate_module, "apply_clickhouse_migrations", fake)
    out = run_json(data_dir, "migrate", "--clickhouse-url", "http://ch.example:8123")
    assert out["clickhouse"] == {"applied": ["0001_events"]}
    assert seen[0].clickhouse_url == "http://ch.example:8123"
    assert seen[0].data_dir == data_dir


def test_migrate_clickhouse_failure_exits_1(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Settings) -> list[str]:
        raise MigrationError("migration edited after it was applied (checksum differs): /x/0003_c.sql")

    monkeypatch.setattr(migrate_module, "apply_clickhouse_migrations", broken)
    result = run(data_dir, "migrate")
    assert result.exit_code == 1
    assert "ClickHouse migrations failed: migration edited" in result.stderr
    assert "0003_c.sql" in result.stderr
    assert "Traceback" not in result.output


def _states(part: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    return [(m["name"], m["state"], m["checksum_match"]) for m in part["migrations"]]


def test_status_before_and_after_migrating(data_dir: Path) -> None:
    metadata_names = [m.name for m in discover(METADATA_DIR)]
    clickhouse_names = [m.name for m in discover(CLICKHOUSE_DIR)]
    before = run_json(data_dir, "migrate", "--status")
    assert _states(before["metadata"]) == [(n, "pending", None) for n in metadata_names]
    assert _states(before["clickhouse"]) == [(n, "pending", None) for n in clickhouse_names]
    assert before["clickhouse"]["url"].startswith("chdb://")
    assert not data_dir.exists()  # a status check creates nothing
    text = run(data_dir, "migrate", "--status")
    assert text.exit_code == 0, text.output
    assert f"metadata (sqlite://{data_dir.resolve()}/metadata.sqlite3)" in text.stdout
    assert f"0 applied, {len(metadata_names)} pending" in text.stdout

    assert run(data_dir, "migrate", "--skip-clickhouse").exit_code == 0
    after = run_json(data_dir, "migrate", "--status", "--skip-clickhouse")
    assert _states(after["metadata"]) == [(n, "applied", True) for n in metadata_names]
    assert after["clickhouse"] == {"skipped": "--skip-clickhouse"}
    text = run(data_dir, "migrate", "--status", "--skip-clickhouse")
    assert f"{len(metadata_names)} applied, 0 pending" in text.stdout
    assert re.search(r"^0001 +0001_initial +applied +ok$", text.stdout, re.M)
    assert "clickhouse: skipped (--skip-clickhouse)" in text.stdout


def test_edited_metadata_migration_shows_in_status_and_fails_migrate(data_dir: Path, tmp_path: Path) -> None:
    mig = tmp_path / "migs"
    mig.mkdir()
    (mig / "0001_a.sql").write_text("CREATE TABLE IF NOT EXISTS a (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")
    flags = ["--metadata-migrations", str(mig), "--skip-clickhouse"]
    assert run(data_dir, "migrate", *flags).exit_code == 0
    (mig / "0001_a.sql").write_text("CREATE TABLE IF NOT EXISTS a (id VARCHAR(20) NOT NULL PRIMARY KEY);\n")
    (mig / "0002_b.sql").write_text("CREATE TABLE IF NOT EXISTS b (id VARCHAR(10) NOT NULL PRIMARY KEY);\n")

    status = run_json(data_dir, "migrate", "--status", *flags)
    assert _states(status["metadata"]) == [("0001_a", "applied", False), ("0002_b", "pending", None)]
    text = run(data_dir, "migrate", "--status", *flags)
    assert text.exit_code == 0
    assert re.search(r"^0001 +0001_a +applied +MISMATCH", text.stdout, re.M)

    result = run(data_dir, "migrate", *flags)
    assert result.exit_code == 1
    assert "edited after it was applied" in result.stderr
    assert str(mig / "0001_a.sql") in result.stderr
    assert "Traceback" not in result.output
    status = run_json(data_dir, "migrate", "--status", *flags)
    assert status["metadata"]["migrations"][1]["state"] == "pending"


@pytest.mark.chdb
def test_status_and_migrate_on_a_real_chdb_in_a_subprocess(data_dir: Path) -> None:
    # a subprocess: this module must not open chDB itself (one chDB directory per process)
    def cli(*args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "eventlens.cli.main", *args, "--data-dir", str(data_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    names = [m.name for m in discover(CLICKHOUSE_DIR)]
    assert {m["state"] for m in cli("migrate", "--status")["clickhouse"]["migrations"]} == {"pending"}
    assert cli("migrate")["clickhouse"] == {"applied": names}
    after = cli("migrate", "--status")
    assert _states(after["clickhouse"]) == [(n, "applied", True) for n in names]
    assert {m["state"] for m in after["metadata"]["migrations"]} == {"applied"}


# --- projects -----------------------------------------------------------------------------------
def test_project_create_and_list(data_dir: Path) -> None:
    text = run(data_dir, "project", "create", "My Site", "--id", "my-site")
    assert text.exit_code == 0, text.output
    assert "my-site" in text.stdout
    created = run_json(data_dir, "project", "create", "Other Site")
    assert created["name"] == "Other Site" and len(created["id"]) == 12
    listed = run_json(data_dir, "project", "list")
    assert [p["id"] for p in listed] == ["my-site", created["id"]]
    table = run(data_dir, "project", "list")
    assert "My Site" in table.stdout and "Other Site" in table.stdout


def test_project_currency_is_usd_by_default_and_settable(data_dir: Path) -> None:
    assert run_json(data_dir, "project", "create", "Shop", "--id", "shop")["currency"] == "USD"
    assert run_json(data_dir, "project", "currency", "shop", "eur", "--json")["currency"] == "EUR"
    assert "now uses CHF" in run(data_dir, "project", "currency", "shop", "CHF").stdout
    assert [p["currency"] for p in run_json(data_dir, "project", "list")] == ["CHF"]
    assert "CHF" in run(data_dir, "project", "list").stdout
    assert_usage_error(run(data_dir, "project", "currency", "shop", "EURO"), "3-letter ISO-4217")
    assert_usage_error(run(data_dir, "project", "currency", "nope", "EUR"), "unknown project 'nope'")


def test_project_list_empty(data_dir: Path) -> None:
    assert run_json(data_dir, "project", "list") == []
    assert "No projects." in run(data_dir, "project", "list").stdout


def test_project_errors_exit_2(data_dir: Path) -> None:
    run(data_dir, "project", "create", "A", "--id", "dup")
    assert_usage_error(run(data_dir, "project", "create", "B", "--id", "dup"), "already exists")
    assert_usage_error(run(data_dir, "project", "create", "B", "--id", "Not Valid"), "project id")
    assert_usage_error(run(data_dir, "project", "create", "   "), "project name")


# --- clients ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ctype", "can_write", "can_read"), [("write", True, False), ("read", False, True), ("root", True, True)]
)
def test_client_create_with_secret(data_dir: Path, ctype: str, can_write: bool, can_read: bool) -> None:
    run(data_dir, "project", "create", "P", "--id", "p1")
    result = run(data_dir, "client", "create", "--project", "p1", "--type", ctype, "--name", "api", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["type"] == ctype and out["project_id"] == "p1" and out["name"] == "api"
    assert out["has_secret"] is True
    assert "shown only once" in result.stderr
    secret_hash = stored_hash(data_dir, out["id"])
    assert secret_hash is not None and out["secret"] not in secret_hash
    assert verify_secret(out["secret"], secret_hash)
    assert "secret_hash" not in out
    settings = Settings(data_dir=data_dir)
    with open_metadata(settings.metadata_dsn) as store:
        client = store.get_client(out["id"])
        assert client is not None
        assert (client.can_write, client.can_read) == (can_write, can_read)


def test_client_create_text_output_shows_secret_once(data_dir: Path) -> None:
    run(data_dir, "project", "create", "P", "--id", "p1")
    result = run(data_dir, "client", "create", "-p", "p1", "-t", "root")
    assert result.exit_code == 0, result.output
    secret_line = next(line for line in result.stdout.splitlines() if "client secret:" in line)
    secret = secret_line.split(":", 1)[1].strip()
    id_line = next(line for line in result.stdout.splitlines() if "client id:" in line)
    client_id = id_line.split(":", 1)[1].strip()
    assert verify_secret(secret, stored_hash(data_dir, client_id))
    assert "shown only once" in result.stderr


def test_client_rotate_replaces_the_secret(data_dir: Path) -> None:
    run(data_dir, "project", "create", "P", "--id", "p1")
    old = run_json(data_dir, "client", "create", "-p", "p1", "-t", "write")
    result = run(data_dir, "client", "rotate", old["id"], "--json")
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)
    assert new["id"] == old["id"] and new["secret"] != old["secret"]
    assert "shown only once" in result.stderr
    stored = stored_hash(data_dir, old["id"])
    assert verify_secret(new["secret"], stored) and not verify_secret(old["secret"], stored)
    assert_usage_error(run(data_dir, "client", "rotate", "nope"), "unknown client 'nope'")
    browser = run_json(
        data_dir, "client", "create", "-p", "p1", "-t", "write", "--no-secret", "--origin", "a.example"
    )
    assert_usage_error(run(data_dir, "client", "rotate", browser["id"]), "has no secret")


def test_browser_client_without_secret(data_dir: Path) -> None:
    run(data_dir, "project", "create", "P", "--id", "p1")
    result = run(
        data_dir,
        "client",
        "create",
        "-p",
        "p1",
        "-t",
        "write",
        "--no-secret",
        "--origin",
        "https://Example.com/",
        "--origin",
        "*.example.com",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["secret"] is None and out["has_secret"] is False
    assert out["origins"] == ["https://example.com", "*.example.com"]
    assert "shown only once" not in result.stderr
    assert stored_hash(data_dir, out["id"]) is None


def test_client_list_never_shows_secrets(data_dir: Path) -> None:
    run(data_dir, "project", "create", "One", "--id", "one")
    run(data_dir, "project", "create", "Two", "--id", "two")
    made = [
        run_json(data_dir, "client", "create", "-p", "one", "-t", "write"),
        run_json(data_dir, "client", "create", "-p", "one", "-t", "read"),
        run_json(data_dir, "client", "create", "-p", "two", "-t", "root"),
        run_json(
            data_dir, "client", "create", "-p", "two", "-t", "write", "--no-secret", "--origin", "a.com"
        ),
    ]
    hashes = [stored_hash(data_dir, m["id"]) for m in made]
    listed_all = run(data_dir, "client", "list", "--json")
    listed_one = run_json(data_dir, "client", "list", "--project", "one")
    table = run(data_dir, "client", "list")
    assert [c["id"] for c in json.loads(listed_all.stdout)] == [m["id"] for m in made]
    assert [c["id"] for c in listed_one] == [made[0]["id"], made[1]["id"]]
    for output in (listed_all.output, json.dumps(listed_one), table.output):
        for m, h in zip(made, hashes, strict=True):
            if m["secret"]:
                assert m["secret"] not in output
            if h:
                assert h not in output
        assert "scrypt$" not in output
    for c in json.loads(listed_all.stdout):
        assert "secret" not in c and "secret_hash" not in c
    assert [c["has_secret"] for c in json.loads(listed_all.stdout)] == [True, True, True, False]
    assert made[0]["id"] in table.stdout


def test_client_errors_exit_2(data_dir: Path) -> None:
    run(data_dir, "project", "create", "P", "--id", "p1")
    assert_usage_error(
        run(data_dir, "client", "create", "-p", "nope", "-t", "read"), "unknown project 'nope'"
    )
    bad_type = run(data_dir, "client", "create", "-p", "p1", "-t", "admin")
    assert bad_type.exit_code == 2 and "admin" in bad_type.stderr
    assert_usage_error(
        run(data_dir, "client", "create", "-p", "p1", "-t", "read", "--no-secret", "--origin", "a.com"),
        "must be of type 'write'",
    )
    assert_usage_error(
        run(data_dir, "client", "create", "-p", "p1", "-t", "write", "--no-secret"),
        "at least one allowed origin",
    )
    assert_usage_error(
        run(data_dir, "client", "create", "-p", "p1", "-t", "write", "--no-secret", "--origin", "*"),
        "invalid origin",
    )
    assert_usage_error(run(data_dir, "client", "list", "--project", "nope"), "unknown project 'nope'")
    assert run_json(data_dir, "client", "list") == []


def test_bad_settings_exit_2(data_dir: Path) -> None:
    result = run(data_dir, "project", "list", "--metadata-url", "postgres://x/y")
    assert_usage_error(result, "metadata_url must start with sqlite:// or mysql://")


@pytest.mark.mariadb  # the MySQL driver tries to connect (to a closed port)
def test_unreachable_database_exits_1(data_dir: Path) -> None:
    result = run(data_dir, "project", "list", "--metadata-url", "mysql://root:pw@127.0.0.1:1/db")
    assert result.exit_code == 1
    assert "cannot connect" in result.stderr and "pw@" not in result.stderr
    assert "Traceback" not in result.output


# --- settings sources ---------------------------------------------------------------------------
def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLENS_DATA_DIR", str(tmp_path / "from-env"))
    result = runner.invoke(app, ["project", "create", "Env", "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "metadata.sqlite3").exists()


def test_metadata_url_flag_overrides_data_dir(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "meta.sqlite3"
    created = run_json(data_dir, "project", "create", "X", "--metadata-url", f"sqlite:///{db}")
    assert db.exists() and not (data_dir / "metadata.sqlite3").exists()
    listed = run_json(data_dir, "project", "list", "--metadata-url", f"sqlite:///{db}")
    assert [p["id"] for p in listed] == [created["id"]]


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    import pymysql

    need("mariadb")  # a skip, or a failure under EVENTLENS_REQUIRE_SERVICES=1, naming the address
    admin = pymysql.connect(**MARIADB, autocommit=True)
    name = f"eventlens_test_{secrets.token_hex(6)}"
    try:
        yield f"{MARIADB_URL}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.mark.mariadb
def test_admin_commands_on_mariadb(data_dir: Path, mariadb_url: str) -> None:
    url = ["--metadata-url", mariadb_url]
    applied = run_json(data_dir, "migrate", "--skip-clickhouse", *url)["metadata"]["applied"]
    assert applied == [m.name for m in discover(METADATA_DIR)]
    project = run_json(data_dir, "project", "create", "Maria", *url)
    client = run_json(data_dir, "client", "create", "-p", project["id"], "-t", "root", *url)
    listed = run_json(data_dir, "client", "list", "-p", project["id"], *url)
    assert [c["id"] for c in listed] == [client["id"]]
    assert client["secret"] not in json.dumps(listed)
    with open_metadata(mariadb_url) as store:
        stored = store.get_client(client["id"])
        assert stored is not None and verify_secret(client["secret"], stored.secret_hash)
    assert not (data_dir / "metadata.sqlite3").exists()


def test_help_lists_admin_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("migrate", "project", "client"):
        assert command in result.stdout


# --- goal ---------------------------------------------------------------------------------------
def test_goal_add_list_remove(data_dir: Path) -> None:
    project = run_json(data_dir, "project", "create", "Site", "--id", "site")["id"]
    blog = run_json(data_dir, "goal", "add", "--project", project, "--name", "Blog", "--path", "/blog/*")
    assert (blog["kind"], blog["path"], blog["event"], blog["property"]) == (
        "page_view",
        "/blog/*",
        None,
        None,
    )
    pro = run_json(
        data_dir,
        "goal",
        "add",
        "-p",
        project,
        "-n",
        "Pro signup",
        "--event",
        "signup",
        "--property",
        "plan=pro",
    )
    assert pro["property"] == {"key": "plan", "value": "pro"}
    listed = run(data_dir, "goal", "list", "--project", project)
    assert listed.exit_code == 0
    assert "Blog" in listed.stdout and "path /blog/*" in listed.stdout
    assert "event signup where plan=pro" in listed.stdout
    assert [g["name"] for g in run_json(data_dir, "goal", "list", "--project", project)] == [
        "Blog",
        "Pro signup",
    ]
    removed = run(data_dir, "goal", "remove", "--project", project, "--name", "Blog")
    assert removed.exit_code == 0 and "Removed goal 'Blog'" in removed.stdout
    assert [g["name"] for g in run_json(data_dir, "goal", "list", "--project", project)] == ["Pro signup"]
    assert run(data_dir, "goal", "list", "-p", project, "--json").exit_code == 0
    # and the API's store sees the same goals
    with open_metadata(Settings(data_dir=data_dir).metadata_dsn) as store:
        assert [g.name for g in store.list_goals(project)] == ["Pro signup"]


def test_goal_mistakes_are_usage_errors(data_dir: Path) -> None:
    project = run_json(data_dir, "project", "create", "Site")["id"]
    run_json(data_dir, "goal", "add", "-p", project, "-n", "Blog", "--path", "/blog/*")
    for args, message in [
        (["goal", "add", "-p", project, "-n", "X"], "exactly one of --path"),
        (["goal", "add", "-p", project, "-n", "X", "--path", "/a", "--event", "e"], "exactly one of --path"),
        (["goal", "add", "-p", project, "-n", "X", "--path", "/a", "--property", "k=v"], "event goals"),
        (["goal", "add", "-p", project, "-n", "X", "--event", "e", "--property", "novalue"], "key=value"),
        (["goal", "add", "-p", project, "-n", "Blog", "--event", "e"], "already has a goal named 'Blog'"),
        (["goal", "add", "-p", project, "-n", " ", "--event", "e"], "name"),
        (["goal", "add", "-p", project, "-n", "X", "--path", "/" + "a" * 1001], "path"),
        (["goal", "add", "-p", "nope", "-n", "X", "--event", "e"], "unknown project"),
        (["goal", "list", "-p", "nope"], "unknown project"),
        (["goal", "remove", "-p", project, "-n", "Nope"], "no goal named 'Nope'"),
    ]:
        assert_usage_error(run(data_dir, *args), message)
