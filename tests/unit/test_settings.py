"""The settings model: embedded defaults, environment and explicit values, validation, Serve env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from eventlens.config import DEFAULT_IP_HEADERS, Settings, load_settings
from eventlens.daemon import serve_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("EVENTLENS_"):
            monkeypatch.delenv(key)


def test_defaults_are_fully_embedded(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.clickhouse_dsn == f"chdb://{tmp_path.resolve() / 'clickhouse'}"
    assert s.embedded_clickhouse
    assert s.metadata_dsn == f"sqlite:///{tmp_path.resolve() / 'metadata.sqlite3'}"
    assert s.redis_url is None
    assert s.wal_dir == tmp_path.resolve() / "wal"
    assert (s.haproxy, s.throughput_optimized) == (True, True)
    assert s.ip_headers == DEFAULT_IP_HEADERS


def test_environment_then_explicit_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLENS_SHARDS", "3")
    monkeypatch.setenv("EVENTLENS_CLICKHOUSE_URL", "http://ch:8123")
    monkeypatch.setenv("EVENTLENS_IP_HEADERS", "CF-Connecting-IP, X-Real-IP")
    s = load_settings()
    assert s.shards == 3
    assert s.clickhouse_dsn == "http://ch:8123" and not s.embedded_clickhouse
    assert s.ip_headers == ("cf-connecting-ip", "x-real-ip")
    # a Serve config's args: / CLI flags beat the environment; None means "not given"
    assert load_settings(shards=5, clickhouse_url=None).shards == 5
    assert load_settings(shards=5).clickhouse_dsn == "http://ch:8123"


def test_settings_survive_the_trip_to_another_process(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, shards=4, redis_url="redis://127.0.0.1:6379/0")
    assert Settings(**s.to_args()) == s


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("clickhouse_url", "ftp://x", "clickhouse_url must start with"),
        ("metadata_url", "postgres://x", "metadata_url must start with"),
        ("redis_url", "http://x", "redis_url must start with"),
        ("shards", 0, "greater than or equal to 1"),
        ("instance", "Bad Name", "should match pattern"),
        ("shardz", 2, "Extra inputs are not permitted"),  # a misspelt args: key is an error
    ],
)
def test_invalid_values_are_rejected_with_the_reason(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_serve_env_on_by_default_and_off_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED"):
        monkeypatch.delenv(var, raising=False)
    serve_env(Settings())
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    # turned off in settings: off even though the variables are already exported as 1
    serve_env(Settings(haproxy=False, throughput_optimized=False))
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "0"
    # an operator's own 0 is kept when the settings leave the default on
    serve_env(Settings())
    assert os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
