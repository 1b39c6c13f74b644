"""Session replay over real HTTP (issue 13): the web SDK's ``replay`` messages are joined to the
visit in progress by its shard, stored once per chunk, never counted as events, and read back in
order by ``GET /insights/{p}/sessions/{sessionId}/replay``; bad chunks get a 4xx naming the problem."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import Creds, Daemon, eventually

pytestmark = pytest.mark.ray

T0 = "2026-11-29T10:00:00.000Z"
UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"}


def chunk(i: int, events: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    events = events or [{"type": 2 if i == 0 else 3, "timestamp": 1_795_000_000_000 + i, "data": {"i": i}}]
    payload = {
        "chunk_index": i,
        "events_count": len(events),
        "is_full_snapshot": i == 0,
        "started_at": T0,
        "ended_at": T0,
        "payload": orjson.dumps(events).decode(),
        **over,
    }
    return {"type": "replay", "payload": payload}


def post(d: Daemon, creds: Creds, body: dict[str, Any], ua: dict[str, str] = UA) -> Any:
    return d.http.post("/track", json=body, headers={**creds.write_headers(), **ua})


def replay(d: Daemon, creds: Creds, sid: str, **params: Any) -> Any:
    return d.http.get(
        f"/insights/{creds.project_id}/sessions/{sid}/replay", params=params, headers=creds.read_headers()
    )


def test_replay_chunks_join_the_visit_and_come_back_in_order(embedded: Daemon) -> None:
    d = embedded
    creds = d.new_project()
    view = post(d, creds, {"type": "track", "payload": {"name": "screen_view", "path": "/"}})
    assert view.status_code == 200, view.text
    sid = view.json()["sessionId"]
    for i in (2, 0, 1, 2):  # out of order, chunk 2 retried
        r = post(d, creds, chunk(i))
        assert r.status_code == 200, r.text
        assert r.json()["sessionId"] == sid and r.json()["id"] == f"{sid}:{i}"
    d.flush()
    got = replay(d, creds, sid, limit=2)
    assert got.status_code == 200, got.text
    first = got.json()
    assert [c["index"] for c in first["chunks"]] == [0, 1] and first["nextChunk"] == 2
    assert first["chunks"][0]["isFullSnapshot"] is True
    assert first["chunks"][1]["events"] == [{"type": 3, "timestamp": 1_795_000_000_001, "data": {"i": 1}}]
    rest = replay(d, creds, sid, fromChunk=2, limit=2).json()
    assert [c["index"] for c in rest["chunks"]] == [2] and rest["nextChunk"] is None
    # a replay is not an event: one screen view, nothing else counted
    eventually(lambda: d.metrics(creds)["totalEvents"] == 1, timeout=20)
    assert d.metrics(creds)["totalPageViews"] == 1


def test_bad_replay_chunks_are_refused_with_what_to_fix(embedded: Daemon) -> None:
    d = embedded
    creds = d.new_project()
    assert post(d, creds, {"type": "track", "payload": {"name": "screen_view", "path": "/"}}).status_code == 200
    cases = {
        "invalid_replay": chunk(0, payload="not json"),
        "invalid_payload": {"type": "replay", "payload": {"chunk_index": -1, "payload": "[]"}},
    }
    for code, body in cases.items():
        r = post(d, creds, body)
        assert r.status_code == 400 and r.json()["error"] == code, (code, r.text)
    big = [{"type": 3, "data": "x" * 1000}] * 1100  # over 1 MiB of JSON
    r = post(d, creds, chunk(1, big))
    assert r.status_code == 413 and r.json()["error"] == "replay_too_large", r.text
    # another browser (another cookieless device) that tracked nothing: no visit to join
    other = {"user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Version/17.0 Safari/605.1.15"}
    r = post(d, creds, chunk(0), other)
    assert r.status_code == 409 and r.json()["error"] == "no_session", r.text
    # in a batch: the refused chunk is a rejected item, the rest is accepted
    batch = {"events": [chunk(0), {"type": "track", "payload": {"name": "click"}}]}
    r = d.http.post("/track/batch", json=batch, headers={**creds.write_headers(), **other})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and [x["error"] for x in r.json()["rejected"]] == ["no_session"]
    missing = replay(d, creds, "no-such-session")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    unknown = replay(d, creds, "s", startDate="2026-01-01")
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_parameter", unknown.text
