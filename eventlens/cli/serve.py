"""``eventlens serve``: start (or join) Ray, migrate, deploy, print the URL, run until stopped."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from eventlens.cli.common import DataDirOption, JsonOption, cli_errors, print_json


def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (EVENTLENS_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (EVENTLENS_PORT).")] = None,
    data_dir: DataDirOption = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Serve config file (default deployments/embedded.yaml).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster, e.g. auto (EVENTLENS_RAY_ADDRESS)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the daemon in the foreground; SIGTERM or Ctrl-C drains the buffers and stops it."""
    from eventlens import daemon

    flags = {"host": host, "port": port, "data_dir": data_dir, "ray_address": ray_address}
    with cli_errors():
        settings, _ = daemon.resolve(flags, config or daemon.DEFAULT_CONFIG)
    stop = threading.Event()

    def _signal(signum: int, _: Any) -> None:
        stop.set()

    with cli_errors():
        running = daemon.start(flags, config or daemon.DEFAULT_CONFIG, shield_sigterm=True)
    # after ray.init, which installs its own fatal-signal handlers in the driver
    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    info = running.info()
    if as_json:
        print_json(info)
    else:
        typer.echo(f"Event Lens is listening on {running.url}")
        typer.echo(f"  data directory: {info['data_dir']}")
        if running.demo:
            d = running.demo
            typer.echo("  demo project created (credentials are shown only now):")
            typer.echo(f"    project id:          {d.project_id}")
            typer.echo(f"    write client id:     {d.write_client_id}")
            typer.echo(f"    write client secret: {d.write_secret}")
            typer.echo(f"    read client id:      {d.read_client_id}")
            typer.echo(f"    read client secret:  {d.read_secret}")
        typer.echo("Press Ctrl-C to stop.")
    while not stop.is_set():
        stop.wait(1.0)  # short waits so the signal handler runs promptly
    t0 = time.monotonic()
    typer.echo("stopping: draining buffers…", err=True)
    states = daemon.stop(settings)
    left = sum(int(s.get("pending", 0)) for s in states)
    daemon.shutdown_ray()
    typer.echo(
        f"stopped in {time.monotonic() - t0:.1f}s; {left} events left in the log for the next start", err=True
    )
