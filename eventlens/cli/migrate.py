"""``eventlens migrate``: bring the metadata database and ClickHouse schemas up to date, or with
``--status`` list applied and pending migrations of both without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from eventlens.cli.common import (
    DataDirOption,
    JsonOption,
    MetadataUrlOption,
    cli_errors,
    fail,
    print_json,
    print_table,
    settings_from,
)
from eventlens.config import Settings
from eventlens.storage.metadata import open_metadata
from eventlens.storage.metadata_backends import redact, sqlite_path
from eventlens.storage.migrations import (
    METADATA_DIR,
    MigrationStatus,
    apply_clickhouse_migrations,
    clickhouse_status,
    migration_status,
)

_PARTS = ("metadata", "clickhouse")


def migrate_command(
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    clickhouse_url: Annotated[
        str | None,
        typer.Option(
            "--clickhouse-url",
            help="http(s)://user:pass@host:8123 or chdb://dir (default: EVENTLENS_CLICKHOUSE_URL, "
            "else chDB in the data dir).",
        ),
    ] = None,
    migrations_dir: Annotated[
        Path | None, typer.Option("--metadata-migrations", help="Use these metadata migration files.")
    ] = None,
    skip_clickhouse: Annotated[
        bool, typer.Option("--skip-clickhouse", help="Only the metadata database.")
    ] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="List applied and pending migrations (and edited applied files); change nothing."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending migrations. Safe to re-run; embedded chDB must not be open in a running daemon.

    An applied migration whose file was edited afterwards is an error (exit code 1) naming the file.
    """
    with cli_errors():
        settings = settings_from(data_dir, metadata_url, clickhouse_url=clickhouse_url)
        if status:
            report = _status_report(settings, migrations_dir, skip_clickhouse)
        else:
            report = _migrate_report(settings, migrations_dir, skip_clickhouse)
    if as_json:
        print_json(report)
    elif status:
        _print_status(report)
    else:
        _print_applied(report)


def _migrate_report(settings: Settings, migrations_dir: Path | None, skip_clickhouse: bool) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with open_metadata(settings.metadata_dsn) as store:
        report["metadata"] = {"url": store.url, "applied": store.migrate(migrations_dir)}
    if skip_clickhouse:
        report["clickhouse"] = {"skipped": "--skip-clickhouse"}
        return report
    try:
        report["clickhouse"] = {"applied": apply_clickhouse_migrations(settings)}
    except Exception as exc:
        # Metadata may already be migrated: say which half failed.
        fail(f"ClickHouse migrations failed: {exc}", 1)
    return report


def _status_report(settings: Settings, migrations_dir: Path | None, skip_clickhouse: bool) -> dict[str, Any]:
    url, found = _metadata_status(settings.metadata_dsn, migrations_dir or METADATA_DIR)
    report: dict[str, Any] = {"metadata": {"url": url, "migrations": _as_dicts(found)}}
    if skip_clickhouse:
        report["clickhouse"] = {"skipped": "--skip-clickhouse"}
        return report
    try:
        ch_found = clickhouse_status(settings)
    except Exception as exc:
        fail(f"ClickHouse status failed: {exc}", 1)
    report["clickhouse"] = {"url": redact(settings.clickhouse_dsn), "migrations": _as_dicts(ch_found)}
    return report


def _metadata_status(dsn: str, directory: Path) -> tuple[str, list[MigrationStatus]]:
    """The store's display URL and its migration status."""
    if dsn.startswith("sqlite://"):
        path = sqlite_path(dsn)
        # Opening a SQLite store creates its file; a status check must not.
        if path != ":memory:" and not Path(path).exists():
            return f"sqlite://{path}", migration_status(None, directory)
    with open_metadata(dsn) as store:
        return store.url, store.migration_status(directory)


def _as_dicts(found: list[MigrationStatus]) -> list[dict[str, Any]]:
    return [s.as_dict() for s in found]


def _checksum_label(entry: dict[str, Any]) -> str:
    if entry["state"] == "pending":
        return "-"
    match = entry["checksum_match"]
    if match is None:
        return "file missing"
    return "ok" if match else "MISMATCH (file edited after it was applied)"


def _print_status(report: dict[str, Any]) -> None:
    for part in _PARTS:
        info = report[part]
        if "skipped" in info:
            typer.echo(f"{part}: skipped ({info['skipped']})")
            continue
        entries = info["migrations"]
        pending = sum(e["state"] == "pending" for e in entries)
        typer.echo(f"{part} ({info['url']}): {len(entries) - pending} applied, {pending} pending")
        if entries:
            rows = [[f"{e['version']:04d}", e["name"], e["state"], _checksum_label(e)] for e in entries]
            print_table(["version", "name", "state", "checksum"], rows)


def _print_applied(report: dict[str, Any]) -> None:
    for part in _PARTS:
        info = report[part]
        if "skipped" in info:
            typer.echo(f"{part}: skipped ({info['skipped']})")
        elif info["applied"]:
            typer.echo(f"{part}: applied {', '.join(str(n) for n in info['applied'])}")
        else:
            typer.echo(f"{part}: up to date")
