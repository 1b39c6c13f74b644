"""``eventlens client create``, ``client rotate`` and ``client list``.

A secret is printed exactly once, at creation; listing shows whether a client has one, never the
secret or its hash.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from eventlens.cli.common import (
    DataDirOption,
    JsonOption,
    MetadataUrlOption,
    cli_errors,
    client_dict,
    metadata_store,
    print_json,
    print_table,
    settings_from,
)

app = typer.Typer(help="Create and list API clients.", no_args_is_help=True)

SECRET_WARNING = "The client secret is shown only once. Store it now: it cannot be recovered."


class ClientTypeChoice(StrEnum):
    write = "write"
    read = "read"
    root = "root"


@app.command("create")
def create_client(
    project: Annotated[str, typer.Option("--project", "-p", help="Project id.")],
    client_type: Annotated[
        ClientTypeChoice,
        typer.Option("--type", "-t", help="write: may track; read: may query insights; root: both."),
    ],
    origins: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="Allowed browser origin (https://example.com, example.com or *.example.com); repeatable.",
        ),
    ] = None,
    with_secret: Annotated[
        bool,
        typer.Option(
            "--secret/--no-secret",
            help="--no-secret makes a browser client: write-only, needs --origin, authenticated by Origin.",
        ),
    ] = True,
    name: Annotated[str, typer.Option("--name", help="Label for people, e.g. 'website'.")] = "",
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a client and print its id and (once) its secret."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            client, secret = store.create_client(
                project, client_type.value, name=name, origins=origins or (), with_secret=with_secret
            )
    if as_json:
        print_json({**client_dict(client), "secret": secret})
    else:
        typer.echo(f"Created {client.type} client for project {client.project_id}")
        typer.echo(f"  client id:     {client.id}")
        if secret is not None:
            typer.echo(f"  client secret: {secret}")
        if client.origins:
            typer.echo(f"  origins:       {', '.join(client.origins)}")
    if secret is not None:
        # On stderr, so that stdout (and --json output) stays clean for scripts.
        typer.echo(f"warning: {SECRET_WARNING}", err=True)


@app.command("rotate")
def rotate_client(
    client_id: Annotated[str, typer.Argument(help="Client id.")],
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a client's secret and print the new one (once). The old secret stops working within
    30 s, when each replica re-reads the client."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            client, secret = store.rotate_secret(client_id)
    if as_json:
        print_json({**client_dict(client), "secret": secret})
    else:
        typer.echo(f"New secret for client {client.id}")
        typer.echo(f"  client secret: {secret}")
    typer.echo(f"warning: {SECRET_WARNING}", err=True)


@app.command("list")
def list_clients(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's clients.")
    ] = None,
    data_dir: DataDirOption = None,
    metadata_url: MetadataUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List clients (never their secrets)."""
    with cli_errors():
        settings = settings_from(data_dir, metadata_url)
        with metadata_store(settings) as store:
            if project is not None and store.get_project(project) is None:
                raise ValueError(f"unknown project {project!r}")
            clients = store.list_clients(project)
    if as_json:
        print_json([client_dict(c) for c in clients])
    elif not clients:
        typer.echo("No clients.")
    else:
        rows = [
            [
                c.id,
                c.project_id,
                c.type,
                "yes" if c.has_secret else "no",
                c.name,
                ",".join(c.origins),
            ]
            for c in clients
        ]
        print_table(["ID", "PROJECT", "TYPE", "SECRET", "NAME", "ORIGINS"], rows)
