"""Who is calling: client id + secret, or a secret-less browser client by its Origin.

Look-ups and secret checks are cached per replica: the metadata database sees a client about once
per ``ttl`` seconds, and scrypt (deliberately slow) runs once per distinct presented secret and
stored hash, off the event loop, shared by the requests that arrive while it runs. The cache key holds a keyed BLAKE2 digest of the secret, never the secret itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from eventlens.errors import ClientError
from eventlens.outage import outage_as
from eventlens.security import verify_secret
from eventlens.storage.metadata import Client, MetadataStore

ID_HEADERS = ("event-lens-client-id", "openpanel-client-id")
SECRET_HEADERS = ("event-lens-client-secret", "openpanel-client-secret")


@dataclass(frozen=True)
class Caller:
    client: Client
    server_side: bool  # authenticated with a secret: never classified as a bot

    @property
    def project_id(self) -> str:
        return self.client.project_id


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        v = headers.get(n)
        if v:
            return v.strip()
    return None


class Authenticator:
    def __init__(self, store: MetadataStore, ttl_s: float = 30.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clients: dict[str, tuple[float, Client | None]] = {}
        self._verified: dict[tuple[str, str, bytes], bool] = {}
        self._pending: dict[tuple[str, str, bytes], asyncio.Future[bool]] = {}
        self._key = secrets.token_bytes(32)

    async def _client(self, client_id: str) -> Client | None:
        now = time.monotonic()
        hit = self._clients.get(client_id)
        if hit and hit[0] > now:
            return hit[1]
        with outage_as("metadata"):
            client = await asyncio.to_thread(self.store.get_client, client_id)
        # unknown ids are cached briefly too, so a flood of bad ids cannot hammer the database
        self._clients[client_id] = (now + (self.ttl_s if client else 5.0), client)
        if len(self._clients) > 50_000:
            self._clients.clear()
        return client

    async def _secret_ok(self, client: Client, secret: str) -> bool:
        digest = hashlib.blake2b(secret.encode(), key=self._key, digest_size=32).digest()
        # The stored hash is part of the key: a rotated secret changes it (the client record is
        # re-read every ttl), so a verified entry never outlives the secret and needs no expiry.
        key = (client.id, client.secret_hash or "", digest)
        if key in self._verified:
            return True
        # Single flight: requests that arrive together with the same secret share one scrypt run
        # (otherwise a burst of 64 connections runs 64, ~10 % of an ingest replica's CPU).
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(verify_secret, secret, client.secret_hash))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        ok = await asyncio.shield(pending)
        if ok:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = True
        return ok

    async def authenticate(
        self,
        headers: Mapping[str, str],
        need: Literal["write", "read", "root"],
        project_id: str | None = None,
    ) -> Caller:
        """The caller, if its credentials are good and its client may do ``need``: ``write``
        (track), ``read`` (insights) or ``root`` (manage the project: its goals)."""
        client_id = _first(headers, ID_HEADERS)
        if not client_id:
            raise ClientError(
                401, "missing_credentials", "send your client id in the event-lens-client-id header"
            )
        if len(client_id) > 128:
            raise ClientError(401, "invalid_credentials", "unknown client id")
        client = await self._client(client_id.lower())
        if client is None:
            raise ClientError(401, "invalid_credentials", "unknown client id")
        secret = _first(headers, SECRET_HEADERS)
        if client.has_secret:
            if not secret:
                raise ClientError(
                    401,
                    "missing_credentials",
                    "this client needs its secret in the event-lens-client-secret header",
                )
            if len(secret) > 512 or not await self._secret_ok(client, secret):
                raise ClientError(401, "invalid_credentials", "client secret does not match")
            server_side = True
        else:
            origin = headers.get("origin")
            if not client.allows_origin(origin):
                raise ClientError(
                    403,
                    "origin_not_allowed",
                    f"origin {origin[:100]!r} is not allowed for this client"
                    if origin
                    else "this browser client needs a request Origin from its allowed list",
                )
            server_side = False
        if need == "write" and not client.can_write:
            raise ClientError(403, "wrong_client_type", f"a {client.type} client cannot track events")
        if need == "read" and not client.can_read:
            raise ClientError(403, "wrong_client_type", f"a {client.type} client cannot read insights")
        if need == "root" and client.type != "root":
            raise ClientError(
                403,
                "wrong_client_type",
                f"a {client.type} client cannot manage the project: use a root client",
            )
        if project_id is not None and project_id != client.project_id:
            raise ClientError(403, "wrong_project", "this client belongs to another project")
        return Caller(client, server_side)
