"""Scenario 5: peak resident memory of the daemon's process tree, sampled every 0.5 s.

A background thread walks the tree under the ``eventlens serve`` process (the CLI driver, gcs_server,
raylet, Ray's agents, every worker — Serve controller, proxy, replicas, buffer shards, warehouse,
presence — and HAProxy) and sums ``memory_info().rss``. Processes of the benchmark's own ``noop``
replica are excluded from the Event Lens figure (reported separately). The peak is the largest sum
seen; each sample is tagged with the scenario running at the time.

RSS counts shared pages (libraries, the plasma store's shared memory) once per process that maps
them, so the sum overstates real use; PSS (proportional set size, shared pages divided among their
users) is sampled every 5 s as a closer estimate of what the tree costs the machine.

The same samples give CPU time per process role, so each scenario can say where the 2 cores went.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarks._psutil import psutil

NAME = "memory"
EXCLUDE = re.compile(r"ServeReplica:noop")
MB = 1024 * 1024


def role_of(p: psutil.Process, root_pid: int) -> str:
    if p.pid == root_pid:
        return "eventlens serve (driver)"
    name = p.name()
    if name in ("gcs_server", "raylet", "haproxy"):
        return name
    cmd = p.cmdline()
    first = cmd[0] if cmd else name
    if first.startswith("ray::"):
        title = first.split()[0]
        return re.sub(r"\.[A-Za-z_][A-Za-z0-9_]*(\(\))?$", "", title)  # drop "<method>()"
    joined = " ".join(cmd)
    for marker, label in (
        ("dashboard/agent.py", "ray dashboard agent"),
        ("dashboard/dashboard.py", "ray dashboard head"),
        ("runtime_env/agent", "ray runtime-env agent"),
        ("log_monitor.py", "ray log monitor"),
        ("monitor.py", "ray monitor"),
        ("ray_client_server", "ray client server"),
        ("default_worker.py", "ray worker (starting)"),
    ):
        if marker in joined:
            return label
    return name


@dataclass
class TreeMonitor:
    root_pid: int
    interval_s: float = 0.5
    pss_every: int = 10
    phase: str = "start"
    samples: int = 0
    peak_rss: int = 0
    peak_at: str = ""
    peak_roles: dict[str, int] = field(default_factory=dict)
    peak_by_phase: dict[str, int] = field(default_factory=dict)
    peak_noop_rss: int = 0
    peak_pss: int = 0
    peak_pss_at: str = ""
    last_rss: int = 0
    nprocs_max: int = 0
    cpu: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (role, cpu seconds)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _procs: dict[int, psutil.Process] = field(default_factory=dict)

    def start(self) -> TreeMonitor:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def mark(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _tree(self) -> list[psutil.Process]:
        try:
            root = self._procs.get(self.root_pid) or psutil.Process(self.root_pid)
            kids = root.children(recursive=True)
        except psutil.Error:
            return []
        # reuse Process objects so psutil keeps its per-process caches
        procs = [root]
        for k in kids:
            procs.append(self._procs.get(k.pid, k))
        self._procs = {p.pid: p for p in procs}
        return procs

    def sample(self) -> None:
        with self._lock:
            procs = self._tree()
            if not procs:
                return
            self.samples += 1
            do_pss = self.samples % self.pss_every == 1
            total = noop = pss = 0
            roles: dict[str, int] = defaultdict(int)
            for p in procs:
                try:
                    role = role_of(p, self.root_pid)
                    if do_pss:
                        full = p.memory_full_info()
                        rss, proc_pss = full.rss, getattr(full, "pss", 0)
                    else:
                        rss, proc_pss = p.memory_info().rss, 0
                    t = p.cpu_times()
                    self.cpu[p.pid] = (role, t.user + t.system)
                except psutil.Error:
                    continue
                if EXCLUDE.search(role):
                    noop += rss
                    continue
                total += rss
                pss += proc_pss
                roles[role] += rss
            self.last_rss = total
            self.nprocs_max = max(self.nprocs_max, len(procs))
            self.peak_noop_rss = max(self.peak_noop_rss, noop)
            self.peak_by_phase[self.phase] = max(self.peak_by_phase.get(self.phase, 0), total)
            if total > self.peak_rss:
                self.peak_rss, self.peak_at, self.peak_roles = total, self.phase, dict(roles)
            if do_pss and pss > self.peak_pss:
                self.peak_pss, self.peak_pss_at = pss, self.phase

    def cpu_snapshot(self) -> dict[int, tuple[str, float]]:
        self.sample()
        with self._lock:
            return dict(self.cpu)

    @staticmethod
    def cpu_delta(a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]]) -> dict[str, float]:
        """CPU seconds per role between two snapshots (processes born in between count from zero)."""
        out: dict[str, float] = defaultdict(float)
        for pid, (role, secs) in b.items():
            prev = a.get(pid)
            out[role] += secs - (prev[1] if prev else 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.01}

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "interval_s": self.interval_s,
                "samples": self.samples,
                "processes_max": self.nprocs_max,
                "peak_rss_mb": round(self.peak_rss / MB, 1),
                "peak_during": self.peak_at,
                "peak_rss_by_role_mb": {
                    k: round(v / MB, 1) for k, v in sorted(self.peak_roles.items(), key=lambda kv: -kv[1])
                },
                "peak_rss_by_phase_mb": {k: round(v / MB, 1) for k, v in self.peak_by_phase.items()},
                "peak_pss_mb": round(self.peak_pss / MB, 1),
                "peak_pss_during": self.peak_pss_at,
                "noop_replica_peak_rss_mb_excluded": round(self.peak_noop_rss / MB, 1),
            }


def start(root_pid: int, interval_s: float = 0.5) -> TreeMonitor:
    with contextlib.suppress(psutil.Error):
        psutil.Process(root_pid)
    return TreeMonitor(root_pid, interval_s).start()
