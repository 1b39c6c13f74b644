"""Deploying without ``eventlens serve``: ``serve.run`` of the config's applications (what ``serve
deploy`` and a RayService do) on a fresh instance runs the start-up from the replicas themselves,
once — migrations recorded once, a shard log left past the shard count drained exactly once —
though four replicas start together."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.conftest import DaemonManager

pytestmark = pytest.mark.ray

ORPHANS = 40


def _orphan_log(settings: Any, index: int) -> None:
    """A shard log for ``index`` (past the shard count) holding ORPHANS logged, unflushed events,
    written by a shard core as a shard would have before a shutdown that could not drain it."""
    from eventlens.buffer.core import BufferConfig, BufferCore
    from eventlens.storage.wal import FileSegmentLog

    def never(*_: Any) -> int:
        raise AssertionError("nothing is flushed here")

    config = BufferConfig(shard_id=f"{settings.instance}-{index}", index=index, flush_max_events=10**6)
    log = FileSegmentLog(settings.wal_dir / f"shard-{index:03d}", fsync=True)
    core = BufferCore(config, log, never, None)
    core.recover()
    now = int(time.time() * 1000)
    records = [
        {
            "_t": "events",
            "id": f"orphan-{i}",
            "project_id": "orphans",
            "name": "orphaned",
            "device_id": f"dev-{i % 7}",
            "profile_id": "",
            "session_id": "",
            "created_at": now,
            "received_at": now,
            "path": f"/o/{i}",
        }
        for i in range(ORPHANS)
    ]
    core.append(records, now=now)
    log.close()


@pytest.fixture(scope="module")
def no_daemon(daemons: DaemonManager) -> DaemonManager:
    """One set of applications per Serve cluster: none of the session's daemons now (stopped at
    module scope, like a variant switch, before the per-test backend guard)."""
    daemons.stop()
    return daemons


def test_serve_run_without_the_cli_starts_up_once(no_daemon: DaemonManager, tmp_path: Path) -> None:
    from ray import serve

    from eventlens import daemon
    from eventlens.actors import registry
    from eventlens.actors.bootstrap import bootstrap_actor

    daemons = no_daemon
    settings = daemons.settings_for(
        "bootstrap", data_dir=tmp_path / "data", shards=1, ingest_replicas=2, insights_replicas=2
    )
    settings.data_dir.mkdir(parents=True)
    _orphan_log(settings, 1)
    assert daemon.orphan_logs(settings) == [1]

    serve.start(http_options={"host": settings.host, "port": settings.port})
    config = daemon.load_config(daemon.DEFAULT_CONFIG)
    names = []
    try:
        for spec in config.applications:  # the config's applications, deployed as `serve deploy` does
            module, func = spec["import_path"].split(":")
            builder = getattr(importlib.import_module(module), func)
            serve.run(builder(settings.to_args()), name=spec["name"], route_prefix=spec["route_prefix"])
            names.append(spec["name"])
        url = f"http://127.0.0.1:{settings.port}"
        daemon.wait_healthy(url, 120)

        # four replicas asked; the start-up ran once, applied every migration, drained the orphan
        result = ray.get(bootstrap_actor(settings).ensure.remote())
        assert result["runs"] == 1, result
        assert result["migrations"], "a fresh instance applies its ClickHouse migrations"
        assert [d["index"] for d in result["drained"]] == [1]
        assert daemon.orphan_logs(settings) == []
        wh = registry.storage_owner(settings)
        ledger = ray.get(
            wh.query.remote("SELECT version, count() AS n FROM schema_migrations GROUP BY version")
        )
        assert ledger and all(int(row["n"]) == 1 for row in ledger), ledger
        assert len(ledger) == len(result["migrations"])

        def stored() -> tuple[int, int]:
            rows = ray.get(
                wh.query.remote(
                    "SELECT count() AS rows, uniqExact(id) AS ids FROM events "
                    "WHERE project_id = 'orphans' AND name = 'orphaned'"
                )
            )
            return int(rows[0]["rows"]), int(rows[0]["ids"])

        assert stored() == (ORPHANS, ORPHANS), "the drain returns once the log is flushed"
        # more replicas starting (a redeploy, a scale-up) do not run it again
        serve.run(
            importlib.import_module("eventlens.api.deployments").build_api_app(
                {**settings.to_args(), "insights_replicas": 3}
            ),
            name="api",
            route_prefix="/",
        )
        again = ray.get(bootstrap_actor(settings).ensure.remote())
        assert again["runs"] == 1
        assert stored() == (ORPHANS, ORPHANS), "drained exactly once: no row twice"
        assert ray.get(wh.query.remote("SELECT count() AS n FROM schema_migrations"))[0]["n"] == len(ledger)
    finally:
        daemon.stop(settings, apps=names, shutdown_serve=False)
