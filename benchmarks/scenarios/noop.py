"""Scenario 4: the ceiling — a no-op Serve endpoint in the daemon's own Ray cluster, same load as (1).

``benchmarks.noop_app`` (run as a helper process that joins the daemon's cluster through the GCS
address read from the daemon's raylet) deploys a raw-ASGI app ``noop`` at ``/noop`` with
``num_cpus=0``. It is then loaded exactly like scenario 1 — same client back end, concurrency,
warm-up and duration, a similar JSON body — so the ratio single/no-op says how much of the
Serve + HAProxy request path Event Lens's own work costs. The app is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import Bench
from benchmarks.scenarios import single

NAME = "noop"
ROOT = Path(__file__).resolve().parents[2]


def _helper(bench: Bench, action: str, url: str | None, timeout_s: float = 180.0) -> dict[str, Any]:
    assert bench.ray_address
    cmd = [sys.executable, "-m", "benchmarks.noop_app", action, "--address", bench.ray_address]
    if url:
        cmd += ["--url", url]
    env = {**os.environ, **bench.ray_env}
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    out: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        raise RuntimeError(f"noop_app {action} failed ({proc.returncode}): {out or ''} {' | '.join(tail)}")
    return out


def deploy(bench: Bench) -> dict[str, Any]:
    if not bench.ray_address:
        raise RuntimeError("no Ray address for the daemon (pass --ray-address with --url)")
    return _helper(bench, "deploy", bench.target.url)


def delete(bench: Bench) -> dict[str, Any]:
    if not bench.ray_address:
        return {}
    return _helper(bench, "delete", None)


async def run(bench: Bench) -> dict[str, Any]:
    """Load ``POST /noop`` (deploy first; the runner deletes it afterwards)."""
    return await single.run(bench, path="/noop", label="no-op /noop", key=None)
