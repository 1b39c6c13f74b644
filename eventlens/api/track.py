"""The ``/track`` hot path over HTTP: raw Starlette request in, JSON out, no framework routing.

HTTP only: CORS, body limits, auth, rate limit, routing, the batch reply. The event itself goes
``ingest.context`` → ``ingest.pipeline`` → ``buffer.client`` (the shard's durable log). A reply
of 200 is sent only after every accepted record is in its shard's log.

``GET /track/device-id`` (OpenPanel's route of that name) answers the cookieless device id ingest
derives for the caller and the id of its live session, asked from the shard that owns it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from eventlens.api.auth import Authenticator, Caller
from eventlens.api.errors import error_response, json_response
from eventlens.buffer.client import BufferClient, ShardUnavailable
from eventlens.config import Settings
from eventlens.errors import ClientError
from eventlens.ingest.clientip import client_ip
from eventlens.ingest.context import RequestContext, build_context, user_agent_of
from eventlens.ingest.geo import GeoLookup
from eventlens.ingest.identity import cookieless
from eventlens.ingest.pipeline import Dropped, Limits, Prepared, run
from eventlens.ingest.salts import SaltCache
from eventlens.metrics import UNKNOWN_TYPE, IngestMetrics
from eventlens.models import EVENT_TYPES
from eventlens.ratelimit import LocalRateLimiter, RedisRateLimiter, retry_after_header
from eventlens.records import Duplicate, Refused

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


DEVICE_ID_PATH = "/track/device-id"
# what OpenPanel's server says with each answer of ``GET /track/device-id``
DEVICE_ID_MESSAGES = {
    "current": "current session exists for this device id",
    "previous": "previous session exists for this device id",
    "none": "No session exists for this device id",
}


# the outcome of a request refused as a whole, by status (``eventlens_events``)
REFUSED = {401: "unauthorized", 403: "unauthorized", 429: "rate_limited", 503: "unavailable"}


def _type_of(body: Any) -> str:
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if kind in EVENT_TYPES else UNKNOWN_TYPE


def cors_headers(origin: str | None) -> dict[str, str]:
    if not origin:
        return {}
    return {"access-control-allow-origin": origin, "vary": "Origin"}


class TrackHandler:
    """Everything of ``/track`` that is not Ray: constructed with its collaborators."""

    def __init__(
        self,
        settings: Settings,
        auth: Authenticator,
        buffer: BufferClient,
        salts: SaltCache,
        limiter: LocalRateLimiter | RedisRateLimiter,
        geo: GeoLookup | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.settings = settings
        # one ``events`` call per request: counts by (type, outcome)
        self.metrics = metrics or IngestMetrics()
        self.geo = geo
        self.auth = auth
        self.buffer = buffer
        self.salts = salts
        self.limiter = limiter
        self.limits = Limits(
            max_properties=settings.max_properties,
            max_property_key_length=settings.max_property_key_length,
            max_property_value_length=settings.max_property_value_length,
            max_future_ms=settings.max_future_skew_s * 1000,
            max_replay_bytes=settings.replay_max_bytes,
        )

    async def handle(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        try:
            device_id = request.url.path.rstrip("/").endswith(DEVICE_ID_PATH)
            if request.method == "OPTIONS":
                return self.preflight(origin, "GET, OPTIONS" if device_id else "POST, OPTIONS")
            if device_id:
                return await self.device_id(request, origin)
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

    def preflight(self, origin: str | None, methods: str = "POST, OPTIONS") -> Response:
        headers = {
            **cors_headers(origin or "*"),
            "access-control-allow-methods": methods,
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
        try:
            batch, body, ctx = await self._admit(request)
        except ClientError as err:  # refused as a whole, before its events were read
            self.metrics.events({(UNKNOWN_TYPE, REFUSED.get(err.status, "rejected")): 1})
            raise
        headers = cors_headers(origin)
        if batch:
            return await self._batch(body, ctx, headers)
        prepared = run(body, ctx, self.limits)
        if isinstance(prepared, Dropped):
            self.metrics.events({(_type_of(body), "rejected"): 1})
            raise prepared.error
        result = (await self.buffer.submit([(prepared.record, prepared.shard_key)]))[0]
        if isinstance(result, ShardUnavailable):
            self.metrics.events({(prepared.type, result.reason): 1})
            raise self._unavailable(result)
        if type(result) is Refused:
            self.metrics.events({(prepared.type, "rejected"): 1})
            raise ClientError(409, result["error"], result["message"])
        self.metrics.events({(prepared.type, "duplicate" if type(result) is Duplicate else "accepted"): 1})
        reply: dict[str, Any] = {"success": True}
        rec = prepared.record
        ident = rec.get("id") or rec.get("event_id")
        if ident:  # group and assign_group messages have no id of their own
            reply["id"] = ident
        if prepared.type == "replay":
            reply["id"] = f"{result['sessionId']}:{rec['chunk_index']}"
        if prepared.type in ("track", "replay"):
            reply.update(result)
        return json_response(reply, 200, headers)

    async def _admit(self, request: Request) -> tuple[bool, Any, RequestContext]:
        """Route, method, caller, rate limit, body: (is a batch, the body, the request context)."""
        path = request.url.path.rstrip("/")
        if path.endswith("/track/batch"):
            batch = True
        elif path.endswith("/track"):
            batch = False
        else:
            raise ClientError(404, "not_found", "use POST /track, POST /track/batch or GET /track/device-id")
        if request.method != "POST":
            raise ClientError(405, "method_not_allowed", "use POST", headers={"allow": "POST, OPTIONS"})
        caller = await self._caller(request)
        body = await self._body(request)
        return batch, body, await self._context(request, caller)

    async def _caller(self, request: Request) -> Caller:
        """The authenticated write client, within its rate limit."""
        caller = await self.auth.authenticate(request.headers, "write")
        decision = await self.limiter.check(caller.client.id)
        if not decision.allowed:
            raise ClientError(
                429,
                "rate_limited",
                "too many requests for this client; retry after the Retry-After seconds",
                headers={"retry-after": retry_after_header(decision.retry_after_s)},
            )
        return caller

    async def device_id(self, request: Request, origin: str | None) -> Response:
        """``GET /track/device-id``: ``{deviceId, sessionId, message}``, what the caller's next
        event without a device id would be answered with. The device id is ingest's cookieless
        hash of (project, client IP, user agent, today's salt); the session is the live session
        of that device, or of its id under yesterday's salt when that visit is still live (as
        ``/track`` continues it), asked from the shard that owns the visitor; ``""`` when none
        is live. Authenticated and rate limited like ``/track``; nothing is stored."""
        if request.method != "GET":
            raise ClientError(405, "method_not_allowed", "use GET", headers={"allow": "GET, OPTIONS"})
        caller = await self._caller(request)
        if request.query_params:
            name = next(iter(request.query_params))
            raise ClientError(
                400,
                "unknown_parameter",
                f"parameter {name[:40]!r} does not apply: GET /track/device-id takes no parameters"
                " (the device is derived from the caller's address and user agent)",
            )
        ip = client_ip(
            request.headers, self.settings.ip_headers, request.client.host if request.client else None
        )
        device, prev, key = cookieless(
            caller.project_id, ip, user_agent_of(request.headers), await self.salts.current()
        )
        try:
            found = await self.buffer.live_session(caller.project_id, key, device, prev)
        except ShardUnavailable as exc:
            raise ClientError(
                503,
                "storage_unavailable",
                f"the visitor's session could not be looked up now ({exc}); retry after Retry-After seconds",
                headers={"retry-after": str(exc.retry_after_s)},
            ) from None
        if not found["sessionId"]:
            which = "none"
        else:
            which = "current" if found["deviceId"] == device else "previous"
        reply = {**found, "message": DEVICE_ID_MESSAGES[which]}
        return json_response(reply, 200, cors_headers(origin))

    async def _batch(self, body: Any, ctx: RequestContext, headers: dict[str, str]) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            self.metrics.events({(UNKNOWN_TYPE, "rejected"): 1})
            raise ClientError(
                400, "invalid_batch", 'body must be {"events": [ {"type": ..., "payload": ...}, ... ]}'
            )
        events = body["events"]
        cap = self.settings.max_batch_events
        if len(events) > cap:
            self.metrics.events({(UNKNOWN_TYPE, "rejected"): len(events)})
            raise ClientError(
                400, "batch_too_large", f"{len(events)} events in one batch; the maximum is {cap}"
            )
        rejected: list[dict[str, Any]] = []
        prepared: list[Prepared] = []
        indexes: list[int] = []
        # (type, outcome) → events, recorded once for the whole batch
        counts: Counter[tuple[str, str]] = Counter()
        for i, item in enumerate(events):
            result = run(item, ctx, self.limits, i)
            if isinstance(result, Dropped):
                rejected.append({"index": i, "error": result.error.code, "message": result.error.message})
                counts[(_type_of(item), "rejected")] += 1
            else:
                prepared.append(result)
                indexes.append(i)
        routed = [(p.record, p.shard_key) for p in prepared]
        results = await self.buffer.submit(routed) if routed else []
        accepted = 0
        retry_after = 0
        not_accepted: list[tuple[str, str]] = []  # rare: duplicates and unlogged events
        for p, i, result in zip(prepared, indexes, results, strict=True):
            if isinstance(result, ShardUnavailable):
                rejected.append(
                    {"index": i, "error": "unavailable", "message": str(result), "retryable": True}
                )
                retry_after = max(retry_after, result.retry_after_s)
                not_accepted.append((p.type, result.reason))
            elif type(result) is Refused:
                rejected.append({"index": i, "error": result["error"], "message": result["message"]})
                not_accepted.append((p.type, "rejected"))
            else:
                accepted += 1
                if type(result) is Duplicate:
                    not_accepted.append((p.type, "duplicate"))
        counts.update((p.type, "accepted") for p in prepared)
        counts.subtract((kind, "accepted") for kind, _ in not_accepted)
        counts.update(not_accepted)
        self.metrics.events(counts)
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
        return build_context(
            caller.project_id,
            request.headers,
            request.client.host if request.client else None,
            await self.salts.current(),
            ip_headers=self.settings.ip_headers,
            geo=self.geo,
            server_side=caller.server_side,
            currency=caller.client.project_currency,
        )

    @staticmethod
    def _unavailable(exc: ShardUnavailable) -> ClientError:
        return ClientError(
            503,
            "storage_unavailable",
            f"the event could not be logged now ({exc}); retry after Retry-After seconds",
            headers={"retry-after": str(exc.retry_after_s)},
        )
