"""The OpenPanel SDKs as their users install them from npm (tests/sdk/package.json, installed by
scripts/sdk.sh), unmodified, against the embedded daemon over real HTTP: ``@openpanel/sdk`` in
Node and ``@openpanel/web`` in headless Chromium. Every public method's message is accepted, and
what it sent is visible through the insight routes."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.simcluster import free_port
from tests.conftest import Creds, Daemon, eventually

pytestmark = pytest.mark.ray

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def installed(*needs: Path) -> None:
    """What the tests run: missing is a failure in CI (the test command installs it), else a skip."""
    missing = [str(p) for p in needs if not p.exists()] + ([] if shutil.which("node") else ["node"])
    if missing:
        message = f"not installed: {', '.join(missing)}; run scripts/sdk.sh"
        if os.environ.get("EVENTLENS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


def run_node(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        ["node", str(SDK_DIR / script), *args],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def get(d: Daemon, creds: Creds, path: str, **params: Any) -> Any:
    r = d.http.get(f"/insights/{creds.project_id}/{path}", params=params, headers=creds.read_headers())
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def refused(requests: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(r["type"], r["status"], r["answer"][:200]) for r in requests if r["status"] != 200]


def event_names(d: Daemon, creds: Creds) -> dict[str, int]:
    r = d.http.get(f"/filters/{creds.project_id}/event-names", headers=creds.read_headers())
    assert r.status_code == 200, r.text
    return {e["name"]: e["count"] for e in r.json()["data"]}


def test_every_node_sdk_method_is_accepted_and_visible(embedded: Daemon) -> None:
    installed(SDK_DIR / "node_modules" / "@openpanel" / "sdk")
    d = embedded
    creds = d.new_project()
    out = run_node("node_client.mjs", d.url, creds.write_id, creds.write_secret, "n1")
    sent = [r["type"] for r in out["requests"]]
    assert sent == [
        "track",
        "identify",
        "increment",
        "decrement",
        "track",
        "track",  # revenue() is a track named "revenue"
        "group",
        "assign_group",
        "assign_group",
        "track",
        "track",
    ], sent
    assert refused(out["requests"]) == []
    assert out["deviceId"] and out["sessionId"] and out["fetched"] == out["deviceId"]
    d.flush()
    want = {"screen_view": 1, "signup": 1, "revenue": 1, "report_viewed": 1, "after_clear": 1}
    eventually(lambda: event_names(d, creds) == want, timeout=20)
    m = d.metrics(creds, currency="EUR")
    assert (m["totalEvents"], m["totalPageViews"], m["totalRevenue"]) == (5, 1, 49.99), m
    person = get(d, creds, "profiles/n1-user")
    assert (person["firstName"], person["lastName"], person["email"]) == ("Ada", "Lovelace", "n1@example.com")
    assert person["properties"] == {"tier": "gold"} and person["counters"] == {"logins": 2, "credits": -1}
    assert sorted(e["name"] for e in person["events"]) == ["report_viewed", "revenue", "signup"]
    # groups: the event after setGroups carries both (clear() forgets them: after_clear has none)
    by_group = get(d, creds, "breakdown", dimension="group")
    assert {r["value"]: r["count"] for r in by_group} == {"": 4, "n1-acme": 1, "n1-beta": 1}, by_group


@pytest.fixture
def page_server() -> Iterator[str]:
    """tests/sdk served over HTTP on loopback: the test page and the bundled web SDK."""
    handler = functools.partial(QuietHandler, directory=str(SDK_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_the_web_sdk_in_chromium_tracks_records_and_replays(embedded: Daemon, page_server: str) -> None:
    installed(SDK_DIR / "build" / "web.js", SDK_DIR / "node_modules" / "playwright-core", Path(CHROMIUM))
    from eventlens.storage.metadata import open_metadata

    d = embedded
    creds = d.new_project()
    with open_metadata(d.settings.metadata_dsn) as store:  # a browser client: no secret, this origin
        browser, _ = store.create_client(creds.project_id, "write", origins=[page_server], with_secret=False)
    out = run_node("web_client.mjs", f"{page_server}/page.html", d.url, browser.id, "w1")
    assert refused(out["requests"]) == []
    sent = [r["type"] for r in out["requests"]]
    for kind in ("track", "identify", "group", "assign_group", "increment", "decrement", "replay"):
        assert kind in sent, (kind, sent)
    sid = out["sessionId"]
    d.flush()
    want = {"screen_view": 2, "plan_selected": 1, "signup": 1, "revenue": 1}
    eventually(lambda: event_names(d, creds) == want, timeout=20)
    views = get(d, creds, "pages")
    assert sorted(p["path"] for p in views) == ["/checkout", "/page.html"], views
    assert d.metrics(creds, currency="EUR")["totalRevenue"] == 19.5
    sessions = get(d, creds, "sessions")["data"]
    assert [s["id"] for s in sessions] == [sid], sessions
    # the recording, in order, from its full snapshot (rrweb type 2) on
    chunks: list[dict[str, Any]] = []
    first = 0
    while True:
        page = get(d, creds, f"sessions/{sid}/replay", fromChunk=first, limit=50)
        chunks += page["chunks"]
        if page["nextChunk"] is None:
            break
        first = page["nextChunk"]
    sent_chunks = sum(1 for t in sent if t == "replay")
    assert [c["index"] for c in chunks] == list(range(sent_chunks)), [c["index"] for c in chunks]
    assert chunks[0]["isFullSnapshot"] and any(e["type"] == 2 for e in chunks[0]["events"])
    assert all(c["eventsCount"] == len(c["events"]) for c in chunks)
    added = [e for c in chunks for e in c["events"] if e["type"] == 3]  # incremental: the list rows
    assert added, "the DOM changes were recorded"
