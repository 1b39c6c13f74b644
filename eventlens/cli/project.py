"""``eventlens project create NAME`` and ``eventlens project list``."""

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

app = typer.Typer(help="Create and list projects.", no_args_is_help=True)


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
        rows = [[p.id, p.name, p.created_at.isoformat(timespec="seconds")] for p in projects]
        print_table(["ID", "NAME", "CREATED"], rows)
