"""Serve deployments and their application builders (``import_path`` targets of deployments/*.yaml).

Deployment classes only wire collaborators together (which ones: ``eventlens.backends``); the
request logic lives in ``api.track.TrackHandler`` and ``api.insights.create_api``, which tests
build without Ray.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig
from starlette.requests import Request

from eventlens.config import Settings, load_settings


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
    """``POST /track`` and ``/track/batch``: a raw ASGI app around ``TrackHandler``."""

    async def __init__(self, settings_args: dict[str, Any]) -> None:
        from eventlens import backends
        from eventlens.actors.bootstrap import ensure_started
        from eventlens.actors.registry import shard_actor, shard_actors
        from eventlens.api.auth import Authenticator
        from eventlens.api.track import TrackHandler
        from eventlens.buffer.client import BufferClient
        from eventlens.gctune import tune_gc
        from eventlens.ingest.geo import GeoLookup
        from eventlens.ingest.salts import SaltCache
        from eventlens.ingest.useragent import warm_up

        settings = Settings(**settings_args)
        # migrations, actors and orphan logs: once per cluster, also under `serve deploy`
        await ensure_started(settings)
        warm_up()  # build the user-agent parsers now, not on the first request
        store = backends.metadata_store(settings)
        self.handler = TrackHandler(
            settings,
            Authenticator(store),
            BufferClient(
                shard_actors(settings),
                settings.handoff_ms,
                resolve=lambda i: shard_actor(settings, i),
                max_in_flight=settings.handoff_max_in_flight,
            ),
            SaltCache(store, settings.salt_rotation_s),
            backends.rate_limiter(settings),
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

    async def __init__(self, settings_args: dict[str, Any]) -> None:
        from eventlens import backends
        from eventlens.actors.bootstrap import ensure_started
        from eventlens.actors.registry import presence_actor, storage_owner
        from eventlens.api.auth import Authenticator

        settings = Settings(**settings_args)
        await ensure_started(settings)
        warehouse = storage_owner(settings)
        self.store = backends.metadata_store(settings)
        self.auth = Authenticator(self.store)
        self.reader = backends.reader(settings, warehouse)
        self.presence = presence_actor(settings)
        self.cache = backends.insight_cache(settings, warehouse)
        self.redis_ping = backends.redis_ping(settings)

    def __serve_build_asgi_app__(self) -> Any:
        from eventlens.api.insights import create_api

        return create_api(
            self.auth, self.reader, self.presence, self.store.ping, self.cache, redis_ping=self.redis_ping
        )


def build_ingest_app(args: dict[str, Any]) -> Application:
    settings = load_settings(**args)
    return IngestDeployment.options(**ingest_options(settings)).bind(settings.to_args())


def ingest_options(settings: Settings) -> dict[str, Any]:
    """Replicas, placement, concurrency and load shedding of the ingest deployment.

    ``max_queued_requests`` is enforced by each replica itself behind HAProxy (direct ingress) and
    by the proxy's handle otherwise; both answer a rejected request with ``backpressure_config``'s
    status and ``Retry-After`` (without it Serve's 503 carries no ``Retry-After``). HAProxy passes a
    replica's 503 through unchanged and does not retry it (Serve's default ``retry-on
    conn-failure``); only HAProxy's own 502/503/504 become ``500``.
    """
    return {
        "num_replicas": settings.ingest_replicas,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_replicas_per_node": settings.ingest_max_replicas_per_node,
        "max_queued_requests": settings.ingest_max_queued_requests,
        "backpressure_config": BackpressureConfig(
            status_code=503, retry_after_s=settings.ingest_retry_after_s
        ),
    }


def build_api_app(args: dict[str, Any]) -> Application:
    settings = load_settings(**args)
    return ApiDeployment.options(
        num_replicas=settings.insights_replicas, max_ongoing_requests=settings.max_ongoing_requests
    ).bind(settings.to_args())
