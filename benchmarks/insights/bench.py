"""Latency of the insight endpoints on a large synthetic data set.

    python -m benchmarks.insights.bench --data-dir DIR [--requests 30] [--skip-load]
        [--events 10000000] [--days 35] [--seed 42] [--force] [--json out.json]

1. Loads ``DIR`` with ``benchmarks.insights.generate`` (in a child process: chDB allows one owning
   process per data directory, and the daemon must own it next), unless ``--skip-load`` and
   ``DIR/bench-credentials.json`` says a load completed.
2. Starts the daemon on ``DIR`` (``eventlens serve --json`` in its own session, through
   ``benchmarks/daemonproc.py``) with ``EVENTLENS_INSIGHTS_CACHE_TTL_S=0``, so every request is
   computed, never answered from the insight cache.
3. For each endpoint and range (the last 7 and the last 30 days, as ``startDate``/``endDate``
   dates ending on the day of the data's end), 2 unmeasured warm-up requests, then
   ``--requests`` sequential ones with the bench read client's headers; reports p50/p95/max
   (nearest rank, all measured answers) and the HTTP statuses, checks the targets (``/metrics``
   and ``/timeseries`` p50 ≤ 100 ms, funnel and retention p50 ≤ 500 ms, each with 200 answers),
   writes the JSON to ``benchmarks/results/insights-latest.json``.
4. Stops the daemon (SIGTERM, drain, then whatever is left in its session), always.

A failing endpoint (404, 500, a transport error) is recorded with its status and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.daemonproc import DaemonProcess, Target, free_port
from benchmarks.insights.load import CREDENTIALS_FILE, read_credentials

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "insights-latest.json"
FUNNEL_STEPS = ["page_view", "signup_click", "signup_complete", "purchase"]
COUNTRY_FILTER = json.dumps([{"field": "country", "operator": "eq", "value": "DE"}], separators=(",", ":"))
RANGES = {"7d": 7, "30d": 30}
BERLIN = {"timezone": "Europe/Berlin"}
FILTERED = {"filters": COUNTRY_FILTER}
# (label, method, route under /insights or /filters, query, ranges, target p50 ms)
GOAL_FILTER = '[{"field": "goal", "operator": "is", "value": "purchase"}]'

ENDPOINTS: list[tuple[str, str, str, dict[str, Any], tuple[str, ...], float | None]] = [
    ("metrics", "GET", "insights/{p}/metrics", {}, ("7d", "30d"), 100),
    ("metrics (filtered)", "GET", "insights/{p}/metrics", {"filters": COUNTRY_FILTER}, ("7d", "30d"), 100),
    ("timeseries day", "GET", "insights/{p}/timeseries", {"interval": "day"}, ("7d", "30d"), 100),
    ("timeseries hour", "GET", "insights/{p}/timeseries", {"interval": "hour"}, ("7d",), 100),
    ("pages", "GET", "insights/{p}/pages", {"limit": 20}, ("7d", "30d"), None),
    ("pages entry", "GET", "insights/{p}/pages", {"type": "entry"}, ("7d", "30d"), None),
    ("referrers", "GET", "insights/{p}/referrers", {}, ("7d", "30d"), None),
    ("devices", "GET", "insights/{p}/devices", {}, ("7d", "30d"), None),
    ("geo", "GET", "insights/{p}/geo", {}, ("7d", "30d"), None),
    ("breakdown browser", "GET", "insights/{p}/breakdown", {"dimension": "browser"}, ("7d", "30d"), None),
    ("funnel", "POST", "insights/{p}/funnel", {}, ("7d", "30d"), 500),
    # per profile: the events' people resolved through profile_aliases (a join at query time)
    ("funnel by profile", "POST", "insights/{p}/funnel", {"groupBy": "profile"}, ("7d", "30d"), 500),
    ("retention day", "GET", "insights/{p}/retention", {"period": "day"}, ("7d", "30d"), 500),
    ("retention week", "GET", "insights/{p}/retention", {"period": "week"}, ("30d",), 500),
    # Sankey paths: every session's page-view sequence sorted and cut in ClickHouse, then ranked
    ("paths", "GET", "insights/{p}/paths", {}, ("7d", "30d"), 500),
    ("paths end=/signup", "GET", "insights/{p}/paths", {"end": "/signup"}, ("30d",), None),
    ("paths of events", "GET", "insights/{p}/paths", {"type": "event", "depth": 4}, ("30d",), None),
    # goals (three: a glob page goal, an exact page goal, an event goal), and a goal as a filter
    ("goals", "GET", "insights/{p}/goals", {}, ("7d", "30d"), 500),
    ("metrics goal filter", "GET", "insights/{p}/metrics", {"filters": GOAL_FILTER}, ("30d",), None),
    # revenue: the synthetic data has no revenue events, so these measure the added work, not sums
    (
        "breakdown source by revenue",
        "GET",
        "insights/{p}/breakdown",
        {"dimension": "utm_source", "orderBy": "revenue"},
        ("30d",),
        500,
    ),
    ("pages by revenue", "GET", "insights/{p}/pages", {"orderBy": "revenue"}, ("30d",), 500),
    ("event-names", "GET", "filters/{p}/event-names", {}, ("7d", "30d"), None),
    ("property-keys", "GET", "filters/{p}/property-keys", {}, ("7d", "30d"), None),
    # a zone's days start inside UTC days: the catalogue's whole days plus raw edges
    ("event-names Berlin", "GET", "filters/{p}/event-names", BERLIN, ("7d", "30d"), None),
    ("property-keys Berlin", "GET", "filters/{p}/property-keys", BERLIN, ("7d", "30d"), None),
    # a filter the catalogue cannot answer: the raw events of the whole range
    ("event-names (filtered)", "GET", "filters/{p}/event-names", FILTERED, ("7d", "30d"), None),
    ("property-keys (filtered)", "GET", "filters/{p}/property-keys", FILTERED, ("7d", "30d"), None),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.insights.bench", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data-dir", type=Path, required=True, help="data directory (loaded unless --skip-load)")
    ap.add_argument("--requests", type=int, default=30, help="measured requests per endpoint and range")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured requests before each")
    ap.add_argument("--skip-load", action="store_true", help="use the data already in --data-dir")
    ap.add_argument("--events", type=int, default=10_000_000, help="events to load (see insights.generate)")
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--force", action="store_true", help="passed to the loader: load beside existing data")
    ap.add_argument("--port", type=int, help="daemon port (default: a free one)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        ap.error("--requests must be positive and --warmup not negative")
    return args


# loading and the daemon ------------------------------------------------------------------------
def ensure_data(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    data_dir = args.data_dir.resolve()
    creds = read_credentials(data_dir)
    if args.skip_load and creds is not None:
        log(f"using the data already loaded in {data_dir} (project {creds['projectId']})")
        return creds
    if args.skip_load:
        log(f"--skip-load, but {data_dir / CREDENTIALS_FILE} is missing: loading")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.insights.generate",
        "--data-dir",
        str(data_dir),
        "--events",
        str(args.events),
        "--days",
        str(args.days),
        "--devices",
        str(args.devices),
        "--seed",
        str(args.seed),
    ]
    if args.force:
        cmd.append("--force")
    if args.no_progress:
        cmd.append("--no-progress")
    log("loading: " + " ".join(cmd[1:]))
    # a child process, so this one never opens the chDB directory the daemon must own
    rc = subprocess.run(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL, check=False).returncode
    if rc != 0:
        raise RuntimeError(f"loading failed (exit {rc})")
    creds = read_credentials(data_dir)
    if creds is None:
        raise RuntimeError(f"the loader wrote no {CREDENTIALS_FILE}")
    return creds


def wait_ready(url: str, timeout_s: float = 120.0) -> float:
    t0 = time.monotonic()
    with httpx.Client(base_url=url, trust_env=False, timeout=5) as c:
        while time.monotonic() - t0 < timeout_s:
            with contextlib.suppress(httpx.HTTPError):
                if c.get("/ready").status_code == 200:
                    return time.monotonic() - t0
            time.sleep(0.5)
    raise RuntimeError(f"daemon not ready within {timeout_s:.0f}s")


# measuring -------------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    range: str
    method: str
    path: str
    target_ms: float | None
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    error: str = ""
    sample: str = ""

    def pct(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        xs = sorted(self.latencies_ms)
        return round(xs[max(0, math.ceil(q * len(xs)) - 1)], 1)

    @property
    def ok(self) -> bool:
        return bool(self.latencies_ms) and set(self.statuses) == {"200"}

    def verdict(self) -> str:
        if self.target_ms is None:
            return ""
        p50 = self.pct(0.5)
        return "PASS" if self.ok and p50 is not None and p50 <= self.target_ms else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.label,
            "range": self.range,
            "method": self.method,
            "path": self.path,
            "requests": len(self.latencies_ms),
            "statuses": dict(self.statuses),
            "p50_ms": self.pct(0.5),
            "p95_ms": self.pct(0.95),
            "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else None,
            "mean_ms": round(sum(self.latencies_ms) / len(self.latencies_ms), 1)
            if self.latencies_ms
            else None,
            "target_p50_ms": self.target_ms,
            "verdict": self.verdict() or None,
            "error": self.error or None,
            "sample_response": self.sample or None,
        }


def date_ranges(end_day: date) -> dict[str, dict[str, str]]:
    return {
        key: {"startDate": (end_day - timedelta(days=days - 1)).isoformat(), "endDate": end_day.isoformat()}
        for key, days in RANGES.items()
    }


def measure(
    client: httpx.Client,
    target: Target,
    ranges: dict[str, dict[str, str]],
    requests: int,
    warmup: int,
    progress: Any,
) -> list[Row]:
    rows: list[Row] = []
    headers = target.read_headers()
    for label, method, route, extra, which, goal in ENDPOINTS:
        for rkey in which:
            path = "/" + route.format(p=target.project_id)
            row = Row(label, rkey, method, path, goal)
            rows.append(row)
            rng = ranges[rkey]
            if method == "POST":
                kwargs: dict[str, Any] = {"json": {"steps": FUNNEL_STEPS, **rng, "window": 86400, **extra}}
            else:
                kwargs = {"params": {**rng, **extra}}
            for i in range(warmup + requests):
                t0 = time.perf_counter()
                try:
                    r = client.request(method, path, headers=headers, **kwargs)
                    ms = (time.perf_counter() - t0) * 1000
                    status = str(r.status_code)
                    if i == warmup + requests - 1 or (status != "200" and not row.sample):
                        row.sample = r.text[:300]
                except httpx.HTTPError as exc:
                    ms = (time.perf_counter() - t0) * 1000
                    status = type(exc).__name__
                    row.error = f"{type(exc).__name__}: {exc}"[:300]
                if i >= warmup:
                    row.statuses[status] += 1
                    if not status.isdigit():
                        continue  # a transport error has no answer to time
                    row.latencies_ms.append(ms)
            progress(row)
    return rows


def targets(rows: list[Row]) -> dict[str, dict[str, Any]]:
    groups: dict[str, Callable[[Row], bool]] = {
        "metrics+timeseries p50 <= 100 ms": lambda r: r.path.endswith(("/metrics", "/timeseries")),
        "funnel+retention p50 <= 500 ms": lambda r: r.path.endswith(("/funnel", "/retention")),
        # issue 13's rows: goals, revenue and paths over 30 days
        "goals+revenue+paths 30d p50 <= 500 ms": lambda r: (
            r.range == "30d" and (r.path.endswith(("/goals", "/paths")) or "revenue" in r.label)
        ),
    }
    out = {}
    for name, chosen in groups.items():
        sel = [r for r in rows if chosen(r)]
        failed = [f"{r.label} {r.range}" for r in sel if r.verdict() != "PASS"]
        out[name] = {"verdict": "FAIL" if failed or not sel else "PASS", "failed": failed}
    return out


def render(results: dict[str, Any]) -> None:
    rows = results["endpoints"]
    out = Console() if sys.stdout.isatty() else Console(width=160)
    t = Table(title=f"insight latency ({results['meta']['requests']} sequential requests, ms)")
    for col in ("endpoint", "range", "status", "p50", "p95", "max", "target", ""):
        t.add_column(col, justify="left" if col in ("endpoint", "range", "status") else "right")
    for r in rows:
        status = ", ".join(f"{k}×{v}" for k, v in r["statuses"].items())
        verdict = r["verdict"] or ""
        style = {"PASS": "green", "FAIL": "red"}.get(verdict, "")
        t.add_row(
            r["endpoint"],
            r["range"],
            status,
            *(f"{r[k]:.1f}" if r[k] is not None else "-" for k in ("p50_ms", "p95_ms", "max_ms")),
            f"≤ {r['target_p50_ms']:.0f}" if r["target_p50_ms"] else "",
            f"[{style}]{verdict}[/]" if style else verdict,
        )
    out.print(t)
    for name, res in results["targets"].items():
        color = "green" if res["verdict"] == "PASS" else "red"
        extra = f" ({', '.join(res['failed'])})" if res["failed"] else ""
        out.print(f"target {name}: [{color}]{res['verdict']}[/]{extra}")


def new_results(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    return {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "data_dir": str(data_dir),
            "requests": args.requests,
            "warmup": args.warmup,
            "insights_cache_ttl_s": 0,
        },
        "endpoints": [],
        "targets": {},
        "errors": [],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def _term(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    data_dir = args.data_dir.resolve()
    results = new_results(args, data_dir)
    daemon: DaemonProcess | None = None
    rows: list[Row] = []
    try:
        creds = ensure_data(args, log)
        results["data"] = {k: creds.get(k) for k in ("projectId", "params", "rows", "timing_s")}
        end_day = datetime.fromisoformat(creds["params"]["now"]).astimezone(UTC).date()
        ranges = date_ranges(end_day)
        results["meta"]["ranges"] = ranges

        os.environ["EVENTLENS_INSIGHTS_CACHE_TTL_S"] = "0"  # inherited by the daemon: no cached answers
        daemon = DaemonProcess(data_dir, args.port or free_port(), data_dir / "bench-logs")
        log(f"starting daemon on {data_dir} (logs in {daemon.log_dir}) …")
        target = daemon.start(creds)
        ready_s = wait_ready(target.url)
        results["daemon"] = {
            "url": target.url,
            "pid": daemon.pid,
            "startup_s": round(daemon.started_s, 1),
            "ready_after_url_s": round(ready_s, 1),
        }
        log(f"daemon up at {target.url} (pid {daemon.pid}) after {daemon.started_s + ready_s:.1f}s")

        def progress(row: Row) -> None:
            if not args.no_progress:
                log(
                    f"  {row.label:20} {row.range:4} p50 {row.pct(0.5)} ms  "
                    f"{', '.join(f'{k}x{v}' for k, v in row.statuses.items())}"
                )

        with httpx.Client(base_url=target.url, trust_env=False, timeout=args.timeout) as client:
            rows = measure(client, target, ranges, args.requests, args.warmup, progress)
    except KeyboardInterrupt as exc:
        results["errors"].append(f"interrupted: {exc}")
    except Exception as exc:
        results["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if daemon is not None:
            log("stopping daemon (SIGTERM, drain) …")
            try:
                results.setdefault("daemon", {})["stop"] = daemon.stop()
            except Exception as exc:
                results["errors"].append(f"daemon stop: {type(exc).__name__}: {exc}")
    results["endpoints"] = [r.to_json() for r in rows]
    results["targets"] = targets(rows) if rows else {}
    results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    if rows:
        render(results)
    for err in results["errors"]:
        log(f"error: {err}")
    log(f"results written to {args.json}")
    failed = any(t["verdict"] != "PASS" for t in results["targets"].values())
    return 1 if results["errors"] else (2 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
