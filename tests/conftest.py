"""Shared fixtures: one Ray per test session, and Event Lens daemons deployed into it on demand.

A daemon here is the same start-up ``eventlens serve`` runs (``eventlens.daemon.start``). Serve has
one HTTP port per Ray cluster, so variants (embedded defaults; MariaDB + Redis) take turns: asking
for another variant stops the current one's applications and actors and deploys the new one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# one picker of free ports for tests, benchmarks and the simulated cluster
from benchmarks.simcluster import free_port

# where the suite's MariaDB and Redis are; a test marked for one is skipped, or failed in CI, when
# it does not answer (tests/servers.py)
from tests.servers import MARIADB, MARIADB_URL, REDIS_URL, need

# Ray on loopback only (read when ray is imported): in cluster mode Ray would otherwise rewrite
# 127.0.0.1 to the machine's interface address, which the simulated cluster's nodes do not use.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# Fixtures that run a daemon on the test Ray cluster: a test using one must be marked ``ray``.
RAY_FIXTURES = frozenset({"ray_session", "daemons", "embedded", "shared", "metrics_port"})


def _refuse(backend: str, nodeid: str) -> Any:
    def refused(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"{nodeid} touches {backend} without @pytest.mark.{backend}")

    return refused


@pytest.fixture(autouse=True)
def _backends_need_markers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test touching Ray, chDB, Redis or MariaDB must say so with its marker: unmarked access fails,
    so ``-m "not ray"`` (and every other marker selection) really leaves those parts out."""
    marks = {m.name for m in request.node.iter_markers()}
    nodeid = request.node.nodeid
    if "ray" not in marks:
        import ray

        for name in ("init", "get", "get_actor"):
            monkeypatch.setattr(ray, name, _refuse("ray", nodeid))
    if "redis" not in marks:
        import redis.asyncio.connection
        import redis.connection

        monkeypatch.setattr(redis.connection.AbstractConnection, "connect", _refuse("redis", nodeid))
        monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "connect", _refuse("redis", nodeid))
    if "mariadb" not in marks:
        import pymysql.connections

        monkeypatch.setattr(pymysql.connections.Connection, "connect", _refuse("mariadb", nodeid))
    if "chdb" not in marks and "ray" not in marks:
        import clickhouse_connect

        real = clickhouse_connect.get_client

        def get_client(*args: Any, **kwargs: Any) -> Any:
            if str(kwargs.get("dsn", "")).startswith("chdb://"):
                raise RuntimeError(f"{nodeid} opens chDB without @pytest.mark.chdb")
            return real(*args, **kwargs)

        monkeypatch.setattr(clickhouse_connect, "get_client", get_client)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``mariadb`` or ``redis`` needs the suite's server: checked before any fixture
    (a daemon in shared mode) is set up, so a server that does not answer is one clear skip, or,
    under ``EVENTLENS_REQUIRE_SERVICES=1``, one clear failure, per test. ``suite_server=False``
    on the marker: the test reaches no server of the suite's (a closed port, its own server).

    A daemon fixture without its markers fails here too, before Ray or a daemon is started for it."""
    marks = {m.name for m in item.iter_markers()}
    names = set(getattr(item, "fixturenames", ()))
    if "shared" in names and not {"redis", "mariadb"} <= marks:
        pytest.fail(f"{item.nodeid} uses the shared-mode daemon without @pytest.mark.redis and mariadb")
    if "ray" not in marks and RAY_FIXTURES & names:
        pytest.fail(f"{item.nodeid} runs a daemon on Ray without @pytest.mark.ray")
    for service in ("mariadb", "redis"):
        mark = item.get_closest_marker(service)
        if mark is not None and mark.kwargs.get("suite_server", True):
            need(service)


def _daemon_of(item: pytest.Item) -> str | None:
    """The test daemon an item runs against: ``embedded``, ``shared``, its module's own, or none."""
    names = item.fixturenames
    spec = getattr(item, "callspec", None)
    if spec is not None and isinstance(spec.params.get("d"), str):
        return spec.params["d"]
    for name in ("embedded", "shared"):
        if name in names:
            return name
    return "own" if "d" in names or "daemons" in names else None


def _run_order(item: pytest.Item) -> tuple[bool, int, bool]:
    path = item.nodeid.replace("\\", "/")
    daemon = _daemon_of(item)
    rank = {None: 0, "embedded": 1, "shared": 2}.get(daemon, 3)
    return ("tests/cluster/" in path, rank, "tests/fault/" in path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Starting a test daemon takes 10-15 s: the tests on the embedded daemon run together, then
    those on the shared one, then the modules with a daemon of their own (5 starts instead of 13).
    The fault tests run last on each daemon, so that no other test sees one they restarted. The
    simulated multi-node cluster replaces the session's Ray (one Ray per process): its modules run
    last, after every test that uses the session's Ray. The sort is stable: a module's tests keep
    their order."""
    items.sort(key=_run_order)


MANAGERS: list[DaemonManager] = []


def release_session_ray() -> None:
    """Stop the session's daemon and Ray, so a simulated cluster can take over this process."""
    import ray

    for mgr in MANAGERS:
        mgr.stop()
    if ray.is_initialized():
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def storage_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The storage suite's ``Warehouse``: the ClickHouse server in ``EVENTLENS_TEST_CLICKHOUSE_URL``
    (a database of this module's own, dropped afterwards), else a chDB directory of this module's
    own (one chDB per process at a time: module scope). Tests using it are marked ``storage`` and
    ``chdb`` (chDB is what they open unless a server is given)."""
    from tests.storage import open_storage, release_storage, storage_target

    target = storage_target(tmp_path_factory.mktemp("chdb"))
    wh = open_storage(target)
    try:
        yield wh
    finally:
        release_storage(wh, target)


# where this session's Ray serves its metrics (Prometheus format), picked when Ray starts
_metrics_port: list[int] = []


@pytest.fixture(scope="session")
def metrics_port(ray_session: None) -> int:
    """The port of the test Ray's metrics agent: ``http://127.0.0.1:<port>/metrics``."""
    return _metrics_port[0]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    # HAProxy's side ports are fixed by default; pick free ones so a daemon running elsewhere on
    # this machine does not collide with the test cluster. Set before Ray starts.
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    # Serve keeps a stopped ingress replica draining 30 s by default so a load balancer can notice;
    # nothing balances in front of the tests, and variants switch several times per session.
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    import ray

    from eventlens.config import Settings
    from eventlens.daemon import init_ray

    # metrics reported to the agent every second (default 10 s), so a test sees them soon
    _metrics_port.append(free_port())
    init_ray(
        Settings(),
        num_cpus=2,
        _metrics_export_port=_metrics_port[0],
        _system_config={"metrics_report_interval_ms": 1000},
    )
    yield
    if not ray.is_initialized():  # a cluster module took over (and ended) Ray
        return
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


@dataclass
class Creds:
    project_id: str
    write_id: str
    write_secret: str
    read_id: str
    read_secret: str

    def write_headers(self) -> dict[str, str]:
        return {"event-lens-client-id": self.write_id, "event-lens-client-secret": self.write_secret}

    def read_headers(self) -> dict[str, str]:
        return {"event-lens-client-id": self.read_id, "event-lens-client-secret": self.read_secret}


@dataclass
class Daemon:
    name: str
    settings: Any
    url: str
    http: httpx.Client

    def new_project(self, name: str = "test") -> Creds:
        """A fresh project with a write and a read client: tests never see each other's data."""
        from eventlens.storage.metadata import open_metadata

        with open_metadata(self.settings.metadata_dsn) as store:
            p = store.create_project(name)
            w, ws = store.create_client(p.id, "write")
            r, rs = store.create_client(p.id, "read")
        assert ws and rs
        return Creds(p.id, w.id, ws, r.id, rs)

    def track(
        self,
        creds: Creds,
        payload: dict[str, Any],
        type_: str = "track",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.http.post(
            "/track", json={"type": type_, "payload": payload}, headers=headers or creds.write_headers()
        )

    def metrics(self, creds: Creds, **params: Any) -> dict[str, Any]:
        r = self.http.get(
            f"/insights/{creds.project_id}/metrics", params=params, headers=creds.read_headers()
        )
        assert r.status_code == 200, r.text
        return r.json()

    def wait_metric(
        self, creds: Creds, key: str, expected: int, timeout: float = 20, settle: float = 0.0
    ) -> dict[str, Any]:
        """Poll /metrics until ``key`` equals ``expected`` (then optionally check it stays there)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.metrics(creds)
            if last[key] == expected:
                if settle:
                    time.sleep(settle)
                    last = self.metrics(creds)
                    assert last[key] == expected, f"{key} moved to {last[key]} after reaching {expected}"
                return last
            time.sleep(0.1)
        raise AssertionError(f"{key} is {last.get(key)} after {timeout}s, expected {expected}: {last}")

    def actor(self, role: str) -> Any:
        import ray

        return ray.get_actor(self.settings.actor_name(role), namespace=self.settings.namespace)

    def flush(self) -> None:
        """Flush every shard's log now (what a graceful stop does, the shards keep running):
        everything acknowledged before the call is then stored, so an absence checked afterwards
        is an absence, not merely "not flushed yet"."""
        import ray

        shards = [self.actor(f"shard-{i}") for i in range(self.settings.shards)]
        for _ in range(5):  # a session ending meanwhile may leave a fresh marker: drain it too
            states = ray.get([s.drain.remote() for s in shards], timeout=60)
            if all(s["pending"] == 0 for s in states):
                return
        raise AssertionError(f"the shards did not flush: {states}")

    def stored_rows(self, creds: Creds, name: str | None = None) -> dict[str, int]:
        """Raw stored rows per event id: no FINAL and no uniq, so an event stored twice is two rows.
        Only events named ``name`` if given, else every event but the session markers."""
        import ray

        sql = "SELECT id, count() AS n FROM events WHERE project_id = {p:String} AND "
        params: dict[str, Any] = {"p": creds.project_id}
        if name is None:
            sql += "name NOT IN ('session_start', 'session_end')"
        else:
            sql += "name = {name:String}"
            params["name"] = name
        rows = ray.get(self.actor("warehouse").query.remote(sql + " GROUP BY id", params), timeout=60)
        return {r["id"]: int(r["n"]) for r in rows}

    def assert_stored_once(
        self,
        creds: Creds,
        acked: Collection[str],
        name: str | None = None,
        total: int | None = None,
        timeout: float = 30,
    ) -> None:
        """Every acknowledged id is stored exactly once and nothing else is (raw rows), and the
        rollup-backed ``totalEvents`` reaches that count (``total`` when other events count too)
        and stays there."""
        acked = set(acked)
        self.wait_metric(creds, "totalEvents", len(acked) if total is None else total, timeout, settle=1.0)
        rows = self.stored_rows(creds, name)
        twice = {k: v for k, v in rows.items() if v > 1}
        missing, extra = acked - set(rows), set(rows) - acked
        assert not twice, f"{len(twice)} ids stored more than once, e.g. {sorted(twice.items())[:5]}"
        assert not missing, f"{len(missing)} acknowledged ids not stored, e.g. {sorted(missing)[:5]}"
        assert not extra, f"{len(extra)} stored ids never acknowledged, e.g. {sorted(extra)[:5]}"


class DaemonManager:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.current: Daemon | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def settings_for(self, name: str, **overrides: Any) -> Any:
        from eventlens.config import Settings

        common: dict[str, Any] = {
            "data_dir": self.base / name,
            "port": self.port,
            "instance": f"t{uuid.uuid4().hex[:6]}",
            "create_demo": False,
            "shards": 2,
            "flush_max_age_ms": 200,
        }
        if name == "shared":
            common.update(
                metadata_url=f"{MARIADB_URL}/eventlens_test_{uuid.uuid4().hex[:8]}",
                redis_url=REDIS_URL,
                wal_max_pending_events=400,
                # low enough that a test can exceed it, shared through Redis
                rate_limit_per_second=50,
                rate_limit_burst=100,
                # a salt period short enough to watch a rotation ("midnight") within a test
                salt_rotation_s=20,
                # the shortest session timeout allowed, so session_end can be watched within a test
                session_timeout_s=60,
                # the other insert format: every shared-mode test also checks columnar inserts
                insert_format="columnar",
            )
        common.update(overrides)
        return Settings(**common)

    def use(self, name: str, **overrides: Any) -> Daemon:
        from eventlens import daemon

        if self.current and self.current.name == name and not overrides:
            return self.current
        self.stop()
        settings = self.settings_for(name, **overrides)
        running = daemon.start(settings)
        self.current = Daemon(name, settings, running.url, self.http)
        return self.current

    def restart(self) -> Daemon:
        """Stop the current daemon (drain) and start it again on the same data and databases."""
        from eventlens import daemon

        assert self.current
        cur = self.current
        daemon.stop(cur.settings, apps=["ingest", "api"], shutdown_serve=False)
        daemon.start(cur.settings)
        return cur

    def stop(self) -> None:
        from eventlens import daemon

        if self.current is None:
            return
        settings = self.current.settings
        self.current = None
        daemon.stop(settings, apps=["ingest", "api"], shutdown_serve=False)
        if settings.metadata_url and settings.metadata_url.startswith("mysql://"):
            _drop_mariadb(settings.metadata_url)
        if settings.redis_url:
            _clear_redis(settings.redis_url, f"eventlens:{settings.instance}:*")


def _drop_mariadb(url: str) -> None:
    import pymysql

    db = url.rsplit("/", 1)[1]
    conn = pymysql.connect(**MARIADB)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    finally:
        conn.close()


def _clear_redis(url: str, pattern: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    for key in r.scan_iter(pattern):
        r.delete(key)


@pytest.fixture(scope="session")
def daemons(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonManager]:
    mgr = DaemonManager(tmp_path_factory.mktemp("daemons"), free_port())
    MANAGERS.append(mgr)
    yield mgr
    mgr.stop()
    mgr.http.close()


@pytest.fixture(scope="module")
def embedded(daemons: DaemonManager) -> Daemon:
    return daemons.use("embedded")


@pytest.fixture(scope="module")
def shared(daemons: DaemonManager) -> Daemon:
    return daemons.use("shared")


def eventually(check: Callable[[], bool], timeout: float = 20, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")
