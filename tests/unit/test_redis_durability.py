"""`eventlens serve` checks that the Redis holding the write-ahead logs is durable (AOF, fsync always)."""

from __future__ import annotations

import logging

import pytest

from eventlens.backends import durability_problems, redis_durability
from eventlens.config import Settings
from eventlens.daemon import check_redis_durability
from tests.servers import REDIS_URL


def test_only_aof_with_fsync_always_is_durable() -> None:
    assert durability_problems({"appendonly": "yes", "appendfsync": "always"}) == []
    problems = durability_problems({"appendonly": "no", "appendfsync": "everysec"})
    assert problems == ["appendonly is 'no', not 'yes'", "appendfsync is 'everysec', not 'always'"]
    assert len(durability_problems({})) == 2


def test_no_redis_no_check() -> None:
    assert check_redis_durability(Settings(redis_url=None)) == []


@pytest.mark.redis
def test_a_redis_without_aof_is_reported_and_refused_on_request(caplog: pytest.LogCaptureFixture) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    config = {**client.config_get("appendonly"), **client.config_get("appendfsync")}
    client.close()
    expected = durability_problems(config)
    assert redis_durability(Settings(redis_url=REDIS_URL)) == expected
    if not expected:  # a durable Redis: nothing to report, and starting is allowed
        assert check_redis_durability(Settings(redis_url=REDIS_URL, redis_require_durable=True)) == []
        return
    with caplog.at_level(logging.WARNING, logger="eventlens.daemon"):
        assert check_redis_durability(Settings(redis_url=REDIS_URL)) == expected
    assert "may lose acknowledged events" in caplog.text
    with pytest.raises(ValueError, match="refusing to start"):
        check_redis_durability(Settings(redis_url=REDIS_URL, redis_require_durable=True))
