"""Serve deployments and their application builders (``import_path`` targets of deployments/*.yaml).

Deployment classes only wire collaborators together; the request logic lives in
``api.ingest.IngestHandler`` and ``api.insights.create_api``, which tests build without Ray.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from starlette.requests import Request

from eventlens.config import Settings, load_settings


def _rate_limiter(settings: Settings) -> Any:
    from eventlens.api.ratelimit import LocalRateLimiter, RedisRateLimiter

    if settings.redis_url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url)
        prefix = f"eventlens:{settings.instance}:rl"
        return RedisRateLimiter(client, settings.rate_limit_per_second, settings.rate_limit_burst, prefix)
    return LocalRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)


def _metadata(settings: Settings) -> Any:
    from eventlens.storage.metadata import open_metadata

    store = open_metadata(settings.metadata_dsn)
    store.migrate()  # idempotent and race-safe: lets `serve deploy` work without the CLI
    return store


def _insight_cache(settings: Settings) -> Any:
    """Responses in Redis when configured, else in this replica; versions from the writers' side."""
    from eventlens.insights import cache

    client = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.redis_url)
    versions: Any
    if settings.embedded_clickhouse:
        from eventlens.actors.registry import warehouse_actor

        versions = cache.ActorVersions(warehouse_actor(settings))
    elif client is not None:
        versions = cache.RedisVersions(client, cache.redis_versions_key(settings.instance))
    else:
        versions = cache.NoVersions()  # no shared place for versions: do not cache
    store: Any = (
        cache.RedisStore(client, f"eventlens:{settings.instance}:insights:")
        if client is not None
        else cache.LocalStore(max(settings.insights_cache_ttl_s, 1))
    )
    return cache.InsightCache(store, versions, settings.insights_cache_ttl_s)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# No per-request access log on the hot path: it cost ~3% of the replica's CPU (py-spy).
@serve.deployment(
    ray_actor_options={"num_cpus": 0},
    graceful_shutdown_timeout_s=20,
    logging_config={"enable_access_log": False},
)
@serve.ingress()
class IngestDeployment:
    """``POST /track`` and ``/track/batch``: a raw ASGI app around ``IngestHandler``."""

    def __init__(self, settings_args: dict[str, Any]) -> None:
        from eventlens.actors.registry import shard_actor, shard_actors
        from eventlens.api.auth import Authenticator
        from eventlens.api.handoff import ShardRouter
        from eventlens.api.ingest import IngestHandler, SaltCache
        from eventlens.gctune import tune_gc
        from eventlens.ingest.geo import GeoLookup
        from eventlens.ingest.useragent import warm_up

        settings = Settings(**settings_args)
        warm_up()  # build the user-agent parsers now, not on the first request
        store = _metadata(settings)
        self.handler = IngestHandler(
            settings,
            Authenticator(store),
            ShardRouter(
                shard_actors(settings),
                settings.handoff_ms,
                resolve=lambda i: shard_actor(settings, i),
                max_in_flight=settings.handoff_max_in_flight,
            ),
            SaltCache(store, settings.salt_rotation_s),
            _rate_limiter(settings),
            GeoLookup(settings.geo_database),
        )
        tune_gc()

    def __serve_build_asgi_app__(self) -> Any:
        handler = self.handler

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
                return
            if scope["type"] != "http":
                return
            response = await handler.handle(Request(scope, receive))
            await response(scope, receive, send)

        return app


@serve.deployment(ray_actor_options={"num_cpus": 0}, graceful_shutdown_timeout_s=20)
@serve.ingress()
class ApiDeployment:
    """Insights, filters, health and readiness (FastAPI)."""

    def __init__(self, settings_args: dict[str, Any]) -> None:
        from eventlens.actors.registry import presence_actor
        from eventlens.api.auth import Authenticator
        from eventlens.api.querier import Querier

        settings = Settings(**settings_args)
        self.store = _metadata(settings)
        self.auth = Authenticator(self.store)
        self.querier = Querier(settings)
        self.presence = presence_actor(settings)
        self.cache = _insight_cache(settings)

    def __serve_build_asgi_app__(self) -> Any:
        from eventlens.api.insights import create_api

        return create_api(self.auth, self.querier, self.presence, self.store.ping, self.cache)


def build_ingest_app(args: dict[str, Any]) -> Application:
    settings = load_settings(**args)
    return IngestDeployment.options(
        num_replicas=settings.ingest_replicas, max_ongoing_requests=settings.max_ongoing_requests
    ).bind(settings.to_args())


def build_api_app(args: dict[str, Any]) -> Application:
    settings = load_settings(**args)
    return ApiDeployment.options(
        num_replicas=settings.insights_replicas, max_ongoing_requests=settings.max_ongoing_requests
    ).bind(settings.to_args())
