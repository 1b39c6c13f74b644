"""``eventlens project create NAME``, ``eventlens project list`` and
``eventlens project currency PROJECT CODE``."""

from __future__ import annotations

from typing import Annotated

import typer

from eventlens.cli.common import (
    DataDirOption,
    JsonOption,
    MetadataUrlOption,
    cli_errors,
    metadata_store,
    print_json,
    print_table,
    project_dict,
    settings_from,
)

app = typer.Typer(help="Create and list projects; set a project's currency.", no_args_is_help=True)


@app.command("create")
def create_project(
    name: Annotated[str, typer.Argument(help="Human-readable project name.")],
    project_id: Annotated[
        str | None,
        typer.Option("--id", help="Choose the id (a-z, 0-9, '-', '_'; default: random 12 characters)."),
    ] = None,
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project and print its id."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            project = store.create_project(name, id=project_id)
    if as_json:
        print_json(project_dict(project))
    else:
        typer.echo(f"Created project {project.id} ({project.name})")


@app.command("list")
def list_projects(
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List all projects."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            projects = store.list_projects()
    if as_json:
        print_json([project_dict(p) for p in projects])
    elif not projects:
        typer.echo("No projects.")
    else:
        rows = [[p.id, p.name, p.currency, p.created_at.isoformat(timespec="seconds")] for p in projects]
        print_table(["ID", "NAME", "CURRENCY", "CREATED"], rows)


@app.command("currency")
def set_currency(
    project_id: Annotated[str, typer.Argument(help="The project's id.")],
    code: Annotated[str, typer.Argument(help="A 3-letter ISO-4217 code, e.g. EUR (stored upper-case).")],
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the project's default currency: what revenue events without a currency are stored in,
    and what /metrics and /timeseries total when no currency parameter is given. Events stored
    before keep their currency; running ingest replicas use the new one within about 30 s."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            project = store.set_project_currency(project_id, code)
    if as_json:
        print_json(project_dict(project))
    else:
        typer.echo(f"Project {project.id} now uses {project.currency}")
