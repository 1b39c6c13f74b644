"""The idempotency window's end-to-end cost: ingest throughput with and without it, one sitting.

    python -m benchmarks.window_ab [--rounds 3] [--duration 15] [--days 7] [--json out.json]

Runs ``benchmarks.run --only single,batch100,batch1000`` (a daemon of its own each time) with
``EVENTLENS_IDEMPOTENCY_WINDOW_DAYS=0`` (off: what ingest did before the window existed) and with the
window on, alternating off/on/off/on… so that a VM whose speed drifts during the sitting weighs
on both alike. Prints each run, then per scenario the median of each setting and on ÷ off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCENARIOS = {
    "single": ("requests_per_s", "req/s"),
    "batch100": ("items_per_s", "events/s"),
    "batch1000": ("items_per_s", "events/s"),
}


def one_run(days: int, duration: float, out: Path) -> dict[str, float]:
    env = {**os.environ, "EVENTLENS_IDEMPOTENCY_WINDOW_DAYS": str(days)}
    cmd = [sys.executable, "-m", "benchmarks.run", "--only", ",".join(SCENARIOS)]
    cmd += ["--duration", str(duration), "--json", str(out), "--no-progress"]
    proc = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmarks.run exited {proc.returncode}: {proc.stderr[-2000:]}")
    results = json.loads(out.read_text())
    if results.get("errors"):
        raise RuntimeError(f"benchmark run failed: {results['errors']}")
    figures = {key: float(results["scenarios"][key][field]) for key, (field, _) in SCENARIOS.items()}
    # events counted minus acknowledged, once everything is flushed: 0 when nothing was lost or doubled
    figures["counted_minus_acknowledged"] = float(results["consistency"]["difference"])
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.window_ab", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs per setting (alternating)")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per scenario")
    ap.add_argument("--days", type=int, default=7, help="the window's length when on")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args(argv)
    runs: dict[int, list[dict[str, float]]] = {0: [], args.days: []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for days in (0, args.days):
                figures = one_run(days, args.duration, Path(tmp) / f"run-{n}-{days}.json")
                runs[days].append(figures)
                shown = ", ".join(f"{k} {v:,.0f}" for k, v in figures.items())
                if figures["counted_minus_acknowledged"]:
                    print(f"round {n + 1}, window {days} d: counted != acknowledged", flush=True)
                print(f"round {n + 1}, window {days} d: {shown}", flush=True)
    print(f"\n{'scenario':<10} {'unit':<9} {'off (median)':>13} {'on (median)':>12} {'on / off':>9}")
    summary: dict[str, Any] = {}
    for key, (_, unit) in SCENARIOS.items():
        off = statistics.median(r[key] for r in runs[0])
        on = statistics.median(r[key] for r in runs[args.days])
        summary[key] = {"off": off, "on": on, "ratio": on / off if off else None}
        print(f"{key:<10} {unit:<9} {off:>13,.0f} {on:>12,.0f} {on / off:>9.1%}")
    if args.json:
        args.json.write_text(json.dumps({"runs": {str(k): v for k, v in runs.items()}, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
