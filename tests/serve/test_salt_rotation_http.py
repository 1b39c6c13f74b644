"""The cookieless device id across a salt rotation ("midnight"): a visit in progress keeps its
device and session id; a visitor who arrives after the rotation gets an id under the new salt.
The shared variant rotates salts every 20 s so the test can wait for a rotation."""

from __future__ import annotations

import time

import pytest

from eventlens.ingest.identity import device_hash
from eventlens.ingest.salts import salt_key
from eventlens.storage.metadata import open_metadata
from tests.conftest import Daemon

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.mariadb]

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
)


def _wait_for_period_start(period_s: int, margin: float = 1.0) -> int:
    """Sleep until just after a period boundary; returns the new period's number."""
    now = time.time()
    time.sleep(period_s - now % period_s + margin)
    return int(time.time()) // period_s


def test_visit_survives_salt_rotation(shared: Daemon) -> None:
    d = shared
    creds = d.new_project()
    period_s = d.settings.salt_rotation_s
    visitor = {**creds.write_headers(), "user-agent": CHROME, "x-forwarded-for": "9.9.9.9"}
    period = _wait_for_period_start(period_s)
    before = d.track(creds, {"name": "page_view", "path": "/"}, headers=visitor).json()
    with open_metadata(d.settings.metadata_dsn) as store:
        salt = store.get_or_create_salt(salt_key(period, period_s))
    assert before["deviceId"] == device_hash(creds.project_id, "9.9.9.9", CHROME, salt)

    new_period = _wait_for_period_start(period_s)
    assert new_period == period + 1
    after = d.track(creds, {"name": "page_view", "path": "/next"}, headers=visitor).json()
    assert after["deviceId"] == before["deviceId"], "the visit in progress keeps its device id"
    assert after["sessionId"] == before["sessionId"], "and its session"

    newcomer = {**visitor, "x-forwarded-for": "9.9.9.10"}
    fresh = d.track(creds, {"name": "page_view"}, headers=newcomer).json()
    with open_metadata(d.settings.metadata_dsn) as store:
        new_salt = store.get_or_create_salt(salt_key(new_period, period_s))
    assert new_salt != salt
    assert fresh["deviceId"] == device_hash(creds.project_id, "9.9.9.10", CHROME, new_salt)
    d.wait_metric(creds, "totalSessions", 2)
    assert d.metrics(creds)["uniqueVisitors"] == 2
