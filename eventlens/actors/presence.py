"""Live presence: visitors seen per project in the last few minutes, in memory only."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import ray

from eventlens.metrics import LiveMetrics

# how often the actor prunes and reports the live visitors of all projects (a gauge)
GAUGE_EVERY_S = 2.0


class PresenceBook:
    """Newest time per (project, device); a device counts while that time is inside the window."""

    def __init__(self, window_s: int) -> None:
        self.window_ms = window_s * 1000
        self.seen: dict[str, dict[str, int]] = {}
        self.pruned_ms = 0

    def add(self, batch: Iterable[tuple[str, str, int]], now_ms: int | None = None) -> None:
        for project, device, ts in batch:
            devices = self.seen.setdefault(project, {})
            if ts > devices.get(device, 0):
                devices[device] = ts
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if now_ms - self.pruned_ms >= self.window_ms:
            self.prune(now_ms)  # projects nobody asks /live about must not grow without bound

    def prune(self, now_ms: int) -> None:
        cutoff = now_ms - self.window_ms
        for project in list(self.seen):
            devices = {d: ts for d, ts in self.seen[project].items() if ts >= cutoff}
            if devices:
                self.seen[project] = devices
            else:
                del self.seen[project]
        self.pruned_ms = now_ms

    def total(self, now_ms: int | None = None) -> int:
        """Visitors in the window, all projects together."""
        self.prune(int(time.time() * 1000) if now_ms is None else now_ms)
        return sum(len(devices) for devices in self.seen.values())

    def count(self, project: str, now_ms: int | None = None) -> int:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        devices = self.seen.get(project)
        if not devices:
            return 0
        cutoff = now_ms - self.window_ms
        stale = [d for d, ts in devices.items() if ts < cutoff]
        for d in stale:
            del devices[d]
        return len(devices)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class PresenceActor:
    def __init__(self, window_s: int) -> None:
        self.book = PresenceBook(window_s)
        self.lock = threading.Lock()  # the gauge thread reads the book between calls
        self.metrics = LiveMetrics()
        threading.Thread(target=self._report, name="live-gauge", daemon=True).start()

    def add(self, batch: list[tuple[str, str, int]]) -> None:
        with self.lock:
            self.book.add(batch)

    def count(self, project: str) -> int:
        with self.lock:
            return self.book.count(project)

    def _report(self) -> None:
        while True:
            with self.lock:
                total = self.book.total()
            self.metrics.visitors(total)
            time.sleep(GAUGE_EVERY_S)
