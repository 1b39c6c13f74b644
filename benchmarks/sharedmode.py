"""Shared storage for ``benchmarks.run --mode shared|cluster``: a private Redis configured as the
write-ahead log needs it (AOF, fsync on every write: what production should run, and what costs),
and a fresh MariaDB database, both removed after the run."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.simcluster import free_port


class SharedStorage:
    def __init__(self, tmp: Path, mariadb_url: str) -> None:
        self.dir = tmp / "redis"
        self.port = free_port()
        self.database = f"eventlens_bench_{uuid.uuid4().hex[:8]}"
        self.mariadb_url = mariadb_url.rstrip("/")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, str]:
        """Start Redis; the daemon's environment (its metadata database is created on start)."""
        import redis

        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--no-appendfsync-on-rewrite", "no",
                "--maxmemory-policy", "noeviction",
            ],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        return {
            "EVENTLENS_REDIS_URL": f"redis://127.0.0.1:{self.port}/0",
            "EVENTLENS_METADATA_URL": f"{self.mariadb_url}/{self.database}",
            "EVENTLENS_REDIS_REQUIRE_DURABLE": "true",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "redis": f"127.0.0.1:{self.port}, appendonly yes, appendfsync always",
            "metadata": f"{self.mariadb_url}/{self.database}",
        }

    def stop(self) -> None:
        import pymysql

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        from urllib.parse import urlsplit

        u = urlsplit(self.mariadb_url)
        conn = pymysql.connect(
            host=u.hostname or "127.0.0.1",
            port=u.port or 3306,
            user=u.username or "root",
            password=u.password or "",
        )
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        finally:
            conn.close()
