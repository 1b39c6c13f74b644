"""The daemon under test as a separate process: start it through the CLI, find its Ray, stop it.

``eventlens serve --json`` runs in its own session (``start_new_session``, i.e. setsid), so the CLI
process, the Ray processes it starts (gcs_server, raylet, agents, workers, HAProxy) and nothing else
share that session id. Stopping sends SIGTERM to the CLI process only — it drains the shards and
shuts its Ray down (a SIGTERM to the whole group would kill the raylet under the drain) — waits,
and then removes whatever is still left in the session, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks._psutil import psutil
from benchmarks.loadgen import check_loopback

# ``eventlens`` is ``python -m eventlens.cli.main``; the module form runs the interpreter's own
# checkout (the repository's .venv, or PYTHONPATH) wherever the console script is installed.
EVENTLENS = [sys.executable, "-m", "eventlens.cli.main"]


@dataclass(frozen=True)
class Target:
    url: str
    project_id: str
    write_id: str
    write_secret: str
    read_id: str
    read_secret: str

    def write_headers(self) -> dict[str, str]:
        return {"event-lens-client-id": self.write_id, "event-lens-client-secret": self.write_secret}

    def read_headers(self) -> dict[str, str]:
        return {"event-lens-client-id": self.read_id, "event-lens-client-secret": self.read_secret}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def gcs_address(root_pid: int) -> str | None:
    """The GCS address of the Ray cluster a daemon started, read from its raylet's command line.

    (``ray.init(address="auto")`` would pick the most recently started cluster on the machine, which
    need not be this daemon's when test sessions run beside it.)
    """
    for p in _tree(root_pid):
        with contextlib.suppress(psutil.Error):
            if p.name() != "raylet":
                continue
            for arg in p.cmdline():
                m = re.search(r"--gcs-address=([0-9A-Za-z.\-:\[\]]+:\d+)", arg)
                if m:
                    return m.group(1)
    return None


def ray_join_env(root_pid: int) -> dict[str, str]:
    """How a driver must join the daemon's cluster: its ``RAY_AUTH_MODE`` (Ray starts local clusters
    with token authentication) and, if set, where its token file is. The token itself is not read
    here; Ray finds it in its default location (``~/.ray/auth_token``) when the mode says ``token``.
    """
    for p in _tree(root_pid):
        with contextlib.suppress(psutil.Error):
            if p.name() in ("raylet", "gcs_server"):
                env = p.environ()
                return {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH") if k in env}
    return {}


def find_daemon_pid(url: str) -> int | None:
    """For ``--url``: the ``eventlens serve`` process above whatever listens on the URL's port."""
    from urllib.parse import urlsplit

    port = urlsplit(url).port or 80
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port or not conn.pid:
                continue
            proc: psutil.Process | None = psutil.Process(conn.pid)
            while proc is not None:
                with contextlib.suppress(psutil.Error):
                    cmd = " ".join(proc.cmdline())
                    if "eventlens" in cmd and " serve" in cmd:
                        return proc.pid
                proc = proc.parent()
    return None


@dataclass
class DaemonProcess:
    data_dir: Path
    port: int
    log_dir: Path
    startup_timeout_s: float = 300.0
    # another program printing what ``eventlens serve --json`` prints (benchmarks.simcluster), and
    # environment for it (EVENTLENS_* settings)
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    started_s: float = 0.0
    stop_report: dict[str, Any] = field(default_factory=dict)
    _stdout_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, credentials: dict[str, Any] | None = None) -> Target:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.log_dir / "daemon.stderr.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = self.command or [*EVENTLENS, "serve"]
        cmd = [*cmd, "--data-dir", str(self.data_dir), "--port", str(self.port), "--json"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # HAProxy's side ports are fixed by default (or inherited from a test session's Ray): free
        # ones, so no other daemon or Ray on this machine collides with this one
        env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
        env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
        env.pop("RAY_ADDRESS", None)
        env.update(self.env)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            cwd=str(self.data_dir.parent),
            env=env,
            start_new_session=True,  # setsid: its own session and process group
        )
        self._reader = threading.Thread(target=self._read_stdout, name="daemon-stdout", daemon=True)
        self._reader.start()
        deadline = t0 + self.startup_timeout_s
        while time.monotonic() < deadline:
            info = self._parsed()
            if info is not None:
                self.info = info
                break
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode} before printing its URL; "
                    f"see {self.log_dir / 'daemon.stderr.log'}"
                )
            time.sleep(0.2)
        else:
            raise RuntimeError(f"daemon printed no URL within {self.startup_timeout_s:.0f}s")
        self.started_s = time.monotonic() - t0
        # a directory that already has projects prints no demo credentials: the caller brings its own
        demo = self.info.get("demo") or credentials
        if not demo:
            raise RuntimeError("daemon printed no demo credentials (is the data directory empty?)")
        url = self.info["url"]
        check_loopback(url)
        return Target(
            url=url,
            project_id=demo["projectId"],
            write_id=demo["write"]["clientId"],
            write_secret=demo["write"]["clientSecret"],
            read_id=demo["read"]["clientId"],
            read_secret=demo["read"]["clientSecret"],
        )

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_dir / "daemon.stdout.log", "w") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                self._stdout_lines.append(line)
                log.write(line)
                log.flush()

    def _parsed(self) -> dict[str, Any] | None:
        text = "".join(self._stdout_lines)
        start = text.find("{")
        if start < 0:
            return None
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            return None
        return obj if isinstance(obj, dict) and "url" in obj else None

    def stop(self, timeout_s: float = 180.0) -> dict[str, Any]:
        """SIGTERM the CLI (it drains), wait; then end whatever is left in its session."""
        if self.proc is None:
            return {}
        sid = self.proc.pid  # session leader: its pid is the session id
        report: dict[str, Any] = {"signal": "SIGTERM", "drain_s": None, "returncode": None, "leftovers": []}
        t0 = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                report["signal"] = "SIGTERM, then SIGKILL after timeout"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        report["drain_s"] = round(time.monotonic() - t0, 1)
        report["returncode"] = self.proc.returncode
        report["leftovers"] = end_session(sid)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
        with contextlib.suppress(OSError):
            tail = (self.log_dir / "daemon.stderr.log").read_text(errors="replace").strip().splitlines()
            report["stderr_tail"] = [ln for ln in tail if ln.startswith(("stopped", "stopping"))][-2:]
        self.stop_report = report
        return report


def session_processes(sid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if p.pid != os.getpid() and os.getsid(p.pid) == sid:
                out.append(p)
    return out


def end_session(sid: int, grace_s: float = 10.0) -> list[str]:
    """SIGTERM, then SIGKILL, every process still in session ``sid`` (only the daemon's session)."""
    left = session_processes(sid)
    names = []
    for p in left:
        with contextlib.suppress(psutil.Error):
            names.append(f"{p.pid}:{p.name()}")
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return names
