"""The suite's guard: a test touching Redis, MariaDB, chDB or Ray without its marker fails.

Runs a small test file in a child pytest with this suite's conftest, so the guard is exercised
as the suite uses it (no backend is really reached: the guard refuses before connecting).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
PROBES = """
import pytest


def test_redis_unmarked():
    import redis
    redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()


def test_mariadb_unmarked():
    import pymysql
    pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")


def test_chdb_unmarked(tmp_path):
    import clickhouse_connect
    clickhouse_connect.get_client(dsn=f"chdb://{tmp_path}")


def test_ray_unmarked():
    import ray
    ray.init()


def test_daemon_fixture_unmarked(embedded):
    assert embedded


@pytest.mark.ray
def test_shared_daemon_without_its_markers(shared):
    assert shared
"""


def test_unmarked_backend_access_fails(tmp_path: Path) -> None:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBES)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nmarkers =\n"
        "    ray: r\n    redis: r\n    mariadb: m\n    chdb: c\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", str(tmp_path)],
        cwd=tmp_path,
        # the conftest imports from this checkout (benchmarks.simcluster's free_port)
        env={**os.environ, "PYTHONPATH": str(CONFTEST.parents[1])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "6 failed" in out or ("failed" in out and "error" in out), out
    for probe, backend in (
        ("test_redis_unmarked", "redis"),
        ("test_mariadb_unmarked", "mariadb"),
        ("test_chdb_unmarked", "chdb"),
        ("test_ray_unmarked", "ray"),
    ):
        assert f"{probe} touches {backend} without @pytest.mark.{backend}" in out or (
            f"{probe} opens chDB without @pytest.mark.chdb" in out
        ), out
    assert "test_daemon_fixture_unmarked runs a daemon on Ray without @pytest.mark.ray" in out
    assert "uses the shared-mode daemon without @pytest.mark.redis and mariadb" in out
    assert "passed" not in out.splitlines()[-1], out
