"""A real storage outage under load: the chDB owner's process is frozen (SIGSTOP, later SIGCONT)
or killed (SIGKILL: Ray restarts it) while a few senders keep sending batches with client ids.

Ingest must answer 200 while the shards' logs have room, then 503 with Retry-After once they hold
``wal_max_pending_events`` each (never a 500, never a request outliving the client's timeout), and
once storage is back everything acknowledged drains: every acknowledged id stored exactly once in
the raw rows, nothing else stored, and the rollup-backed ``totalEvents`` equal to the count.

Senders behave like a well-made SDK: events not logged (a 503, or a 200 listing them as rejected)
are sent again with the same ids after Retry-After seconds.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import ray

from tests.conftest import Creds, Daemon, DaemonManager, eventually

pytestmark = pytest.mark.ray

BOUND = 2000  # wal_max_pending_events (EVENTLENS_WAL_MAX_PENDING_EVENTS): per shard
SHARDS = 2
SENDERS = 4
SIZE = 50  # events per batch
CLIENT_TIMEOUT_S = 10.0
# a seal logs the snapshots of the sessions it changed even past the bound (20 devices here: one
# row each, and room to spare)
SEAL_ROWS = 100
# one shard append may carry every sender's batch (a replica coalesces them), plus the session
# rows a seal adds: a log is "at its bound" once it holds more than BOUND less this
SLACK = SENDERS * SIZE + SEAL_ROWS
PACE_S = 0.2


@pytest.fixture(scope="module")
def d(daemons: DaemonManager) -> Daemon:
    # the rate limit out of the way: every refusal here must come from the logs' bound
    return daemons.use(
        "outage",
        shards=SHARDS,
        wal_max_pending_events=BOUND,
        rate_limit_per_second=1_000_000,
        rate_limit_burst=1_000_000,
    )


@dataclass
class Reply:
    at: float  # monotonic time of the answer
    status: int | str  # HTTP status, or the exception's type name
    seconds: float
    retry_after: str | None = None
    accepted: int = 0
    refused: int = 0  # events of the request that were not logged
    messages: list[str] = field(default_factory=list)


class Load:
    """``SENDERS`` threads sending ``batches`` batches of ``SIZE`` events with client ids; an event
    not logged is sent again (same id) after Retry-After seconds until it is acknowledged."""

    def __init__(self, d: Daemon, creds: Creds, tag: str, batches: int) -> None:
        self.d, self.creds, self.tag = d, creds, tag
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        # paced until the fault: a batch per sender every PACE_S, a rate storage keeps up with, so
        # that the logs fill because of the fault; then as fast as the answers come
        self.paced = threading.Event()
        self.paced.set()
        self.threads = [
            threading.Thread(target=self._run, args=(w, batches), daemon=True) for w in range(SENDERS)
        ]

    def _post(self, client: httpx.Client, events: list[dict[str, Any]]) -> tuple[Reply, set[int]]:
        """One request: its reply and the indexes (into ``events``) that were not logged."""
        start = time.monotonic()
        try:
            r = client.post("/track/batch", json={"events": events}, headers=self.creds.write_headers())
        except httpx.HTTPError as exc:
            now = time.monotonic()
            return Reply(now, type(exc).__name__, now - start, refused=len(events)), set(range(len(events)))
        now = time.monotonic()
        reply = Reply(now, r.status_code, now - start, r.headers.get("retry-after"))
        if r.status_code != 200:
            reply.refused = len(events)
            reply.messages = [r.text]
            return reply, set(range(len(events)))
        body = r.json()
        refused = {x["index"] for x in body["rejected"]}
        reply.accepted, reply.refused = body["accepted"], len(refused)
        reply.messages = sorted({x["message"] for x in body["rejected"]})
        return reply, refused

    def _run(self, worker: int, batches: int) -> None:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=self.d.url, timeout=CLIENT_TIMEOUT_S) as client:
            for b in range(batches):
                ids = [f"{self.tag}-w{worker}-b{b}-e{i}" for i in range(SIZE)]
                events = [
                    {
                        "type": "track",
                        # five devices per sender: the batches spread over the shards
                        "payload": {"name": "tick", "id": e, "deviceId": f"{self.tag}-{worker}-{i % 5}"},
                    }
                    for i, e in enumerate(ids)
                ]
                with self.lock:
                    self.sent.update(ids)
                pending = list(range(SIZE))
                while pending and time.monotonic() < deadline:
                    reply, refused = self._post(client, [events[i] for i in pending])
                    with self.lock:
                        self.replies.append(reply)
                        if reply.status == 200:
                            self.acked.update(
                                ids[pending[j]] for j in range(len(pending)) if j not in refused
                            )
                    pending = [pending[j] for j in sorted(refused)]
                    if pending:  # as an SDK does: wait as told (1 s when not told), then again
                        time.sleep(float(reply.retry_after or 1))
                if self.paced.is_set():
                    time.sleep(PACE_S)

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads)

    def snapshot(self) -> tuple[int, list[Reply]]:
        with self.lock:
            return len(self.acked), list(self.replies)


def _pending(d: Daemon) -> list[int]:
    return [ray.get(d.actor(f"shard-{i}").describe.remote(), timeout=10)["pending"] for i in range(SHARDS)]


def _warehouse_pid(d: Daemon, timeout: float = 10) -> int:
    return int(ray.get(d.actor("warehouse").pid.remote(), timeout=timeout))


def _check_answers(replies: list[Reply]) -> None:
    """200 or 503 only, never slower than the client's timeout; every refusal carries Retry-After."""
    statuses = {r.status for r in replies}
    assert statuses <= {200, 503}, (
        f"unexpected answers {statuses}: {[r for r in replies if r.status not in (200, 503)][:3]}"
    )
    slowest = max(r.seconds for r in replies)
    assert slowest < CLIENT_TIMEOUT_S, slowest
    for r in replies:
        if r.refused:
            assert r.retry_after and int(r.retry_after) >= 1, r
        if r.status == 503:
            assert '"storage_unavailable"' in r.messages[0], r


def _stored_ids(d: Daemon, creds: Creds) -> set[str]:
    return set(d.stored_rows(creds, "tick"))


def test_frozen_storage_fills_the_logs_then_503_then_drains(d: Daemon) -> None:
    creds = d.new_project()
    wh_pid = _warehouse_pid(d)
    load = Load(d, creds, "freeze", batches=30).start()  # 4 × 30 × 50 = 6000 events: > 2 × BOUND
    # under load with storage working: some of it is stored before the outage
    eventually(lambda: len(_stored_ids(d, creds)) >= 200, timeout=20, interval=0.05)
    os.kill(wh_pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    load.paced.clear()
    try:
        # the logs fill up to their bound, then senders are refused: hold until a few 503s came
        eventually(lambda: sum(r.status == 503 for r in load.snapshot()[1]) >= 2, timeout=40)
        # readiness says so, within its own bound (the probe waits 3 s for the frozen process)
        t0 = time.monotonic()
        ready = d.http.get("/ready", timeout=CLIENT_TIMEOUT_S)
        ready_s = time.monotonic() - t0
        assert ready.status_code == 503 and ready.json()["clickhouse"] is False, ready.text
        assert int(ready.headers["retry-after"]) >= 1 and ready_s < 5, ready_s
        full = _pending(d)  # the shards answer: only their flushes wait for the frozen process
    finally:
        os.kill(wh_pid, signal.SIGCONT)
    thawed_at = time.monotonic()
    with load.lock:
        acked_before_thaw = set(load.acked)
    eventually(lambda: _stored_ids(d, creds) >= acked_before_thaw, timeout=60, interval=0.1)
    drain_s = time.monotonic() - thawed_at
    load.join()
    _, replies = load.snapshot()
    _check_answers(replies)

    # refused only once a log was full: every refusal that says why names a log holding (nearly)
    # BOUND events. (Not every log need be full: a sender waits on its batch's refused part, so a
    # log all of whose senders wait on the other shard takes nothing more. Nor need the first
    # refusal come after the freeze: on a busy machine the flushes can fall BOUND behind the
    # senders while storage works, which is the same backpressure.)
    assert all(p <= BOUND + SEAL_ROWS for p in full) and max(full) > BOUND - SLACK, full
    first_503 = next(i for i, r in enumerate(replies) if r.status == 503)
    waiting = []
    for r in replies:
        if r.status == 200 and r.refused:
            for msg in r.messages:
                m = re.fullmatch(r"(\d+) events waiting for storage \(limit (\d+)\)", msg)
                assert m and int(m.group(2)) == BOUND, msg
                waiting.append(int(m.group(1)))
    assert all(w > BOUND - SLACK for w in waiting), sorted(waiting)[:5]
    # after the thaw ingest takes events again, and everything acknowledged is stored once
    assert any(r.status == 200 and r.accepted for r in replies if r.at > thawed_at)
    assert load.acked == load.sent, f"{len(load.sent - load.acked)} events never acknowledged"
    d.assert_stored_once(creds, load.acked, name="tick")

    ok_before = replies[:first_503]
    refused_503 = [r for r in replies if r.status == 503]
    print(
        f"\nSIGSTOP storage (bound {BOUND} × {SHARDS} shards): first refusal "
        f"{next(r.at for r in replies if r.refused) - frozen_at:+.1f}s after the freeze; {len(ok_before)} × 200 "
        f"({sum(r.accepted for r in ok_before)} events taken, "
        f"{sum(1 for r in ok_before if r.at > frozen_at)} × 200 while frozen) before the first 503; "
        f"{len(refused_503)} × 503 (Retry-After {sorted({r.retry_after for r in refused_503})}), "
        f"{sum(1 for r in replies if r.status == 200 and r.refused)} × 200 refusing part of a batch; "
        f"logs at {full} when thawed; frozen {thawed_at - frozen_at:.1f}s; everything acknowledged "
        f"before the thaw ({len(acked_before_thaw)}) stored {drain_s:.1f}s after SIGCONT; "
        f"{len(load.acked)} events in all, slowest request {max(r.seconds for r in replies):.2f}s"
    )


def test_killed_storage_owner_is_restarted_and_nothing_is_lost(d: Daemon) -> None:
    creds = d.new_project()
    old_pid = _warehouse_pid(d)
    load = Load(d, creds, "kill", batches=20).start()  # 4 × 20 × 50 = 4000 events
    eventually(lambda: len(_stored_ids(d, creds)) >= 200, timeout=20, interval=0.05)
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    load.paced.clear()
    new_pid = old_pid
    while new_pid == old_pid:  # a call right after the kill may still reach the old process
        assert time.monotonic() - killed_at < 60, "the chDB owner was not restarted"
        try:
            new_pid = _warehouse_pid(d, timeout=5)
        except Exception:  # restarting: the call fails or times out
            time.sleep(0.2)
    restarted_s = time.monotonic() - killed_at
    load.join()
    _, replies = load.snapshot()
    _check_answers(replies)
    assert load.acked == load.sent, f"{len(load.sent - load.acked)} events never acknowledged"
    d.assert_stored_once(creds, load.acked, name="tick")
    refused = [r for r in replies if r.refused]
    print(
        f"\nSIGKILL storage: restarted in {restarted_s:.1f}s; {len(replies)} requests, "
        f"{sum(r.status == 503 for r in replies)} × 503, {len(refused)} with refused events "
        f"{sorted({m for r in refused for m in r.messages})[:3]}; "
        f"{len(load.acked)} events, slowest request {max(r.seconds for r in replies):.2f}s"
    )
