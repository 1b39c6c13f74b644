"""The cluster's start-up, run once and under a lock, whoever starts the applications.

``eventlens serve`` starts the actors before it deploys; ``serve deploy`` and a RayService start
the applications without the CLI. Either way every ingest and insights replica calls
``ensure()`` from its constructor, and the CLI calls it before deploying: one detached, named actor
per instance (``get_if_exists``) runs the start-up — ClickHouse and metadata migrations, the
warehouse, presence and shard actors, the drain of shard logs left past the shard count — the
first time it is asked, and answers every later call with that result. Ray runs an actor's calls
one at a time, so two replicas starting together never run it twice at once; each step is
idempotent besides (the migration ledger, ``get_if_exists`` actors, only non-empty orphan logs are
drained), so a bootstrap actor lost with its node and created again is harmless.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray

from eventlens.actors import registry
from eventlens.config import Settings

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Bootstrap:
    def __init__(self, settings_args: dict[str, Any]) -> None:
        self.settings = Settings(**settings_args)
        self.result: dict[str, Any] | None = None
        self.runs = 0

    def ensure(self, settings_args: dict[str, Any] | None = None, again: bool = False) -> dict[str, Any]:
        """The start-up's result, running it first if it has not run (or ``again``: the CLI, with
        the caller's settings, which may name another shard count than the first caller's)."""
        if self.result is None or again:
            settings = Settings(**settings_args) if settings_args else self.settings
            t0 = time.monotonic()
            migrations, drained = run_start_up(settings)
            self.runs += 1
            self.result = {
                "migrations": migrations,
                "drained": drained,
                "seconds": round(time.monotonic() - t0, 2),
            }
        return {**self.result, "runs": self.runs}


def bootstrap_actor(settings: Settings) -> Any:
    """Created by the first caller (``eventlens serve``'s driver, or the first replica) on its own
    node: with embedded storage the warehouse it starts is pinned to that node, the data directory's."""
    opts = registry.actor_options(settings, "bootstrap", registry.this_node())
    return Bootstrap.options(**opts).remote(settings.to_args())


async def ensure_started(settings: Settings, timeout_s: float = 600) -> dict[str, Any]:
    """From a replica's constructor: the start-up has run in this cluster (waits for it once)."""
    import asyncio

    ref = bootstrap_actor(settings).ensure.remote(settings.to_args())
    return await asyncio.wait_for(ref, timeout_s)


def run_start_up(settings: Settings) -> tuple[list[str], list[dict[str, Any]]]:
    """Migrations, then the warehouse, presence and shard actors (waited for until they answer),
    then the drain of orphaned shard logs. Runs inside the bootstrap actor, one call at a time.

    Waiting here means replay of any log left by a previous run has begun before traffic arrives.
    """
    import ray

    from eventlens import backends

    backends.metadata_store(settings).close()  # metadata migrations (idempotent, race-safe)
    # migrations run where storage is owned: in the chDB owner actor, or here against a server
    owner = registry.storage_owner(settings)
    if owner is not None:
        applied = ray.get(owner.migrations.remote(), timeout=300)
    else:
        from eventlens.storage.migrations import apply_clickhouse_migrations

        applied = apply_clickhouse_migrations(settings)
    registry.presence_actor(settings)
    shards = registry.shard_actors(settings)
    ray.get([s.describe.remote() for s in shards], timeout=300)
    drained = drain_orphan_logs(settings)
    return list(applied), drained


def orphan_logs(settings: Settings) -> list[int]:
    """Shard numbers at or past ``settings.shards`` whose log still holds segments.

    Lowering the shard count leaves such logs behind when the last shutdown could not drain them
    (storage down); no shard of the new count would ever read them.
    """
    from eventlens import backends

    return sorted(i for i in backends.wal_indexes(settings) if i >= settings.shards)


def drain_orphan_logs(settings: Settings) -> list[dict[str, Any]]:
    """Flush orphaned shard logs into ClickHouse through a temporary shard each, then remove it.

    The shard replays its log like any restarted shard, so tokens and exactly-once counting hold.
    What cannot be flushed now (storage down) stays in the log for the next start.
    """
    import ray

    states = []
    for index in orphan_logs(settings):
        actor = registry.shard_actor(settings, index)
        state = ray.get(actor.stop.remote(), timeout=300)
        ray.kill(actor, no_restart=True)
        if state.get("pending"):
            log.warning("shard %s (past EVENTLENS_SHARDS) still holds %s events", index, state["pending"])
        else:
            log.info("shard %s (past EVENTLENS_SHARDS): its log was flushed", index)
        states.append({**state, "index": index})
    return states
