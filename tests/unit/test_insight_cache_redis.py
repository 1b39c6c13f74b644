"""The insight cache as a daemon on a ClickHouse server wires it: answers in Redis, keyed by the
project's data version in a Redis hash that the writers bump after each stored insert (the
shared-mode HTTP test covers the chDB variant, whose versions live in the chDB owner actor)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis

from eventlens import backends
from eventlens.config import Settings
from eventlens.storage.versions import RedisVersionBump
from tests.servers import REDIS_URL

pytestmark = pytest.mark.redis


def test_a_stored_insert_invalidates_the_same_query_in_redis(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        instance=f"t{uuid.uuid4().hex[:8]}",
        clickhouse_url="http://clickhouse.invalid:8123",  # never reached: only the wiring is used
        redis_url=REDIS_URL,
    )
    # what backends.writer hands a ServerWriter, without opening the (absent) server
    bump = RedisVersionBump(
        backends.redis_client(settings), backends.redis_key(settings.instance, "data-version")
    )
    params = {"startDate": "2026-01-01", "endDate": "2026-01-31", "timezone": "UTC"}

    async def ask(body: bytes) -> tuple[str, bytes]:
        """Answer as ``Answers.answer`` does: from the cache, else ``body`` (and store it)."""
        cache = backends.insight_cache(settings, None)
        key = await cache.key("metrics", "p1", params)
        hit = await cache.get(key)
        if hit is not None:
            return "hit", hit
        await cache.set(key, body)
        return "miss", body

    def run(body: bytes) -> tuple[str, bytes]:
        return asyncio.run(ask(body))

    sync = redis.Redis.from_url(REDIS_URL)
    try:
        assert run(b'{"totalEvents":0}') == ("miss", b'{"totalEvents":0}')
        assert run(b"never computed") == ("hit", b'{"totalEvents":0}')
        assert sync.keys(backends.redis_key(settings.instance, "insights", "*"))
        bump.bump(["other-project"])  # another project's insert leaves this answer valid
        assert run(b"never computed") == ("hit", b'{"totalEvents":0}')
        bump.bump(["p1"])  # the writer stored rows of p1: the same query recomputes
        assert run(b'{"totalEvents":2}') == ("miss", b'{"totalEvents":2}')
        assert run(b"never computed") == ("hit", b'{"totalEvents":2}')
    finally:
        for key in sync.scan_iter(backends.redis_key(settings.instance, "*")):
            sync.delete(key)
        sync.close()
