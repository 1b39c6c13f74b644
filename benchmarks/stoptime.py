"""How long ``eventlens serve`` takes to stop under load, and that nothing acknowledged is lost.

    python -m benchmarks.stoptime [--how group,pid] [--load-s 5] [--json out.json]

For each way of stopping, on a fresh temporary data directory: start the daemon (``eventlens serve
--json`` in its own session), send batches of 100 events from a few threads, and while they run
send SIGTERM either to the daemon's whole process group (``group``: a terminal's Ctrl-C, systemd's
default ``KillMode=control-group``) or to the daemon process alone (``pid``: what Kubernetes does to
a container's main process). Measured: seconds from the signal until the daemon process has exited
(``stop_s``) and until no process of its session is left (``all_gone_s``). Then the daemon is
started again on the same directory and the run waits until every acknowledged event is counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
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
    """Threads posting ``/track/batch`` (100 events) until told to stop; counts what was accepted."""

    def __init__(self, target: Target, threads: int = 4, size: int = 100) -> None:
        self.target, self.size = target, size
        self.accepted = 0
        self.requests = 0
        self.uncertain = 0
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
                events = [
                    {"type": "track", "payload": {"name": "stop", "deviceId": f"w{worker}-{n}-{i % 10}"}}
                    for i in range(self.size)
                ]
                n += 1
                try:
                    r = c.post("/track/batch", json={"events": events}, headers=self.target.write_headers())
                    key = str(r.status_code)
                    accepted = int(r.json().get("accepted", 0)) if r.status_code == 200 else 0
                except (httpx.HTTPError, ValueError) as exc:
                    key, accepted = type(exc).__name__, 0
                    time.sleep(0.05)
                with self._lock:
                    self.requests += 1
                    self.accepted += accepted
                    if key != "200":
                        self.failures[key] = self.failures.get(key, 0) + 1
                    if key not in ("200", "ConnectError") and not key.startswith("4"):
                        # sent, answer lost or an error: its events may or may not be logged
                        self.uncertain += self.size


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


def measure(how: str, base: Path, load_s: float = 5.0, threads: int = 4) -> dict[str, Any]:
    """One stop under load: start, load, signal, time the exit, restart, compare counts."""
    daemon = DaemonProcess(base / "data", free_port(), base / f"logs-{how}")
    target = daemon.start()
    credentials = daemon.info.get("demo")
    load = Load(target, threads)
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
    again = DaemonProcess(base / "data", free_port(), base / f"logs-{how}-restart")
    target2 = again.start(credentials)
    try:
        result["counted_after_restart"] = counted(target2, expected=load.accepted)
    finally:
        again.stop()
    # acknowledged events must all be counted; events of requests whose answer was lost in the stop
    # may be counted too (they were logged before the connection broke)
    result["lost"] = max(0, load.accepted - result["counted_after_restart"])
    result["unacknowledged_counted"] = max(0, result["counted_after_restart"] - load.accepted)
    result["uncertain_events"] = load.uncertain
    return result


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
    return 0 if all("error" not in r and r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
