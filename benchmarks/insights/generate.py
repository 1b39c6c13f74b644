"""Synthetic, seeded analytics data for the insights benchmark, loaded straight into chDB.

    python -m benchmarks.insights.generate --data-dir DIR [--events 10000000] [--days 35] [--seed 42]
        [--devices 20000] [--batch-size 200000] [--now 2026-11-30T12:00:00Z] [--force]

What it writes into ``DIR`` (the daemon's data directory layout, see ``eventlens/config.py``):

* a project and a read and a write client in the metadata database (``DIR/metadata.sqlite3``),
  their credentials in ``DIR/bench-credentials.json`` (with the generation parameters and row
  counts; written last, so its presence means the load completed);
* ``--events`` client events (page views and other events; ``/metrics`` ``totalEvents`` over the
  whole range counts exactly these, bots included) over the last ``--days`` days up to ``--now``,
  plus, as the buffer shards would, a ``session_start`` and a ``session_end`` marker per session
  (ids ``"<sid>:s"`` / ``"<sid>:e"``) and one closed ``sessions`` row per session.

Why not over HTTP: ten million events through ``/track/batch`` at the ~10–20k events/s this
2-core machine sustains would take 10–20 minutes of ingest alone, and would measure ingest, not
insights. The loader opens the embedded chDB directory itself (``migrate_clickhouse``, then
``Warehouse.insert_columns`` in column-oriented batches with a unique deduplication token each),
so the materialized views of the migrations see the rows exactly as they see a shard's flush. chDB
allows one owning process per directory: run this *before* starting a daemon on ``DIR``, never
beside one.

The model (all draws from ``numpy.random.default_rng`` seeded with ``--seed``; with the same
``--now`` and ``--batch-size`` the rows are identical):

* visitors (``--devices``): 63 % one-time visitors (1–2 sessions within a 1–3 day window), 35 %
  returning visitors (active from a first day to the end, heavy-tailed number of sessions), 2 %
  bots (``is_bot = 1``, device ``bot``, crawler browsers, many page views per visit, direct);
  geo (country/region/city) and device/browser/OS are fixed per visitor; ~30 % of the returning
  and ~5 % of the one-time visitors are identified (``profile_id`` on all their events), and each
  identified visitor's device id is aliased to the profile (as an SDK does at sign-in: the rows
  change no answer here, since those events carry the profile id, but the profile funnels and
  retention join a realistic alias table);
* session start times follow an hourly profile (a European and an American peak in UTC), a weekly
  one (weekends ~35 % lower) and a slight upward trend; one visitor's sessions are at least 31
  minutes apart (the daemon's 30-minute timeout), the gaps inside a session under 25 minutes;
* per session: an entry referrer (direct, Google/Bing/DuckDuckGo search, Facebook/Twitter/
  LinkedIn/Reddit/Hacker News/GitHub social, newsletter e-mail, Google/Facebook ad campaigns with
  ``utm_*``, a few other sites), classified by ``eventlens.ingest.referrer`` exactly like ingest
  does; later page views carry an ``internal`` referrer (the previous page) and no UTM;
* ~36 % bounces (one page view); otherwise page views over 300 paths with a Zipf-like
  popularity, ``button_click`` events, and the funnel ``page_view → signup_click →
  signup_complete → purchase`` at decreasing rates (higher for identified visitors); properties
  ``plan``, ``button``, ``method``, ``value``, ``currency``, ``scroll_depth``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.insights.load import CREDENTIALS_FILE, load
from benchmarks.insights.plan import Params


def parse_now(text: str | None) -> int:
    """``--now`` as epoch milliseconds (UTC when the text has no offset); the current time if empty."""
    if not text:
        return int(time.time() * 1000)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.insights.generate", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data-dir", type=Path, required=True, help="daemon data directory to load into")
    ap.add_argument("--events", type=int, default=10_000_000, help="client events (markers come on top)")
    ap.add_argument("--days", type=int, default=35, help="days of history, ending --now")
    ap.add_argument("--devices", type=int, default=20_000, help="visitors (device ids)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-size", type=int, default=200_000, help="event rows per insert")
    ap.add_argument("--now", help="end of the range, ISO (default: the current time)")
    ap.add_argument("--force", action="store_true", help="load even if the directory already has events")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.events < 1 or args.days < 1 or args.devices < 1 or args.batch_size < 1000:
        ap.error("--events, --days, --devices must be positive and --batch-size at least 1000")
    params = Params(
        events=args.events,
        days=args.days,
        devices=args.devices,
        seed=args.seed,
        batch_size=args.batch_size,
        now_ms=parse_now(args.now),
    )
    summary = load(args.data_dir, params, force=args.force, progress=not args.no_progress)
    shown = {k: v for k, v in summary.items() if k not in ("read", "write")}
    print(json.dumps(shown, indent=2))
    print(f"credentials: {args.data_dir.resolve() / CREDENTIALS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
