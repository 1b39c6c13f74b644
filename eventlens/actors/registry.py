"""Named actors in an explicit namespace: created once, found by every replica and node.

Which actors exist is decided here: the chDB owner only with embedded storage, one presence
actor, one buffer shard per ``settings.shards``. Each shard is handed the handles it talks to.
"""

from __future__ import annotations

import contextlib
from typing import Any

import ray

from eventlens import backends
from eventlens.actors.presence import PresenceActor
from eventlens.actors.warehouse import WarehouseActor
from eventlens.buffer.actor import BufferShard
from eventlens.config import Settings


def actor_options(settings: Settings, role: str, strategy: Any = "DEFAULT") -> dict[str, Any]:
    return {
        "name": settings.actor_name(role),
        "namespace": settings.namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        # applies only when this call creates the actor (and to its restarts), not when it finds it
        "scheduling_strategy": strategy,
    }


def this_node() -> Any:
    """Pinned to the node of the calling process, for good: embedded chDB's data directory is a
    local directory, so its owner may never restart on another node (a single-node role)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def warehouse_actor(settings: Settings) -> Any:
    return WarehouseActor.options(**actor_options(settings, "warehouse", this_node())).remote(
        settings.to_args()
    )


def storage_owner(settings: Settings) -> Any | None:
    """The actor owning the embedded chDB directory; None with a ClickHouse server."""
    return warehouse_actor(settings) if backends.embedded_storage(settings) else None


def presence_actor(settings: Settings) -> Any:
    return PresenceActor.options(**actor_options(settings, "presence")).remote(settings.live_window_s)


# SPREAD puts shards on the nodes in turn, and restarts one whose node died on a survivor. Ray
# spreads only actors that ask for some resource (zero-CPU shards piled onto one node in the
# cluster tests): a token CPU share, which never limits anything.
SHARD_CPU = 0.001


def shard_actor(settings: Settings, index: int) -> Any:
    opts = actor_options(settings, f"shard-{index}", "SPREAD")
    return BufferShard.options(num_cpus=SHARD_CPU, **opts).remote(
        settings.to_args(), index, storage_owner(settings), presence_actor(settings)
    )


def shard_actors(settings: Settings) -> list[Any]:
    return [shard_actor(settings, i) for i in range(settings.shards)]


def all_actor_names(settings: Settings) -> list[str]:
    roles = ["bootstrap", "warehouse", "presence", *(f"shard-{i}" for i in range(settings.shards))]
    return [settings.actor_name(r) for r in roles]


def kill_all(settings: Settings) -> None:
    """Remove this instance's actors (after draining them): used by shutdown and tests."""
    for name in all_actor_names(settings):
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=settings.namespace), no_restart=True)
