"""Buffer shard actor: a thin shell scheduling ``ShardCore`` on Ray.

Threaded actor: ``append`` calls from ingest replicas run on the actor's threads; one flusher
thread seals and inserts by size or age, pushes presence and closes idle sessions. A restart
(Ray restarts it after a crash) re-runs ``__init__``, which replays whatever the log still holds.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import ray

from eventlens.config import Settings
from eventlens.gctune import tune_gc
from eventlens.ingest.shard import Overloaded, ShardConfig, ShardCore
from eventlens.storage.tables import to_columns, to_json_rows
from eventlens.storage.wal import FileSegmentLog, RedisSegmentLog, SegmentLog

log = logging.getLogger(__name__)


def open_wal(settings: Settings, index: int) -> SegmentLog:
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        return RedisSegmentLog(client, f"eventlens:{settings.instance}:wal:{index}")
    return FileSegmentLog(settings.wal_dir / f"shard-{index:03d}", fsync=settings.wal_fsync == "always")


OPEN_SESSIONS_SQL = """
SELECT * EXCEPT (opened_at, started_at, ended_at), toUnixTimestamp64Milli(opened_at) AS opened_ms,
    toUnixTimestamp64Milli(started_at) AS started_ms, toUnixTimestamp64Milli(ended_at) AS ended_ms
FROM sessions FINAL
WHERE shard = {shard:UInt16} AND is_closed = 0 AND opened_at >= {since_start:DateTime64(3, 'UTC')}
"""


def storage_calls(settings: Settings) -> tuple[Any, Any]:
    """(insert, query) against the chDB owner actor, or straight to a ClickHouse server."""
    if settings.embedded_clickhouse:
        from eventlens.actors.registry import warehouse_actor

        actor = warehouse_actor(settings)

        def insert(table: str, rows: list[dict[str, Any]], token: str) -> Any:
            # the insert body is built here, in parallel shards, not in the one chDB owner process
            if settings.insert_format == "columnar":
                names, columns = to_columns(table, rows)
                call = actor.insert_columns.remote(table, names, orjson.dumps(columns), token)
                return ray.get(call, timeout=120)
            body = to_json_rows(table, rows)
            projects = sorted({r["project_id"] for r in rows})
            return ray.get(actor.insert_json.remote(table, body, projects, token), timeout=120)

        def query(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            return ray.get(actor.query.remote(sql, params), timeout=120)

        return insert, query
    from eventlens.storage.clickhouse import Warehouse

    wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)
    fmt = settings.insert_format

    def insert_rows(table: str, rows: list[dict[str, Any]], token: str) -> int:
        return wh.insert_rows(table, rows, token, fmt)

    if not settings.redis_url:
        return insert_rows, wh.query
    import redis

    from eventlens.insights.cache import bump_redis, projects_in, redis_versions_key

    client = redis.Redis.from_url(settings.redis_url)
    key = redis_versions_key(settings.instance)

    def insert_and_bump(table: str, rows: list[dict[str, Any]], token: str) -> Any:
        sent = insert_rows(table, rows, token)
        # insight caches key on the project's data version: bump it once the rows are stored
        bump_redis(client, key, projects_in(table, (r["project_id"] for r in rows)))
        return sent

    return insert_and_bump, wh.query


PROFILE_SQL = """
SELECT first_name, last_name, email, avatar, properties, toUnixTimestamp64Milli(updated_at) AS updated_at
FROM profiles FINAL
WHERE project_id = {p:String} AND profile_id = {id:String}
"""


def profile_loader(query: Any) -> Any:
    def load(project: str, profile_id: str) -> dict[str, Any] | None:
        rows = query(PROFILE_SQL, {"p": project, "id": profile_id})
        return rows[0] if rows else None

    return load


def open_sessions_loader(settings: Settings, index: int, query: Any) -> Any:
    def load() -> list[dict[str, Any]]:
        now = datetime.now(UTC).replace(tzinfo=None)
        # sessions that timed out while the shard was down come back too: the first expire()
        # closes them with a session_end and a final snapshot
        params = {"shard": index, "since_start": now - timedelta(days=2)}
        for attempt in range(10):  # storage may still be starting; sessions restart if it stays down
            try:
                rows = query(OPEN_SESSIONS_SQL, params)
                for r in rows:
                    r["opened_at"] = r.pop("opened_ms")
                    r["started_at"], r["ended_at"] = r.pop("started_ms"), r.pop("ended_ms")
                return rows
            except Exception as exc:
                log.warning("shard %s: cannot read open sessions (%s), attempt %d", index, exc, attempt + 1)
                time.sleep(min(0.5 * 2**attempt, 5))
        return []

    return load


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)
class BufferShard:
    def __init__(self, settings_args: dict[str, Any], index: int) -> None:
        self.settings = s = Settings(**settings_args)
        self.index = index
        config = ShardConfig(
            shard_id=f"{s.instance}-{index}",
            index=index,
            flush_max_events=s.flush_max_events,
            flush_max_age_ms=s.flush_max_age_ms,
            max_pending=s.wal_max_pending_events,
            session_timeout_ms=s.session_timeout_s * 1000,
            late_bound_ms=s.late_event_bound_s * 1000,
            insert_threads=s.flush_insert_threads,
        )
        insert, query = storage_calls(s)
        self.core = ShardCore(
            config, open_wal(s, index), insert, open_sessions_loader(s, index, query), profile_loader(query)
        )
        self.core.recover()
        from eventlens.actors.registry import presence_actor

        self.presence = presence_actor(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()
        tune_gc()

    # called by ingest replicas ---------------------------------------------------------------
    def append(self, records: bytes | list[dict[str, Any]]) -> dict[str, Any]:
        """Log records (a JSON array from ``api.handoff.encode``, or a list) and answer per record."""
        if isinstance(records, bytes):
            records = orjson.loads(records)
        try:
            return {"ok": True, "results": self.core.append(records)}
        except Overloaded as exc:
            return {"ok": False, "error": "overloaded", "message": str(exc), "retry_after": exc.retry_after_s}

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
                    last_expire = now
                if self.core.due():
                    self.core.flush()
                self.core.last_error = ""
                backoff = 0.05
                self._stop.wait(tick)
            except Exception as exc:  # storage down: keep the log, retry with backoff
                self.core.stats["flush_errors"] += 1
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
