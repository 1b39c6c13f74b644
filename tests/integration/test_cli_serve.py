"""`eventlens serve` as a user runs it: a separate process with its own Ray, stopped with SIGTERM,
started again on the same data directory — no acknowledged event is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import MARIADB_URL, REDIS_URL, _clear_redis, _drop_mariadb, free_port
from tests.servers import MARIADB

pytestmark = pytest.mark.ray

EVENTLENS = str(Path(sys.executable).with_name("eventlens"))


def _start(
    data_dir: Path,
    port: int | None,
    log: Path,
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {
        **os.environ,
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        **(extra_env or {}),
    }
    env.pop("RAY_ADDRESS", None)
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    port_args = ["--port", str(port)] if port is not None else []
    proc = subprocess.Popen(
        [EVENTLENS, "serve", "--data-dir", str(data_dir), *port_args, "--json", *(extra_args or [])],
        stdout=subprocess.PIPE,
        stderr=out,
        env=env,
        start_new_session=True,  # its Ray lives in its own session, like a daemon started from a shell
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        if line.startswith("{") or lines:
            lines.append(line)
        if line.startswith("}"):
            return proc, json.loads("".join(lines))
    proc.kill()
    raise AssertionError(f"serve did not start: {''.join(lines)} {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_sigterm_and_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    proc, info = _start(data_dir, port, tmp_path / "serve.log")
    try:
        demo = info["demo"]
        url = info["url"]
        assert url == f"http://127.0.0.1:{port}"
        write = {
            "event-lens-client-id": demo["write"]["clientId"],
            "event-lens-client-secret": demo["write"]["clientSecret"],
        }
        read = {
            "event-lens-client-id": demo["read"]["clientId"],
            "event-lens-client-secret": demo["read"]["clientSecret"],
        }
        n = 500
        body = {
            "events": [
                {"type": "track", "payload": {"name": "tick", "deviceId": f"d{i % 9}"}} for i in range(n)
            ]
        }
        r = httpx.post(f"{url}/track/batch", json=body, headers=write, timeout=30)
        assert r.json()["accepted"] == n
        one = httpx.post(
            f"{url}/track", json={"type": "track", "payload": {"name": "last"}}, headers=write, timeout=30
        )
        assert one.status_code == 200
    finally:
        _stop(proc)  # acknowledged events must be flushed, or left in the log for the next start

    proc, info = _start(data_dir, port, tmp_path / "serve.log")
    try:
        assert "demo" not in info, "credentials are printed only on the first start"
        metrics = f"{url}/insights/{demo['projectId']}/metrics"
        deadline = time.monotonic() + 30
        m: dict[str, Any] = {}
        while time.monotonic() < deadline:
            m = httpx.get(metrics, headers=read, timeout=30).json()
            if m.get("totalEvents") == n + 1:
                break
            time.sleep(0.2)
        assert m["totalEvents"] == n + 1
        assert m["uniqueVisitors"] == 10
    finally:
        _stop(proc)


def _session_processes(sid: int, name: str) -> int:
    """Processes of session ``sid`` whose command line starts with ``name`` (Ray titles its workers)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != sid:
                continue
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except (OSError, ProcessLookupError):
            continue
        count += cmd.startswith(name)
    return count


PRODUCTION = Path(__file__).resolve().parents[2] / "deployments" / "production.yaml"


@pytest.mark.mariadb
@pytest.mark.redis
def test_serve_config_file_is_used_with_flags_over_args_over_env(tmp_path: Path) -> None:
    """``eventlens serve --config deployments/production.yaml`` with this machine's MariaDB and Redis
    in place of the file's placeholders: the file's args and http_options reach the daemon (MariaDB,
    Redis, its 8 shards, its port) over EVENTLENS_* variables, and a CLI flag wins over the file.
    The file's ClickHouse server URL is dropped (no server can run here): storage is embedded chDB."""
    import pymysql
    import redis

    instance = f"p{uuid.uuid4().hex[:6]}"
    db = f"eventlens_prec_{uuid.uuid4().hex[:8]}"
    port, env_port = free_port(), free_port()
    yaml_dir, flag_dir = tmp_path / "from-yaml", tmp_path / "from-flag"
    config = yaml.safe_load(PRODUCTION.read_text())
    config["http_options"] = {**config["http_options"], "port": port}
    for app in config["applications"]:
        args = app["args"]
        assert args.pop("clickhouse_url").startswith("http")
        args.update(
            metadata_url=f"{MARIADB_URL}/{db}", redis_url=REDIS_URL, instance=instance, data_dir=str(yaml_dir)
        )
    shards = config["applications"][0]["args"]["shards"]
    assert shards == 8
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    # the environment says otherwise: the file must win
    env = {"EVENTLENS_PORT": str(env_port), "EVENTLENS_SHARDS": "5", "EVENTLENS_INSTANCE": "fromenv"}
    assert config["http_options"]["host"] == "0.0.0.0"
    proc, info = _start(flag_dir, None, tmp_path / "serve.log", ["--config", str(path)], env)
    r = redis.Redis.from_url(REDIS_URL)
    try:
        assert info["url"] == f"http://127.0.0.1:{port}"  # bound on 0.0.0.0, reached on loopback
        assert info["data_dir"] == str(flag_dir.resolve())  # --data-dir beats the file's data_dir
        demo = info["demo"]
        write = {
            "event-lens-client-id": demo["write"]["clientId"],
            "event-lens-client-secret": demo["write"]["clientSecret"],
        }
        body = {
            "events": [{"type": "track", "payload": {"name": "e", "deviceId": f"d{i}"}} for i in range(50)]
        }
        reply = httpx.post(f"http://127.0.0.1:{port}/track/batch", json=body, headers=write, timeout=30)
        assert reply.json()["accepted"] == 50
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{env_port}/health", timeout=2)

        # metadata in MariaDB: the demo project and its two clients
        conn = pymysql.connect(**MARIADB, database=db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM projects")
                assert [row[0] for row in cur.fetchall()] == [demo["projectId"]]
                cur.execute("SELECT COUNT(*) FROM clients")
                assert cur.fetchone()[0] == 2
        finally:
            conn.close()
        # the write-ahead logs are Redis keys of this instance, one log per shard of the file's 8
        logs = {k.decode().split(":")[3] for k in r.scan_iter(f"eventlens:{instance}:wal:*:id")}
        assert logs == {str(i) for i in range(shards)}
        assert not list(r.scan_iter("eventlens:fromenv:*"))
        assert _session_processes(proc.pid, "ray::BufferShard") == shards
        assert _session_processes(proc.pid, "ray::ServeReplica:ingest") == 4  # the file's ingest_replicas
        # embedded chDB under the flag's data directory, nothing under the file's
        assert (flag_dir / "clickhouse").is_dir()
        assert not yaml_dir.exists()
    finally:
        _stop(proc)
        _clear_redis(REDIS_URL, f"eventlens:{instance}:*")
        _drop_mariadb(f"{MARIADB_URL}/{db}")
