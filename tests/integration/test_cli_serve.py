"""`eventlens serve` as a user runs it: a separate process with its own Ray, stopped with SIGTERM,
started again on the same data directory — no acknowledged event is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.ray

EVENTLENS = str(Path(sys.executable).with_name("eventlens"))


def _start(data_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {
        **os.environ,
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
    }
    env.pop("RAY_ADDRESS", None)
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [EVENTLENS, "serve", "--data-dir", str(data_dir), "--port", str(port), "--json"],
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
