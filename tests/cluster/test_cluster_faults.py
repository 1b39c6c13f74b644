"""Event Lens on a simulated three-node Ray cluster, under load, through faults.

One head and two workers, one CPU each, all on loopback; every node runs a Serve proxy on its own
port. Storage: embedded chDB owned by an actor pinned to the head (where its data directory is);
the shards' write-ahead logs in a private Redis with AOF fsync on every write; metadata in a
private MariaDB. Traffic is single events and batches with client ids, retried with the same ids
until acknowledged, spread over every node's proxy. After each fault every acknowledged event must
be stored exactly once: in the raw ``events`` rows and in the rollups the dashboards read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from benchmarks.simcluster import SimulatedCluster, Worker
from tests.cluster.load import Traffic
from tests.cluster.services import MariaDBServer, RedisServer
from tests.conftest import Creds, Daemon, free_port, release_session_ray

# Redis and MariaDB: private servers this module starts, not the suite's (tests/servers.py)
pytestmark = [
    pytest.mark.ray,
    pytest.mark.redis(suite_server=False),
    pytest.mark.mariadb(suite_server=False),
    pytest.mark.chdb,
]


class Sim:
    def __init__(self, base: Path) -> None:
        self.redis = RedisServer(base / "redis")
        self.mariadb = MariaDBServer(base / "mariadb")
        self.cluster = SimulatedCluster()
        self.base = base
        self.daemon: Daemon | None = None

    def start(self) -> Sim:
        from eventlens import daemon
        from eventlens.config import Settings

        self.redis.start()
        self.mariadb.start()
        self.cluster.start(workers=2)
        settings = Settings(
            ray_address=self.cluster.address,
            data_dir=self.base / "data",
            port=free_port(),
            instance=f"c{uuid.uuid4().hex[:6]}",
            create_demo=False,
            shards=3,
            ingest_replicas=3,
            ingest_max_replicas_per_node=1,
            insights_replicas=1,
            flush_max_age_ms=200,
            wal_max_pending_events=2000,  # small enough for a storage outage to fill a log within a test
            metadata_url=self.mariadb.url("eventlens"),
            redis_url=self.redis.url,
            redis_require_durable=True,  # the private Redis is durable: starting proves the check passes
        )
        running = daemon.start(settings)
        self.daemon = Daemon("cluster", settings, running.url, httpx.Client(base_url=running.url, timeout=30))
        return self

    def urls(self) -> list[str]:
        assert self.daemon
        return [self.daemon.url, *(w.url for w in self.cluster.workers)]

    def stop(self) -> None:
        # no graceful drain: the cluster and its services are thrown away (Serve's controller would
        # spend 30 s looking for the crashed node's replicas)
        try:
            if self.daemon is not None:
                self.daemon.http.close()
            self.cluster.shutdown()
        finally:
            self.redis.stop()
            self.mariadb.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    release_session_ray()
    s = Sim(tmp_path_factory.mktemp("cluster"))
    try:
        yield s.start()
    finally:
        s.stop()


def placement() -> dict[str, list[str]]:
    """Node ids by actor, from the GCS actor table (the state API would need the dashboard)."""
    from ray._private import state

    out: dict[str, list[str]] = {}
    for a in state.actors().values():
        if a["State"] != "ALIVE":
            continue
        key = a["Name"] or a["ActorClassName"]
        if "IngestDeployment" in a["ActorClassName"]:
            key = "ingest"
        out.setdefault(key, []).append(a["Address"]["NodeID"])
    return out


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # a node or replica still coming back
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def stored(sim: Sim, creds: Creds) -> dict[str, int]:
    """Raw stored rows per client id (no FINAL: a duplicate would be a second row)."""
    assert sim.daemon
    wh = sim.daemon.actor("warehouse")
    rows = ray.get(
        wh.query.remote(
            "SELECT id, count() AS n FROM events WHERE project_id = {p:String} AND name = 'tick' GROUP BY id",
            {"p": creds.project_id},
        ),
        timeout=60,
    )
    return {r["id"]: int(r["n"]) for r in rows}


def total_events(sim: Sim, creds: Creds) -> int | None:
    assert sim.daemon
    r = sim.daemon.http.get(f"/insights/{creds.project_id}/metrics", headers=creds.read_headers())
    return int(r.json()["totalEvents"]) if r.status_code == 200 else None


def assert_exactly_once(sim: Sim, creds: Creds, traffic: Traffic) -> None:
    assert traffic.acked == traffic.sent, f"{len(traffic.sent - traffic.acked)} events never acknowledged"
    assert 500 not in traffic.statuses, traffic.statuses
    n = len(traffic.acked)
    # the rollups (the dashboards' default path) reach the acknowledged count, and stay there
    wait_for(lambda: total_events(sim, creds) == n, 60, f"totalEvents == {n}")
    time.sleep(2)
    assert total_events(sim, creds) == n
    rows = stored(sim, creds)
    twice = {k: v for k, v in rows.items() if v > 1}
    assert not twice, f"{len(twice)} events stored more than once, e.g. {list(twice.items())[:5]}"
    assert set(rows) == traffic.acked


def test_placement_spreads_over_nodes(sim: Sim) -> None:
    assert sim.daemon
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 3
    where = placement()
    s = sim.daemon.settings
    shard_nodes = [where[s.actor_name(f"shard-{i}")][0] for i in range(s.shards)]
    print(f"\nshards on nodes {[n[:6] for n in shard_nodes]} of {sorted(n[:6] for n in nodes)}")
    assert len(set(shard_nodes)) == 3, f"one shard per node: {shard_nodes}"
    assert set(where["ingest"]) == nodes, "an ingest replica on every node"
    head = ray.get_runtime_context().get_node_id()
    assert where[s.actor_name("warehouse")] == [head], "the chDB owner sits where its data directory is"
    for url in sim.urls():  # every node's proxy serves
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200


def _victim(sim: Sim) -> tuple[Worker, list[int]]:
    """A worker node holding a shard and an ingest replica, and the shards it holds."""
    assert sim.daemon
    s = sim.daemon.settings
    where = placement()
    for w in sim.cluster.workers:
        shards = [i for i in range(s.shards) if where[s.actor_name(f"shard-{i}")][0] == w.node_id]
        if shards and w.node_id in where["ingest"]:
            return w, shards
    raise AssertionError(f"no worker holds both a shard and an ingest replica: {where}")


def test_node_crash_under_load_then_a_new_node(sim: Sim) -> None:
    assert sim.daemon
    d, s = sim.daemon, sim.daemon.settings
    creds = d.new_project()
    victim, shards = _victim(sim)
    pids = {i: ray.get(d.actor(f"shard-{i}").pid.remote(), timeout=30) for i in shards}
    traffic = Traffic(sim.urls(), creds).start()
    try:
        time.sleep(4)
        crashed_at = time.monotonic()
        left = sim.cluster.crash(victim)
        traffic.set_urls(sim.urls())  # the balancer takes the dead node out
        for i in shards:  # each of its shards restarts on a surviving node and replays its log

            def moved(i: int = i) -> bool:
                where = placement().get(s.actor_name(f"shard-{i}"), [])
                return bool(where) and where[0] != victim.node_id

            wait_for(moved, 90, f"shard {i} restarted elsewhere")
            wait_for(lambda i=i: ray.get(d.actor(f"shard-{i}").describe.remote(), timeout=10), 60, "answers")
        restarted_s = time.monotonic() - crashed_at
        acked_at_crash = len(traffic.acked)
        time.sleep(3)
        new = sim.cluster.add_worker()  # a replacement node joins, gets the third ingest replica
        # back (at most one per node) and with it a proxy, which takes traffic
        wait_for(lambda: httpx.get(f"{new.url}/ready", timeout=5).status_code == 200, 90, "new node serves")
        traffic.set_urls(sim.urls())
        time.sleep(4)
    finally:
        traffic.stop()
    assert len(traffic.acked) > acked_at_crash, "traffic went on after the crash"
    assert_exactly_once(sim, creds, traffic)
    after = {i: ray.get(d.actor(f"shard-{i}").describe.remote(), timeout=30) for i in shards}
    print(
        f"\nnode crash: shards {shards} back in {restarted_s:.1f}s, replayed "
        f"{[after[i]['replayed'] for i in shards]} events, {len(traffic.acked)} acknowledged, "
        f"statuses {dict(traffic.statuses)}, left-behind pids ended: {left}"
    )
    assert all(ray.get(d.actor(f"shard-{i}").pid.remote(), timeout=30) != pids[i] for i in shards)


def test_redis_crash_and_restart_mid_stream(sim: Sim) -> None:
    assert sim.daemon
    creds = sim.daemon.new_project()
    traffic = Traffic(sim.urls(), creds).start()
    try:
        time.sleep(3)
        sim.redis.crash()  # SIGKILL: only what the AOF holds survives
        time.sleep(4)
        sim.redis.start()
        time.sleep(5)
    finally:
        traffic.stop()
    assert traffic.statuses[503] > 0, f"the outage was seen: {traffic.statuses}"
    assert traffic.no_retry_after == 0
    assert_exactly_once(sim, creds, traffic)
    print(f"\nRedis crash: {len(traffic.acked)} acknowledged, statuses {dict(traffic.statuses)}")


def test_mariadb_stopped_for_20s_mid_stream(sim: Sim) -> None:
    assert sim.daemon
    d = sim.daemon
    creds = d.new_project()
    traffic = Traffic(sim.urls(), creds).start()
    unknown = {"event-lens-client-id": str(uuid.uuid4()), "event-lens-client-secret": "x" * 32}
    try:
        time.sleep(3)
        sim.mariadb.stop()
        stopped_at = time.monotonic()
        # readiness says so, and a client the replicas have not seen cannot be checked: 503, not 401/500
        wait_for(lambda: d.http.get("/ready").status_code == 503, 15, "/ready reports the outage")
        r = d.http.post("/track", json={"type": "track", "payload": {"name": "tick"}}, headers=unknown)
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))
        sim.mariadb.start()
        wait_for(lambda: d.http.get("/ready").status_code == 200, 30, "/ready again")
        time.sleep(3)
    finally:
        traffic.stop()
    assert traffic.no_retry_after == 0
    assert_exactly_once(sim, creds, traffic)
    print(f"\nMariaDB stop: {len(traffic.acked)} acknowledged, statuses {dict(traffic.statuses)}")


def test_storage_outage_mid_stream(sim: Sim) -> None:
    """ClickHouse refuses writes for 8 s under load: the logs hold what is acknowledged, ingest
    pushes back with 503 + Retry-After once a log is full, and everything lands once afterwards."""
    assert sim.daemon
    d = sim.daemon
    creds = d.new_project()
    wh = d.actor("warehouse")
    traffic = Traffic(sim.urls(), creds).start()
    try:
        time.sleep(2)
        ray.get(wh.pause_writes.remote(True), timeout=30)
        wait_for(lambda: d.http.get("/ready").status_code == 503, 15, "/ready reports the outage")
        time.sleep(8)
    finally:
        ray.get(wh.pause_writes.remote(False), timeout=30)
        time.sleep(3)
        traffic.stop()
    assert traffic.statuses[503] > 0, f"ingest pushed back: {traffic.statuses}"
    assert traffic.no_retry_after == 0
    assert_exactly_once(sim, creds, traffic)
    print(f"\nstorage outage: {len(traffic.acked)} acknowledged, statuses {dict(traffic.statuses)}")
