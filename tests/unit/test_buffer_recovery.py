"""What a restarted shard reads back from storage (eventlens.buffer.recovery), on real ClickHouse."""

from __future__ import annotations

import time
from typing import Any

import pytest
import uuid_utils

from eventlens.buffer.recovery import CLIENT_ID_DAYS, client_ids_loader
from eventlens.records import SESSION_COLUMNS
from eventlens.storage.migrations import migrate_clickhouse
from eventlens.storage.tables import to_columns

pytestmark = [pytest.mark.storage, pytest.mark.chdb]

DAY = 86_400_000


@pytest.fixture(scope="module")
def wh(storage_warehouse: Any) -> Any:
    migrate_clickhouse(storage_warehouse)
    return storage_warehouse


def session(sid: str, opened: int, shard: int = 3, project: str = "p-rec") -> dict[str, Any]:
    return {
        **SESSION_COLUMNS,
        "project_id": project,
        "session_id": sid,
        "device_id": "d",
        "opened_at": opened,
        "started_at": opened,
        "ended_at": opened,
        "is_closed": 1,
        "version": opened,
        "shard": shard,
    }


def test_client_ids_loader_reads_the_recent_days_client_ids_of_the_shard_newest_first(wh: Any) -> None:
    now = int(time.time() * 1000)
    midnight = now - now % DAY
    server = str(uuid_utils.uuid7())
    rows = [
        session("older", midnight + 1),
        session("visit~2", midnight + 3),
        session("visit~2", midnight + 4),  # a newer snapshot of the same session
        session("visit", midnight + 2),
        session(server, midnight + 5),  # a server id: never reused
        session("yesterday", midnight - 1),
        session("week-old", midnight - (CLIENT_ID_DAYS - 1) * DAY + 1),
        session("too-old", midnight - (CLIENT_ID_DAYS - 1) * DAY - 1),  # before the horizon's first day
        session("other-shard", midnight + 6, shard=4),
    ]
    names, cols = to_columns("sessions", rows)
    wh.insert_columns("sessions", names, cols, f"t-{uuid_utils.uuid7()}")
    got = client_ids_loader(3, wh.query, 10)()
    assert [(r["project_id"], r["session_id"]) for r in got] == [
        ("p-rec", "visit~2"),
        ("p-rec", "visit"),
        ("p-rec", "older"),
        ("p-rec", "yesterday"),
        ("p-rec", "week-old"),
    ]
    assert [r["session_id"] for r in client_ids_loader(3, wh.query, 1)()] == ["visit~2"]
