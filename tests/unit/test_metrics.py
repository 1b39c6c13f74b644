"""Operator metrics without Ray: the definitions, what each core records (through a fake registry in
place of ``eventlens.metrics.get``), the no-op fallback, and the Grafana dashboard's queries.

The export itself (Ray's metrics agent, the numbers against what was sent, promtool) is
tests/serve/test_metrics_http.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from eventlens import metrics
from eventlens.actors.presence import PresenceBook
from eventlens.api.auth import Authenticator
from eventlens.api.track import TrackHandler
from eventlens.buffer.client import ShardUnavailable
from eventlens.buffer.core import BufferConfig, BufferCore, now_ms
from eventlens.config import Settings
from eventlens.ingest.salts import SaltCache
from eventlens.insights.cache import InsightCache, LocalStore
from eventlens.ratelimit import LocalRateLimiter
from eventlens.records import Duplicate
from eventlens.storage.metadata import MetadataStore
from eventlens.storage.wal import FileSegmentLog
from tests.unit.test_buffer_core import FakeInserter, event
from tests.unit.test_insight_routes import READ, Auth, FakeReader, Presence, Versions
from tests.unit.test_outage import post

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DASHBOARD = Path(__file__).resolve().parents[2] / "deployments" / "grafana-eventlens.json"
# labels Ray's agent or Serve add to every exported series (Ray's are camelCase: not ours to name)
RAY_LABELS = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "le"}
SERVE_LABELS = {"deployment", "replica", "application", "route"}


class Recorded:
    """Stands in for one metric object: every call as (method, value, tags)."""

    def __init__(self, calls: list[tuple[str, str, float, dict[str, str]]], name: str) -> None:
        self.calls, self.name = calls, name

    def inc(self, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        assert value > 0, "Ray refuses a counter increment <= 0"
        self.calls.append((self.name, "inc", value, dict(tags or {})))

    def set(self, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.calls.append((self.name, "set", value, dict(tags or {})))

    def observe(self, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.calls.append((self.name, "observe", value, dict(tags or {})))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, float, dict[str, str]]]:
    calls: list[tuple[str, str, float, dict[str, str]]] = []

    def get(name: str) -> Recorded:
        spec = metrics.SPECS[name]  # only defined metrics
        recorder = Recorded(calls, name)
        original = {"inc": recorder.inc, "set": recorder.set, "observe": recorder.observe}

        def checked(method: str) -> Any:
            def call(value: float, tags: Mapping[str, str] | None = None) -> None:
                assert set(tags or {}) == set(spec.tags), (name, tags)
                original[method](value, tags)

            return call

        for method in original:
            setattr(recorder, method, checked(method))
        return recorder

    monkeypatch.setattr(metrics, "get", get)
    return calls


def totals(calls: list[tuple[str, str, float, dict[str, str]]], name: str, *keys: str) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for n, _method, value, tags in calls:
        if n == name:
            key = tuple(tags[k] for k in keys)
            out[key] = out.get(key, 0) + value
    return out


# definitions -----------------------------------------------------------------------------------
def test_definitions_follow_prometheus_naming() -> None:
    for name, spec in metrics.SPECS.items():
        assert re.fullmatch(r"eventlens_[a-z][a-z0-9_]*", name), name
        # Ray appends _total to counters; promtool wants no _total/_count/_sum/_bucket elsewhere
        assert not re.search(r"_(total|count|sum|bucket)$", name), name
        assert not re.search(r"_(ms|us|mb|kb|sec|secs|msec)(_|$)", name), f"{name}: abbreviated unit"
        if spec.kind == "histogram":
            assert name.endswith("_seconds") and list(spec.buckets) == sorted(spec.buckets), name
            assert all(b > 0 for b in spec.buckets)
        else:
            assert not spec.buckets
        assert spec.help.endswith(".") and len(spec.help) > 20, name
        for tag in spec.tags:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", tag), (name, tag)
        # the tags Serve adds, and no label per project or device
        assert not set(spec.tags) & (SERVE_LABELS | {"project", "project_id", "device", "device_id"})
    assert metrics.exported_names("eventlens_flush_rows") == {"ray_eventlens_flush_rows_total"}
    assert metrics.exported_names("eventlens_live_visitors") == {"ray_eventlens_live_visitors"}


def test_without_ray_every_metric_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    # as in a process without Ray, even when this test session started Ray for other tests
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(metrics, "_made", {})
    for name in metrics.SPECS:
        assert metrics.get(name) is metrics.NOOP
    shard = metrics.ShardMetrics(0)
    shard.appended(0.01)
    shard.state(3, 2)
    shard.started(True, 5)
    shard.inserted("events", 3, 0.1)
    metrics.IngestMetrics().events({("track", "accepted"): 2})
    assert metrics._made == {}


# ingest ----------------------------------------------------------------------------------------
class ScriptedBuffer:
    """Answers each record with the next of ``answers`` (cycled): a dict, a Duplicate or an error."""

    def __init__(self, *answers: Any) -> None:
        self.answers = answers
        self.n = 0

    async def submit(self, routed: list[Any]) -> list[Any]:
        out = []
        for _ in routed:
            out.append(self.answers[self.n % len(self.answers)])
            self.n += 1
        return out


def track_handler(tmp_path: Path, store: MetadataStore, buffer: Any, limiter: Any = None) -> TrackHandler:
    return TrackHandler(
        Settings(data_dir=tmp_path / "data"),
        Authenticator(store),
        buffer,
        SaltCache(store),
        limiter or LocalRateLimiter(1000, 1000),
    )


def ev(name: str = "e", **payload: Any) -> dict[str, Any]:
    return {"type": "track", "payload": {"name": name, "deviceId": "d1", **payload}}


def test_ingest_counts_each_outcome_once_per_request(
    tmp_path: Path, store: MetadataStore, write_headers: dict[str, str], recorded: list[Any]
) -> None:
    ok = {"deviceId": "d1", "sessionId": "s1"}
    overloaded = ShardUnavailable("full", 5, "overloaded")
    buffer = ScriptedBuffer(ok, ok, Duplicate(ok), overloaded)
    track = track_handler(tmp_path, store, buffer)
    batch = [ev(), ev(), ev(), ev(), {"type": "track", "payload": {"name": ""}}, {"type": "nope"}]
    batch.append({"type": "identify", "payload": {"profileId": "u1"}})  # the 5th answer: ok
    r = post(track, "/track/batch", {"events": batch}, write_headers)
    assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    assert len(recorded) == 6  # one call per (type, outcome) of the batch
    assert totals(recorded, "eventlens_events", "type", "outcome") == {
        ("track", "accepted"): 2,
        ("track", "duplicate"): 1,
        ("track", "overloaded"): 1,
        ("track", "rejected"): 1,
        ("identify", "accepted"): 1,
        ("unknown", "rejected"): 1,
    }


def test_ingest_counts_single_events_and_refused_requests(
    tmp_path: Path, store: MetadataStore, write_headers: dict[str, str], recorded: list[Any]
) -> None:
    ok = {"deviceId": "d1", "sessionId": "s1"}
    track = track_handler(tmp_path, store, ScriptedBuffer(ok, Duplicate(ok)), LocalRateLimiter(0.001, 4))
    assert post(track, "/track", ev(), write_headers).status_code == 200
    dup = post(track, "/track", ev(), write_headers)
    assert dup.status_code == 200 and dup.json() == {"success": True, "id": dup.json()["id"], **ok}
    assert post(track, "/track", ev(name=""), write_headers).status_code == 400
    assert post(track, "/track/batch", {"events": {}}, write_headers).status_code == 400
    assert post(track, "/track", ev(), write_headers).status_code == 429  # the 5th request
    assert post(track, "/track", ev(), {"event-lens-client-id": "nobody"}).status_code == 401
    assert [(c[3]["type"], c[3]["outcome"], c[2]) for c in recorded] == [
        ("track", "accepted", 1),
        ("track", "duplicate", 1),
        ("track", "rejected", 1),
        ("unknown", "rejected", 1),
        ("unknown", "rate_limited", 1),
        ("unknown", "unauthorized", 1),
    ]


# shards ----------------------------------------------------------------------------------------
def test_core_reports_each_insert_and_each_stored_segment(tmp_path: Path, recorded: list[Any]) -> None:
    shard = metrics.ShardMetrics(3)
    core = BufferCore(BufferConfig("t-3", index=3), FileSegmentLog(tmp_path), FakeInserter(), observer=shard)
    now = now_ms()
    core.append([event(1, at=now), event(2, device="dev-2", at=now)])
    assert core.flush(force=True) == 6  # 2 events, 2 session_start, 2 session rows
    assert totals(recorded, "eventlens_flush_rows", "table") == {("events",): 4, ("sessions",): 2}
    inserts = [c for c in recorded if c[0] == "eventlens_insert_seconds"]
    assert sorted(c[3]["table"] for c in inserts) == ["events", "sessions"]
    [lag] = [c for c in recorded if c[0] == "eventlens_ack_to_stored_seconds"]
    assert lag[3] == {"shard": "3"} and 0 <= lag[2] < 5
    # a duplicate is answered like the first time, and marked for the replica's count
    [again] = core.append([event(1, at=now)])
    assert type(again) is Duplicate and again == {"deviceId": "dev-1", "sessionId": again["sessionId"]}
    core.close()


def test_shard_start_counts_a_restart_and_its_replay(recorded: list[Any]) -> None:
    metrics.ShardMetrics(1).started(False, 0)
    assert recorded == []
    metrics.ShardMetrics(1).started(True, 0)
    metrics.ShardMetrics(1).started(False, 7)
    assert totals(recorded, "eventlens_shard_restarts", "shard") == {("1",): 2}
    assert totals(recorded, "eventlens_shard_replayed_events", "shard") == {("1",): 7}


def test_presence_total_counts_every_project_inside_the_window() -> None:
    book = PresenceBook(60)
    book.add([("p1", "a", 1_000), ("p1", "b", 50_000), ("p2", "a", 50_000)], now_ms=50_000)
    assert book.total(now_ms=50_000) == 3
    assert book.total(now_ms=100_000) == 2  # a of p1 left the window
    assert book.total(now_ms=200_000) == 0 and book.seen == {}


# insights --------------------------------------------------------------------------------------
def test_insight_answers_record_latency_and_cache_result(recorded: list[Any]) -> None:
    from eventlens.api.insights import create_api

    cache = InsightCache(LocalStore(60), Versions(), 60)
    app = create_api(Auth(), FakeReader(), Presence(), lambda: None, cache)  # type: ignore[arg-type]
    http = TestClient(app, raise_server_exceptions=False)
    for _ in range(2):
        assert http.get("/insights/p1/pages", headers=READ).status_code == 200
    assert http.get("/insights/p1/metrics", headers=READ).status_code == 200
    assert http.get("/insights/p1/live", headers=READ).status_code == 200  # not an insight route
    assert http.get("/insights/p1/pages").status_code == 401  # refused: not answered
    assert totals(recorded, "eventlens_insight_cache", "insight", "result") == {
        ("pages", "miss"): 1,
        ("pages", "hit"): 1,
        ("metrics", "miss"): 1,
    }
    seconds = [c for c in recorded if c[0] == "eventlens_insight_seconds"]
    assert [(c[3]["insight"], c[3]["cache"]) for c in seconds] == [
        ("pages", "miss"),
        ("pages", "hit"),
        ("metrics", "miss"),
    ]
    off = create_api(Auth(), FakeReader(), Presence(), lambda: None)  # type: ignore[arg-type]
    assert TestClient(off).get("/insights/p1/pages", headers=READ).status_code == 200
    assert totals(recorded, "eventlens_insight_cache", "insight", "result")[("pages", "off")] == 1


# the dashboard ---------------------------------------------------------------------------------
def _targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _targets(v)]
    if isinstance(node, list):
        return [e for v in node for e in _targets(v)]
    return []


def test_dashboard_queries_only_metrics_the_code_defines() -> None:
    board = json.loads(DASHBOARD.read_text())
    exprs = _targets(board["panels"])
    assert len(exprs) >= len(metrics.SPECS)
    defined = {n for name in metrics.SPECS for n in metrics.exported_names(name)}
    queried = {m for e in exprs for m in re.findall(r"\bray_eventlens_[a-z0-9_]+", e)}
    assert queried <= defined, queried - defined
    # every metric has a panel
    assert {name for name in metrics.SPECS if metrics.exported_names(name) & queried} == set(metrics.SPECS)
    # the labels a query groups or filters by exist on that metric
    for e in exprs:
        for name in re.findall(r"\bray_eventlens_[a-z0-9_]+", e):
            base = re.sub(r"^ray_|_(total|bucket|sum|count)$", "", name)
            allowed = set(metrics.SPECS[base].tags) | RAY_LABELS | SERVE_LABELS
            for labels in re.findall(r"by \(([^)]*)\)", e):
                assert {lbl.strip() for lbl in labels.split(",")} <= allowed, (e, labels)
    # a Prometheus datasource chosen by a dashboard variable
    [var] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert var["query"] == "prometheus"
    for panel in board["panels"]:
        if panel.get("type") != "row":
            assert panel["datasource"]["uid"] == "${" + var["name"] + "}", panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every panel query parses: promtool checks them as recording rules (Grafana's
    ``$__rate_interval`` replaced by a fixed range)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/services.sh installs it (Debian's prometheus package)"
    exprs = _targets(json.loads(DASHBOARD.read_text())["panels"])
    rules = [
        {"record": f"eventlens:panel_{i}", "expr": e.replace("$__rate_interval", "5m")}
        for i, e in enumerate(exprs)
    ]
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(rules)} rules found" in r.stdout
