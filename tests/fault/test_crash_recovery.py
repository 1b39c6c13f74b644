"""Crash tests: kill processes in the middle of a stream of acknowledged events, then check that
every acknowledged event is stored exactly once: the raw rows per client id (no FINAL, no uniq, so
a duplicate is a second row; nothing unacknowledged stored) and the rollup-backed ``totalEvents``.

Senders behave like a well-made SDK: every event carries a client id, and a request that fails
(connection reset, 5xx, 429) is retried with the same ids until it is acknowledged.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest
import ray

from tests.conftest import Creds, Daemon, DaemonManager, eventually

pytestmark = pytest.mark.ray


class Stream:
    """Background senders of batches with client ids; records what was acknowledged."""

    def __init__(self, d: Daemon, creds: Creds, senders: int = 3, batches: int = 60, size: int = 10) -> None:
        self.d, self.creds = d, creds
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.failures = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(w, batches, size), daemon=True) for w in range(senders)
        ]

    def _post(self, client: httpx.Client, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        try:
            r = client.post("/track/batch", json={"events": events}, headers=self.creds.write_headers())
        except httpx.HTTPError:
            return None
        if r.status_code == 200:
            return r.json()
        assert r.status_code in (429, 500, 502, 503, 504), r.text
        return None

    def _run(self, worker: int, batches: int, size: int) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=self.d.url, timeout=30) as client:
            for b in range(batches):
                ids = [f"w{worker}-b{b}-e{i}" for i in range(size)]
                events = [
                    {
                        "type": "track",
                        "payload": {"name": "tick", "id": eid, "deviceId": f"dev-{worker}-{i % 7}"},
                    }
                    for i, eid in enumerate(ids)
                ]
                with self.lock:
                    self.sent.update(ids)
                pending = list(range(size))
                while pending and time.monotonic() < deadline:
                    body = self._post(client, [events[i] for i in pending])
                    if body is None:
                        with self.lock:
                            self.failures += 1
                        time.sleep(0.2)
                        continue
                    rejected = {r["index"] for r in body["rejected"]}
                    with self.lock:
                        self.acked.update(ids[pending[j]] for j in range(len(pending)) if j not in rejected)
                    pending = [pending[j] for j in sorted(rejected)]
                    if pending:
                        time.sleep(0.2)
                time.sleep(0.01)

    def start(self) -> Stream:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=150)
        assert not any(t.is_alive() for t in self.threads)


def _assert_exactly_once(d: Daemon, creds: Creds, stream: Stream) -> None:
    assert stream.acked == stream.sent, "every event was eventually acknowledged"
    d.assert_stored_once(creds, stream.acked, name="tick")


def test_sigkill_buffer_actors_mid_stream(embedded: Daemon) -> None:
    d = embedded
    creds = d.new_project()
    pids = [ray.get(d.actor(f"shard-{i}").pid.remote()) for i in range(d.settings.shards)]
    stream = Stream(d, creds).start()
    time.sleep(1.0)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.7)
    stream.join()
    new_pids = [ray.get(d.actor(f"shard-{i}").pid.remote()) for i in range(d.settings.shards)]
    assert set(new_pids).isdisjoint(pids), "the shards were restarted by Ray"
    _assert_exactly_once(d, creds, stream)


def _ingest_replica_pids() -> list[int]:
    # the GCS actor table (the state API would need the dashboard, which tests do not start)
    from ray._private import state

    table = state.actors()
    return [
        int(a["Pid"])
        for a in table.values()
        if a["State"] == "ALIVE" and "IngestDeployment" in a["ActorClassName"] and a["Pid"]
    ]


def test_sigkill_ingest_replica_mid_stream(embedded: Daemon) -> None:
    d = embedded
    creds = d.new_project()
    before = _ingest_replica_pids()
    assert before
    stream = Stream(d, creds).start()
    time.sleep(1.0)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    stream.join()
    eventually(lambda: bool(_ingest_replica_pids()), timeout=60)
    assert set(_ingest_replica_pids()).isdisjoint(before)
    _assert_exactly_once(d, creds, stream)


def _deploy_ingest(d: Daemon, **changes: Any) -> None:
    """``serve.run`` the ingest application again, as a redeploy of a changed config would."""
    import importlib

    from ray import serve

    from eventlens.daemon import DEFAULT_CONFIG, load_apps

    _, apps = load_apps(DEFAULT_CONFIG)
    [spec] = [a for a in apps if a["name"] == "ingest"]
    module, func = spec["import_path"].split(":")
    builder = getattr(importlib.import_module(module), func)
    args = {**(spec.get("args") or {}), **d.settings.to_args(), **changes}
    serve.run(builder(args), name="ingest", route_prefix=spec["route_prefix"], blocking=False)


def test_redeploying_ingest_mid_stream_loses_nothing(embedded: Daemon) -> None:
    """A redeploy replaces every ingest replica while batches are in flight: what was acknowledged
    is counted exactly once (refused requests are retried by the client, as SDKs do)."""
    d = embedded
    creds = d.new_project()
    before = _ingest_replica_pids()
    stream = Stream(d, creds, batches=800).start()
    time.sleep(1.0)
    try:
        _deploy_ingest(d, handoff_ms=d.settings.handoff_ms + 1)  # a changed config: new replicas
        eventually(
            lambda: bool(_ingest_replica_pids()) and set(_ingest_replica_pids()).isdisjoint(before), 60
        )
        acked_at_switch = len(stream.acked)
        assert any(t.is_alive() for t in stream.threads), "the stream outlasted the redeploy"
        stream.join()
        assert len(stream.acked) > acked_at_switch  # the new replicas took traffic too
    finally:
        _deploy_ingest(d)  # back to the session's configuration for the tests that follow
    _assert_exactly_once(d, creds, stream)


def test_stop_and_restart_daemon_loses_nothing(daemons: DaemonManager, embedded: Daemon) -> None:
    d = embedded
    creds = d.new_project()
    n = 300
    ids = [f"s{i}" for i in range(n)]
    body = {
        "events": [
            {"type": "track", "payload": {"name": "tick", "id": e, "deviceId": f"d{i % 11}"}}
            for i, e in enumerate(ids)
        ]
    }
    r = d.http.post("/track/batch", json=body, headers=creds.write_headers())
    assert r.json()["accepted"] == n
    daemons.restart()  # graceful: drain, stop, start again
    d.assert_stored_once(creds, ids, name="tick")
    assert d.metrics(creds)["uniqueVisitors"] == 11


def test_unflushed_log_is_replayed_after_a_hard_stop(daemons: DaemonManager, embedded: Daemon) -> None:
    """Kill every shard without draining while events wait in the log; a new start replays them."""
    from eventlens import daemon

    d = embedded
    creds = d.new_project()
    wh = d.actor("warehouse")
    ray.get(wh.pause_writes.remote(True))  # nothing can be flushed: all of it sits in the log
    n = 200
    ids = [f"h{i}" for i in range(n)]
    body = {"events": [{"type": "track", "payload": {"name": "tick", "id": e}} for e in ids]}
    assert d.http.post("/track/batch", json=body, headers=creds.write_headers()).json()["accepted"] == n
    pending = sum(
        ray.get(d.actor(f"shard-{i}").describe.remote())["pending"] for i in range(d.settings.shards)
    )
    assert pending >= n
    for i in range(d.settings.shards):
        ray.kill(d.actor(f"shard-{i}"), no_restart=True)
    ray.get(wh.pause_writes.remote(False))
    daemon.start_actors(d.settings)  # what `eventlens serve` does on start: recreate and replay
    d.assert_stored_once(creds, ids, name="tick")
    # the replica's shard handles must still work after the shards were recreated
    daemons.restart()
    assert d.track(creds, {"name": "tick", "id": "after"}).status_code == 200
    d.assert_stored_once(creds, [*ids, "after"], name="tick")


def test_logs_of_shards_past_a_lowered_shard_count_are_flushed_at_start(
    daemons: DaemonManager, embedded: Daemon
) -> None:
    """Events wait in both shards' logs, then the daemon starts with one shard fewer: the orphaned
    log is replayed and flushed by a temporary shard, and every event is counted once."""
    from eventlens import daemon

    d = embedded
    assert d.settings.shards == 2
    creds = d.new_project()
    wh = d.actor("warehouse")
    ray.get(wh.pause_writes.remote(True))
    n = 200
    ids = [f"o{i}" for i in range(n)]
    body = {
        "events": [
            {"type": "track", "payload": {"name": "tick", "id": e, "deviceId": f"dev{i % 23}"}}
            for i, e in enumerate(ids)
        ]
    }
    assert d.http.post("/track/batch", json=body, headers=creds.write_headers()).json()["accepted"] == n
    pending = [ray.get(d.actor(f"shard-{i}").describe.remote())["pending"] for i in range(2)]
    assert all(pending), pending  # both logs hold events
    for i in range(2):
        ray.kill(d.actor(f"shard-{i}"), no_restart=True)
    ray.get(wh.pause_writes.remote(False))
    one = d.settings.model_copy(update={"shards": 1})
    assert daemon.orphan_logs(one) == [1]
    daemon.start_actors(one)
    assert daemon.orphan_logs(one) == []
    assert not list((one.wal_dir / "shard-001").glob("*.wal"))
    d.assert_stored_once(creds, ids, name="tick")
    daemons.restart()  # back to two shards for the tests that follow
    assert d.track(creds, {"name": "tick", "id": "after"}).status_code == 200
    d.assert_stored_once(creds, [*ids, "after"], name="tick")


@pytest.mark.redis
@pytest.mark.mariadb
def test_backpressure_503_when_storage_is_down_then_drains(shared: Daemon) -> None:
    d = shared
    creds = d.new_project()
    wh = d.actor("warehouse")
    ray.get(wh.pause_writes.remote(True))
    try:
        eventually(lambda: d.http.get("/ready").status_code == 503, timeout=10)
        accepted_ids: set[str] = set()
        refused = None
        for b in range(30):  # the log bound is 400 per shard: this overflows it
            ids = [f"bp-{b}-{i}" for i in range(100)]
            events = [
                {"type": "track", "payload": {"name": "tick", "id": e, "deviceId": f"x{i}"}}
                for i, e in enumerate(ids)
            ]
            r = d.http.post("/track/batch", json={"events": events}, headers=creds.write_headers())
            if r.status_code == 503:
                refused = r
                break
            assert r.status_code == 200, r.text
            rejected = {x["index"] for x in r.json()["rejected"]}
            accepted_ids.update(e for i, e in enumerate(ids) if i not in rejected)
            if rejected:
                assert r.headers["retry-after"]
                assert all(x["error"] == "unavailable" for x in r.json()["rejected"])
        assert refused is not None, "ingest never pushed back"
        assert refused.json()["error"] == "storage_unavailable"
        assert int(refused.headers["retry-after"]) >= 1
        # a single event still fits until its shard's log is full to the last slot
        for i in range(d.settings.wal_max_pending_events + 1):
            single = d.track(creds, {"name": "tick", "deviceId": "x1", "id": f"single-{i}"})
            if single.status_code != 200:
                break
            accepted_ids.add(f"single-{i}")
        assert single.status_code == 503 and single.headers["retry-after"]
        assert accepted_ids
        # Not stored while paused: checked once every shard holding events has tried to flush
        # after the last one was logged (and its active segment was due), so that the zero below
        # is the pause at work rather than a flush that has not come round yet.
        time.sleep(d.settings.flush_max_age_ms / 1000)
        tried = _flush_errors(d)
        assert any(was >= 0 for was in tried), "the shards hold the accepted events"
        eventually(
            lambda: all(now > was for now, was in zip(_flush_errors(d), tried, strict=True) if was >= 0), 20
        )
        assert d.metrics(creds)["totalEvents"] == 0
        assert d.stored_rows(creds) == {}
    finally:
        ray.get(wh.pause_writes.remote(False))
    # what was acknowledged is stored once; what was refused (never acknowledged) is not stored
    d.assert_stored_once(creds, accepted_ids, name="tick")
    assert d.http.get("/ready").status_code == 200
    assert d.track(creds, {"name": "tick", "id": "after"}).status_code == 200
    d.assert_stored_once(creds, {*accepted_ids, "after"}, name="tick")


def _flush_errors(d: Daemon) -> list[int]:
    """Failed flush attempts per shard that holds unflushed events (-1 for an empty shard, which
    does not try)."""
    states = [ray.get(d.actor(f"shard-{i}").describe.remote()) for i in range(d.settings.shards)]
    return [s["flush_errors"] if s["pending"] else -1 for s in states]
