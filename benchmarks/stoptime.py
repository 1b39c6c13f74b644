"""How long ``eventlens serve`` takes to stop under load, and that nothing acknowledged is lost.

    python -m benchmarks.stoptime [--how group,pid] [--load-s 5] [--json out.json]

For each way of stopping, on a fresh temporary data directory: start the daemon (``eventlens serve
--json`` in its own session), send batches of 100 events from a few threads, and while they run
send SIGTERM either to the daemon's whole process group (``group``: a terminal's Ctrl-C, systemd's
default ``KillMode=control-group``) or to the daemon process alone (``pid``: what Kubernetes does to
a container's main process). Measured: seconds from the signal until the daemon process has exited
(``stop_s``) and until no process of its session is left (``all_gone_s``). Then the daemon is
started again on the same directory and the run waits until every acknowledged event is counted;
once that daemon has stopped too, the raw stored rows are compared per client event id: every
acknowledged id stored exactly once, and nothing stored that was neither acknowledged nor sent in a
request whose answer was lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.daemonproc import DaemonProcess, Target, free_port, session_processes

HOWS = ("group", "pid")


class Load:
    """Threads posting ``/track/batch`` (100 events with client ids) until told to stop; records
    which ids were acknowledged and which were sent without a definite answer."""

    def __init__(self, target: Target, threads: int = 4, size: int = 100, tag: str = "") -> None:
        self.target, self.size, self.tag = target, size, tag
        self.accepted = 0
        self.requests = 0
        self.uncertain = 0
        self.acked_ids: set[str] = set()
        self.uncertain_ids: set[str] = set()
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=40)

    def _run(self, worker: int) -> None:
        n = 0
        with httpx.Client(base_url=self.target.url, timeout=30, trust_env=False) as c:
            while not self._stop.is_set():
                ids = [f"{self.tag}w{worker}-{n}-{i}" for i in range(self.size)]
                events = [
                    {
                        "type": "track",
                        "payload": {"name": "stop", "id": e, "deviceId": f"w{worker}-{n}-{i % 10}"},
                    }
                    for i, e in enumerate(ids)
                ]
                n += 1
                rejected: set[int] = set()
                try:
                    r = c.post("/track/batch", json={"events": events}, headers=self.target.write_headers())
                    key = str(r.status_code)
                    if r.status_code == 200:
                        body = r.json()
                        rejected = {int(x["index"]) for x in body["rejected"]}
                        accepted = int(body["accepted"])
                    else:
                        accepted = 0
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    key, accepted = type(exc).__name__, 0
                    time.sleep(0.05)
                with self._lock:
                    self.requests += 1
                    self.accepted += accepted
                    if key == "200":
                        self.acked_ids.update(e for i, e in enumerate(ids) if i not in rejected)
                        # refused as unavailable: a shard call that failed mid-way may have logged them
                        self.uncertain += len(rejected)
                        self.uncertain_ids.update(ids[i] for i in rejected)
                    else:
                        self.failures[key] = self.failures.get(key, 0) + 1
                    if key not in ("200", "ConnectError") and not key.startswith("4"):
                        # sent, answer lost or an error: its events may or may not be logged
                        self.uncertain += self.size
                        self.uncertain_ids.update(ids)


def counted(target: Target, timeout_s: float = 60.0, expected: int | None = None) -> int:
    """``totalEvents`` of the project once it reaches ``expected`` (or after the timeout)."""
    path = f"/insights/{target.project_id}/metrics"
    deadline = time.monotonic() + timeout_s
    value = -1
    with httpx.Client(base_url=target.url, timeout=30, trust_env=False) as c:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = c.get(path, headers=target.read_headers())
                if r.status_code == 200:
                    value = int(r.json()["totalEvents"])
                    if expected is None or value >= expected:
                        break
            time.sleep(0.25)
    return value


STORED_IDS = """
import json, sys
from eventlens.config import Settings
from eventlens.storage.clickhouse import Warehouse
s = Settings(data_dir=sys.argv[1])
wh = Warehouse(s.clickhouse_dsn, s.clickhouse_database)
rows = wh.query(
    "SELECT id, count() AS n FROM events WHERE project_id = {p:String} AND name = 'stop' GROUP BY id",
    {"p": sys.argv[2]},
)
wh.close()
print(json.dumps({r["id"]: int(r["n"]) for r in rows}))
"""


def stored_ids(data_dir: Path, project_id: str) -> dict[str, int]:
    """Raw stored rows per event id in a stopped daemon's chDB directory, without FINAL (an event
    stored twice is two rows); read in a process of its own (chDB opens one directory per process)."""
    out = subprocess.run(
        [sys.executable, "-c", STORED_IDS, str(data_dir), project_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {str(k): int(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def measure(how: str, base: Path, load_s: float = 5.0, threads: int = 4) -> dict[str, Any]:
    """One stop under load: start, load, signal, time the exit, restart, compare counts."""
    return measure_chain([how], base, load_s, threads)[0]


def measure_chain(
    hows: list[str] | tuple[str, ...], base: Path, load_s: float = 5.0, threads: int = 4
) -> list[dict[str, Any]]:
    """Stops under load one after the other on one data directory: start, then for each way load,
    signal, time the exit, and start again (which counts what the stop left, and is the next
    round's daemon); the last daemon stops normally. The counts are cumulative (the project's
    total against every round's acknowledged events so far); the raw stored rows are compared per
    round, once the last daemon has stopped (its ids carry the round's name)."""
    daemon = DaemonProcess(base / "data", free_port(), base / "logs-0")
    target = daemon.start()
    credentials = daemon.info.get("demo")
    results: list[dict[str, Any]] = []
    loads: list[Load] = []
    try:
        for n, how in enumerate(hows):
            load = Load(target, threads, tag=f"{how}{n}-")
            loads.append(load)
            load.start()
            time.sleep(load_s)
            sid = daemon.pid
            t0 = time.monotonic()
            if how == "group":
                os.killpg(sid, signal.SIGTERM)
            else:
                os.kill(daemon.pid, signal.SIGTERM)
            assert daemon.proc is not None
            try:
                daemon.proc.wait(timeout=120)
            except Exception:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(sid, signal.SIGKILL)
                daemon.proc.wait(timeout=30)
            stop_s = time.monotonic() - t0
            while session_processes(sid) and time.monotonic() - t0 < 60:
                time.sleep(0.1)
            all_gone_s = time.monotonic() - t0
            load.stop()
            report = daemon.stop()  # reaps the reader, ends leftovers of the session
            result: dict[str, Any] = {
                "how": how,
                "stop_s": round(stop_s, 2),
                "all_gone_s": round(all_gone_s, 2),
                "returncode": daemon.proc.returncode,
                "leftovers": report.get("leftovers", []),
                "requests": load.requests,
                "acknowledged": load.accepted,
                "failures_during_stop": load.failures,
                "stderr_tail": report.get("stderr_tail", []),
            }
            results.append(result)
            daemon = DaemonProcess(base / "data", free_port(), base / f"logs-{n + 1}")
            target = daemon.start(credentials)
            accepted = sum(x.accepted for x in loads)
            uncertain = sum(x.uncertain for x in loads)
            total = counted(target, expected=accepted)
            result["counted_after_restart"] = total
            # every acknowledged event is counted; events of requests whose answer was lost in the
            # stop may be counted too (they were logged before the connection broke)
            result["lost"] = max(0, accepted - total)
            result["unacknowledged_counted"] = max(0, total - accepted)
            result["uncertain_events"] = uncertain
    finally:
        daemon.stop()
    rows = stored_ids(base / "data", target.project_id)
    for result, load in zip(results, loads, strict=True):
        mine = {i: c for i, c in rows.items() if i.startswith(load.tag)}
        result["stored_twice"] = sum(1 for c in mine.values() if c > 1)
        result["acknowledged_not_stored"] = len(load.acked_ids - set(mine))
        # stored without an acknowledgement only for ids whose request had no definite answer
        result["stored_unexplained"] = len(set(mine) - load.acked_ids - load.uncertain_ids)
    return results


def run_all(
    hows: tuple[str, ...] | list[str],
    load_s: float = 5.0,
    threads: int = 4,
    keep_data: bool = False,
    echo: bool = False,
) -> list[dict[str, Any]]:
    """``measure`` each way on a fresh temporary data directory (kept when it failed)."""
    results = []
    for how in hows:
        base = Path(tempfile.mkdtemp(prefix=f"eventlens-stop-{how}-"))
        try:
            res = measure(how, base, load_s, threads)
        except Exception as exc:
            res = {"how": how, "error": f"{type(exc).__name__}: {exc}", "kept_data_dir": str(base)}
        results.append(res)
        if echo:
            print(json.dumps(res), flush=True)
        if "error" not in res and not keep_data:
            shutil.rmtree(base, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stoptime", description=__doc__.split("\n")[0])
    ap.add_argument("--how", default=",".join(HOWS), help="comma-separated subset of group,pid")
    ap.add_argument("--load-s", type=float, default=5.0, help="seconds of load before the signal")
    ap.add_argument("--threads", type=int, default=4, help="load threads (one connection each)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args(argv)
    hows = args.how.split(",")
    if set(hows) - set(HOWS):
        ap.error(f"--how: choose from {HOWS}")
    results = run_all(hows, args.load_s, args.threads, args.keep_data, echo=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(
        "error" not in r
        and r["lost"] == r["stored_twice"] == r["acknowledged_not_stored"] == r["stored_unexplained"] == 0
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
