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


def actor_options(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "name": settings.actor_name(role),
        "namespace": settings.namespace,
        "lifetime": "detached",
        "get_if_exists": True,
    }


def warehouse_actor(settings: Settings) -> Any:
    return WarehouseActor.options(**actor_options(settings, "warehouse")).remote(settings.to_args())


def storage_owner(settings: Settings) -> Any | None:
    """The actor owning the embedded chDB directory; None with a ClickHouse server."""
    return warehouse_actor(settings) if backends.embedded_storage(settings) else None


def presence_actor(settings: Settings) -> Any:
    return PresenceActor.options(**actor_options(settings, "presence")).remote(settings.live_window_s)


def shard_actor(settings: Settings, index: int) -> Any:
    return BufferShard.options(**actor_options(settings, f"shard-{index}")).remote(
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
