"""Enrichment, identity and sessions at ingest, end to end over HTTP (issue: enrichment, identity,
sessions and profiles)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
import ray

from tests.conftest import Creds, Daemon, DaemonManager, eventually

pytestmark = pytest.mark.ray

CHROME_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module", params=["embedded"])
def d(request: pytest.FixtureRequest, daemons: DaemonManager) -> Daemon:
    return daemons.use(request.param)


def _q(d: Daemon, sql: str, **params: Any) -> list[dict[str, Any]]:
    return ray.get(d.actor("warehouse").query.remote(sql, params))


def _event(d: Daemon, creds: Creds, eid: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    def found() -> bool:
        rows[:] = _q(
            d,
            "SELECT * FROM events WHERE project_id = {p:String} AND id = {id:String}",
            p=creds.project_id,
            id=eid,
        )
        return bool(rows)

    eventually(found, timeout=20)
    return rows[0]


def _browser_client(d: Daemon, creds: Creds) -> str:
    from eventlens.storage.metadata import open_metadata

    with open_metadata(d.settings.metadata_dsn) as store:
        client, _ = store.create_client(
            creds.project_id, "write", origins=["https://shop.example"], with_secret=False
        )
    return client.id


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (
            CHROME_WIN,
            {
                "browser": "Chrome",
                "browser_version": "124.0",
                "os": "Windows",
                "device": "desktop",
                "is_bot": 0,
            },
        ),
        (
            SAFARI_IPHONE,
            {
                "browser": "Mobile Safari",
                "os": "iOS",
                "os_version": "17.4",
                "device": "mobile",
                "brand": "Apple",
                "model": "iPhone",
                "is_bot": 0,
            },
        ),
        (GOOGLEBOT, {"device": "bot", "is_bot": 1}),
    ],
)
def test_user_agent_and_geo_columns(d: Daemon, ua: str, expected: dict[str, Any]) -> None:
    creds = d.new_project()
    browser = _browser_client(d, creds)
    headers = {
        "event-lens-client-id": browser,
        "origin": "https://shop.example",
        "user-agent": ua,
        "x-forwarded-for": "8.8.8.8, 10.0.0.1",
    }
    r = d.http.post(
        "/track", json={"type": "track", "payload": {"name": "page_view", "path": "/p"}}, headers=headers
    )
    assert r.status_code == 200, r.text
    row = _event(d, creds, r.json()["id"])
    assert {k: row[k] for k in expected} == expected
    assert row["country"] == "US"
    assert row["origin"] == "https://shop.example" and row["path"] == "/p"
    # bots are stored but excluded from insights by default
    visitors = d.metrics(creds)["uniqueVisitors"]
    assert visitors == (0 if expected["is_bot"] else 1)


def test_server_side_clients_are_never_bots(d: Daemon) -> None:
    creds = d.new_project()
    r = d.track(
        creds, {"name": "signup"}, headers={**creds.write_headers(), "user-agent": "python-requests/2.32"}
    )
    row = _event(d, creds, r.json()["id"])
    assert row["is_bot"] == 0 and row["device"] != "bot"


def test_cdn_country_header_wins(d: Daemon) -> None:
    creds = d.new_project()
    h = {**creds.write_headers(), "x-forwarded-for": "8.8.8.8", "cf-ipcountry": "DE"}
    row = _event(d, creds, d.track(creds, {"name": "x"}, headers=h).json()["id"])
    assert row["country"] == "DE" and row["region"] == "" and row["city"] == ""


@pytest.mark.parametrize(
    ("path", "referrer", "name", "type_", "utm_source"),
    [
        ("https://shop.example/a", "https://www.google.com/search?q=x", "Google", "search", ""),
        ("https://shop.example/a", "https://t.co/abc", "Twitter", "social", ""),
        ("https://shop.example/a", "https://shop.example/home", "", "internal", ""),
        ("https://shop.example/a", "", "", "direct", ""),
        (
            "https://shop.example/a",
            "https://blog.unknown-site.test/post",
            "blog.unknown-site.test",
            "other",
            "",
        ),
        (
            "https://shop.example/a?utm_source=newsletter&utm_medium=email",
            "",
            "newsletter",
            "email",
            "newsletter",
        ),
        (
            "https://shop.example/a?utm_source=google&utm_medium=cpc&utm_campaign=x",
            "https://www.google.com/",
            "Google",
            "ad",
            "google",
        ),
    ],
)
def test_referrer_and_utm(
    d: Daemon, path: str, referrer: str, name: str, type_: str, utm_source: str
) -> None:
    creds = d.new_project()
    r = d.track(creds, {"name": "page_view", "path": path, "referrer": referrer})
    row = _event(d, creds, r.json()["id"])
    assert (row["referrer_name"], row["referrer_type"], row["utm_source"]) == (name, type_, utm_source)
    assert row["path"] == "/a"


def test_ip_is_never_stored(d: Daemon) -> None:
    creds = d.new_project()
    h = {**creds.write_headers(), "x-forwarded-for": "81.2.69.160"}
    r = d.track(creds, {"name": "x", "properties": {"k": "v"}}, headers=h)
    row = _event(d, creds, r.json()["id"])
    assert "81.2.69.160" not in repr(row)


def test_session_ids_and_the_sessions_row_of_an_open_session(d: Daemon) -> None:
    """One visit: one session id returned to the client, and a sessions row exact while it is
    still open (session_end itself: tests/serve/test_session_end_http.py)."""
    creds = d.new_project()
    h = {**creds.write_headers(), "user-agent": CHROME_WIN, "x-forwarded-for": "8.8.4.4"}
    first = d.track(
        creds,
        {"name": "page_view", "path": "https://shop.example/", "referrer": "https://www.bing.com/"},
        headers=h,
    ).json()
    second = d.track(creds, {"name": "page_view", "path": "https://shop.example/pricing"}, headers=h).json()
    third = d.track(creds, {"name": "signup"}, headers=h).json()
    assert first["sessionId"] == second["sessionId"] == third["sessionId"]
    sid = first["sessionId"]

    def session_row() -> dict[str, Any] | None:
        rows = _q(
            d,
            "SELECT * FROM sessions FINAL WHERE project_id = {p:String} AND session_id = {s:String}",
            p=creds.project_id,
            s=sid,
        )
        return rows[0] if rows else None

    eventually(lambda: (row := session_row()) is not None and row["events"] == 3, timeout=20)
    row = session_row()
    assert row is not None
    assert (row["entry_path"], row["exit_path"], row["page_views"], row["is_bounce"]) == (
        "/",
        "/pricing",
        2,
        0,
    )
    assert (row["referrer_name"], row["referrer_type"], row["browser"], row["country"]) == (
        "Bing",
        "search",
        "Chrome",
        "US",
    )
    assert row["is_closed"] == 0
    m = d.metrics(creds)
    assert m["totalSessions"] == 1 and m["totalPageViews"] == 2 and m["bounceRate"] == 0


def test_client_session_id_is_kept(d: Daemon) -> None:
    creds = d.new_project()
    r = d.track(creds, {"name": "page_view", "deviceId": "dev", "sessionId": "my-session"}).json()
    assert r["sessionId"] == "my-session"


def test_late_events_keep_their_time_and_never_reopen_sessions(d: Daemon) -> None:
    creds = d.new_project()
    live = d.track(creds, {"name": "page_view", "deviceId": "dev"}).json()
    two_hours_ago = int((time.time() - 7200) * 1000)
    late = d.track(creds, {"name": "page_view", "deviceId": "dev", "timestamp": two_hours_ago}).json()
    assert late["sessionId"] != live["sessionId"]
    row = _event(d, creds, late["id"])
    assert abs(row["created_at"].timestamp() * 1000 - two_hours_ago) < 2
    again = d.track(creds, {"name": "page_view", "deviceId": "dev"}).json()
    assert again["sessionId"] == live["sessionId"]
    eventually(lambda: d.metrics(creds)["totalEvents"] == 3, timeout=20)
    starts = _q(
        d,
        "SELECT count() AS n FROM events WHERE project_id = {p:String} AND name = 'session_start'",
        p=creds.project_id,
    )
    assert starts[0]["n"] == 1


def test_session_continues_after_shard_crash(d: Daemon) -> None:
    creds = d.new_project()
    r1 = d.track(creds, {"name": "page_view", "deviceId": "crash-dev", "path": "/a"}).json()
    eventually(
        lambda: bool(_q(d, "SELECT 1 FROM sessions WHERE project_id = {p:String}", p=creds.project_id)),
        timeout=20,
    )
    r2 = d.track(
        creds, {"name": "page_view", "deviceId": "crash-dev", "path": "/b"}
    ).json()  # maybe unflushed
    for i in range(d.settings.shards):
        os.kill(ray.get(d.actor(f"shard-{i}").pid.remote()), signal.SIGKILL)
    time.sleep(1)
    r3 = d.track(creds, {"name": "page_view", "deviceId": "crash-dev", "path": "/c"})
    assert r3.status_code == 200, r3.text
    assert r1["sessionId"] == r2["sessionId"] == r3.json()["sessionId"]

    def three_views() -> bool:
        rows = _q(
            d,
            "SELECT page_views, exit_path FROM sessions FINAL WHERE project_id = {p:String}",
            p=creds.project_id,
        )
        return rows == [{"page_views": 3, "exit_path": "/c"}]

    eventually(three_views, timeout=30)
    # the view that was maybe unflushed at the crash (replayed from the log) is stored once too
    d.assert_stored_once(creds, [r1["id"], r2["id"], r3.json()["id"]], name="page_view")


def test_concurrent_increments_are_exact(d: Daemon) -> None:
    creds = d.new_project()
    n_threads, per = 8, 25

    def bump(k: int) -> None:
        for i in range(per):
            type_ = "increment" if (i + k) % 3 else "decrement"
            r = d.track(creds, {"profileId": "counter-user", "property": "credits", "value": 2}, type_)
            assert r.status_code == 200

    threads = [threading.Thread(target=bump, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = sum(2 if (i + k) % 3 else -2 for k in range(n_threads) for i in range(per))

    def total() -> bool:
        rows = _q(
            d,
            "SELECT sum(delta) AS v, count() AS n FROM (SELECT delta FROM profile_counters "
            "WHERE project_id = {p:String} AND profile_id = 'counter-user' LIMIT 1 BY event_id)",
            p=creds.project_id,
        )
        return rows[0]["n"] == n_threads * per and rows[0]["v"] == expected

    eventually(total, timeout=30)


def test_identify_merges_profile_fields_and_properties(d: Daemon) -> None:
    creds = d.new_project()
    d.track(
        creds,
        {"profileId": "u7", "firstName": "Ada", "properties": {"plan": "free", "team": "a"}},
        "identify",
    )
    d.track(creds, {"profileId": "u7", "email": "ada@example.com", "properties": {"plan": "pro"}}, "identify")

    def merged() -> bool:
        rows = _q(
            d,
            "SELECT first_name, email, properties FROM profiles FINAL WHERE project_id = {p:String} AND profile_id = 'u7'",
            p=creds.project_id,
        )
        return rows == [
            {"first_name": "Ada", "email": "ada@example.com", "properties": {"plan": "pro", "team": "a"}}
        ]

    eventually(merged, timeout=20)


def test_alias_makes_profile_insights_count_one_person(d: Daemon) -> None:
    """An anonymous visit, then sign-up on another device as u1, then an alias of the first device
    (and of an older id) to u1: retention and a profile funnel count one person, who did every step."""
    creds = d.new_project()
    anon = d.track(
        creds,
        {"name": "page_view", "path": "/pricing"},
        headers={**creds.write_headers(), "user-agent": CHROME_WIN},
    )
    assert anon.status_code == 200, anon.text
    device = anon.json()["deviceId"]
    time.sleep(0.01)
    d.track(creds, {"name": "signup", "profileId": "u1", "deviceId": "phone-1"})
    time.sleep(0.01)
    d.track(creds, {"name": "purchase", "profileId": "legacy-7", "deviceId": "phone-1"})
    day = time.strftime("%Y-%m-%d", time.gmtime())
    rng = {"startDate": day, "endDate": day}

    def retained() -> Any:
        r = d.http.get(f"/insights/{creds.project_id}/retention", params=rng, headers=creds.read_headers())
        assert r.status_code == 200, r.text
        return r.json()

    def funnel() -> list[int]:
        body = {"steps": ["page_view", "signup", "purchase"], "groupBy": "profile", **rng}
        r = d.http.post(f"/insights/{creds.project_id}/funnel", json=body, headers=creds.read_headers())
        assert r.status_code == 200, r.text
        return [s["count"] for s in r.json()]

    # before any alias: three people (device, u1, legacy-7); the anonymous view is no profile's
    eventually(lambda: bool(retained()) and retained()[0]["cohortSize"] == 3, timeout=20)
    assert funnel() == [0, 0, 0]

    for alias in (device, "legacy-7"):
        r = d.track(creds, {"profileId": "u1", "alias": alias}, "alias")
        assert r.status_code == 200, r.text
    eventually(lambda: retained()[0]["cohortSize"] == 1, timeout=20)
    assert retained()[0]["retainedUsers"] == 1
    assert funnel() == [1, 1, 1]

    # re-linking an alias: the newest link wins
    d.track(creds, {"profileId": "u2", "alias": "legacy-7"}, "alias")
    eventually(lambda: retained()[0]["cohortSize"] == 2, timeout=20)
    assert funnel() == [1, 1, 0]


def test_a_client_session_id_reused_after_the_timeout_is_a_second_session(d: Daemon) -> None:
    """Two visits of one device with the same client sessionId, the second more than the session
    timeout after the first (the first sent with past timestamps, inside the late bound): two
    sessions, the page views of both kept; the first visit's row is never replaced."""
    creds = d.new_project()
    timeout_ms = d.settings.session_timeout_s * 1000
    assert d.settings.late_event_bound_s * 1000 > timeout_ms + 5 * 60_000
    now = int(time.time() * 1000)
    first_at = now - timeout_ms - 3 * 60_000
    page = {"name": "page_view", "deviceId": "reuse-dev", "sessionId": "visit-1"}
    first = [d.track(creds, {**page, "path": f"/a{k}", "timestamp": first_at + k * 1000}) for k in range(2)]
    assert [r.json()["sessionId"] for r in first] == ["visit-1", "visit-1"]
    second = [d.track(creds, {**page, "path": f"/b{k}"}) for k in range(3)]
    assert [r.json()["sessionId"] for r in second] == ["visit-1~2"] * 3
    m = d.wait_metric(creds, "totalPageViews", 5)
    eventually(lambda: d.metrics(creds)["totalSessions"] == 2, timeout=20)
    rows = _q(
        d,
        "SELECT session_id, page_views, entry_path, exit_path FROM sessions FINAL "
        "WHERE project_id = {p:String} ORDER BY session_id",
        p=creds.project_id,
    )
    assert rows == [
        {"session_id": "visit-1", "page_views": 2, "entry_path": "/a0", "exit_path": "/a1"},
        {"session_id": "visit-1~2", "page_views": 3, "entry_path": "/b0", "exit_path": "/b2"},
    ]
    assert m["totalPageViews"] == 5 and d.metrics(creds)["viewsPerSession"] == 2.5


def test_live_never_counts_bots(d: Daemon) -> None:
    creds = d.new_project()
    browser = _browser_client(d, creds)
    for n, ua in enumerate((GOOGLEBOT, CHROME_WIN, GOOGLEBOT)):
        headers = {"event-lens-client-id": browser, "origin": "https://shop.example", "user-agent": ua}
        payload = {"name": "page_view", "path": "/p", "deviceId": f"live-{n}"}
        r = d.http.post("/track", json={"type": "track", "payload": payload}, headers=headers)
        assert r.status_code == 200, r.text
    url = f"/insights/{creds.project_id}/live"
    eventually(lambda: d.http.get(url, headers=creds.read_headers()).json() == {"count": 1}, timeout=5)
    time.sleep(1.0)  # a second presence push: the bots are not merely late
    assert d.http.get(url, headers=creds.read_headers()).json() == {"count": 1}
    r = d.http.get(url, params={"includeBots": "true"}, headers=creds.read_headers())
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter"
    assert "includeBots" in r.json()["message"]
    # insights still count the bots when asked
    eventually(lambda: d.metrics(creds, includeBots="true")["uniqueVisitors"] == 3, timeout=20)
