"""What every admin command shares: the common options, settings, the store, output, errors.

Errors a user can fix (bad input, unknown project) exit with code 2, infrastructure failures with
code 1; both print one line to stderr and never a traceback.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from eventlens.config import Settings, load_settings
from eventlens.storage.metadata import Client, MetadataError, MetadataStore, Project, open_metadata

EXIT_FAILURE = 1
EXIT_USAGE = 2

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Root of local state (default: EVENTLENS_DATA_DIR or ./eventlens-data)."),
]
MetadataUrlOption = Annotated[
    str | None,
    typer.Option(
        "--metadata-url",
        help="sqlite:///file or mysql://user:pass@host:3306/db (default: EVENTLENS_METADATA_URL, "
        "else SQLite in the data dir).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {msg}" if where else msg)
    return "invalid settings: " + "; ".join(parts)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn exceptions into a one-line message and an exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except ValidationError as exc:  # before ValueError: pydantic's error is one, but verbose
        fail(_validation_message(exc))
    except ValueError as exc:
        fail(str(exc))
    except MetadataError as exc:
        fail(str(exc), EXIT_FAILURE)
    except Exception as exc:
        # Last resort: a driver or OS error. Show it plainly; a traceback would help nobody running
        # an admin command and might print connection details.
        fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def settings_from(data_dir: Path | None, metadata_url: str | None, **overrides: Any) -> Settings:
    """Settings with CLI flags over ``EVENTLENS_*`` (flags left unset fall through)."""
    return load_settings(data_dir=data_dir, metadata_url=metadata_url, **overrides)


@contextlib.contextmanager
def metadata_store(settings: Settings) -> Iterator[MetadataStore]:
    """Open the metadata store, bringing its schema up to date first: migrations are idempotent and
    serialised, so an admin command on a fresh data dir just works."""
    store = open_metadata(settings.metadata_dsn)
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_jsonable))


def project_dict(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "created_at": project.created_at.isoformat(),
        "currency": project.currency,
    }


def client_dict(client: Client) -> dict[str, Any]:
    """Public fields of a client. Deliberately built field by field: the secret hash never leaves."""
    return {
        "id": client.id,
        "project_id": client.project_id,
        "name": client.name,
        "type": client.type,
        "has_secret": client.has_secret,
        "origins": list(client.origins),
        "created_at": client.created_at.isoformat(),
    }


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
