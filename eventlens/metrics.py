"""Operator metrics: what the actors and replicas record, exported by Ray's metrics agent.

Every metric is defined once, in ``SPECS``. The objects are made on first use inside the process
that records (``ray.util.metrics`` needs a connected Ray worker; ``ray.serve.metrics`` adds the
``deployment``, ``replica`` and ``application`` tags in a Serve replica); without Ray every
recording is a no-op, so the pure cores (``BufferCore``, ``TrackHandler``, ``Answers``) record
through an injected recorder and their tests run without Ray.

Each node's metrics agent serves them in the Prometheus format at
``http://<node>:<metrics_export_port>/metrics`` as ``ray_<name>`` (counters as
``ray_<name>_total``), with Ray's own labels (``Component``, ``NodeAddress``, ``SessionName``,
``Version``, ``WorkerId``) added. Tag values are bounded: a shard index, a table, an insight route,
an event type and outcome; never a project or a device. Recorded once per request, append call,
flush or insert, never per event (``benchmarks.micro.shard`` measures the cost).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# seconds: an fsynced append, an insert, an insight query (0.5 ms … 30 s)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# seconds from an event's acknowledgement to its segment stored (flush age ~1 s … an outage)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# outcomes of a received event (``eventlens_events``); a request refused before its body is read
# (unauthorized, rate limited, not JSON, too large) counts once with type ``unknown``
OUTCOMES = ("accepted", "duplicate", "rejected", "unauthorized", "rate_limited", "overloaded", "unavailable")
UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True)
class Spec:
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    tags: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    serve: bool = False  # recorded in a Serve replica: ``ray.serve.metrics`` adds its tags


SPECS: dict[str, Spec] = {
    # ingest replicas (api/track.py)
    "eventlens_events": Spec(
        "counter",
        "Events received on /track and /track/batch, by message type and outcome (a duplicate is a "
        "retried event id, answered as the first time and not logged again).",
        ("type", "outcome"),
        serve=True,
    ),
    # buffer shards (buffer/actor.py, buffer/core.py)
    "eventlens_shard_append_seconds": Spec(
        "histogram",
        "Time for a shard to log one append call (a replica's hand-off of many events), fsync included.",
        ("shard",),
        LATENCY_BUCKETS,
    ),
    "eventlens_shard_pending_events": Spec(
        "gauge", "Records in a shard's write-ahead log not yet stored in ClickHouse.", ("shard",)
    ),
    "eventlens_open_sessions": Spec("gauge", "Sessions a shard holds open.", ("shard",)),
    "eventlens_flush_seconds": Spec(
        "histogram",
        "Time for one flush of a shard: every sealed segment inserted and deleted.",
        ("shard",),
        LATENCY_BUCKETS,
    ),
    "eventlens_insert_seconds": Spec(
        "histogram", "Time for one insert of a segment's rows into one table.", ("table",), LATENCY_BUCKETS
    ),
    "eventlens_flush_rows": Spec("counter", "Rows inserted into ClickHouse, by table.", ("table",)),
    "eventlens_flush_errors": Spec(
        "counter", "Failed flushes of a shard (storage unavailable); the log keeps the events.", ("shard",)
    ),
    "eventlens_ack_to_stored_seconds": Spec(
        "histogram",
        "Per stored segment, the time from the acknowledgement of its oldest record to the segment "
        "stored in every table.",
        ("shard",),
        LAG_BUCKETS,
    ),
    "eventlens_shard_restarts": Spec(
        "counter", "Shard starts that recovered: Ray restarted the actor or it replayed a log.", ("shard",)
    ),
    "eventlens_shard_replayed_events": Spec(
        "counter", "Records replayed from the write-ahead log when a shard started.", ("shard",)
    ),
    # presence actor (actors/presence.py)
    "eventlens_live_visitors": Spec("gauge", "Visitors seen in the live window, all projects together.", ()),
    # insight replicas (api/insights.py)
    "eventlens_insight_seconds": Spec(
        "histogram",
        "Time to answer an insight or filter route, by route and whether the answer was cached.",
        ("insight", "cache"),
        LATENCY_BUCKETS,
        serve=True,
    ),
    "eventlens_insight_cache": Spec(
        "counter",
        "Insight answers by route and cache result: hit, miss, off (no cache configured), or "
        "error (the cache was unavailable).",
        ("insight", "result"),
        serve=True,
    ),
}


def exported_names(name: str) -> set[str]:
    """The series names Prometheus sees for a metric of ``SPECS``."""
    spec, base = SPECS[name], f"ray_{name}"
    if spec.kind == "counter":
        return {f"{base}_total"}
    if spec.kind == "histogram":
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return {base}


class _Noop:
    def inc(self, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        pass

    def set(self, value: float, tags: Mapping[str, str] | None = None) -> None:
        pass

    def observe(self, value: float, tags: Mapping[str, str] | None = None) -> None:
        pass


NOOP = _Noop()
_made: dict[str, Any] = {}
_lock = threading.Lock()


def _ray_connected() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return ray.is_initialized()


def get(name: str) -> Any:
    """The metric ``name`` of this process, made on first use; a no-op while Ray is not connected."""
    made = _made.get(name)
    if made is not None:
        return made
    if not _ray_connected():
        return NOOP
    spec = SPECS[name]
    with _lock:
        made = _made.get(name)
        if made is None:
            if spec.serve:
                from ray.serve import metrics as lib
            else:
                from ray.util import metrics as lib  # type: ignore[no-redef]
            if spec.kind == "counter":
                made = lib.Counter(name, spec.help, spec.tags)
            elif spec.kind == "gauge":
                made = lib.Gauge(name, spec.help, spec.tags)
            else:
                made = lib.Histogram(name, spec.help, list(spec.buckets), spec.tags)
            _made[name] = made
    return made


# recorders: what each shell hands its pure core, or records itself ------------------------------
class ShardMetrics:
    """A buffer shard's metrics; ``inserted`` and ``stored`` are called by ``BufferCore``."""

    def __init__(self, index: int) -> None:
        self.tags = {"shard": str(index)}

    def appended(self, seconds: float) -> None:
        get("eventlens_shard_append_seconds").observe(seconds, self.tags)

    def state(self, pending: int, open_sessions: int) -> None:
        get("eventlens_shard_pending_events").set(pending, self.tags)
        get("eventlens_open_sessions").set(open_sessions, self.tags)

    def flushed(self, seconds: float) -> None:
        get("eventlens_flush_seconds").observe(seconds, self.tags)

    def flush_failed(self) -> None:
        get("eventlens_flush_errors").inc(1, self.tags)

    def started(self, restarted: bool, replayed: int) -> None:
        if restarted or replayed:
            get("eventlens_shard_restarts").inc(1, self.tags)
        if replayed:
            get("eventlens_shard_replayed_events").inc(replayed, self.tags)

    # from BufferCore (the insert threads and the flusher)
    def inserted(self, table: str, rows: int, seconds: float) -> None:
        tags = {"table": table}
        get("eventlens_insert_seconds").observe(seconds, tags)
        if rows:
            get("eventlens_flush_rows").inc(rows, tags)

    def stored(self, lag_s: float) -> None:
        get("eventlens_ack_to_stored_seconds").observe(max(lag_s, 0.0), self.tags)


class IngestMetrics:
    """An ingest replica's: one ``events`` call per request with the counts by (type, outcome)."""

    def events(self, counts: Mapping[tuple[str, str], int]) -> None:
        counter = get("eventlens_events")
        for (type_, outcome), n in counts.items():
            if n:
                counter.inc(n, {"type": type_, "outcome": outcome})


class InsightMetrics:
    """An insight replica's: one ``answered`` call per answered insight or filter request."""

    def answered(self, insight: str, cache: str, seconds: float) -> None:
        get("eventlens_insight_seconds").observe(seconds, {"insight": insight, "cache": cache})
        get("eventlens_insight_cache").inc(1, {"insight": insight, "result": cache})


class LiveMetrics:
    def visitors(self, count: int) -> None:
        get("eventlens_live_visitors").set(count)
