"""What every scenario gets: the target daemon, the load shape, and where to print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from benchmarks.daemonproc import Target

# A desktop browser: exercises user-agent parsing (cached per string after the first request).
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


@dataclass
class Bench:
    target: Target
    concurrency: int = 64
    batch_concurrency: int = 16
    duration_s: float = 20.0
    warmup_s: float = 3.0
    max_requests: int = 1_000_000
    client: str = "httpx"
    timeout_s: float = 30.0
    progress: bool = True
    console: Console = field(default_factory=lambda: Console(stderr=True))
    daemon_pid: int | None = None
    ray_address: str | None = None
    ray_env: dict[str, str] = field(default_factory=dict)  # to join the daemon's Ray as a driver
    # events the daemon acknowledged with 2xx during this run (warm-ups included), per scenario
    accepted: dict[str, int] = field(default_factory=dict)

    def write_headers(self) -> dict[str, str]:
        return {**self.target.write_headers(), "user-agent": USER_AGENT}

    def read_headers(self) -> dict[str, str]:
        return self.target.read_headers()


def count_accepted(bench: Bench, key: str, n: int) -> None:
    bench.accepted[key] = bench.accepted.get(key, 0) + n


def fmt_num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "—"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:  # nan
        return "—"
    return f"{f:,.{digits}f}"
