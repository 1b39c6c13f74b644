"""``eventlens migrate``: bring the metadata database and ClickHouse schemas up to date."""

from __future__ import annotations

import importlib
from collections.abc import Callable
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
    settings_from,
)
from eventlens.config import Settings
from eventlens.storage.metadata import open_metadata

_CH_MODULE = "eventlens.storage.ch_migrations"


def _clickhouse_migrator() -> Callable[[Settings], list[str]] | None:
    """The ClickHouse migration entry point, or None while that module does not exist yet.

    Imported lazily: it pulls in the ClickHouse client, which metadata-only use does not need.
    Only the module's own absence is tolerated; an import error inside it is a real failure.
    """
    try:
        module = importlib.import_module(_CH_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == _CH_MODULE:
            return None
        raise
    return getattr(module, "apply_clickhouse_migrations", None)


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
        bool, typer.Option("--skip-clickhouse", help="Only migrate the metadata database.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending migrations. Safe to re-run; embedded chDB must not be open in a running daemon."""
    report: dict[str, Any] = {}
    with cli_errors():
        settings = settings_from(data_dir, metadata_url, clickhouse_url=clickhouse_url)
        with open_metadata(settings.metadata_dsn) as store:
            report["metadata"] = {"url": store.url, "applied": store.migrate(migrations_dir)}
        if skip_clickhouse:
            report["clickhouse"] = {"skipped": "--skip-clickhouse"}
        else:
            migrator = _clickhouse_migrator()
            if migrator is None:
                report["clickhouse"] = {"skipped": "ClickHouse migrations are not available in this build"}
            else:
                try:
                    report["clickhouse"] = {"applied": list(migrator(settings))}
                except Exception as exc:
                    # Metadata may already be migrated: say which half failed.
                    fail(f"ClickHouse migrations failed: {exc}", 1)
    if as_json:
        print_json(report)
        return
    for part in ("metadata", "clickhouse"):
        info = report[part]
        if "skipped" in info:
            typer.echo(f"{part}: skipped ({info['skipped']})")
        elif info["applied"]:
            typer.echo(f"{part}: applied {', '.join(str(n) for n in info['applied'])}")
        else:
            typer.echo(f"{part}: up to date")
