"""The ``eventlens`` console script: admin commands and (when installed) ``serve``."""

from __future__ import annotations

import typer

from eventlens.cli import client, project
from eventlens.cli.migrate import migrate_command

# Never render local variables in tracebacks: they can hold secrets and database passwords.
app = typer.Typer(
    name="eventlens",
    help="Event Lens: product and web analytics on Ray Serve and ClickHouse.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("migrate")(migrate_command)
app.add_typer(project.app, name="project")
app.add_typer(client.app, name="client")


def _register_serve() -> None:
    try:
        from eventlens.cli.serve import serve_command
    except ModuleNotFoundError as exc:
        if exc.name == "eventlens.cli.serve":
            return  # not part of this build
        error = f"{type(exc).__name__}: {exc}"
    except ImportError as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        app.command("serve")(serve_command)
        return

    # The module exists but cannot be imported (e.g. a missing dependency). Keep the admin commands
    # working and let `eventlens serve` itself explain what is wrong.
    @app.command("serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def serve_unavailable() -> None:
        """Run the server (unavailable: see the error)."""
        typer.echo(f"error: the serve command cannot be loaded: {error}", err=True)
        raise typer.Exit(1)


_register_serve()

if __name__ == "__main__":
    app()
