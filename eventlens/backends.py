"""Which storage, log, cache, version counter, rate limiter and metadata store this daemon talks to.

Decided here, once, from ``Settings``; everything else is handed the result. Embedded storage
(a ``chdb://`` URL, the default) is reached through the actor that owns the directory, passed in
as ``warehouse`` (``actors.registry.storage_owner``); a ClickHouse server is reached directly.
Redis, when configured, holds the write-ahead log, rate limits, the insight cache and the data
versions; every Redis key is built by ``redis_key``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventlens.config import Settings

if TYPE_CHECKING:
    from eventlens.insights.cache import InsightCache
from eventlens.buffer.idempotency import FileIdIndex, IdIndex, RedisIdIndex, day_of
from eventlens.storage.metadata import MetadataStore, open_metadata
from eventlens.storage.reader import ActorReader, Reader, ServerReader
from eventlens.storage.wal import FileSegmentLog, RedisSegmentLog, SegmentLog
from eventlens.storage.writer import ActorWriter, ServerWriter, Writer


def embedded_storage(settings: Settings) -> bool:
    """chDB in a local directory (one owning process: the warehouse actor), else a ClickHouse server."""
    return settings.embedded_clickhouse


def redis_key(instance: str, *parts: str | int) -> str:
    """The one place Redis keys are named: ``eventlens:<instance>:<part>:…``."""
    return ":".join(("eventlens", instance, *(str(p) for p in parts)))


def redis_client(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url)


def async_redis_client(settings: Settings) -> Any:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(settings.redis_url)


# below /ready's own 3 s bound, so a probe's thread does not outlive the answer by much
READY_PING_TIMEOUT_S = 2.0


def durability_problems(config: dict[str, str]) -> list[str]:
    """What keeps a Redis with this ``CONFIG GET`` answer from holding an acknowledged event
    through a crash: the write-ahead log needs the append-only file, fsynced on every write."""
    problems = []
    if config.get("appendonly") != "yes":
        problems.append(f"appendonly is {config.get('appendonly', 'unknown')!r}, not 'yes'")
    if config.get("appendfsync") != "always":
        problems.append(f"appendfsync is {config.get('appendfsync', 'unknown')!r}, not 'always'")
    return problems


def redis_durability(settings: Settings) -> list[str]:
    """Problems with the configured Redis as the home of write-ahead logs (empty: durable)."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        config = {**client.config_get("appendonly"), **client.config_get("appendfsync")}
    except redis.ResponseError:  # managed services often disable CONFIG
        return ["its persistence settings cannot be read (CONFIG GET is refused)"]
    finally:
        client.close()
    return durability_problems(config)


def redis_ping(settings: Settings) -> Callable[[], object] | None:
    """A blocking readiness probe of Redis that raises when it does not answer; None without Redis."""
    if not settings.redis_url:
        return None
    import redis

    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=READY_PING_TIMEOUT_S,
        socket_timeout=READY_PING_TIMEOUT_S,
    )
    return client.ping


# --- the buffer's side ---------------------------------------------------------------------------
def open_wal(settings: Settings, index: int) -> SegmentLog:
    """A shard's write-ahead log: a Redis Stream set when Redis is configured (any node finds it),
    else files on the shard's node."""
    if settings.redis_url:
        instance = settings.instance
        return RedisSegmentLog(
            redis_client(settings), lambda *parts: redis_key(instance, "wal", index, *parts)
        )
    return FileSegmentLog(settings.wal_dir / f"shard-{index:03d}", fsync=settings.wal_fsync == "always")


def open_ids(settings: Settings, index: int) -> IdIndex | None:
    """A shard's idempotency window: Redis sets beside a Redis log (every node sees them), else
    files under the data directory shared by the node's shards; None when switched off."""
    days = settings.idempotency_window_days
    if not days:
        return None
    if settings.redis_url:
        instance = settings.instance
        return RedisIdIndex(redis_client(settings), lambda *parts: redis_key(instance, "ids", *parts), days)
    return FileIdIndex(settings.data_dir.resolve() / "ids", index, days, day_of(int(time.time() * 1000)))


def wal_indexes(settings: Settings) -> set[int]:
    """Shard numbers whose log still holds segments, whatever the current shard count."""
    found: set[int] = set()
    if settings.redis_url:
        client = redis_client(settings)
        prefix = redis_key(settings.instance, "wal") + ":"
        for key in client.scan_iter(match=f"{prefix}*:segs"):
            index = key.decode()[len(prefix) :].split(":")[0]
            if index.isdigit() and client.zcard(key):
                found.add(int(index))
    elif settings.wal_dir.is_dir():
        for path in settings.wal_dir.glob("shard-*"):
            index = path.name.removeprefix("shard-")
            if index.isdigit() and any(path.glob("*.wal")):
                found.add(int(index))
    return found


def writer(settings: Settings, warehouse: Any | None) -> Writer:
    """Where a shard's flushes go: the chDB owner actor, or the ClickHouse server."""
    if embedded_storage(settings):
        if warehouse is None:
            raise ValueError("embedded ClickHouse needs the warehouse actor that owns the directory")
        return ActorWriter(warehouse, settings.insert_format)
    from eventlens.storage.clickhouse import Warehouse
    from eventlens.storage.versions import RedisVersionBump

    versions = None
    if settings.redis_url:
        versions = RedisVersionBump(redis_client(settings), redis_key(settings.instance, "data-version"))
    wh = Warehouse.from_settings(settings)
    return ServerWriter(wh, settings.insert_format, versions)


# --- the insights' side --------------------------------------------------------------------------
def reader(settings: Settings, warehouse: Any | None) -> Reader:
    if embedded_storage(settings):
        return ActorReader(warehouse)
    from eventlens.storage.clickhouse import Warehouse

    return ServerReader(Warehouse.from_settings(settings))


def insight_cache(settings: Settings, warehouse: Any | None) -> InsightCache:
    """Responses in Redis when configured, else in this replica; versions from the writers' side."""
    # imported here: the write path (shards) uses this module too and must not load insights/
    from eventlens.insights.cache import (
        ActorVersions,
        InsightCache,
        LocalStore,
        NoVersions,
        RedisStore,
        RedisVersions,
        Versions,
    )

    client = async_redis_client(settings) if settings.redis_url else None
    versions: Versions
    if embedded_storage(settings):
        versions = ActorVersions(warehouse)
    elif client is not None:
        versions = RedisVersions(client, redis_key(settings.instance, "data-version"))
    else:
        versions = NoVersions()  # no shared place for versions: do not cache
    store = (
        RedisStore(client, redis_key(settings.instance, "insights") + ":")
        if client is not None
        else LocalStore(max(settings.insights_cache_ttl_s, 1))
    )
    return InsightCache(store, versions, settings.insights_cache_ttl_s)


# --- the door ------------------------------------------------------------------------------------
def rate_limiter(settings: Settings) -> Any:
    from eventlens.ratelimit import LocalRateLimiter, RedisRateLimiter

    if settings.redis_url:
        prefix = redis_key(settings.instance, "rl")
        return RedisRateLimiter(
            async_redis_client(settings), settings.rate_limit_per_second, settings.rate_limit_burst, prefix
        )
    return LocalRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)


def metadata_store(settings: Settings, migrate: bool = True) -> MetadataStore:
    store = open_metadata(settings.metadata_dsn)
    if migrate:
        store.migrate()  # idempotent and race-safe: lets `serve deploy` work without the CLI
    return store
