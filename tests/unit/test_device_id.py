"""``GET /track/device-id`` without Ray: the shard's answer from its live sessions, the device id
equal to the one ``/track`` derives, and the HTTP layer (auth, method, parameters, CORS, outage)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from eventlens.api.auth import Authenticator
from eventlens.api.track import DEVICE_ID_MESSAGES, TrackHandler
from eventlens.buffer.client import BufferClient, ShardUnavailable, shard_of
from eventlens.buffer.sessions import Sessionizer
from eventlens.config import Settings
from eventlens.ingest.context import build_context
from eventlens.ingest.identity import cookieless
from eventlens.ingest.pipeline import Limits, prepare
from eventlens.ingest.salts import SaltCache
from eventlens.ratelimit import LocalRateLimiter
from eventlens.storage.metadata import MetadataStore, open_metadata

MIN = 60_000
TIMEOUT = 30 * MIN
NOW = 1_750_000_000_000
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IP = "81.2.69.142"  # a public address: a private one in the header is skipped for the peer


def ev(at: int, device: str, project: str = "p1") -> dict[str, Any]:
    return {"_t": "events", "id": f"e-{device}-{at}", "project_id": project, "device_id": device,
            "session_id": "", "created_at": at, "name": "page_view"}  # fmt: skip


# the shard's answer ----------------------------------------------------------------------------
def test_the_live_session_is_what_the_next_event_would_join() -> None:
    s = Sessionizer(TIMEOUT, 6 * 60 * MIN)
    assert s.current("p1", "d1", "", NOW) == ("d1", "")
    first = ev(NOW, "d1")
    s.assign(first, NOW)
    assert s.current("p1", "d1", "", NOW + TIMEOUT - 1) == ("d1", first["session_id"])
    nxt = ev(NOW + TIMEOUT - 1, "d1")
    s.assign(nxt, NOW + TIMEOUT - 1)
    assert nxt["session_id"] == first["session_id"]
    # idle for the timeout: the next event opens a new session, even before expire() runs
    later = NOW + 2 * TIMEOUT
    assert s.current("p1", "d1", "", later) == ("d1", "")
    assert s.current("p2", "d1", "", NOW) == ("d1", "")  # per project


def test_a_visit_begun_under_yesterdays_salt_is_the_previous_device_id() -> None:
    s = Sessionizer(TIMEOUT, 6 * 60 * MIN)
    old = ev(NOW, "yesterday")
    s.assign(old, NOW)
    assert s.current("p1", "today", "yesterday", NOW + MIN) == ("yesterday", old["session_id"])
    # and /track picks the same: the next event keeps the old device id and session
    nxt = {**ev(NOW + MIN, "today"), "_prev_device": "yesterday"}
    s.assign(nxt, NOW + MIN)
    assert (nxt["device_id"], nxt["session_id"]) == ("yesterday", old["session_id"])
    # once today's id has a live session of its own, that one answers
    s2 = Sessionizer(TIMEOUT, 6 * 60 * MIN)
    s2.assign(ev(NOW, "yesterday"), NOW)
    mine = ev(NOW, "today")
    s2.assign(mine, NOW)
    assert s2.current("p1", "today", "yesterday", NOW + MIN) == ("today", mine["session_id"])


def test_the_device_id_is_the_one_track_derives() -> None:
    salts = ("salt-today", "salt-yesterday")
    headers = {"user-agent": UA, "x-forwarded-for": IP}
    ctx = build_context("proj1", headers, "10.0.0.1", salts, ip_headers=["x-forwarded-for"], geo=None)
    body = {"type": "track", "payload": {"name": "page_view", "path": "/"}}
    prepared = prepare(body, ctx, Limits())
    device, prev, key = cookieless("proj1", IP, UA, salts)
    assert device == prepared.record["device_id"] and prev == prepared.record["_prev_device"]
    assert key == prepared.shard_key
    assert cookieless("proj1", IP, UA, ("s", ""))[1] == ""


# the buffer client -----------------------------------------------------------------------------
class Shard:
    def __init__(self, name: str, mode: str = "ok") -> None:
        self.name = name
        self.mode = mode
        self.asked: list[tuple[Any, ...]] = []
        outer = self

        class live_session:  # a Ray actor method handle: ``await shard.live_session.remote(...)``
            @staticmethod
            async def remote(*args: Any) -> dict[str, str]:
                outer.asked.append(args)
                if outer.mode == "raise":
                    raise RuntimeError("actor died")
                if outer.mode == "hang":
                    await asyncio.sleep(3600)
                return {"deviceId": args[1], "sessionId": f"sid-{outer.name}"}

        self.live_session = live_session


def test_the_client_asks_the_shard_that_owns_the_visitor() -> None:
    shards = [Shard(f"s{i}") for i in range(4)]
    client = BufferClient(shards, 0)
    key = "anon:abc"
    found = asyncio.run(client.live_session("p1", key, "dev", "prev"))
    owner = shard_of("p1", key, 4)
    assert found == {"deviceId": "dev", "sessionId": f"sid-s{owner}"}
    assert [s.asked for s in shards if s.asked] == [[("p1", "dev", "prev")]]


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_a_shard_that_cannot_answer_is_unavailable(mode: str) -> None:
    client = BufferClient([Shard("s0", mode)], 0)
    with pytest.raises(ShardUnavailable):
        asyncio.run(client.live_session("p1", "k", "dev", timeout_s=0.05))


# HTTP ------------------------------------------------------------------------------------------
class FakeBuffer:
    def __init__(self, session: str = "", fail: bool = False) -> None:
        self.session = session
        self.fail = fail
        self.asked: list[tuple[str, str, str, str]] = []

    async def live_session(self, project: str, key: str, device: str, prev: str = "") -> dict[str, str]:
        self.asked.append((project, key, device, prev))
        if self.fail:
            raise ShardUnavailable("shard 0 unavailable: RayActorError", 1)
        return {"deviceId": device, "sessionId": self.session}

    async def submit(self, routed: list[Any]) -> list[dict[str, str]]:
        raise AssertionError("device-id stores nothing")


@pytest.fixture
def store(tmp_path: Path) -> MetadataStore:
    s = open_metadata(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    s.migrate()
    return s


def clients(store: MetadataStore) -> dict[str, dict[str, str]]:
    project = store.create_project("p")
    w, ws = store.create_client(project.id, "write")
    r, rs = store.create_client(project.id, "read")
    b, _ = store.create_client(project.id, "write", origins=["https://shop.example"], with_secret=False)
    assert ws and rs
    return {
        "write": {"event-lens-client-id": w.id, "event-lens-client-secret": ws},
        "read": {"event-lens-client-id": r.id, "event-lens-client-secret": rs},
        "browser": {"openpanel-client-id": b.id, "origin": "https://shop.example"},
        "project": {"id": project.id},
    }


def call(
    store: MetadataStore, buffer: FakeBuffer, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    track = TrackHandler(
        Settings(ip_headers="x-forwarded-for"),
        Authenticator(store),
        buffer,  # type: ignore[arg-type]
        SaltCache(store),
        LocalRateLimiter(100, 100),
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await track.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            return await http.request(method, path, headers=headers)

    return asyncio.run(main())


def test_device_id_answers_the_callers_device_and_live_session(store: MetadataStore) -> None:
    c = clients(store)
    buffer = FakeBuffer(session="sid-1")
    headers = {**c["browser"], "user-agent": UA, "x-forwarded-for": IP}
    r = call(store, buffer, "GET", "/track/device-id", headers)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    [(project, key, device, prev)] = buffer.asked
    assert project == c["project"]["id"]
    salts = asyncio.run(SaltCache(store).current())
    assert (device, prev, key) == cookieless(c["project"]["id"], IP, UA, salts)
    assert r.json() == {"deviceId": device, "sessionId": "sid-1", "message": DEVICE_ID_MESSAGES["current"]}
    none = call(store, FakeBuffer(), "GET", "/track/device-id/", headers).json()
    assert none == {"deviceId": device, "sessionId": "", "message": "No session exists for this device id"}
    # a server-side client (secret) may ask too
    assert call(store, FakeBuffer(), "GET", "/track/device-id", c["write"]).status_code == 200


@pytest.mark.parametrize(
    ("who", "method", "path", "status", "code"),
    [
        ("read", "GET", "/track/device-id", 403, "wrong_client_type"),
        ("none", "GET", "/track/device-id", 401, "missing_credentials"),
        ("write", "POST", "/track/device-id", 405, "method_not_allowed"),
        ("write", "GET", "/track/device-id?deviceId=x", 400, "unknown_parameter"),
        ("write", "GET", "/track", 405, "method_not_allowed"),
        ("write", "GET", "/track/devices", 404, "not_found"),
    ],
)
def test_device_id_refusals(
    store: MetadataStore, who: str, method: str, path: str, status: int, code: str
) -> None:
    c = clients(store)
    buffer = FakeBuffer()
    r = call(store, buffer, method, path, c.get(who, {}))
    assert r.status_code == status and r.json()["error"] == code, r.text
    assert buffer.asked == []
    if status == 405 and path.startswith("/track/device-id"):
        assert r.headers["allow"] == "GET, OPTIONS"


def test_device_id_preflight_allows_get(store: MetadataStore) -> None:
    r = call(store, FakeBuffer(), "OPTIONS", "/track/device-id", {"origin": "https://shop.example"})
    assert r.status_code == 204 and r.headers["access-control-allow-methods"] == "GET, OPTIONS"
    assert "openpanel-client-id" in r.headers["access-control-allow-headers"]
    track = call(store, FakeBuffer(), "OPTIONS", "/track", {"origin": "https://shop.example"})
    assert track.headers["access-control-allow-methods"] == "POST, OPTIONS"


def test_a_shard_that_cannot_answer_is_a_503_with_retry_after(store: MetadataStore) -> None:
    c = clients(store)
    r = call(store, FakeBuffer(fail=True), "GET", "/track/device-id", c["write"])
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "storage_unavailable"
