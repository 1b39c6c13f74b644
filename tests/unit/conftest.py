"""Shared fixtures of the unit suite: a throw-away key prefix on the real Redis, an embedded
metadata store with a write client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlens.storage.metadata import MetadataStore, open_metadata
from tests.servers import REDIS_URL, need


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix; every key under it is deleted at teardown."""
    import redis

    need("redis")  # a skip, or a failure under EVENTLENS_REQUIRE_SERVICES=1, naming the address
    prefix = f"eventlens-test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def store(tmp_path: Path) -> MetadataStore:
    s = open_metadata(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    s.migrate()
    return s


@pytest.fixture
def write_headers(store: MetadataStore) -> dict[str, str]:
    project = store.create_project("p")
    client, secret = store.create_client(project.id, "write")
    assert secret
    return {"event-lens-client-id": client.id, "event-lens-client-secret": secret}
