"""Per-event cost of a buffer shard's core, without Ray: µs per event, by step.

    .venv/bin/python -m benchmarks.micro.shard [--batches 200] [--devices 5000]

Feeds ``buffer.core.BufferCore`` what an ingest replica sends it: JSON blobs of 1,000 prepared
records each (the records of the load generator's ``/track/batch`` bodies, enriched as a desktop
Chrome visitor), with a fresh event id each. It times, in this process:

- decode: ``orjson.loads`` of the blob (the shard actor's first step);
- append: sessions, write-ahead log (a real file log in a temporary directory, fsync on) and the
  duplicate-id memory;
- with ``--compare-ids ROUNDS``: the same, without and with the idempotency window (a
  ``FileIdIndex`` in the temporary directory, as the embedded shard opens it), interleaved;
- flush: every 10 blobs (10,000 events, about one second at the target rate), seal the segment
  with its session snapshots and build each table's insert body (``tables.to_json_rows``); the
  insert itself is not made, ClickHouse's side is measured by the load benchmark.

Run four times: with CPython's default garbage-collector thresholds, with ``gctune.tune_gc`` (what
the shard actor uses), tuned in a process connected to a local Ray (started for the run), and the
same with the operator metrics recorded as the actor and the ingest replica record them
(``eventlens.metrics``, real Ray metrics): the last two differ only by the recording. The
collector's own time is reported from ``gc.callbacks``. Then the recording calls alone, µs per call
and per event at this benchmark's batch sizes.
Bounded: a few seconds of one core, plus Ray's start. Not a test; prints two tables.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from benchmarks.scenarios.batch import bodies
from eventlens.buffer.core import BufferConfig, BufferCore
from eventlens.buffer.idempotency import FileIdIndex, day_of
from eventlens.config import Settings
from eventlens.gctune import tune_gc
from eventlens.ingest.context import build_context
from eventlens.ingest.geo import GeoLookup
from eventlens.ingest.pipeline import Limits, prepare
from eventlens.storage.tables import to_json_rows
from eventlens.storage.wal import FileSegmentLog

UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
BLOB = 1000
FLUSH_EVERY = 10


def make_blobs(batches: int, devices: int, now: int) -> list[bytes]:
    geo = GeoLookup(Settings().geo_database)
    headers = {"user-agent": UA, "x-forwarded-for": "81.2.69.142"}
    ctx = build_context(
        "p1", headers, None, ("s" * 64, "t" * 64), ip_headers=Settings().ip_headers, geo=geo, now_ms=now
    )
    events = [e for body in bodies(BLOB, devices=devices) for e in orjson.loads(body)["events"]]
    limits = Limits()
    return [
        orjson.dumps([prepare(events[(b * BLOB + j) % len(events)], ctx, limits).record for j in range(BLOB)])
        for b in range(batches)
    ]


def run(mode: str, batches: int, devices: int) -> dict[str, float]:
    now = int(time.time() * 1000)
    blobs = make_blobs(batches, devices, now)
    if mode != "default":
        tune_gc()
    observer, shard, ingest = None, None, None
    if mode in ("ray", "metrics"):
        _start_ray()  # its processes share the cores: compare "metrics" with "ray", not "tuned"
    if mode == "metrics":
        from eventlens import metrics

        for name in metrics.SPECS:  # made once per process (the replica's import ray.serve: ~1 s)
            metrics.get(name)
        observer = shard = metrics.ShardMetrics(0)
        ingest = metrics.IngestMetrics()
    collector = [0.0, 0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collector[1] = time.perf_counter()
        else:
            collector[0] += time.perf_counter() - collector[1]

    sent = [0]

    tables: set[str] = set()

    def insert(table: str, rows: list[dict[str, Any]], token: str) -> int:
        tables.add(table)
        sent[0] += len(to_json_rows(table, rows))
        return len(rows)

    gc.callbacks.append(on_gc)
    with tempfile.TemporaryDirectory() as tmp:
        writer = SimpleNamespace(insert=insert)  # builds each insert body, makes no insert
        config = BufferConfig("bench-0", flush_max_age_ms=1000)
        ids = None
        (Path(tmp) / "wal").mkdir()
        if mode == "ids":  # the idempotency window, as the shard actor opens it (embedded)
            ids = FileIdIndex(Path(tmp) / "ids", 0, window_days=7, today=day_of(now))
        core = BufferCore(config, FileSegmentLog(Path(tmp) / "wal"), writer, observer=observer, ids=ids)  # type: ignore[arg-type]
        times = {"decode": 0.0, "append": 0.0, "flush": 0.0}
        for i, blob in enumerate(blobs):
            t0 = time.perf_counter()
            records = orjson.loads(blob)
            t1 = time.perf_counter()
            core.append(records, now=now + i * 100)
            if shard is not None and ingest is not None:  # what the actor and a replica record
                shard.appended(time.perf_counter() - t1)
                ingest.events({("track", "accepted"): len(records)})
            t2 = time.perf_counter()
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                core.flush(force=True)
                if shard is not None:
                    shard.flushed(time.perf_counter() - t2)
                    shard.state(core.pending, len(core.sessions.live))
            t3 = time.perf_counter()
            times["decode"] += t1 - t0
            times["append"] += t2 - t1
            times["flush"] += t3 - t2
        core.close()
    gc.callbacks.remove(on_gc)
    n = batches * BLOB
    out = {k: v / n * 1e6 for k, v in times.items()}
    out["total"] = sum(out.values())
    out["gc"] = collector[0] / n * 1e6
    out["tables"] = len(tables)
    return out


def _start_ray() -> None:
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)


def recording() -> dict[str, float]:
    """µs per call of each recording, real Ray metrics (``eventlens.metrics``), best of 5 rounds."""
    from eventlens.metrics import IngestMetrics, InsightMetrics, ShardMetrics

    _start_ray()
    shard, ingest, insight = ShardMetrics(0), IngestMetrics(), InsightMetrics()
    shard.appended(0.001)  # the first call of each makes the metric: not timed
    ingest.events({("track", "accepted"): 1})
    insight.answered("metrics", "hit", 0.001)
    calls = {
        "append (histogram)": lambda: shard.appended(0.002),
        "request (counter)": lambda: ingest.events({("track", "accepted"): 1000}),
        "insert (histogram + counter)": lambda: shard.inserted("events", 1000, 0.01),
        "flush (2 histograms)": lambda: (shard.flushed(0.05), shard.stored(1.1)),
        "shard state (2 gauges)": lambda: shard.state(1000, 500),
        "insight (histogram + counter)": lambda: insight.answered("metrics", "hit", 0.004),
    }
    out = {}
    n = 20_000
    for name, call in calls.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            best = min(best, time.perf_counter() - t0)
        out[name] = best / n * 1e6
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.micro.shard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--batches", type=int, default=200, help="blobs of 1,000 events")
    ap.add_argument("--devices", type=int, default=5000)
    ap.add_argument(
        "--mode", choices=("default", "tuned", "ids", "ray", "metrics", "recording"), help=argparse.SUPPRESS
    )
    ap.add_argument(
        "--compare-ids",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only compare tuned without and with the idempotency window, ROUNDS interleaved pairs",
    )
    args = ap.parse_args(argv)
    batches = min(max(args.batches, 20), 2000)
    if args.mode == "recording":
        print(orjson.dumps(recording()).decode())
        return
    if args.mode:  # one mode per fresh interpreter: gc.freeze() cannot be undone
        print(orjson.dumps(run(args.mode, batches, args.devices)).decode())
        return

    def one(mode: str) -> dict[str, float]:
        cmd = [sys.executable, "-m", "benchmarks.micro.shard", "--mode", mode, "--batches", str(batches)]
        cmd += ["--devices", str(args.devices)]
        return orjson.loads(subprocess.run(cmd, check=True, capture_output=True).stdout.splitlines()[-1])

    if args.compare_ids:
        compare_ids(one, args.compare_ids, batches, args.devices)
        return
    rows = {}
    for mode in ("default", "tuned", "ids", "ray", "metrics"):
        rows[mode] = one(mode)
    cols = ("decode", "append", "flush", "total", "gc")
    print(f"µs per event, {batches * BLOB:,} events over {args.devices:,} devices")
    print(f"{'garbage collector':<20}" + "".join(f"{c:>9}" for c in cols) + f"{'events/s/core':>15}")
    labels = {
        "default": "default",
        "tuned": "tuned",
        "ids": "tuned + id window",
        "ray": "tuned, Ray started",
        "metrics": "same + metrics",
    }
    for mode, r in rows.items():
        line = f"{labels[mode]:<20}" + "".join(f"{r[c]:>9.2f}" for c in cols)
        print(line + f"{1e6 / r['total']:>15,.0f}")
    cmd = [sys.executable, "-m", "benchmarks.micro.shard", "--mode", "recording"]
    cost = orjson.loads(subprocess.run(cmd, check=True, capture_output=True).stdout.splitlines()[-1])
    print("\noperator metrics, real Ray metrics: µs per recording call")
    for name, us in cost.items():
        print(f"  {name:<32}{us:>7.2f}")
    # per event at this benchmark's sizes: an append call and a request of 1,000 events; a flush of
    # 10,000 events inserting into every table of the insert bodies built above
    tables = rows["metrics"].get("tables", 3)
    per_batch = cost["append (histogram)"] + cost["request (counter)"]
    per_flush = cost["flush (2 histograms)"] + tables * cost["insert (histogram + counter)"]
    per_event = per_batch / BLOB + per_flush / (BLOB * FLUSH_EVERY)
    print(
        f"  per event: {per_event:.4f} µs ({per_batch:.1f} µs per 1,000-event append + request, "
        f"{per_flush:.1f} µs per flush into {tables:.0f} tables); a single-event /track request: "
        f"{cost['request (counter)']:.1f} µs"
    )


def compare_ids(one: Any, rounds: int, batches: int, devices: int) -> None:
    """Interleaved pairs (tuned, tuned + the idempotency window): the median of each, and of the
    per-pair differences, so a machine whose speed drifts during the run still compares fairly."""
    import statistics

    pairs = [(one("tuned"), one("ids")) for _ in range(rounds)]
    print(f"µs per event, {batches * BLOB:,} events over {devices:,} devices, {rounds} interleaved pairs")
    for col in ("append", "flush", "total"):
        off = [a[col] for a, _ in pairs]
        on = [b[col] for _, b in pairs]
        diff = [b - a for a, b in zip(off, on, strict=True)]
        print(
            f"  {col:<7} without {statistics.median(off):7.2f}   with {statistics.median(on):7.2f}"
            f"   difference (median of pairs) {statistics.median(diff):+6.2f}"
        )


if __name__ == "__main__":
    main()
