"""session_end arrives within the timeout plus a few seconds of a visit's last event (no
minutes-long reaper lag), and the session's row is closed. The shared variant uses a 60 s timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ray

from tests.conftest import Daemon, eventually

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.mariadb]


def test_session_end_follows_the_timeout_within_seconds(shared: Daemon) -> None:
    d = shared
    creds = d.new_project()
    timeout_s = d.settings.session_timeout_s
    first = d.track(creds, {"name": "page_view", "deviceId": "idle-dev", "path": "/a"}).json()
    last = d.track(creds, {"name": "page_view", "deviceId": "idle-dev", "path": "/b"}).json()
    last_at = time.time()
    sid = first["sessionId"]
    assert last["sessionId"] == sid
    wh = d.actor("warehouse")

    def ended() -> list[dict[str, Any]]:
        return ray.get(
            wh.query.remote(
                "SELECT toUnixTimestamp64Milli(created_at) AS at FROM events "
                "WHERE project_id = {p:String} AND name = 'session_end' AND session_id = {s:String}",
                {"p": creds.project_id, "s": sid},
            )
        )

    time.sleep(timeout_s - 5)
    assert ended() == [], "no session_end before the timeout"
    eventually(lambda: bool(ended()), timeout=15, interval=0.25)
    seen_after = time.time() - last_at
    assert seen_after <= timeout_s + 6, f"session_end became visible {seen_after:.1f}s after the last event"
    # the marker carries the time of the visit's last event, not the time it was noticed
    assert abs(ended()[0]["at"] / 1000 - last_at) < 2
    rows = ray.get(
        wh.query.remote(
            "SELECT is_closed, page_views, exit_path FROM sessions FINAL WHERE project_id = {p:String}",
            {"p": creds.project_id},
        )
    )
    assert rows == [{"is_closed": 1, "page_views": 2, "exit_path": "/b"}]
    # the next event of that device opens a new session
    again = d.track(creds, {"name": "page_view", "deviceId": "idle-dev"}).json()
    assert again["sessionId"] != sid
