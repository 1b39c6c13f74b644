"""Run every benchmark scenario against one Event Lens daemon and report.

    python -m benchmarks.run [--mode embedded|shared|cluster] [--duration 20] [--concurrency 64] [--json out.json]
    python -m benchmarks.run --url http://127.0.0.1:8000 --project P \\
        --write-id W --write-secret WS --read-id R --read-secret RS [--daemon-pid PID] [--ray-address A]

Modes (a daemon the runner starts): ``embedded`` (the defaults: file log, embedded metadata),
``shared`` (shards log to Redis, metadata in MariaDB: a private Redis with AOF fsync on every write,
started for the run, and a fresh database on ``--mariadb-url``), ``cluster`` (``shared`` on a
simulated three-node Ray cluster on this machine, ``benchmarks.simcluster``: one shard and one
ingest replica per node; the three nodes share this machine's cores).

Without ``--url`` the runner starts its own daemon (``eventlens serve --json``, in its own session)
on a fresh temporary data directory and a free port, takes the demo credentials it prints, runs the
scenarios one after the other, stops the daemon (SIGTERM, drain, wait) and removes the directory.
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks import report, sharedmode
from benchmarks._psutil import psutil
from benchmarks.common import Bench
from benchmarks.daemonproc import (
    DaemonProcess,
    Target,
    find_daemon_pid,
    free_port,
    gcs_address,
    ray_join_env,
)
from benchmarks.loadgen import CLIENTS, check_loopback, run_async
from benchmarks.scenarios import ack_counted, batch, memory, noop, single

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
SCENARIOS = ("enrichment", "single", "batch100", "batch1000", "ack_counted", "noop", "stop")


def enrichment_cost() -> dict[str, Any]:
    """The replica pipeline's µs per event with and without enrichment (``benchmarks.micro.pipeline``),
    in a child process before any load, so neither disturbs the other."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.micro.pipeline", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["benchmarks.micro.pipeline failed"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    g = ap.add_argument_group("an already running daemon (else one is started)")
    g.add_argument("--url", help="base URL of a running daemon (loopback only)")
    g.add_argument("--project")
    g.add_argument("--write-id")
    g.add_argument("--write-secret")
    g.add_argument("--read-id")
    g.add_argument("--read-secret")
    g.add_argument(
        "--daemon-pid", type=int, help="pid of its `eventlens serve` (found from the port if omitted)"
    )
    g.add_argument(
        "--ray-address", help="its Ray GCS address for the no-op app (read from its raylet if omitted)"
    )
    ap.add_argument(
        "--mode", choices=("embedded", "shared", "cluster"), default="embedded", help="what daemon to start"
    )
    ap.add_argument(
        "--mariadb-url", default="mysql://root@127.0.0.1:3306", help="server for shared/cluster metadata"
    )
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per load scenario")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each load scenario")
    ap.add_argument("--concurrency", type=int, default=64, help="connections for single /track and /noop")
    ap.add_argument("--batch-concurrency", type=int, default=16, help="connections for /track/batch")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="request bound per load scenario")
    ap.add_argument("--client", choices=CLIENTS, default="aiohttp", help="HTTP client of the load generator")
    ap.add_argument("--ack-rate", type=float, default=20.0, help="events/s in the ack→counted scenario")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    ap.add_argument("--keep-data", action="store_true", help="keep the temporary data directory and logs")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.url:
        missing = [
            n
            for n in ("project", "write_id", "write_secret", "read_id", "read_secret")
            if not getattr(args, n)
        ]
        if missing:
            ap.error("--url needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        check_loopback(args.url)
    if args.only:
        unknown = set(args.only.split(",")) - set(SCENARIOS)
        if unknown:
            ap.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    if args.duration <= 0 or args.concurrency < 1 or args.batch_concurrency < 1:
        ap.error("--duration, --concurrency and --batch-concurrency must be positive")
    return args


def _busy() -> tuple[float, float]:
    """Machine-wide busy CPU seconds (all cores) and steal seconds, from /proc/stat via psutil."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    return busy, getattr(t, "steal", 0.0)


def _all_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process on the machine, to name who else used the cores."""
    out: dict[int, tuple[str, float]] = {}
    for p in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        t = p.info.get("cpu_times")
        if t is None:
            continue
        cmd = " ".join(" ".join(p.info.get("cmdline") or []).split())[:90] or (p.info.get("name") or "?")
        out[p.pid] = (cmd, t.user + t.system)
    return out


def _others(
    a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]], ours: set[int], wall: float
) -> list[str]:
    rows = []
    for pid, (cmd, secs) in b.items():
        if pid in ours:
            continue
        used = secs - (a[pid][1] if pid in a else 0.0)
        if used / wall >= 0.02:
            rows.append((used / wall, f"{pid} {cmd}"))
    return [f"{c:.2f} cores: {name}" for c, name in sorted(rows, reverse=True)[:6]]


def _own_cpu() -> float:
    """CPU seconds of this process: the load generator, the progress display and the sampler."""
    t = psutil.Process().cpu_times()
    return t.user + t.system


def wait_counted(bench: Bench, expected: int, since: datetime, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll /metrics until totalEvents ≥ the events acknowledged so far (bounded): the flush lag."""
    params = {"startDate": since.isoformat(timespec="microseconds").replace("+00:00", "Z")}
    path = f"/insights/{bench.target.project_id}/metrics"
    t0 = time.monotonic()
    counted = -1
    with httpx.Client(base_url=bench.target.url, trust_env=False, timeout=30) as c:
        while time.monotonic() - t0 < timeout_s:
            r = c.get(path, params=params, headers=bench.read_headers())
            if r.status_code == 200:
                counted = int(r.json()["totalEvents"])
                if counted >= expected:
                    break
            time.sleep(0.25)
        if counted > expected:  # let any stragglers land before judging over-counting
            time.sleep(1.0)
            r = c.get(path, params=params, headers=bench.read_headers())
            if r.status_code == 200:
                counted = int(r.json()["totalEvents"])
    return {
        "acknowledged": expected,
        "counted": counted,
        "difference": counted - expected,
        "waited_s": round(time.monotonic() - t0, 2),
        "timed_out": counted < expected,
    }


class Runner:
    """One run: the results, the daemon (started or found), the process-tree monitor, and the
    scenarios in order, each measured as a phase."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.started = datetime.now(UTC)
        self.results: dict[str, Any] = {
            "meta": {
                "started": self.started.isoformat(timespec="seconds"),
                "host": platform.node(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "client": args.client,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "concurrency": args.concurrency,
                "batch_concurrency": args.batch_concurrency,
                "mode": "external" if args.url else args.mode,
            },
            "scenarios": {},
            "errors": [],
        }
        self.wanted = set(args.only.split(",")) if args.only else set(SCENARIOS)
        self.daemon: DaemonProcess | None = None
        self.shared: sharedmode.SharedStorage | None = None
        self.monitor: memory.TreeMonitor | None = None
        self.tmp: Path | None = None

    def run(self) -> None:
        results, console = self.results, self.console
        if "enrichment" in self.wanted:
            console.rule("enrichment cost (micro.pipeline, one core, before any load)")
            results["enrichment"] = enrichment_cost()
            if "error" in results["enrichment"]:
                results["errors"].append(f"enrichment: {results['enrichment']['error']}")
        target, daemon_pid, since = self.connect()
        ray_address = self.args.ray_address or (gcs_address(daemon_pid) if daemon_pid else None)
        results["meta"].update({"url": target.url, "daemon_pid": daemon_pid, "ray_address": ray_address})
        if daemon_pid:
            self.monitor = memory.start(daemon_pid)
        else:
            results["errors"].append("daemon pid unknown: no RSS and no per-process CPU figures")
        bench = Bench(
            target=target,
            concurrency=self.args.concurrency,
            batch_concurrency=self.args.batch_concurrency,
            duration_s=self.args.duration,
            warmup_s=self.args.warmup,
            max_requests=self.args.max_requests,
            client=self.args.client,
            progress=not self.args.no_progress,
            console=console,
            daemon_pid=daemon_pid,
            ray_address=ray_address,
            ray_env=ray_join_env(daemon_pid) if daemon_pid else {},
        )
        self.scenarios(bench, since)

    def connect(self) -> tuple[Target, int | None, datetime]:
        """The daemon given by --url, or a new one on a temporary data directory; returns it, its
        pid and the start of the range that counts this run's events."""
        args = self.args
        if args.url:
            target = Target(
                args.url, args.project, args.write_id, args.write_secret, args.read_id, args.read_secret
            )
            return target, args.daemon_pid or find_daemon_pid(args.url), self.started
        self.tmp = Path(tempfile.mkdtemp(prefix="eventlens-bench-"))
        self.daemon = DaemonProcess(self.tmp / "data", free_port(), self.tmp / "logs")
        if args.mode != "embedded":
            self.shared = sharedmode.SharedStorage(self.tmp, args.mariadb_url)
            self.daemon.env = self.shared.start()
            self.results["meta"]["shared_storage"] = self.shared.describe()
        if args.mode == "cluster":
            self.daemon.command = [sys.executable, "-m", "benchmarks.simcluster"]
            # it runs from the temporary directory: find this checkout's benchmarks package
            self.daemon.env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        self.console.print(f"starting daemon: data {self.tmp / 'data'} …")
        target = self.daemon.start()
        daemon_pid = self.daemon.pid
        since = self.started - timedelta(minutes=5)  # fresh data directory: everything is ours
        self.console.print(f"daemon up at {target.url} (pid {daemon_pid}) after {self.daemon.started_s:.1f}s")
        self.results["daemon"] = {
            "url": target.url,
            "pid": daemon_pid,
            "startup_s": round(self.daemon.started_s, 1),
        }
        return target, daemon_pid, since

    def scenarios(self, bench: Bench, since: datetime) -> None:
        results, console, wanted = self.results, self.console, self.wanted
        if "single" in wanted:
            self.phase("single", lambda: run_async(single.run(bench)))
        for size in (100, 1000):
            if f"batch{size}" in wanted:
                self.phase(f"batch{size}", lambda size=size: run_async(batch.run(bench, size)))
        if "ack_counted" in wanted:
            # let the warehouse catch up first, so (3) measures steady state, not the batch backlog
            pre = wait_counted(bench, sum(bench.accepted.values()), since)
            results["flush_lag_before_ack"] = pre
            self.phase("ack_counted", lambda: run_async(ack_counted.run(bench, rate=self.args.ack_rate)))
        if "noop" in wanted:
            try:
                console.rule("deploy no-op")
                results["noop_deploy"] = noop.deploy(bench)
                self.phase("noop", lambda: run_async(noop.run(bench)))
            except Exception as exc:
                results["scenarios"]["noop"] = {"error": f"{type(exc).__name__}: {exc}"}
                results["errors"].append(f"noop: {type(exc).__name__}: {exc}")
            finally:
                try:
                    results["noop_delete"] = noop.delete(bench)
                except Exception as exc:
                    results["errors"].append(f"noop delete: {type(exc).__name__}: {exc}")
        if bench.accepted:
            console.rule("consistency")
            results["consistency"] = wait_counted(bench, sum(bench.accepted.values()), since)
            results["consistency"]["by_scenario"] = dict(bench.accepted)

    def phase(self, key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Runs one scenario and adds who used the CPU meanwhile: the daemon by role, this process
        (the load generator), the machine, and any other process."""
        monitor = self.monitor
        self.console.rule(key)
        if monitor:
            monitor.mark(key)
            cpu0 = monitor.cpu_snapshot()
        t0 = time.monotonic()
        sys0 = _busy()
        me0 = _own_cpu()
        all0 = _all_cpu()
        try:
            res = fn()
        except Exception as exc:  # keep going: report what failed
            res = {"error": f"{type(exc).__name__}: {exc}"}
            self.results["errors"].append(f"{key}: {res['error']}")
        wall = time.monotonic() - t0
        res["phase_wall_s"] = round(wall, 2)
        sys1 = _busy()
        res["runner_cores"] = round((_own_cpu() - me0) / wall, 2)
        ours = {os.getpid(), *(monitor.cpu.keys() if monitor else ())}
        res["other_processes"] = _others(all0, _all_cpu(), ours, wall)
        res["machine_cores_busy"] = round((sys1[0] - sys0[0]) / wall, 2)
        res["machine_steal_cores"] = round((sys1[1] - sys0[1]) / wall, 2)
        if monitor:
            by_role = monitor.cpu_delta(cpu0, monitor.cpu_snapshot())
            total = sum(by_role.values())
            res["daemon_cpu"] = {
                "seconds": round(total, 2),
                "cores": round(total / wall, 2),
                "by_role_s": by_role,
            }
            monitor.mark("between scenarios")
        self.results["scenarios"][key] = res
        return res

    def close(self) -> None:
        """Stops the monitor and a daemon this run started; removes its data unless kept."""
        results = self.results
        if self.monitor:
            self.monitor.stop()
            results["memory"] = self.monitor.summary()
        if self.daemon:
            self.console.rule("stopping daemon (SIGTERM, drain)")
            try:
                results.setdefault("daemon", {})["stop"] = self.daemon.stop()
            except Exception as exc:
                results["errors"].append(f"daemon stop: {type(exc).__name__}: {exc}")
        if self.shared:
            self.shared.stop()
        if "stop" in self.wanted and not self.args.url:
            # (7) on embedded daemons of their own, after the run's daemon is gone: SIGTERM under load
            from benchmarks import stoptime

            self.console.rule("stop under load (SIGTERM to the group, then to the pid)")
            results["stop"] = stoptime.run_all(stoptime.HOWS, keep_data=self.args.keep_data)
            for res in results["stop"]:
                if "error" in res or res.get("lost") or report.stoptime_id_problems(res):
                    results["errors"].append(f"stop ({res['how']}): {res.get('error') or res}")
        if self.tmp:
            if self.args.keep_data or results["errors"]:
                results["meta"]["kept_data_dir"] = str(self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Console() if sys.stdout.isatty() else Console(width=180)
    runner = Runner(args, Console(stderr=True))
    results = runner.results

    def _term(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    try:
        runner.run()
    except KeyboardInterrupt as exc:
        results["errors"].append(f"interrupted: {exc}")
    except Exception as exc:
        results["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        runner.close()
    results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    report.render(results, out)
    out.print(f"results written to {args.json}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
