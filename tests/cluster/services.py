"""Private Redis and MariaDB servers for the cluster tests: each may be crashed and restarted
mid-stream without touching the machine's shared services the rest of the suite uses."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port


def _wait_port(port: int, up: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            is_up = s.connect_ex(("127.0.0.1", port)) == 0
        if is_up == up:
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'} in {timeout}s")


class Server:
    """A child process on a free port; ``crash`` is a SIGKILL, ``stop`` a SIGTERM."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, start_new_session=True)
        _wait_port(self.port, up=True)

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        _wait_port(self.port, up=False)

    def crash(self) -> None:
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)


class RedisServer(Server):
    """Redis configured as the write-ahead log needs it: every write fsynced to the AOF before
    the reply, no eviction. A crash (SIGKILL) and restart replays the AOF."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        home.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.home),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--no-appendfsync-on-rewrite", "no", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip


class MariaDBServer(Server):
    """A throw-away MariaDB data directory with root and an empty password, as on this machine."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.datadir = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal", "--skip-test-db", "--user=root",
            ],
            check=True, capture_output=True,
        )  # fmt: skip

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
            f"--socket={self.home / 'mysqld.sock'}", "--bind-address=127.0.0.1", "--user=root",
            "--skip-log-bin", "--innodb-buffer-pool-size=16M",
        ]  # fmt: skip
