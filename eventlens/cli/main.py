"""The ``eventlens`` console script: one command per module."""

from __future__ import annotations

import typer

from eventlens.cli import client, goal, project
from eventlens.cli.migrate import migrate_command
from eventlens.cli.serve import serve_command

# Never render local variables in tracebacks: they can hold secrets and database passwords.
app = typer.Typer(
    name="eventlens",
    help="Event Lens: product and web analytics on Ray Serve and ClickHouse.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("serve")(serve_command)
app.command("migrate")(migrate_command)
app.add_typer(project.app, name="project")
app.add_typer(client.app, name="client")
app.add_typer(goal.app, name="goal")


if __name__ == "__main__":
    app()
