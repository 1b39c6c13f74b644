"""Operator metrics as an operator sees them: events sent over real HTTP to the embedded daemon,
then the test Ray's metrics agent scraped (``http://127.0.0.1:<port>/metrics``, Prometheus format)
until its numbers match what was sent; ``promtool check metrics`` on the scrape.

The session's Ray is shared with other test modules, so every check compares a scrape taken before
with one taken after (per series: a restarted actor's process starts new series, tagged with its
``WorkerId``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from eventlens import metrics
from tests.conftest import Daemon

pytestmark = pytest.mark.ray

Series = tuple[str, frozenset[tuple[str, str]]]
Scrape = dict[Series, float]
# the labels Ray's agent adds to every metric it exports, named by Ray in camelCase
RAY_CAMEL_LABELS = ("Component", "NodeAddress", "SessionName", "WorkerId", "Version")


def scrape_text(port: int) -> str:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    r.raise_for_status()
    return r.text


def parse(text: str) -> Scrape:
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("ray_eventlens_"):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scrape(port: int) -> Scrape:
    return parse(scrape_text(port))


def delta(
    before: Scrape, after: Scrape, name: str, by: tuple[str, ...] = (), **match: str
) -> dict[Any, float]:
    """Growth of ``name`` per value of the labels ``by``, over the series matching ``match``."""
    out: dict[Any, float] = {}
    for (n, labels), value in after.items():
        d = dict(labels)
        if n != name or any(d.get(k) != v for k, v in match.items()):
            continue
        key = tuple(d.get(k, "") for k in by) if by else ()
        out[key] = out.get(key, 0.0) + value - before.get((n, labels), 0.0)
    return {k: v for k, v in out.items() if v}


def grown(before: Scrape, after: Scrape, name: str, **match: str) -> float:
    return delta(before, after, name, **match).get((), 0.0)


def values(now: Scrape, name: str, **match: str) -> list[float]:
    """A gauge's value in each series matching ``match`` (one per process that set it)."""
    return [
        v
        for (n, labels), v in now.items()
        if n == name and all(dict(labels).get(k) == want for k, want in match.items())
    ]


def settled(port: int, timeout: float = 30) -> Scrape:
    """A scrape once the counts recorded so far have all arrived (the agent receives them each
    second): two scrapes 2 s apart agree on every counter and histogram."""
    deadline = time.monotonic() + timeout

    def counts(now: Scrape) -> Scrape:
        return {k: v for k, v in now.items() if re.search(r"_(total|count|sum|bucket)$", k[0])}

    last = scrape(port)
    while True:
        time.sleep(2)
        now = scrape(port)
        if counts(now) == counts(last) or time.monotonic() > deadline:
            return now
        last = now


def wait_for(
    port: int,
    check: Callable[[Scrape], bool],
    what: str,
    timeout: float = 30,
    show: Callable[[Scrape], Any] = lambda now: sorted({n for n, _ in now}),
) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        now = scrape(port)
        if check(now):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never showed {what} within {timeout}s; last: {show(now)}")
        time.sleep(0.5)


def test_ingest_outcomes_flushes_and_insights_are_counted(embedded: Daemon, metrics_port: int) -> None:
    d = embedded
    creds = d.new_project()
    devices = [f"m-dev-{i}" for i in range(5)]
    before = settled(metrics_port)  # the daemon's own start-up probes included
    h = creds.write_headers()
    # 5 single events, one per device, and one client retry of the first (same id): a duplicate
    for i, dev in enumerate(devices):
        r = d.track(creds, {"name": "view", "deviceId": dev, "id": f"m-single-{i}"})
        assert r.status_code == 200, r.text
    retry = d.track(creds, {"name": "view", "deviceId": devices[0], "id": "m-single-0"})
    assert retry.status_code == 200 and retry.json()["deviceId"] == devices[0]
    # a batch: 20 valid, one invalid track payload, one unknown type
    events: list[Any] = [
        {"type": "track", "payload": {"name": "click", "deviceId": devices[i % 5]}} for i in range(20)
    ]
    events += [{"type": "track", "payload": {"name": ""}}, {"type": "nope", "payload": {}}]
    r = d.http.post("/track/batch", json={"events": events}, headers=h)
    assert r.status_code == 200 and r.json()["accepted"] == 20, r.text
    # refused: a bad single payload (400), and wrong credentials (401)
    assert d.track(creds, {"name": ""}).status_code == 400
    assert d.track(creds, {"name": "x"}, headers={"event-lens-client-id": "nobody"}).status_code == 401
    sent = {
        ("track", "accepted"): 25,
        ("track", "duplicate"): 1,
        ("track", "rejected"): 2,
        ("unknown", "rejected"): 1,
        ("unknown", "unauthorized"): 1,
    }

    def events_counted(now: Scrape) -> dict[Any, float]:
        return delta(before, now, "ray_eventlens_events_total", ("type", "outcome"))

    after = wait_for(
        metrics_port, lambda now: events_counted(now) == sent, f"events {sent}", show=events_counted
    )
    # stored: 25 events plus one session_start per device, one insert per table and segment
    stored_rows = 25 + len(devices)

    def stored(now: Scrape) -> bool:
        rows = delta(before, now, "ray_eventlens_flush_rows_total", ("table",))
        return rows.get(("events",), 0) >= stored_rows and rows.get(("sessions",), 0) >= len(devices)

    after = wait_for(metrics_port, stored, "the events stored")
    time.sleep(2.5)  # nothing more arrives: the counts are exact, not lower bounds
    after = scrape(metrics_port)
    assert events_counted(after) == sent
    rows = delta(before, after, "ray_eventlens_flush_rows_total", ("table",))
    assert rows[("events",)] == stored_rows, rows
    inserts = delta(before, after, "ray_eventlens_insert_seconds_count", ("table",))
    assert inserts[("events",)] >= 1 and inserts[("sessions",)] >= 1
    appends = grown(before, after, "ray_eventlens_shard_append_seconds_count")
    assert 1 <= appends <= 8  # at most one append call per request and shard
    segments = grown(before, after, "ray_eventlens_ack_to_stored_seconds_count")
    assert segments >= 1
    lag = grown(before, after, "ray_eventlens_ack_to_stored_seconds_sum") / segments
    assert 0 < lag < 10, lag
    assert grown(before, after, "ray_eventlens_flush_seconds_count") >= 1
    # gauges: every shard reports, nothing left pending, these sessions open, these visitors live
    pending = {
        dict(k[1])["shard"]: v for k, v in after.items() if k[0] == "ray_eventlens_shard_pending_events"
    }
    assert set(pending) == {str(i) for i in range(d.settings.shards)}
    after = wait_for(
        metrics_port,
        lambda now: all(v == 0 for k, v in now.items() if k[0] == "ray_eventlens_shard_pending_events"),
        "no events pending",
    )
    open_sessions = sum(v for k, v in after.items() if k[0] == "ray_eventlens_open_sessions")
    assert open_sessions >= len(devices)
    assert max(values(after, "ray_eventlens_live_visitors")) >= len(devices)

    # insight routes: latency per route and the cache's answer, as the replies' x-cache said
    before = settled(metrics_port)
    seen: dict[tuple[str, str], int] = {}
    for route in ("metrics", "metrics", "pages"):
        r = d.http.get(f"/insights/{creds.project_id}/{route}", headers=creds.read_headers())
        assert r.status_code == 200, r.text
        key = (route, r.headers["x-cache"])
        seen[key] = seen.get(key, 0) + 1
    assert ("metrics", "hit") in seen  # nothing was stored in between: the second is cached

    def answered(now: Scrape) -> bool:
        return delta(before, now, "ray_eventlens_insight_cache_total", ("insight", "result")) == seen

    after = wait_for(metrics_port, answered, f"insight answers {seen}")
    assert delta(before, after, "ray_eventlens_insight_seconds_count", ("insight", "cache")) == seen
    # Serve's tags come with a replica's metrics
    labels = {k for (n, ls), _ in after.items() if n == "ray_eventlens_insight_cache_total" for k, _ in ls}
    assert {"deployment", "replica", "application"} <= labels


def test_flush_errors_restart_and_replay_are_counted(embedded: Daemon, metrics_port: int) -> None:
    d = embedded
    creds = d.new_project()
    warehouse = d.actor("warehouse")
    shard0 = d.actor("shard-0")
    before = settled(metrics_port)
    ray.get(warehouse.pause_writes.remote(True))  # inserts fail: the shards keep events in their logs
    try:
        n = 60
        body = {
            "events": [
                {"type": "track", "payload": {"name": "tick", "deviceId": f"r-dev-{i % 12}", "id": f"r{i}"}}
                for i in range(n)
            ]
        }
        assert d.http.post("/track/batch", json=body, headers=creds.write_headers()).json()["accepted"] == n

        def failing_and_pending(now: Scrape) -> bool:
            errors = grown(before, now, "ray_eventlens_flush_errors_total", shard="0")
            pending = values(now, "ray_eventlens_shard_pending_events", shard="0")
            return errors >= 1 and max(pending, default=0) > 0

        wait_for(metrics_port, failing_and_pending, "flush errors and pending events on shard 0")
        waiting = ray.get(shard0.describe.remote())["pending"]
        assert waiting > 0
        # a crash: Ray restarts the shard, which replays its log
        old = {k for k in scrape(metrics_port) if k[0] == "ray_eventlens_shard_pending_events"}
        old_pid = ray.get(shard0.pid.remote())
        ray.kill(shard0, no_restart=False)
        deadline = time.monotonic() + 60
        while True:  # a call made right after the kill may still reach the old process
            try:
                if ray.get(d.actor("shard-0").pid.remote(), timeout=5) != old_pid:
                    state = ray.get(d.actor("shard-0").describe.remote(), timeout=5)
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
            assert time.monotonic() < deadline, "shard 0 was not restarted"
            time.sleep(0.5)
        assert state["replayed"] == waiting

        def restarted(now: Scrape) -> bool:
            return (
                grown(before, now, "ray_eventlens_shard_restarts_total", shard="0") == 1
                and grown(before, now, "ray_eventlens_shard_replayed_events_total", shard="0") == waiting
                # the restarted process reports its own pending count, in a series of its own
                and any(
                    k not in old and v >= waiting
                    for k, v in now.items()
                    if k[0] == "ray_eventlens_shard_pending_events" and dict(k[1])["shard"] == "0"
                )
            )

        wait_for(metrics_port, restarted, f"one restart of shard 0 replaying {waiting} records")
    finally:
        ray.get(warehouse.pause_writes.remote(False))
    # the replayed log is stored once: each id one raw row, and the rollup total agrees
    d.assert_stored_once(creds, [f"r{i}" for i in range(n)], name="tick")
    after = scrape(metrics_port)
    assert grown(before, after, "ray_eventlens_shard_restarts_total", shard="1") == 0
    # by now every metric of the write path has been recorded and exported (the insight ones: above)
    exported = {n for n, _ in after}
    for name in metrics.SPECS:
        if not name.startswith("eventlens_insight_"):
            assert metrics.exported_names(name) <= exported, name


def _promtool(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/services.sh installs it (Debian's prometheus package)"
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_the_scrape(embedded: Daemon, metrics_port: int) -> None:
    creds = embedded.new_project()
    assert embedded.track(creds, {"name": "promtool"}).status_code == 200
    text = wait_for_text(metrics_port, "ray_eventlens_events_total")
    # the whole export: it parses (exit 1 would be a format error); its lint problems are Ray's
    whole = _promtool(text)
    assert whole.returncode in (0, 3), whole.stdout + whole.stderr
    ours = [line for line in (whole.stdout + whole.stderr).splitlines() if line.startswith("ray_eventlens_")]
    camel = "label names should be written in 'snake_case' not 'camelCase'"
    assert all(line.endswith(camel) for line in ours), ours
    # ... and the only camelCase labels on our metrics are the ones Ray adds to every metric
    families = [f for f in text_string_to_metric_families(text) if f.name.startswith("ray_eventlens_")]
    camel_labels = {k for f in families for s in f.samples for k in s.labels if re.search("[A-Z]", k)}
    assert camel_labels <= set(RAY_CAMEL_LABELS), camel_labels
    # our families alone, Ray's labels renamed to snake_case: promtool has nothing to say at all
    lines = [ln for ln in text.splitlines() if re.match(r"(# (HELP|TYPE) )?ray_eventlens_", ln)]
    own = "\n".join(lines) + "\n"
    for label in RAY_CAMEL_LABELS:
        own = own.replace(f"{label}=", f"{_snake(label)}=")
    clean = _promtool(own)
    assert clean.returncode == 0 and not (clean.stdout + clean.stderr).strip(), clean.stdout + clean.stderr
    assert len({f.name for f in families}) >= 10


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def wait_for_text(port: int, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape_text(port)
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)
