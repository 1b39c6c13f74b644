"""Insight response cache, keyed by every parameter and by the project's data version.

A flush bumps the version of every project it wrote (``storage.versions``), so a cached answer is
never older than the newest flushed data: the next request after a flush misses and recomputes.
The readers here fetch the version from where the writers keep it: the chDB owner actor, or Redis.
A server without Redis has no shared place for it, so responses are not cached there.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Protocol

import orjson
from cachetools import TTLCache


class Versions(Protocol):
    async def get(self, project: str) -> str | None: ...


# A data version is a dictionary look-up in the chDB owner: an owner that does not answer within
# this is stuck, and the answer is computed without the cache (which then meets the reader's bound)
ACTOR_VERSION_TIMEOUT_S = 3.0


class ActorVersions:
    def __init__(self, actor: Any, timeout_s: float = ACTOR_VERSION_TIMEOUT_S) -> None:
        self.actor = actor
        self.timeout_s = timeout_s

    async def get(self, project: str) -> str | None:
        return await asyncio.wait_for(self.actor.data_version.remote(project), self.timeout_s)


class RedisVersions:
    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    async def get(self, project: str) -> str | None:
        raw = await self.client.hget(self.key, project)
        return (raw or b"0").decode()


class NoVersions:
    async def get(self, project: str) -> str | None:
        return None


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...


class LocalStore:
    def __init__(self, ttl_s: int, maxsize: int = 4096) -> None:
        self.data: TTLCache[str, bytes] = TTLCache(maxsize=maxsize, ttl=ttl_s)

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self.data[key] = value


class RedisStore:
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(self.prefix + key)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self.client.set(self.prefix + key, value, ex=ttl_s)


class InsightCache:
    def __init__(self, store: Store | None, versions: Versions, ttl_s: int) -> None:
        self.store = store if ttl_s > 0 else None
        self.versions = versions
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0

    async def key(self, route: str, project: str, params: dict[str, Any]) -> str | None:
        if self.store is None:
            return None
        version = await self.versions.get(project)
        if version is None:
            return None
        blob = orjson.dumps([route, project, version, params], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()

    async def get(self, key: str | None) -> bytes | None:
        if key is None or self.store is None:
            return None
        value = await self.store.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def set(self, key: str | None, value: bytes) -> None:
        if key is not None and self.store is not None:
            await self.store.set(key, value, self.ttl_s)
