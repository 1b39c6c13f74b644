"""Start and stop a whole Event Lens daemon on Ray: actors, then Serve applications.

Used by ``eventlens serve`` and by the test suite, so both run exactly the same start-up.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eventlens.config import Settings, resolve_settings

log = logging.getLogger(__name__)
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "deployments" / "embedded.yaml"


def serve_env(settings: Settings) -> None:
    """HAProxy ingress and the throughput-optimised Serve mode; read when Ray starts, on every node.

    On by default (a value the operator exported wins); ``EVENTLENS_HAPROXY=false`` or
    ``EVENTLENS_THROUGHPUT_OPTIMIZED=false`` turns them off even when the Ray variable was exported.
    """
    for on, var in (
        (settings.haproxy, "RAY_SERVE_ENABLE_HA_PROXY"),
        (settings.throughput_optimized, "RAY_SERVE_THROUGHPUT_OPTIMIZED"),
    ):
        if on:
            os.environ.setdefault(var, "1")
        else:
            os.environ[var] = "0"
    # A stopping ingress replica keeps serving this long so HAProxy can drain it (Ray's default 30 s
    # makes every stop and redeploy that slow); raise it behind an external load balancer.
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "5")


def init_ray(settings: Settings, shield_sigterm: bool = False, **kwargs: Any) -> None:
    """Start a local Ray (or join ``settings.ray_address``).

    ``shield_sigterm`` (``eventlens serve``): the Ray processes started here (GCS, raylet, its
    workers, HAProxy) inherit a blocked SIGTERM, as Ray already blocks SIGINT in them. A SIGTERM to
    the whole process group (a terminal, systemd's ``KillMode=control-group``) then reaches only the
    driver, which drains the shards and ends the cluster itself (``shutdown_ray``); without it the
    GCS and raylet start shutting down under the drain, and every call of the driver waits for them
    (60 s measured). SIGKILL still ends them, and Ray's fate-sharing ends them with the driver.
    """
    import ray

    if ray.is_initialized():
        return
    serve_env(settings)
    if settings.metrics_port and "_metrics_export_port" not in kwargs:
        kwargs["_metrics_export_port"] = settings.metrics_port  # operator metrics (eventlens.metrics)
    joining = bool(settings.ray_address) and settings.ray_address != "local"
    previous = None
    if shield_sigterm and not joining:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        ray.init(
            address=settings.ray_address or "local",
            namespace=settings.namespace,
            include_dashboard=False,
            log_to_driver=False,
            **kwargs,
        )
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass
class Demo:
    project_id: str
    write_client_id: str
    write_secret: str
    read_client_id: str
    read_secret: str


@dataclass
class Running:
    settings: Settings
    url: str
    apps: list[str] = field(default_factory=list)
    demo: Demo | None = None
    migrations: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """What ``eventlens serve --json`` prints: the URL, the data directory, demo credentials."""
        out: dict[str, Any] = {"url": self.url, "data_dir": str(self.settings.data_dir.resolve())}
        if self.demo:
            d = self.demo
            out["demo"] = {
                "projectId": d.project_id,
                "write": {"clientId": d.write_client_id, "clientSecret": d.write_secret},
                "read": {"clientId": d.read_client_id, "clientSecret": d.read_secret},
            }
        return out


def ensure_demo(settings: Settings) -> Demo | None:
    """On an empty metadata database, a demo project with a write and a read client."""
    from eventlens.storage.metadata import open_metadata

    with open_metadata(settings.metadata_dsn) as store:
        store.migrate()
        if not settings.create_demo or store.list_projects():
            return None
        project = store.create_project("Demo")
        write, wsecret = store.create_client(project.id, "write", name="demo write")
        read, rsecret = store.create_client(project.id, "read", name="demo read")
        assert wsecret and rsecret
        return Demo(project.id, write.id, wsecret, read.id, rsecret)


@dataclass(frozen=True)
class ServeConfig:
    """A Serve config file: its applications and the settings their ``args:`` name."""

    applications: list[dict[str, Any]]
    http_options: dict[str, Any]

    def settings_args(self) -> dict[str, Any]:
        """Every application's ``args:`` and the HTTP host and port, as one set of settings.

        The daemon's actors serve every application, so two applications may not disagree on a
        setting; an application-only setting (``ingest_replicas``) is simply named by one of them.
        """
        merged: dict[str, Any] = {k: self.http_options[k] for k in ("host", "port") if k in self.http_options}
        owner: dict[str, str] = {}
        for app in self.applications:
            for key, value in (app.get("args") or {}).items():
                if key in merged and merged[key] != value and key in owner:
                    raise ValueError(
                        f"applications {owner[key]!r} and {app['name']!r} set {key} differently "
                        f"({merged[key]!r} and {value!r}); the daemon needs one value"
                    )
                merged[key], owner[key] = value, app["name"]
        return merged


def load_config(path: Path) -> ServeConfig:
    doc = yaml.safe_load(path.read_text()) or {}
    return ServeConfig(list(doc.get("applications") or []), dict(doc.get("http_options") or {}))


def load_apps(config_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = load_config(config_path)
    return config.http_options, config.applications


def resolve(
    cli: Mapping[str, Any] | Settings | None, config_path: Path = DEFAULT_CONFIG
) -> tuple[Settings, ServeConfig]:
    """The daemon's settings: CLI flags > the config's ``args:``/``http_options`` > env > defaults.

    A ``Settings`` object (tests, embedding code) counts as explicit flags, all of them."""
    config = load_config(config_path)
    flags = cli.to_args() if isinstance(cli, Settings) else dict(cli or {})
    return resolve_settings(flags, config.settings_args()), config


def start_actors(settings: Settings) -> list[str]:
    """Run the cluster's start-up through the instance's bootstrap actor, the one code path shared
    with ``serve deploy`` (where each replica's constructor asks the same actor); the CLI runs it
    again even if a replica already did, so a restart recreates lost shards and drains orphan logs.

    Returns the ClickHouse migrations applied now.
    """
    import ray

    from eventlens.actors.bootstrap import bootstrap_actor

    result = ray.get(bootstrap_actor(settings).ensure.remote(settings.to_args(), again=True), timeout=600)
    return list(result["migrations"])


def orphan_logs(settings: Settings) -> list[int]:
    """Shard numbers at or past ``settings.shards`` whose log still holds segments."""
    from eventlens.actors import bootstrap

    return bootstrap.orphan_logs(settings)


def drain_orphan_logs(settings: Settings) -> list[dict[str, Any]]:
    """Flush orphaned shard logs through a temporary shard each (``actors.bootstrap``)."""
    from eventlens.actors import bootstrap

    return bootstrap.drain_orphan_logs(settings)


def check_redis_durability(settings: Settings) -> list[str]:
    """Warn (or, with ``redis_require_durable``, refuse) when the Redis holding the write-ahead
    logs could lose acknowledged events in a crash."""
    if not settings.redis_url:
        return []
    from eventlens import backends

    problems = backends.redis_durability(settings)
    if problems:
        message = (
            "Redis holds the write-ahead logs but may lose acknowledged events in a crash: "
            + "; ".join(problems)
            + " (run it with appendonly yes and appendfsync always)"
        )
        if settings.redis_require_durable:
            raise ValueError(message + "; refusing to start because EVENTLENS_REDIS_REQUIRE_DURABLE is set")
        log.warning(message)
    return problems


def start(
    cli: Mapping[str, Any] | Settings | None = None,
    config_path: Path = DEFAULT_CONFIG,
    wait_s: float = 120,
    shield_sigterm: bool = False,
) -> Running:
    """Start Ray (or join it), migrate, start the actors and deploy every application of the config."""
    from ray import serve

    settings, config = resolve(cli, config_path)
    check_redis_durability(settings)
    init_ray(settings, shield_sigterm=shield_sigterm)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    demo = ensure_demo(settings)
    migrations = start_actors(settings)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    names = []
    for spec in config.applications:
        module, func = spec["import_path"].split(":")
        builder = getattr(importlib.import_module(module), func)
        # every application gets the daemon's resolved settings, so replicas and actors agree
        serve.run(
            builder(settings.to_args()), name=spec["name"], route_prefix=spec["route_prefix"], blocking=False
        )
        names.append(spec["name"])
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    wait_healthy(url, wait_s)
    return Running(settings, url, names, demo, migrations)


def wait_healthy(url: str, wait_s: float) -> None:
    import httpx

    deadline = time.monotonic() + wait_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/ready", timeout=2)
            tr = httpx.post(f"{url}/track", timeout=2)
            if r.status_code == 200 and tr.status_code == 401:
                return
            last = f"/ready {r.status_code}, /track {tr.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise RuntimeError(f"Event Lens did not become ready at {url} within {wait_s:.0f}s ({last})")


def stop(
    settings: Settings, apps: list[str] | None = None, shutdown_serve: bool = True
) -> list[dict[str, Any]]:
    """Stop taking requests, then drain every shard into ClickHouse (what fails stays logged)."""
    import ray
    from ray import serve

    t0 = time.monotonic()
    if shutdown_serve:
        serve.shutdown()
    else:
        for name in apps or []:
            serve.delete(name)
    log.info("stop: Serve stopped after %.2fs", time.monotonic() - t0)
    from eventlens.actors import registry

    states: list[dict[str, Any]] = []
    for i in range(settings.shards):
        try:
            actor = ray.get_actor(settings.actor_name(f"shard-{i}"), namespace=settings.namespace)
            states.append(ray.get(actor.stop.remote(), timeout=120))
        except Exception as exc:  # shard gone: its log is replayed by the next owner
            log.warning("shard %s did not drain: %s", i, exc)
    try:
        wh = ray.get_actor(settings.actor_name("warehouse"), namespace=settings.namespace)
        ray.get(wh.close.remote(), timeout=30)
    except Exception as exc:  # already gone: killing it below is all that is left to do
        log.warning("warehouse did not close cleanly: %s", exc)
    log.info("stop: shards drained after %.2fs", time.monotonic() - t0)
    registry.kill_all(settings)
    return states


def shutdown_ray() -> None:
    """End the Ray this process started (after ``stop``): at once, with SIGKILL.

    ``ray.shutdown`` sends each of its processes SIGTERM and waits up to 1 s for it; processes
    started with ``shield_sigterm`` never see that SIGTERM, and after the drain nothing in them
    needs a graceful end (the GCS holds no durable state; workers exit with their raylet).
    """
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    kill = getattr(node, "kill_all_processes", None)
    started = [info.process.pid for infos in getattr(node, "all_processes", {}).values() for info in infos]
    # the raylet's own children (workers, its agents, HAProxy under a worker) would otherwise wait
    # for the SIGTERM they no longer see: end them with the processes ray.init started
    tree = _descendants(started)
    if kill is not None:
        node.kill_all_processes = lambda **kw: kill(**{**kw, "allow_graceful": False})
    ray.shutdown()
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _descendants(roots: list[int]) -> list[int]:
    """Every process below ``roots`` (not the roots), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
