"""End to end over real HTTP: Serve + HAProxy, shard actors, chDB, metadata (SQLite or MariaDB),
write-ahead log (files or Redis Streams). The whole module runs once per daemon variant."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Creds, Daemon, DaemonManager

pytestmark = pytest.mark.ray


@pytest.fixture(
    scope="module",
    params=["embedded", pytest.param("shared", marks=[pytest.mark.mariadb, pytest.mark.redis])],
)
def d(request: pytest.FixtureRequest, daemons: DaemonManager) -> Daemon:
    return daemons.use(request.param)


@pytest.fixture
def creds(d: Daemon) -> Creds:
    return d.new_project()


def test_single_track_is_acknowledged_with_ids_and_counted(d: Daemon, creds: Creds) -> None:
    r = d.track(
        creds, {"name": "page_view", "path": "https://shop.example/a?utm_source=news", "deviceId": "dev-1"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["deviceId"] == "dev-1"
    assert body["sessionId"] and body["id"]
    m = d.wait_metric(creds, "totalEvents", 1)
    assert m["uniqueVisitors"] == 1
    assert m["totalPageViews"] == 1
    assert isinstance(m["totalEvents"], int)


def test_device_id_is_derived_when_not_sent_and_stable(d: Daemon, creds: Creds) -> None:
    ua = {"user-agent": "Mozilla/5.0 test", "x-forwarded-for": "203.0.113.9"}
    a = d.track(creds, {"name": "a"}, headers={**creds.write_headers(), **ua}).json()
    b = d.track(creds, {"name": "b"}, headers={**creds.write_headers(), **ua}).json()
    assert a["deviceId"] == b["deviceId"] and len(a["deviceId"]) == 32
    assert a["sessionId"] == b["sessionId"]
    other = d.track(
        creds, {"name": "c"}, headers={**creds.write_headers(), "x-forwarded-for": "198.51.100.7"}
    )
    assert other.json()["deviceId"] != a["deviceId"]


def test_batch_accepts_valid_and_reports_invalid(d: Daemon, creds: Creds) -> None:
    events: list[Any] = [
        {"type": "track", "payload": {"name": f"e{i}", "deviceId": f"d{i % 3}"}} for i in range(50)
    ]
    events.insert(10, {"type": "track", "payload": {"name": ""}})
    events.insert(20, {"type": "nope", "payload": {}})
    events.insert(30, "not an object")
    r = d.http.post("/track/batch", json={"events": events}, headers=creds.write_headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is False
    assert body["accepted"] == 50
    assert [x["index"] for x in body["rejected"]] == [10, 20, 30]
    assert body["rejected"][0]["error"] == "invalid_payload"
    assert "name" in body["rejected"][0]["message"]
    assert body["rejected"][1]["error"] == "invalid_type"
    d.wait_metric(creds, "totalEvents", 50)
    assert d.metrics(creds)["uniqueVisitors"] == 3


def test_batch_envelope_errors_accept_nothing(d: Daemon, creds: Creds) -> None:
    h = creds.write_headers()
    for body in ([], {"events": {}}, {"nope": []}, "x"):
        r = d.http.post("/track/batch", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "invalid_batch"
    too_many = {"events": [{"type": "track", "payload": {"name": "x"}}] * (d.settings.max_batch_events + 1)}
    r = d.http.post("/track/batch", json=too_many, headers=h)
    assert r.status_code == 400 and r.json()["error"] == "batch_too_large"
    assert str(d.settings.max_batch_events) in r.json()["message"]
    # nothing of it was logged: a control event afterwards, every log flushed, and only it counted
    assert d.track(creds, {"name": "control", "id": "control"}).status_code == 200
    d.flush()
    d.assert_stored_once(creds, ["control"])


def test_all_five_types_are_accepted_and_stored(d: Daemon, creds: Creds) -> None:
    ok = [
        d.track(
            creds,
            {
                "profileId": "u1",
                "firstName": "Ada",
                "email": "ada@example.com",
                "properties": {"plan": "pro"},
            },
            "identify",
        ),
        d.track(creds, {"profileId": "u1", "property": "logins"}, "increment"),
        d.track(creds, {"profileId": "u1", "property": "logins", "value": 5}, "increment"),
        d.track(creds, {"profileId": "u1", "property": "logins", "value": 2}, "decrement"),
        d.track(creds, {"profileId": "u1", "alias": "anon-42"}, "alias"),
        d.track(creds, {"name": "signup", "profileId": "u1"}),
    ]
    assert [r.status_code for r in ok] == [200] * 6, [r.text for r in ok]
    d.wait_metric(creds, "totalEvents", 1)
    q = _query(d)
    p = creds.project_id

    def stored() -> bool:
        rows = q(
            "SELECT email, properties['plan'] AS plan FROM profiles FINAL WHERE project_id = {p:String}",
            {"p": p},
        )
        counters = q(
            "SELECT sum(delta) AS v FROM (SELECT delta FROM profile_counters WHERE project_id = {p:String} "
            "AND profile_id = 'u1' AND property = 'logins' LIMIT 1 BY event_id)",
            {"p": p},
        )
        aliases = q(
            "SELECT profile_id FROM profile_aliases WHERE project_id = {p:String} AND alias = 'anon-42'",
            {"p": p},
        )
        return (
            rows == [{"email": "ada@example.com", "plan": "pro"}]
            and counters[0]["v"] == 4
            and aliases == [{"profile_id": "u1"}]
        )

    from tests.conftest import eventually

    eventually(stored, timeout=20)


def test_groups_are_accepted_stored_and_read_back_by_group(d: Daemon, creds: Creds) -> None:
    """The OpenPanel SDK's group messages: ``group`` (upsertGroup) and ``assign_group``
    (setGroup/setGroups) over both routes, tracks carrying ``groups``; the group breakdown and a
    funnel by group read them back (acme converts through two members, globex does not)."""
    h = creds.write_headers()
    upsert = d.track(
        creds,
        {"id": "acme", "type": "company", "name": "Acme", "properties": {"plan": "pro"}, "profileId": "u1"},
        "group",
    )
    assert upsert.status_code == 200 and upsert.json() == {"success": True}, upsert.text
    assign = d.track(creds, {"groupIds": ["acme"], "profileId": "u2"}, "assign_group")
    assert assign.status_code == 200, assign.text
    bad = d.track(creds, {"groupIds": [], "profileId": "u2"}, "assign_group")
    assert bad.status_code == 400 and "groupIds" in bad.json()["message"], bad.text
    bad = d.track(creds, {"name": "x", "groups": ["g"] * 51})
    assert bad.status_code == 400 and "groups" in bad.json()["message"], bad.text
    batch = [
        {"type": "group", "payload": {"id": "globex", "type": "company", "name": "Globex"}},
        {"type": "group", "payload": {"id": "acme", "name": "Acme Inc"}},  # type and plan kept
        {"type": "assign_group", "payload": {"groupIds": ["globex", "acme"], "profileId": "u3"}},
        {"type": "assign_group", "payload": {"groupIds": "acme", "profileId": "u3"}},
        {
            "type": "track",
            "payload": {"name": "signup", "deviceId": "d1", "profileId": "u1", "groups": ["acme"]},
        },
        {"type": "track", "payload": {"name": "signup", "deviceId": "d3", "groups": ["globex"]}},
        {"type": "track", "payload": {"name": "view", "deviceId": "d4"}},
    ]
    r = d.http.post("/track/batch", json={"events": batch}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 6 and [x["index"] for x in r.json()["rejected"]] == [3]
    # strictly later than the signups: a member's purchase converts the account
    later = d.track(
        creds, {"name": "purchase", "deviceId": "d2", "profileId": "u2", "groups": ["acme", "acme"]}
    )
    assert later.status_code == 200, later.text
    d.flush()
    q = _query(d)
    p = {"p": creds.project_id}

    def stored() -> bool:
        groups = q(
            "SELECT group_id, type, name, properties FROM groups FINAL WHERE project_id = {p:String}"
            " ORDER BY group_id",
            p,
        )
        links = q(
            "SELECT profile_id, group_id FROM profile_groups FINAL WHERE project_id = {p:String}"
            " ORDER BY profile_id, group_id",
            p,
        )
        return groups == [
            {"group_id": "acme", "type": "company", "name": "Acme Inc", "properties": {"plan": "pro"}},
            {"group_id": "globex", "type": "company", "name": "Globex", "properties": {}},
        ] and [(x["profile_id"], x["group_id"]) for x in links] == [
            ("u1", "acme"),
            ("u2", "acme"),
            ("u3", "acme"),
            ("u3", "globex"),
        ]

    from tests.conftest import eventually

    eventually(stored, timeout=20)
    read = creds.read_headers()
    r = d.http.get(f"/insights/{creds.project_id}/breakdown", params={"dimension": "group"}, headers=read)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"value": "acme", "count": 2, "uniqueVisitors": 2},
        {"value": "", "count": 1, "uniqueVisitors": 1},
        {"value": "globex", "count": 1, "uniqueVisitors": 1},
    ]
    body = {"steps": ["signup", "purchase"], "groupBy": "group"}
    r = d.http.post(f"/insights/{creds.project_id}/funnel", json=body, headers=read)
    assert r.status_code == 200, r.text
    assert [(s["name"], s["count"]) for s in r.json()] == [("signup", 2), ("purchase", 1)]
    flt = '[{"field": "group", "operator": "eq", "value": "acme"}]'
    r = d.http.get(f"/insights/{creds.project_id}/metrics", params={"filters": flt}, headers=read)
    assert r.status_code == 200 and r.json()["totalEvents"] == 2, r.text
    r = d.http.get(f"/insights/{creds.project_id}/retention", params={"groupBy": "group"}, headers=read)
    assert r.status_code == 200, r.text
    assert [x["retainedUsers"] for x in r.json() if x["periodNumber"] == 0] == [2]


def test_path_referrer_and_properties_are_stored(d: Daemon, creds: Creds) -> None:
    r = d.track(
        creds,
        {
            "name": "page_view",
            "path": "https://shop.example/p/1?utm_source=mail&utm_campaign=spring#top",
            "referrer": "https://news.example/story",
            "title": "Product",
            "properties": {"cart": {"items": [1, 2]}, "ok": True},
        },
    )
    assert r.status_code == 200
    eid = r.json()["id"]
    d.wait_metric(creds, "totalEvents", 1)
    rows = _query(d)(
        "SELECT origin, path, title, referrer, utm_source, utm_campaign, properties FROM events "
        "WHERE project_id = {p:String} AND id = {id:String}",
        {"p": creds.project_id, "id": eid},
    )
    assert rows == [
        {
            "origin": "https://shop.example",
            "path": "/p/1",
            "title": "Product",
            "referrer": "https://news.example/story",
            "utm_source": "mail",
            "utm_campaign": "spring",
            "properties": {"cart.items.0": "1", "cart.items.1": "2", "ok": "true"},
        }
    ]


def test_openpanel_sdk_request_works_unchanged(d: Daemon, creds: Creds) -> None:
    # what @openpanel/web sends: its own header names, reserved __ properties, sdk headers
    headers = {
        "openpanel-client-id": creds.write_id,
        "openpanel-client-secret": creds.write_secret,
        "openpanel-sdk-name": "web",
        "openpanel-sdk-version": "1.0.1",
        "content-type": "application/json",
    }
    body = {
        "type": "track",
        "payload": {
            "name": "screen_view",
            "properties": {
                "__path": "https://app.example/home",
                "__referrer": "https://google.com/",
                "__title": "Home",
            },
        },
    }
    r = d.http.post("/track", json=body, headers=headers)
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) >= {"deviceId", "sessionId"}
    d.wait_metric(creds, "totalPageViews", 1)
    rows = _query(d)(
        "SELECT path, referrer, title, sdk_name, properties FROM events WHERE project_id = {p:String} AND name = 'screen_view'",
        {"p": creds.project_id},
    )
    assert rows == [
        {
            "path": "/home",
            "referrer": "https://google.com/",
            "title": "Home",
            "sdk_name": "web",
            "properties": {},
        }
    ]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_credentials"),
        ({"event-lens-client-id": "nope"}, 401, "invalid_credentials"),
        ("no-secret", 401, "missing_credentials"),
        ("bad-secret", 401, "invalid_credentials"),
        ("read-client", 403, "wrong_client_type"),
    ],
)
def test_auth_errors(d: Daemon, creds: Creds, headers: Any, status: int, code: str) -> None:
    if headers == "no-secret":
        headers = {"event-lens-client-id": creds.write_id}
    elif headers == "bad-secret":
        headers = {"event-lens-client-id": creds.write_id, "event-lens-client-secret": "x" * 43}
    elif headers == "read-client":
        headers = creds.read_headers()
    r = d.http.post("/track", json={"type": "track", "payload": {"name": "x"}}, headers=headers)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and body["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "empty_body"),
        (b"{not json", 400, "invalid_json"),
        (b"[]", 400, "invalid_body"),
        (b'{"type":"track"}', 400, "invalid_payload"),
        (b'{"type":"launch","payload":{}}', 400, "invalid_type"),
        (b'{"type":"track","payload":{"name":"x\\u0001"}}', 400, "invalid_payload"),
        (b'{"type":"track","payload":{"name":"' + b"n" * 201 + b'"}}', 400, "invalid_payload"),
        (b'{"type":"track","payload":{"name":"x","timestamp":"yesterday"}}', 400, "invalid_timestamp"),
        (b'{"type":"track","payload":{"name":"x","id":"' + b"i" * 65 + b'"}}', 400, "invalid_payload"),
        (
            b'{"type":"increment","payload":{"profileId":"u","property":"p","value":"lots"}}',
            400,
            "invalid_payload",
        ),
    ],
)
def test_validation_errors_are_clear_4xx(
    d: Daemon, creds: Creds, body: bytes, status: int, code: str
) -> None:
    r = d.http.post(
        "/track", content=body, headers={**creds.write_headers(), "content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    data = r.json()
    assert data["error"] == code
    assert data["message"] and "Traceback" not in r.text


def test_property_limits_are_422_not_truncation(d: Daemon, creds: Creds) -> None:
    s = d.settings
    too_many = {f"k{i}": i for i in range(s.max_properties + 1)}
    long_value = {"v": "x" * (s.max_property_value_length + 1)}
    for props, code in ((too_many, "too_many_properties"), (long_value, "property_value_too_long")):
        r = d.track(creds, {"name": "x", "properties": props})
        assert r.status_code == 422 and r.json()["error"] == code, r.text


def test_body_too_large_is_413(d: Daemon, creds: Creds) -> None:
    big = b'{"events":[' + b'{"type":"track","payload":{"name":"x"}},' * 200_000 + b"]}"
    assert len(big) > d.settings.max_body_bytes
    r = d.http.post("/track/batch", content=big, headers=creds.write_headers())
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_browser_client_with_allowed_origin_and_cors(d: Daemon, creds: Creds) -> None:
    from eventlens.storage.metadata import open_metadata

    with open_metadata(d.settings.metadata_dsn) as store:
        browser, secret = store.create_client(
            creds.project_id, "write", origins=["https://shop.example", "*.example.org"], with_secret=False
        )
    assert secret is None
    pre = d.http.options(
        "/track",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,event-lens-client-id",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://shop.example"
    assert "event-lens-client-id" in pre.headers["access-control-allow-headers"]
    assert "POST" in pre.headers["access-control-allow-methods"]
    body = {"type": "track", "payload": {"name": "page_view"}}
    # a real browser's user agent: httpx's own would (rightly) be classified as a bot
    chrome = {
        "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36"
    }
    ok = d.http.post(
        "/track",
        json=body,
        headers={"event-lens-client-id": browser.id, "origin": "https://shop.example", **chrome},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    sub = d.http.post(
        "/track",
        json=body,
        headers={"event-lens-client-id": browser.id, "origin": "https://a.example.org", **chrome},
    )
    assert sub.status_code == 200
    for origin in ("https://evil.example", "https://example.org", None):
        h = {"event-lens-client-id": browser.id, **({"origin": origin} if origin else {})}
        r = d.http.post("/track", json=body, headers=h)
        assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed", (origin, r.text)
    d.wait_metric(creds, "totalEvents", 2)


def test_insights_require_read_scope_and_own_project(d: Daemon, creds: Creds) -> None:
    other = d.new_project("other")
    assert d.track(other, {"name": "secret_event"}).status_code == 200
    d.wait_metric(other, "totalEvents", 1)  # stored: the zero below is not "not flushed yet"
    for route in ("metrics", "live"):
        r = d.http.get(f"/insights/{other.project_id}/{route}", headers=creds.read_headers())
        assert r.status_code == 403 and r.json()["error"] == "wrong_project"
        r = d.http.get(f"/insights/{creds.project_id}/{route}", headers=creds.write_headers())
        assert r.status_code == 403 and r.json()["error"] == "wrong_client_type"
        r = d.http.get(f"/insights/{creds.project_id}/{route}")
        assert r.status_code == 401
    assert d.metrics(creds)["totalEvents"] == 0


def test_a_root_client_tracks_and_reads_its_own_project_only(d: Daemon, creds: Creds) -> None:
    from eventlens.storage.metadata import open_metadata

    with open_metadata(d.settings.metadata_dsn) as store:
        root, secret = store.create_client(creds.project_id, "root")
    h = {"openpanel-client-id": root.id, "openpanel-client-secret": secret}
    r = d.http.post("/track", json={"type": "track", "payload": {"name": "by_root"}}, headers=h)
    assert r.status_code == 200, r.text
    d.wait_metric(creds, "totalEvents", 1)
    r = d.http.get(f"/insights/{creds.project_id}/metrics", headers=h)
    assert r.status_code == 200 and r.json()["totalEvents"] == 1, r.text
    other = d.new_project("other")
    r = d.http.get(f"/insights/{other.project_id}/metrics", headers=h)
    assert r.status_code == 403 and r.json()["error"] == "wrong_project"


def test_live_counts_recent_visitors_within_a_second(d: Daemon, creds: Creds) -> None:
    import time

    for dev in ("a", "b", "c"):
        assert d.track(creds, {"name": "page_view", "deviceId": dev}).status_code == 200
    start = time.monotonic()
    from tests.conftest import eventually

    def live() -> bool:
        r = d.http.get(f"/insights/{creds.project_id}/live", headers=creds.read_headers())
        return r.json() == {"count": 3}

    eventually(live, timeout=5, interval=0.05)
    assert time.monotonic() - start < 1.5
    old = int((time.time() - 3600) * 1000)
    assert d.track(creds, {"name": "page_view", "deviceId": "old", "timestamp": old}).status_code == 200
    # a fresh visitor on the same shard, sent after it: once this one is live, the old event has
    # been through the same presence push (or an earlier one), so it is not merely late
    from eventlens.buffer.client import shard_of

    home = shard_of(creds.project_id, "old", d.settings.shards)
    control = next(
        f"fresh-{i}"
        for i in range(1000)
        if shard_of(creds.project_id, f"fresh-{i}", d.settings.shards) == home
    )
    assert d.track(creds, {"name": "page_view", "deviceId": control}).status_code == 200

    def four() -> bool:
        r = d.http.get(f"/insights/{creds.project_id}/live", headers=creds.read_headers())
        return r.json() == {"count": 4}

    eventually(four, timeout=5, interval=0.05)
    time.sleep(0.5)  # and it stays so
    assert four()


def test_metrics_rejects_bad_parameters(d: Daemon, creds: Creds) -> None:
    h = creds.read_headers()
    base = f"/insights/{creds.project_id}/metrics"
    for params, code in (
        ({"startDate": "soon"}, "invalid_date"),
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"startDate": "2024-02-01", "endDate": "2024-01-01"}, "invalid_range"),
    ):
        r = d.http.get(base, params=params, headers=h)
        assert r.status_code == 400 and r.json()["error"] == code, r.text


def test_health_and_ready(d: Daemon) -> None:
    assert d.http.get("/health").json() == {"status": "ok"}
    r = d.http.get("/ready")
    assert r.status_code == 200 and r.json()["clickhouse"] is True and r.json()["metadata"] is True


def test_retried_batch_with_client_ids_is_counted_once(d: Daemon, creds: Creds) -> None:
    ids = [f"evt-{uuid.uuid4().hex}" for _ in range(40)]
    body = {
        "events": [{"type": "track", "payload": {"name": "buy", "id": i, "deviceId": "dev"}} for i in ids]
    }
    for _ in range(3):
        r = d.http.post("/track/batch", json=body, headers=creds.write_headers())
        assert r.json()["accepted"] == 40
    d.assert_stored_once(creds, ids)  # raw rows: one per id, not three


def _query(d: Daemon) -> Any:
    import ray

    wh = d.actor("warehouse")

    def q(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return ray.get(wh.query.remote(sql, params))

    return q


def test_a_retry_after_its_shard_restarted_is_stored_once_in_raw_rows_and_rollups(
    d: Daemon, creds: Creds
) -> None:
    """The shard's memory of recent ids is gone after a restart, and the flushed segment has left
    the log: only the idempotency window (files, or Redis sets in shared mode) knows the ids."""
    import time

    import ray

    ids = [f"once-{uuid.uuid4().hex}" for _ in range(30)]
    devices = [f"once-dev-{k}" for k in range(6)]
    body = {
        "events": [
            {"type": "track", "payload": {"name": "buy", "id": i, "deviceId": devices[k % 6]}}
            for k, i in enumerate(ids)
        ]
    }
    assert d.http.post("/track/batch", json=body, headers=creds.write_headers()).json()["accepted"] == 30
    d.wait_metric(creds, "totalEvents", 30)
    q = _query(d)
    for n in range(2):  # both shards restart (each owns some of the devices)
        shard = d.actor(f"shard-{n}")
        deadline = time.monotonic() + 20
        while ray.get(shard.describe.remote())["pending"] and time.monotonic() < deadline:
            time.sleep(0.1)  # flushed and deleted from the log
        old_pid = ray.get(shard.pid.remote())
        ray.kill(shard, no_restart=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if ray.get(shard.pid.remote(), timeout=5) != old_pid:
                    break
            except Exception:
                time.sleep(0.2)
        described = ray.get(shard.describe.remote())
        assert described["replayed"] == 0  # nothing left in the log: the ids are only in the index
    # the retry, and a new event with it
    retry = {
        "events": [
            *body["events"],
            {"type": "track", "payload": {"name": "buy", "id": "fresh", "deviceId": "x"}},
        ]
    }
    r = d.http.post("/track/batch", json=retry, headers=creds.write_headers())
    assert r.status_code == 200 and r.json()["accepted"] == 31, r.text
    d.wait_metric(creds, "totalEvents", 31, settle=1.5)
    rows = q(
        "SELECT id, count() AS n FROM events WHERE project_id = {p:String} AND name = 'buy' GROUP BY id",
        {"p": creds.project_id},
    )
    assert {r["id"]: r["n"] for r in rows} == {**dict.fromkeys(ids, 1), "fresh": 1}
