"""Dependency outages answer 503 + Retry-After naming the dependency; bugs still answer 500.

``TrackHandler`` and ``create_api`` are driven over ASGI with real or failing collaborators: a
rate limiter on a closed Redis port, metadata stores that fail, readers that raise.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from clickhouse_connect.driver import exceptions as ch
from ray import exceptions as ray_errors
from starlette.requests import Request

from eventlens import backends
from eventlens.api.auth import Authenticator
from eventlens.api.insights import create_api
from eventlens.api.track import TrackHandler
from eventlens.config import Settings
from eventlens.errors import OUTAGE_RETRY_AFTER_S, ClientError
from eventlens.ingest.salts import SaltCache
from eventlens.outage import is_outage
from eventlens.ratelimit import LocalRateLimiter, RedisRateLimiter
from eventlens.storage.metadata import MetadataError, MetadataStore
from eventlens.storage.metadata_backends import MySQLBackend
from tests.servers import MARIADB_URL, REDIS_URL

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLOSED_REDIS = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
RETRY_AFTER = str(OUTAGE_RETRY_AFTER_S)
EVENT = {"type": "track", "payload": {"name": "signup", "profileId": "u1"}}
BATCH = {"events": [EVENT, EVENT]}


# the classification ------------------------------------------------------------------------------
def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


OUTAGES = [
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("loading"),
    redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
    pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
    pymysql.err.InterfaceError(0, ""),
    MetadataError("cannot connect to mysql://root:***@db:3306/eventlens"),
    ch.OperationalError("Error executing HTTP request"),
    ch.DatabaseError("Received ClickHouse exception, code: 210", code=210),
    _caused(ch.DatabaseError("wrapped"), ConnectionResetError()),
    ray_errors.RayActorError(),
    ray_errors.ActorDiedError(),
    ray_errors.ActorUnavailableError("restarting", None),
    ray_errors.GetTimeoutError(),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    TimeoutError(),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    _caused(RuntimeError("driver wrapper"), ConnectionResetError()),
]
BUGS = [
    KeyError("x"),
    RuntimeError("storage down"),
    ValueError("bad"),
    FileNotFoundError(errno.ENOENT, "missing"),
    redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"),
    ch.DatabaseError("Received ClickHouse exception, code: 62", code=62),  # syntax error
    ch.ProgrammingError("bad query"),
    ClientError(400, "invalid_json", "no"),
    _caused(ClientError(401, "invalid_credentials", "no"), ConnectionResetError()),
    _caused(KeyError("x"), ValueError("y")),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_connection_timeout_and_driver_errors_are_outages(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize("exc", BUGS, ids=lambda e: type(e).__name__)
def test_bugs_and_query_errors_are_not_outages(exc: BaseException) -> None:
    assert not is_outage(exc)


# ingest --------------------------------------------------------------------------------------------
class FakeBuffer:
    def __init__(self) -> None:
        self.submitted: list[Any] = []

    async def submit(self, routed: list[Any]) -> list[dict[str, str]]:
        self.submitted.extend(routed)
        return [{} for _ in routed]


class FailingStore:
    """A metadata store whose database is gone, or whose code has a bug."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get_client(self, client_id: str) -> Any:
        raise self.exc

    def get_or_create_salt(self, day: Any) -> str:
        raise self.exc


def handler(
    tmp_path: Path,
    *,
    auth_store: Any,
    limiter: Any = None,
    salt_store: Any = None,
    buffer: FakeBuffer | None = None,
) -> TrackHandler:
    return TrackHandler(
        Settings(data_dir=tmp_path / "data"),
        Authenticator(auth_store),
        buffer or FakeBuffer(),
        SaltCache(salt_store or auth_store),
        limiter or LocalRateLimiter(100, 100),
    )


def post(track: TrackHandler, path: str, body: Any, headers: Mapping[str, str]) -> httpx.Response:
    """One request through the handler as IngestDeployment serves it, on one event loop."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await track.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            return await http.post(path, json=body, headers=dict(headers))

    return asyncio.run(main())


def assert_unavailable(r: httpx.Response, dependency: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == RETRY_AFTER
    body = r.json()
    assert body["error"] == f"{dependency}_unavailable" and body["details"] == []
    assert "Retry-After" in body["message"]
    for secret in ("s3cret", "127.0.0.1", "redis://", "mysql://", "Traceback"):
        assert secret not in r.text


@pytest.mark.redis(suite_server=False)  # a closed port only
@pytest.mark.parametrize(("path", "body"), [("/track", EVENT), ("/track/batch", BATCH)])
def test_redis_down_answers_503_and_logs_nothing(
    tmp_path: Path, store: MetadataStore, write_headers: dict[str, str], path: str, body: Any
) -> None:
    limiter = RedisRateLimiter(aioredis.Redis.from_url(CLOSED_REDIS), 10, 10, "eventlens-test:rl")
    buffer = FakeBuffer()
    track = handler(tmp_path, auth_store=store, limiter=limiter, buffer=buffer)
    r = post(track, path, body, {**write_headers, "origin": "https://shop.example"})
    assert_unavailable(r, "rate_limiter")
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert buffer.submitted == []


@pytest.mark.redis
def test_redis_rate_limiter_on_the_real_redis_still_allows(
    tmp_path: Path, store: MetadataStore, write_headers: dict[str, str], redis_prefix: str
) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            limiter = RedisRateLimiter(client, 10, 2, redis_prefix)
            assert [(await limiter.check("c")).allowed for _ in range(3)] == [True, True, False]
        finally:
            await client.aclose()

    asyncio.run(main())
    # and through the handler (a fresh client per event loop: redis.asyncio binds to its loop)
    limiter = RedisRateLimiter(aioredis.Redis.from_url(REDIS_URL), 10, 10, redis_prefix)
    buffer = FakeBuffer()
    r = post(
        handler(tmp_path, auth_store=store, limiter=limiter, buffer=buffer), "/track", EVENT, write_headers
    )
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    assert len(buffer.submitted) == 1


@pytest.mark.parametrize(("path", "body"), [("/track", EVENT), ("/track/batch", BATCH)])
def test_metadata_down_during_auth_answers_503(tmp_path: Path, path: str, body: Any) -> None:
    down = FailingStore(MetadataError("cannot connect to mysql://root:***@127.0.0.1:1/eventlens"))
    r = post(handler(tmp_path, auth_store=down), path, body, {"event-lens-client-id": "c1"})
    assert_unavailable(r, "metadata")


def test_metadata_down_during_salt_look_up_answers_503(
    tmp_path: Path, store: MetadataStore, write_headers: dict[str, str]
) -> None:
    lost = FailingStore(pymysql.err.OperationalError(2013, "Lost connection to MySQL server"))
    buffer = FakeBuffer()
    for path, body in (("/track", EVENT), ("/track/batch", BATCH)):
        r = post(
            handler(tmp_path, auth_store=store, salt_store=lost, buffer=buffer), path, body, write_headers
        )
        assert_unavailable(r, "metadata")
    assert buffer.submitted == []


def test_a_bug_in_a_dependency_call_is_still_a_500(tmp_path: Path) -> None:
    r = post(
        handler(tmp_path, auth_store=FailingStore(KeyError("id"))),
        "/track",
        EVENT,
        {"event-lens-client-id": "c1"},
    )
    assert r.status_code == 500 and r.json()["error"] == "internal"
    assert "retry-after" not in r.headers and "KeyError" not in r.text


@pytest.mark.mariadb
def test_a_mariadb_that_went_away_answers_503(tmp_path: Path) -> None:
    backend = MySQLBackend(f"{MARIADB_URL}/eventlens_outage_test")
    real = MetadataStore(backend)
    try:
        # the server "goes away": the connection drops and reconnecting finds a closed port
        backend.close()
        backend._params["port"] = 1
        r = post(handler(tmp_path, auth_store=real), "/track", EVENT, {"event-lens-client-id": "c1"})
        assert_unavailable(r, "metadata")
    finally:
        real.close()
        with pymysql.connect(host="127.0.0.1", user="root") as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS eventlens_outage_test")


# insights ------------------------------------------------------------------------------------------
class RaisingReader:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise self.exc

    async def ping(self, timeout_s: float = 3.0) -> bool:
        return True


class ReadAuth:
    async def authenticate(
        self, headers: Mapping[str, str], need: str, project_id: str | None = None
    ) -> None:
        return None


class DeadPresence:
    class count:
        @staticmethod
        async def remote(project: str) -> int:
            raise ray_errors.ActorDiedError()


def api(reader: Any, auth: Any = None, redis_ping: Any = None) -> TestClient:
    app = create_api(auth or ReadAuth(), reader, DeadPresence(), lambda: None, redis_ping=redis_ping)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "exc",
    [
        ch.OperationalError("Error HTTPConnectionPool(host='ch', port=8123): Connection refused"),
        ray_errors.ActorDiedError(),
        ray_errors.GetTimeoutError("timed out"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_storage_down_answers_503(exc: Exception) -> None:
    r = api(RaisingReader(exc)).get("/insights/p1/metrics")
    assert_unavailable(r, "storage")


@pytest.mark.parametrize(
    "exc", [KeyError("visitors"), ch.DatabaseError("code: 47, Unknown identifier", code=47)]
)
def test_a_query_bug_is_still_a_500_without_a_trace(exc: Exception) -> None:
    r = api(RaisingReader(exc)).get("/insights/p1/metrics")
    assert r.status_code == 500
    assert r.json() == {"error": "internal", "message": "internal error", "details": []}
    assert "retry-after" not in r.headers


class FrozenOwner:
    """The chDB owner actor with its process stopped: a call is sent and never answered."""

    class _never:
        @staticmethod
        def remote(*_: Any) -> asyncio.Future[Any]:
            return asyncio.get_running_loop().create_future()

    query = data_version = _never


def test_a_chdb_owner_that_does_not_answer_is_a_503_not_a_hang() -> None:
    """A frozen owner (SIGSTOP, tests/fault/test_storage_outage.py) once held insight requests until
    it resumed: the cache's version look-up and the query each wait a bounded time."""
    from eventlens.insights.cache import ActorVersions, InsightCache, LocalStore
    from eventlens.storage.reader import ACTOR_QUERY_TIMEOUT_S, ActorReader

    assert ACTOR_QUERY_TIMEOUT_S > 30  # beyond ClickHouse's own max_execution_time
    frozen = FrozenOwner()
    cache = InsightCache(LocalStore(60), ActorVersions(frozen, timeout_s=0.2), 60)
    app = create_api(ReadAuth(), ActorReader(frozen, timeout_s=0.3), DeadPresence(), lambda: None, cache)
    started = time.monotonic()
    r = TestClient(app, raise_server_exceptions=False).get("/insights/p1/metrics")
    assert_unavailable(r, "storage")
    assert time.monotonic() - started < 5


def test_metadata_down_during_insight_auth_answers_503() -> None:
    down = Authenticator(FailingStore(pymysql.err.OperationalError(2003, "Can't connect")))
    r = api(RaisingReader(KeyError("unreached")), auth=down).get(
        "/insights/p1/metrics", headers={"event-lens-client-id": "c1", "event-lens-client-secret": "s"}
    )
    assert_unavailable(r, "metadata")


def test_a_dead_presence_actor_answers_503() -> None:
    assert_unavailable(api(RaisingReader(KeyError("x"))).get("/insights/p1/live"), "presence")


# readiness -----------------------------------------------------------------------------------------
def _down() -> None:
    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1")


def test_ready_reports_redis_and_answers_503_when_it_is_down() -> None:
    up = api(RaisingReader(KeyError("x")), redis_ping=lambda: True).get("/ready")
    assert up.status_code == 200
    assert up.json() == {"status": "ready", "clickhouse": True, "metadata": True, "redis": True}
    down = api(RaisingReader(KeyError("x")), redis_ping=_down).get("/ready")
    assert down.status_code == 503 and down.headers["retry-after"] == RETRY_AFTER
    assert down.json() == {"status": "unavailable", "clickhouse": True, "metadata": True, "redis": False}


def test_ready_without_redis_configured_has_no_redis_entry(tmp_path: Path) -> None:
    assert backends.redis_ping(Settings(data_dir=tmp_path)) is None
    assert "redis" not in api(RaisingReader(KeyError("x"))).get("/ready").json()


@pytest.mark.redis
def test_the_backends_redis_ping_against_real_and_closed_redis(tmp_path: Path) -> None:
    real = backends.redis_ping(Settings(data_dir=tmp_path, redis_url=REDIS_URL))
    closed = backends.redis_ping(Settings(data_dir=tmp_path, redis_url=CLOSED_REDIS))
    assert real is not None and closed is not None
    assert api(RaisingReader(KeyError("x")), redis_ping=real).get("/ready").json()["redis"] is True
    r = api(RaisingReader(KeyError("x")), redis_ping=closed).get("/ready")
    assert r.status_code == 503 and r.json()["redis"] is False and "s3cret" not in r.text
