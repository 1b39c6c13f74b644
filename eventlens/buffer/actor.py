"""Buffer shard actor: a thin shell scheduling ``BufferCore`` on Ray.

Threaded actor: ``append`` calls from ingest replicas run on the actor's threads; one flusher
thread seals and inserts by size or age, pushes presence and closes idle sessions. A restart
(Ray restarts it after a crash) re-runs ``__init__``, which replays whatever the log still holds.
The actor is handed the handles it talks to (the chDB owner, or None with a ClickHouse server; the
presence actor); which log and writer it uses is ``eventlens.backends``' decision.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import ray

from eventlens import backends
from eventlens.buffer.core import BufferConfig, BufferCore, Overloaded
from eventlens.buffer.recovery import (
    client_ids_loader,
    group_loader,
    open_sessions_loader,
    profile_loader,
    rebuild_ids,
)
from eventlens.buffer.sessions import CLIENT_IDS
from eventlens.config import Settings
from eventlens.gctune import tune_gc
from eventlens.metrics import ShardMetrics
from eventlens.storage.wal import Fenced

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)
class BufferShard:
    def __init__(self, settings_args: dict[str, Any], index: int, warehouse: Any, presence: Any) -> None:
        self.settings = s = Settings(**settings_args)
        self.index = index
        writer = backends.writer(s, warehouse)
        self.metrics = ShardMetrics(index)
        ids = backends.open_ids(s, index)
        if ids is not None:
            rebuild_ids(ids, writer.query, index)
        self.core = BufferCore(
            BufferConfig.from_settings(s, index),
            backends.open_wal(s, index),
            writer,
            open_sessions_loader(
                index, writer.query, ended_within_ms=(s.late_event_bound_s + s.session_timeout_s) * 1000
            ),
            profile_loader(writer.query),
            observer=self.metrics,
            client_ids=client_ids_loader(index, writer.query, CLIENT_IDS),
            ids=ids,
            load_group=group_loader(writer.query),
        )
        replayed = self.core.recover()
        self.metrics.started(ray.get_runtime_context().was_current_actor_reconstructed, replayed)
        self.presence = presence
        self._fenced_logged = False
        self._fenced_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()
        tune_gc()

    # called by ingest replicas ---------------------------------------------------------------
    def append(self, records: bytes | list[dict[str, Any]]) -> dict[str, Any]:
        """Log records (a JSON array from ``buffer.client.encode``, or a list) and answer per record."""
        if isinstance(records, bytes):
            records = orjson.loads(records)
        try:
            t0 = time.perf_counter()
            results = self.core.append(records)
            self.metrics.appended(time.perf_counter() - t0)
            return {"ok": True, "results": results}
        except Overloaded as exc:
            return {"ok": False, "error": "overloaded", "message": str(exc), "retry_after": exc.retry_after_s}
        except Fenced as exc:
            # a replacement owns the log: answered like an unavailable shard, the client retries
            self._log_fenced(exc)
            return {"ok": False, "error": "fenced", "message": str(exc), "retry_after": 1}
        except Exception as exc:  # the log refused the write (disk full, Redis down): nothing counted
            self.core.last_error = f"log write failed: {type(exc).__name__}: {exc}"[:500]
            log.warning("shard %s: %s", self.index, self.core.last_error)
            return {
                "ok": False,
                "error": "log_unavailable",
                "message": "the shard's log refused the write",
                "retry_after": 1,
            }

    def live_session(self, project: str, device_id: str, prev_device: str = "") -> dict[str, str]:
        """The device's live session, for ``GET /track/device-id`` (``BufferCore.live_session``)."""
        return self.core.live_session(project, device_id, prev_device)

    def _log_fenced(self, exc: Fenced) -> None:
        with self._fenced_lock:
            if self._fenced_logged:
                return
            self._fenced_logged = True
        log.error("shard %s stops: %s", self.index, exc)

    # background ------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        tick = min(self.settings.flush_max_age_ms, self.settings.presence_push_ms) / 1000 / 2
        last_expire = 0.0
        while not self._stop.is_set():
            try:
                batch = self.core.take_presence()
                if batch:
                    self.presence.add.remote(batch)
                now = time.monotonic()
                if now - last_expire >= 1.0:
                    self.core.expire_sessions()
                    with self.core.lock:
                        pending, live = self.core.pending, len(self.core.sessions.live)
                    self.metrics.state(pending, live)
                    last_expire = now
                if self.core.due():
                    t0 = time.perf_counter()
                    if self.core.flush():
                        self.metrics.flushed(time.perf_counter() - t0)
                self.core.last_error = ""
                backoff = 0.05
                self._stop.wait(tick)
            except Fenced as exc:  # the log has a newer owner: nothing left for this flusher to do
                self.core.fenced = exc
                self.core.last_error = str(exc)[:500]
                self._log_fenced(exc)
                return
            except Exception as exc:  # storage down: keep the log, retry with backoff
                self.core.stats["flush_errors"] += 1
                self.metrics.flush_failed()
                self.core.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("shard %s flush failed: %s", self.index, self.core.last_error)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.flush_retry_max_s)

    # control ---------------------------------------------------------------------------------
    def drain(self) -> dict[str, Any]:
        """Flush everything now (graceful shutdown); what fails stays in the log for next time."""
        try:
            self.core.expire_sessions(now=None)
            self.core.flush(force=True)
        except Exception as exc:
            self.core.last_error = f"{type(exc).__name__}: {exc}"[:500]
        return self.core.describe()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=30)
        state = self.drain()
        self.core.close()
        return state

    def describe(self) -> dict[str, Any]:
        return self.core.describe()

    def pid(self) -> int:
        import os

        return os.getpid()
