"""The ``/track`` hot path: raw Starlette request in, JSON out, no framework routing.

auth → rate limit → parse → ``ingest.pipeline.prepare`` → shard hand-off (durable log) → reply.
A reply of 200 is sent only after every accepted record is in its shard's log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventlens.api.auth import Authenticator, Caller
from eventlens.api.errors import error_response, json_response
from eventlens.api.handoff import ShardRouter, ShardUnavailable
from eventlens.api.ratelimit import LocalRateLimiter, RedisRateLimiter, retry_after_header
from eventlens.config import Settings
from eventlens.errors import ClientError
from eventlens.ingest.clientip import client_ip
from eventlens.ingest.geo import GeoLookup, enrich_geo
from eventlens.ingest.identity import shard_of
from eventlens.ingest.pipeline import Limits, Prepared, RequestContext, prepare
from eventlens.ingest.useragent import parse_user_agent
from eventlens.storage.metadata import MetadataStore

log = logging.getLogger(__name__)

CORS_HEADERS = ", ".join(
    (
        "content-type",
        "event-lens-client-id",
        "event-lens-client-secret",
        "openpanel-client-id",
        "openpanel-client-secret",
        "openpanel-sdk-name",
        "openpanel-sdk-version",
    )
)


def cors_headers(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {"access-control-allow-origin": origin, "vary": "Origin"}


def salt_key(period: int, rotation_s: int) -> date | str:
    """Daily rotation keys by UTC date; other periods by their number."""
    if rotation_s == 86400:
        return datetime.fromtimestamp(period * 86400, UTC).date()
    return f"r{period:09d}"


class SaltCache:
    """The current and the previous period's salt, from the metadata database (so every replica and
    node agrees), fetched once per period. The previous salt lets a visit survive the rotation."""

    def __init__(self, store: MetadataStore, rotation_s: int = 86400) -> None:
        self.store = store
        self.rotation_s = rotation_s
        self.period = -1
        self.salts = ("", "")

    async def current(self) -> tuple[str, str]:
        period = int(time.time()) // self.rotation_s
        if period != self.period:
            now = await asyncio.to_thread(self.store.get_or_create_salt, salt_key(period, self.rotation_s))
            prev = await asyncio.to_thread(
                self.store.get_or_create_salt, salt_key(period - 1, self.rotation_s)
            )
            self.salts, self.period = (now, prev), period
        return self.salts


class IngestHandler:
    """Everything of ``/track`` that is not Ray: constructed with its collaborators."""

    def __init__(
        self,
        settings: Settings,
        auth: Authenticator,
        router: ShardRouter,
        salts: SaltCache,
        limiter: LocalRateLimiter | RedisRateLimiter,
        geo: GeoLookup | None = None,
    ) -> None:
        self.settings = settings
        self.geo = geo
        self.auth = auth
        self.router = router
        self.salts = salts
        self.limiter = limiter
        self.limits = Limits(
            max_properties=settings.max_properties,
            max_property_key_length=settings.max_property_key_length,
            max_property_value_length=settings.max_property_value_length,
            max_future_ms=settings.max_future_skew_s * 1000,
        )

    async def handle(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        try:
            if request.method == "OPTIONS":
                return self.preflight(origin)
            return await self._handle(request, origin)
        except ClientError as err:
            return error_response(err, cors_headers(origin))
        except Exception:  # a bug, never bad input: log it, answer without a stack trace
            log.exception("ingest failed")
            return json_response(
                {"error": "internal", "message": "internal error; the event was not stored", "details": []},
                500,
                cors_headers(origin),
            )

    def preflight(self, origin: str | None) -> Response:
        headers = {
            **cors_headers(origin or "*"),
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": CORS_HEADERS,
            "access-control-max-age": "86400",
        }
        return Response(status_code=204, headers=headers)

    async def _body(self, request: Request) -> Any:
        declared = request.headers.get("content-length")
        limit = self.settings.max_body_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            raise ClientError(413, "body_too_large", f"request body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClientError(413, "body_too_large", f"request body exceeds {limit} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw:
            raise ClientError(400, "empty_body", "request body is empty; send a JSON object")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ClientError(400, "invalid_json", f"body is not valid JSON: {str(exc)[:120]}") from None

    async def _handle(self, request: Request, origin: str | None) -> Response:
        path = request.url.path.rstrip("/")
        if path.endswith("/track/batch"):
            batch = True
        elif path.endswith("/track"):
            batch = False
        else:
            raise ClientError(404, "not_found", "use POST /track or POST /track/batch")
        if request.method != "POST":
            raise ClientError(405, "method_not_allowed", "use POST", headers={"allow": "POST, OPTIONS"})
        caller = await self.auth.authenticate(request.headers, "write")
        decision = await self.limiter.check(caller.client.id)
        if not decision.allowed:
            raise ClientError(
                429,
                "rate_limited",
                "too many requests for this client; retry after the Retry-After seconds",
                headers={"retry-after": retry_after_header(decision.retry_after_s)},
            )
        body = await self._body(request)
        ctx = await self._context(request, caller)
        headers = cors_headers(origin)
        if batch:
            return await self._batch(body, ctx, headers)
        try:
            prepared = prepare(body, ctx, self.limits)
        except ClientError:
            raise
        results = await self._route([prepared])
        result = results[0]
        if isinstance(result, ShardUnavailable):
            raise self._unavailable(result)
        reply: dict[str, Any] = {"success": True}
        rec = prepared.record
        reply["id"] = rec.get("id") or rec.get("event_id")
        if prepared.type == "track":
            reply.update(result)
        return json_response(reply, 200, headers)

    async def _batch(self, body: Any, ctx: RequestContext, headers: dict[str, str]) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise ClientError(
                400, "invalid_batch", 'body must be {"events": [ {"type": ..., "payload": ...}, ... ]}'
            )
        events = body["events"]
        cap = self.settings.max_batch_events
        if len(events) > cap:
            raise ClientError(
                400, "batch_too_large", f"{len(events)} events in one batch; the maximum is {cap}"
            )
        rejected: list[dict[str, Any]] = []
        prepared: list[Prepared] = []
        indexes: list[int] = []
        for i, item in enumerate(events):
            try:
                prepared.append(prepare(item, ctx, self.limits))
                indexes.append(i)
            except ClientError as err:
                rejected.append({"index": i, "error": err.code, "message": err.message})
        results = await self._route(prepared) if prepared else []
        accepted = 0
        retry_after = 0
        for i, result in zip(indexes, results, strict=True):
            if isinstance(result, ShardUnavailable):
                rejected.append(
                    {"index": i, "error": "unavailable", "message": str(result), "retryable": True}
                )
                retry_after = max(retry_after, result.retry_after_s)
            else:
                accepted += 1
        rejected.sort(key=lambda r: r["index"])
        if retry_after and accepted == 0 and len(rejected) == len(events) and prepared:
            raise ClientError(
                503,
                "storage_unavailable",
                "events could not be logged now; retry the batch after Retry-After seconds",
                headers={"retry-after": str(retry_after)},
            )
        if retry_after:
            headers = {**headers, "retry-after": str(retry_after)}
        reply = {"success": not rejected, "accepted": accepted, "rejected": rejected}
        return json_response(reply, 200, headers)

    async def _context(self, request: Request, caller: Caller) -> RequestContext:
        h: Mapping[str, str] = request.headers
        peer = request.client.host if request.client else None
        salt, prev_salt = await self.salts.current()
        ip = client_ip(h, self.settings.ip_headers, peer)
        user_agent = h.get("user-agent", "")[:1024]
        return RequestContext(
            project_id=caller.project_id,
            ip=ip,
            user_agent=user_agent,
            now_ms=int(time.time() * 1000),
            salt=salt,
            prev_salt=prev_salt,
            server_side=caller.server_side,
            sdk_name=h.get("openpanel-sdk-name", h.get("event-lens-sdk-name", ""))[:64],
            sdk_version=h.get("openpanel-sdk-version", h.get("event-lens-sdk-version", ""))[:64],
            origin=(h.get("origin") or "")[:512],
            enrichment=self._enrichment(ip, user_agent, h, caller.server_side),
        )

    def _enrichment(
        self, ip: str, user_agent: str, headers: Mapping[str, str], server_side: bool
    ) -> dict[str, Any]:
        """User agent and geo columns, once per request (a batch shares them)."""
        ua = parse_user_agent(user_agent).columns()
        if server_side and ua["is_bot"]:
            # a server-side SDK authenticated with its secret is never a bot (CONTRACT 2)
            ua["is_bot"] = 0
            if ua["device"] == "bot":
                ua["device"] = ""
        return {**ua, **enrich_geo(self.geo, ip, headers)._asdict()}

    async def _route(self, prepared: list[Prepared]) -> list[dict[str, str] | ShardUnavailable]:
        """Hand every record to its shard; per record the shard's answer or why it failed."""
        n = len(self.router.shards)
        by_shard: dict[int, list[int]] = {}
        for i, p in enumerate(prepared):
            by_shard.setdefault(shard_of(p.record["project_id"], p.shard_key, n), []).append(i)
        out: list[dict[str, str] | ShardUnavailable] = [{}] * len(prepared)

        async def one(shard: int, idxs: list[int]) -> None:
            try:
                res = await self.router.append(shard, [prepared[i].record for i in idxs])
                for i, r in zip(idxs, res, strict=True):
                    out[i] = r
            except ShardUnavailable as exc:
                for i in idxs:
                    out[i] = exc

        await asyncio.gather(*(one(s, idxs) for s, idxs in by_shard.items()))
        return out

    @staticmethod
    def _unavailable(exc: ShardUnavailable) -> ClientError:
        return ClientError(
            503,
            "storage_unavailable",
            f"the event could not be logged now ({exc}); retry after Retry-After seconds",
            headers={"retry-after": str(exc.retry_after_s)},
        )
