"""Render a results JSON as tables: ``python -m benchmarks.report [benchmarks/results/latest.json]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.common import fmt_num

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "—"
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def _bad(s: dict[str, Any]) -> str:
    parts = []
    if s.get("statuses"):
        parts.append(", ".join(f"{k}×{v}" for k, v in s["statuses"].items()))
    if s.get("transport_errors"):
        parts.append(", ".join(f"{k}×{v}" for k, v in s["transport_errors"].items()))
    if s.get("items_rejected"):
        parts.append(f"{s['items_rejected']} events rejected")
    return "; ".join(parts) if parts else "0"


def _lat(s: dict[str, Any], q: str) -> str:
    return fmt_num((s.get("latency_ms") or {}).get(q), 1)


def results_table(r: dict[str, Any]) -> Table:
    sc = r.get("scenarios", {})
    t = Table(title=f"Event Lens benchmark — {r.get('meta', {}).get('started', '')}", show_lines=False)
    for col, just in (
        ("#", "right"),
        ("Scenario", "left"),
        ("Measured", "right"),
        ("Target", "right"),
        ("", "center"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("non-2xx / errors", "left"),
        ("Notes", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    _single_row(t, sc.get("single"))
    for size in (100, 1000):
        _batch_row(t, size, sc.get(f"batch{size}"))
    _ack_row(t, sc.get("ack_counted"))
    _noop_row(t, sc.get("noop"), sc.get("single") or {})
    _memory_row(t, r.get("memory"))
    _enrichment_row(t, r.get("enrichment"))
    _consistency_row(t, r.get("consistency"))
    _stop_rows(t, r.get("stop"))
    return t


def _err_row(t: Table, num: str, name: str, s: dict[str, Any]) -> None:
    t.add_row(num, name, "[red]error[/]", "", "", "", "", "", "", str(s.get("error"))[:80])


def _info_row(t: Table, num: str, name: str, measured: str, notes: str) -> None:
    """A figure reported without a target or latencies."""
    t.add_row(num, name, measured, "—", "—", "", "", "", "", notes)


def _single_row(t: Table, s: dict[str, Any] | None) -> None:
    if s and "error" not in s:
        t.add_row(
            "1",
            "single-event POST /track",
            f"{fmt_num(s['requests_per_s'])} req/s",
            "≥ 800 req/s",
            _verdict(s["requests_per_s"] >= 800),
            _lat(s, "p50"),
            _lat(s, "p95"),
            _lat(s, "p99"),
            _bad(s),
            f"c={s['concurrency']}, {s['ok']:,} ok in {s['elapsed_s']:.1f}s",
        )
    elif s:
        _err_row(t, "1", "single-event POST /track", s)


def _batch_row(t: Table, size: int, s: dict[str, Any] | None) -> None:
    name = f"POST /track/batch × {size:,}"
    if s and "error" not in s:
        t.add_row(
            f"2{'a' if size == 100 else 'b'}",
            name,
            f"{fmt_num(s['items_per_s'])} events/s",
            "≥ 20,000 ev/s",
            _verdict(s["items_per_s"] >= 20_000),
            _lat(s, "p50"),
            _lat(s, "p95"),
            _lat(s, "p99"),
            _bad(s),
            f"c={s['concurrency']}, {fmt_num(s['requests_per_s'], 1)} req/s, {s['items_accepted']:,} events",
        )
    elif s:
        _err_row(t, "2", name, s)


def _ack_row(t: Table, s: dict[str, Any] | None) -> None:
    if s and "error" not in s:
        a = s["ack_to_counted_ms"]
        ok = s["p95_s"] is not None and s["p95_s"] <= 2.0 and s["not_counted"] == 0
        bad = []
        if s["send_failures"]:
            bad.append("send " + ", ".join(f"{k}×{v}" for k, v in s["send_failures"].items()))
        if s["poll_failures"]:
            bad.append("poll " + ", ".join(f"{k}×{v}" for k, v in s["poll_failures"].items()))
        t.add_row(
            "3",
            "ack → counted in /metrics",
            f"p95 {fmt_num(s['p95_s'], 2)} s",
            "p95 ≤ 2 s",
            _verdict(ok),
            fmt_num(a["p50"]),
            fmt_num(a["p95"]),
            fmt_num(a["p99"]),
            "; ".join(bad) or "0",
            f"{s['acked']} events @ {s['rate_per_s']:g}/s, poll {s['poll_interval_ms']:g} ms "
            f"(rtt p50 {fmt_num(s['poll_rtt_ms']['p50'], 1)} ms); not counted {s['not_counted']}",
        )
    elif s:
        _err_row(t, "3", "ack → counted in /metrics", s)


def _noop_row(t: Table, s: dict[str, Any] | None, single: dict[str, Any]) -> None:
    if s and "error" not in s:
        ratio = ""
        if single.get("requests_per_s") and s.get("requests_per_s"):
            ratio = f"; /track = {100 * single['requests_per_s'] / s['requests_per_s']:.0f}% of it"
        t.add_row(
            "4",
            "no-op Serve POST /noop (ceiling)",
            f"{fmt_num(s['requests_per_s'])} req/s",
            "reference",
            "—",
            _lat(s, "p50"),
            _lat(s, "p95"),
            _lat(s, "p99"),
            _bad(s),
            f"c={s['concurrency']}{ratio}",
        )
    elif s:
        _err_row(t, "4", "no-op Serve POST /noop (ceiling)", s)


def _memory_row(t: Table, m: dict[str, Any] | None) -> None:
    if m and "error" not in m:
        _info_row(
            t,
            "5",
            "peak RSS, daemon process tree",
            f"{fmt_num(m['peak_rss_mb'])} MB",
            f"during {m['peak_during']}; {m['processes_max']} processes; peak PSS "
            f"{fmt_num(m['peak_pss_mb'])} MB; noop replica excluded",
        )


def _enrichment_row(t: Table, e: dict[str, Any] | None) -> None:
    if e and "error" not in e:
        _info_row(
            t,
            "6",
            "enrichment cost per event",
            f"{fmt_num(e['enrichment_warm_us'], 1)} µs",
            f"replica pipeline, one core: {fmt_num(e['bare_us'], 1)} µs/event without user agent and geo, "
            f"{fmt_num(e['warm_us'], 1)} with (caches warm), {fmt_num(e['cold_us'], 1)} all unseen "
            f"(enrichment {fmt_num(e['enrichment_cold_us'], 1)} µs)",
        )
    elif e:
        _err_row(t, "6", "enrichment cost per event", e)


def _stop_rows(t: Table, stops: list[dict[str, Any]] | None) -> None:
    """(7) ``benchmarks.stoptime``: SIGTERM under load to the daemon's group and to its pid."""
    for res in stops or []:
        name = f"stop under load, SIGTERM to the {res.get('how')}"
        if "error" in res:
            _err_row(t, "7", name, res)
            continue
        t.add_row(
            "7",
            name,
            f"{res['stop_s']:.2f} s",
            "≤ 10 s",
            _verdict(res["stop_s"] <= 10 and res["lost"] == 0 and not stoptime_id_problems(res)),
            "",
            "",
            "",
            ", ".join(f"{k} {v}" for k, v in sorted(res["failures_during_stop"].items())) or "",
            f"all processes gone {res['all_gone_s']:.2f} s; {res['acknowledged']:,} acknowledged, "
            f"{res['counted_after_restart']:,} counted after restart, {res['lost']} lost"
            + "".join(f", {k.replace('_', ' ')} {v}" for k, v in stoptime_id_problems(res).items()),
        )


def stoptime_id_problems(res: dict[str, Any]) -> dict[str, int]:
    """The per-id checks of a stop run that failed (results from before them have none)."""
    keys = ("stored_twice", "acknowledged_not_stored", "stored_unexplained")
    return {k: res[k] for k in keys if res.get(k)}


def _consistency_row(t: Table, c: dict[str, Any] | None) -> None:
    if c:
        t.add_row(
            "",
            "counted vs acknowledged",
            f"{c['counted']:,} / {c['acknowledged']:,}",
            "equal",
            _verdict(c["counted"] == c["acknowledged"]),
            "",
            "",
            "",
            "",
            f"totalEvents after {c['waited_s']} s wait",
        )


def cpu_table(r: dict[str, Any]) -> Table:
    t = Table(
        title="Where the 2 cores went (CPU seconds ÷ wall seconds = cores busy; "
        "'other' = processes that are neither the runner nor the daemon)"
    )
    for col in (
        "Scenario",
        "wall s",
        "machine busy",
        "runner (load gen.)",
        "daemon total",
        "other (not ours)",
        "top daemon processes (cores)",
    ):
        t.add_column(col)
    for key, s in r.get("scenarios", {}).items():
        cpu = s.get("daemon_cpu") if isinstance(s, dict) else None
        if not cpu:
            continue
        wall = s.get("phase_wall_s") or 0
        top = sorted(cpu["by_role_s"].items(), key=lambda kv: -kv[1])[:5]
        lg = s.get("runner_cores")
        busy = s.get("machine_cores_busy")
        other = max(0.0, busy - cpu["cores"] - (lg or 0.0)) if busy is not None else None
        t.add_row(
            key,
            fmt_num(wall, 1),
            fmt_num(busy, 2),
            fmt_num(lg, 2),
            fmt_num(cpu["cores"], 2),
            fmt_num(other, 2),
            ", ".join(f"{k} {v / wall:.2f}" for k, v in top) if wall else "",
        )
    return t


def render(r: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(results_table(r))
    console.print(cpu_table(r))
    for key, s in r.get("scenarios", {}).items():
        if isinstance(s, dict) and s.get("other_processes"):
            console.print(f"[dim]other processes during {key}: " + "; ".join(s["other_processes"]) + "[/]")
    for e in r.get("errors", []):
        console.print(f"[red]error[/] {e}")


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or [str(DEFAULT_JSON)])[0])
    render(json.loads(path.read_text()), Console() if sys.stdout.isatty() else Console(width=180))
    return 0


if __name__ == "__main__":
    sys.exit(main())
