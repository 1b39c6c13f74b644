"""Seeing what landed, over HTTP on the embedded daemon: the events, sessions and profiles a user
sent come back newest first, page by page with a cursor (each exactly once, even when more arrive
between pages), bots only when asked, only to a read client of the project; and
``GET /track/device-id`` answers the device and session ``/track`` gives the caller."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Creds, Daemon

pytestmark = pytest.mark.ray

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ROUTES = ("events", "sessions", "profiles", "profiles/u1")


@pytest.fixture(scope="module")
def d(embedded: Daemon) -> Daemon:
    return embedded


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def batch(
    d: Daemon, creds: Creds, events: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> None:
    r = d.http.post("/track/batch", json={"events": events}, headers=headers or creds.write_headers())
    assert r.status_code == 200 and r.json()["success"], r.text


def track(name: str, eid: str, at_ms: int, device: str = "dev-1", **payload: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "payload": {"name": name, "id": eid, "timestamp": at_ms, "deviceId": device, **payload},
    }


def read(d: Daemon, creds: Creds, route: str, status: int = 200, **params: Any) -> Any:
    r = d.http.get(f"/insights/{creds.project_id}/{route}", params=params, headers=creds.read_headers())
    assert r.status_code == status, (route, params, r.text)
    return r.json()


def pages(d: Daemon, creds: Creds, route: str, **params: Any) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        body = read(d, creds, route, **params, **({"cursor": cursor} if cursor else {}))
        out.append(body["data"])
        cursor = body["nextCursor"]
        if cursor is None:
            return out


def test_events_come_back_newest_first_each_once_across_pages_while_more_arrive(d: Daemon) -> None:
    creds = d.new_project("read-events")
    now = int(time.time() * 1000)
    t0 = now - 600_000
    # 9 events, two pairs at the same millisecond (ties break by id), with fields to check
    sent = [
        track(
            "page_view" if i % 3 else "signup",
            f"ev-{i:02d}",
            t0 + (i // 2) * 1000,
            path=f"https://shop.example/p/{i}?utm_source=news",
            properties={"plan": "pro", "n": i},
        )
        for i in range(9)
    ]
    batch(d, creds, sent)
    d.flush()
    first = read(d, creds, "events", limit=4)
    assert [e["id"] for e in first["data"]] == ["ev-08", "ev-07", "ev-06", "ev-05"]
    e = first["data"][1]
    assert e["name"] == "page_view" and e["deviceId"] == "dev-1" and e["sessionId"]
    assert e["createdAt"] == iso(t0 + 3000) and e["path"] == "/p/7" and e["origin"] == "https://shop.example"
    assert e["utmSource"] == "news" and e["properties"] == {"plan": "pro", "n": "7"} and e["isBot"] is False
    assert e["receivedAt"] >= e["createdAt"] and first["nextCursor"]
    # more arrive between pages: newer ones (never on the later pages) and an older one sent late,
    # which belongs after the cursor and shows there
    batch(d, creds, [track("page_view", "new-1", now - 1000), track("page_view", "old-1", t0 - 5000)])
    d.flush()
    rest: list[dict[str, Any]] = []
    cursor = first["nextCursor"]
    while cursor:
        body = read(d, creds, "events", limit=4, cursor=cursor)
        rest += body["data"]
        cursor = body["nextCursor"]
    ids = [e["id"] for e in first["data"] + rest]
    assert ids == [f"ev-{i:02d}" for i in range(8, -1, -1)] + ["old-1"]
    keys = [(e["createdAt"], e["id"]) for e in first["data"] + rest]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    # a fresh walk sees everything, each once
    walk = [e["id"] for p in pages(d, creds, "events", limit=3) for e in p]
    assert walk == ["new-1", *ids]
    # the session markers only when asked
    assert all(e["name"] not in ("session_start", "session_end") for e in first["data"] + rest)
    marked = [e["name"] for p in pages(d, creds, "events", limit=500, includeMarkers="true") for e in p]
    assert "session_start" in marked and len(marked) > len(walk)
    # filters and the range apply as on every insight route
    flt = json.dumps([{"field": "name", "operator": "eq", "value": "signup"}])
    assert [e["id"] for e in read(d, creds, "events", filters=flt)["data"]] == ["ev-06", "ev-03", "ev-00"]
    since = datetime.fromtimestamp((t0 + 3000) / 1000, UTC).isoformat()
    assert [e["id"] for e in read(d, creds, "events", startDate=since)["data"]][-2:] == ["ev-07", "ev-06"]


def test_page_size_and_cursor_rules(d: Daemon) -> None:
    creds = d.new_project("read-rules")
    for route in ("events", "sessions", "profiles"):
        assert read(d, creds, route, limit=500) == {"data": [], "nextCursor": None}
        for bad in ("0", "501"):
            assert read(d, creds, route, status=400, limit=bad)["error"] == "invalid_limit"
        assert read(d, creds, route, status=422, limit="many")["error"] == "invalid_request"
        assert read(d, creds, route, status=400, cursor="bogus")["error"] == "invalid_cursor"
    batch(d, creds, [track("page_view", f"r{i}", int(time.time() * 1000) - i) for i in range(3)])
    d.flush()
    cursor = read(d, creds, "events", limit=1)["nextCursor"]
    # a cursor is for its own list only
    assert read(d, creds, "sessions", status=400, cursor=cursor)["error"] == "invalid_cursor"
    assert read(d, creds, "profiles/u1", status=400, limit="501")["error"] == "invalid_limit"
    assert read(d, creds, "profiles", status=400, includeBots="true")["error"] == "unknown_parameter"


def test_bots_are_left_out_unless_asked(d: Daemon) -> None:
    from eventlens.storage.metadata import open_metadata

    creds = d.new_project("read-bots")
    with open_metadata(d.settings.metadata_dsn) as store:
        browser, _ = store.create_client(
            creds.project_id, "write", origins=["https://shop.example"], with_secret=False
        )
    now = int(time.time() * 1000)
    for ua, eid, device in ((GOOGLEBOT, "bot-ev", "bot-dev"), (CHROME, "human-ev", "human-dev")):
        headers = {"event-lens-client-id": browser.id, "origin": "https://shop.example", "user-agent": ua}
        batch(d, creds, [track("page_view", eid, now - 1000, device=device, path="/")], headers=headers)
    d.flush()
    assert [e["id"] for e in read(d, creds, "events")["data"]] == ["human-ev"]
    both = read(d, creds, "events", includeBots="true")["data"]
    assert {e["id"]: e["isBot"] for e in both} == {"bot-ev": True, "human-ev": False}
    assert [s["deviceId"] for s in read(d, creds, "sessions")["data"]] == ["human-dev"]
    bot_sessions = read(d, creds, "sessions", includeBots="true")["data"]
    assert sorted(s["deviceId"] for s in bot_sessions) == ["bot-dev", "human-dev"]


def test_sessions_come_back_newest_first_with_their_numbers(d: Daemon) -> None:
    creds = d.new_project("read-sessions")
    now = int(time.time() * 1000)
    events = []
    for n, device in enumerate(("d-a", "d-b", "d-c")):
        start = now - 900_000 + n * 60_000
        events += [
            track("page_view", f"{device}-1", start, device=device, path="https://shop.example/", referrer="https://www.google.com/"),
            track("page_view", f"{device}-2", start + 20_000, device=device, path="https://shop.example/pricing"),
            track("signup", f"{device}-3", start + 30_000, device=device),
        ]  # fmt: skip
    batch(d, creds, events)
    d.flush()
    walked = pages(d, creds, "sessions", limit=2)
    assert [len(p) for p in walked] == [2, 1]
    rows = [s for p in walked for s in p]
    assert [s["deviceId"] for s in rows] == ["d-c", "d-b", "d-a"]
    s = rows[0]
    assert s["entryPath"] == "/" and s["exitPath"] == "/pricing" and s["referrerName"] == "Google"
    assert s["pageViews"] == 2 and s["events"] == 3 and s["duration"] == 30.0 and s["isBounce"] is False
    assert s["startedAt"] == iso(now - 900_000 + 120_000) and s["endedAt"] == iso(now - 900_000 + 150_000)
    assert s["isClosed"] is False and s["id"]
    own = json.dumps([{"field": "deviceId", "operator": "eq", "value": "d-b"}])
    assert [s["deviceId"] for s in read(d, creds, "sessions", filters=own)["data"]] == ["d-b"]
    held = json.dumps([{"field": "name", "operator": "eq", "value": "signup"}])
    assert len(read(d, creds, "sessions", filters=held)["data"]) == 3
    # the events of a session carry its id
    sid = {e["sessionId"] for e in read(d, creds, "events")["data"] if e["deviceId"] == "d-c"}
    assert sid == {s["id"]}


def test_profiles_and_one_profile_with_its_sessions_and_events(d: Daemon) -> None:
    creds = d.new_project("read-profiles")

    def send(kind: str, **payload: Any) -> None:
        r = d.track(creds, payload, kind)
        assert r.status_code == 200, r.text

    send("identify", profileId="u1", email="old@example.com", firstName="Ada", properties={"plan": "free"})
    send("identify", profileId="u2", email="b@example.com")
    d.flush()
    send("identify", profileId="u1", email="ada@example.com", properties={"plan": "pro"})
    send("increment", profileId="u1", property="logins", value=2)
    send("decrement", profileId="u1", property="logins")
    send("alias", profileId="u1", alias="anon-dev")
    now = int(time.time() * 1000)
    batch(
        d,
        creds,
        [
            track("page_view", "before-signin", now - 60_000, device="anon-dev", path="/"),
            track("signup", "signed-in", now - 30_000, device="anon-dev", profileId="u1"),
            track("page_view", "someone-else", now - 20_000, device="other-dev"),
        ],
    )
    d.flush()
    listed = read(d, creds, "profiles")
    assert [p["id"] for p in listed["data"]] == ["u1", "u2"] and listed["nextCursor"] is None
    u1 = listed["data"][0]
    assert u1["email"] == "ada@example.com" and u1["firstName"] == "Ada"  # merged: kept from the first
    assert u1["properties"] == {"plan": "pro"} and u1["updatedAt"].endswith("Z")
    walked = [p["id"] for page in pages(d, creds, "profiles", limit=1) for p in page]
    assert walked == ["u1", "u2"]
    # filters on the profile's newest state only
    by = lambda v: json.dumps([{"field": "email", "operator": "eq", "value": v}])  # noqa: E731
    assert [p["id"] for p in read(d, creds, "profiles", filters=by("ada@example.com"))["data"]] == ["u1"]
    assert read(d, creds, "profiles", filters=by("old@example.com"))["data"] == []

    one = read(d, creds, "profiles/u1")
    assert one["id"] == "u1" and one["email"] == "ada@example.com" and one["counters"] == {"logins": 1}
    assert one["aliases"] == ["anon-dev"]
    # the person's events: its own and those of the device aliased to it, newest first
    assert [e["id"] for e in one["events"]] == ["signed-in", "before-signin"]
    assert [s["deviceId"] for s in one["sessions"]] == ["anon-dev"]
    assert read(d, creds, "profiles/u1", limit=1)["events"][0]["id"] == "signed-in"
    assert read(d, creds, "profiles/nobody", status=404)["error"] == "not_found"
    # a profile id with a slash, URL-encoded, is one id
    send("identify", profileId="org/42", email="x@example.com")
    d.flush()
    assert read(d, creds, "profiles/org%2F42")["id"] == "org/42"


def test_only_a_read_client_of_the_project_sees_its_rows(d: Daemon) -> None:
    mine, other = d.new_project("read-a"), d.new_project("read-b")
    now = int(time.time() * 1000)
    batch(d, other, [track("page_view", "theirs", now - 1000, device="their-dev", profileId="u1")])
    r = d.track(other, {"profileId": "u1", "email": "u1@b.example"}, "identify")
    assert r.status_code == 200
    batch(d, mine, [track("page_view", "mine", now - 1000, device="my-dev")])
    d.flush()
    assert [e["id"] for e in read(d, mine, "events")["data"]] == ["mine"]
    assert [s["deviceId"] for s in read(d, mine, "sessions")["data"]] == ["my-dev"]
    assert read(d, mine, "profiles")["data"] == []
    assert read(d, mine, "profiles/u1", status=404)["error"] == "not_found"
    for route in ROUTES:
        url = f"/insights/{other.project_id}/{route}"
        r = d.http.get(url, headers=mine.read_headers())
        assert r.status_code == 403 and r.json()["error"] == "wrong_project", (route, r.text)
        r = d.http.get(f"/insights/{mine.project_id}/{route}", headers=mine.write_headers())
        assert r.status_code == 403 and r.json()["error"] == "wrong_client_type", (route, r.text)
        r = d.http.get(f"/insights/{mine.project_id}/{route}")
        assert r.status_code == 401, (route, r.text)


def test_device_id_answers_what_track_gives_the_caller(d: Daemon) -> None:
    creds = d.new_project("device-id")
    visitor = {
        **creds.write_headers(),
        "user-agent": CHROME,
        "x-forwarded-for": f"81.2.69.{uuid.uuid4().int % 200 + 1}",
    }
    r = d.http.get("/track/device-id", headers=visitor)
    assert r.status_code == 200, r.text
    before = r.json()
    assert before["sessionId"] == "" and before["message"] == "No session exists for this device id"
    sent = d.track(creds, {"name": "page_view", "path": "/"}, headers=visitor).json()
    assert sent["deviceId"] == before["deviceId"]
    after = d.http.get("/track/device-id", headers=visitor).json()
    assert after == {
        "deviceId": sent["deviceId"],
        "sessionId": sent["sessionId"],
        "message": "current session exists for this device id",
    }
    # another visitor (user agent) is another device, without a session
    other = d.http.get("/track/device-id", headers={**visitor, "user-agent": GOOGLEBOT}).json()
    assert other["deviceId"] != sent["deviceId"] and other["sessionId"] == ""
    assert d.http.get("/track/device-id", headers=creds.read_headers()).status_code == 403


def test_the_older_sdks_profile_routes_are_gone_with_the_replacement_named(d: Daemon) -> None:
    creds = d.new_project("legacy")
    r = d.http.post("/profile", json={"profileId": "u1", "email": "a@b.c"}, headers=creds.write_headers())
    assert r.status_code == 410 and r.json()["error"] == "gone"
    assert 'POST /track with {"type": "identify"' in r.json()["message"]
    r = d.http.post("/profile/increment", json={"profileId": "u1", "property": "n", "value": 1})
    assert r.status_code == 410 and r.json()["details"] == [
        {"replacement": "POST /track", "type": "increment"}
    ]
