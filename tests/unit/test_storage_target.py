"""The storage suite's switch (tests/storage.py): a set EVENTLENS_TEST_CLICKHOUSE_URL sends the
suite to that server (checked here without one: a fake client records what is opened)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.storage import CLUSTER_ENV, URL_ENV, open_storage, release_storage, storage_target


def test_without_a_url_the_suite_uses_chdb(tmp_path: Path) -> None:
    target = storage_target(tmp_path, {})
    assert target.dsn == f"chdb://{tmp_path}/ch" and target.database == "eventlens"
    assert not target.server and target.cluster is None


def test_a_url_is_honoured_with_a_database_per_module(tmp_path: Path) -> None:
    env = {URL_ENV: "http://default:pw@ch1:8123"}
    a, b = storage_target(tmp_path, env), storage_target(tmp_path, env)
    assert a.dsn == "http://default:pw@ch1:8123" and a.server and a.cluster is None
    assert a.database.startswith("eventlens_test_") and a.database != b.database
    c = storage_target(tmp_path, {**env, CLUSTER_ENV: "analytics"})
    assert c.cluster == "analytics"


def test_the_process_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "https://ch.example:8443")
    assert storage_target(tmp_path).dsn == "https://ch.example:8443"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({CLUSTER_ENV: "analytics"}, "needs"),
        ({URL_ENV: "chdb:///tmp/x"}, "http"),
        ({URL_ENV: "ch1:8123"}, "http"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage_target(tmp_path, env)


@pytest.mark.parametrize("cluster", [None, "analytics"])
def test_the_fixture_opens_the_server_and_drops_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str | None
) -> None:
    from eventlens.storage import clickhouse

    opened: list[dict[str, Any]] = []
    commands: list[str] = []

    class Client:
        def command(self, sql: str, parameters: Any = None, settings: Any = None) -> int:
            commands.append(sql)
            return 1

        def close(self) -> None:
            pass

    def get_client(**kwargs: Any) -> Client:
        opened.append(kwargs)
        return Client()

    monkeypatch.setattr(clickhouse.clickhouse_connect, "get_client", get_client)
    env = {URL_ENV: "http://ch1:8123", **({CLUSTER_ENV: cluster} if cluster else {})}
    target = storage_target(tmp_path, env)
    wh = open_storage(target)
    assert {o["dsn"] for o in opened} == {"http://ch1:8123"}
    assert opened[-1]["database"] == target.database and wh.cluster == cluster
    release_storage(wh, target)
    on = " ON CLUSTER 'analytics'" if cluster else ""
    assert commands[0] == f"CREATE DATABASE IF NOT EXISTS `{target.database}`{on}"
    assert commands[-1] == f"DROP DATABASE IF EXISTS `{target.database}`{on} SYNC"
