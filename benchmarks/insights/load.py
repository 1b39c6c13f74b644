"""Loading a generated data set into a daemon's data directory (embedded chDB + metadata database).

The rows go through ``Warehouse.insert_columns`` after ``storage.migrations.migrate_clickhouse``, with one
deduplication token per batch and table, so the migrations' materialized views see them exactly as
they see a shard's flush. chDB allows one owning process per directory: never load beside a daemon
that runs on the same directory.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.insights.plan import Params, Plan, make_plan
from benchmarks.insights.rows import batches

if TYPE_CHECKING:
    from eventlens.config import Settings

# written last: its presence means the load completed
CREDENTIALS_FILE = "bench-credentials.json"


@dataclass(frozen=True)
class BenchProject:
    id: str
    read_id: str
    read_secret: str
    write_id: str
    write_secret: str


def settings_for(data_dir: Path) -> Settings:
    from eventlens.config import load_settings

    return load_settings(data_dir=data_dir)


def existing_rows(wh: Any) -> int:
    return int(wh.query("SELECT count() AS n FROM events")[0]["n"])


def load(
    data_dir: Path,
    params: Params,
    *,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate and load; returns the summary that is also written to the credentials file."""
    from eventlens.storage.clickhouse import Warehouse
    from eventlens.storage.migrations import migrate_clickhouse

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(data_dir)
    t0 = time.monotonic()
    wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        applied = migrate_clickhouse(wh)
        before = existing_rows(wh)
        if before and not force:
            raise SystemExit(
                f"{data_dir} already holds {before:,} event rows; use --force to add another "
                "project beside them, or a new directory"
            )
        project = create_project(settings, params)
        t_plan = time.monotonic()
        plan = make_plan(params)
        timing = {"plan": time.monotonic() - t_plan}
        timing |= insert_batches(wh, plan, params, project.id, progress=progress)
        alias_rows = insert_aliases(wh, plan, params, project.id)
        counts = count_rows(wh, project.id)
    finally:
        wh.close()
    timing["total"] = time.monotonic() - t0
    summary = _summary(project, params, counts, alias_rows, timing, applied, data_dir)
    write_credentials(data_dir, summary)
    return summary


def create_project(settings: Settings, params: Params) -> BenchProject:
    """A project with a read and a write client in the metadata database."""
    from eventlens.storage.metadata import open_metadata

    store = open_metadata(settings.metadata_dsn)
    try:
        store.migrate()
        project = store.create_project(f"insights bench (seed {params.seed}, {params.events:,} events)")
        read, read_secret = store.create_client(project.id, "read", name="bench read")
        write, write_secret = store.create_client(project.id, "write", name="bench write")
        # the goals the goals row measures: a glob page goal, an exact one, an event goal
        from eventlens.goals import GoalSpec

        for spec in (
            {"name": "read the blog", "path": "/blog/*"},
            {"name": "signup page", "path": "/signup"},
            {"name": "purchase", "event": "purchase"},
        ):
            store.create_goal(project.id, GoalSpec.model_validate(spec))
    finally:
        store.close()
    return BenchProject(project.id, read.id, read_secret, write.id, write_secret)


def insert_batches(
    wh: Any, plan: Plan, params: Params, project_id: str, *, progress: bool
) -> dict[str, float]:
    """Generates and inserts every batch; returns the seconds spent generating and inserting."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total_rows = plan.client_events + 2 * plan.sessions
    gen_s = ins_s = 0.0
    with Progress(
        TextColumn("[bold]loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("event rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress,
    ) as bar:
        task = bar.add_task("load", total=total_rows)
        it = batches(plan, params, project_id)
        b = 0
        while True:
            tg = time.monotonic()
            try:
                ev, se = next(it)
            except StopIteration:
                break
            ti = time.monotonic()
            gen_s += ti - tg
            for table, cols in (("events", ev), ("sessions", se)):
                names = list(cols)
                wh.insert_columns(
                    table, names, [cols[k] for k in names], token=f"bench:{project_id}:{b}:{table}"
                )
            ins_s += time.monotonic() - ti
            bar.update(task, advance=len(ev["id"]))
            b += 1
    return {"generate": gen_s, "insert": ins_s}


def insert_aliases(wh: Any, plan: Plan, params: Params, project_id: str) -> int:
    """Links each identified visitor's device id to its profile, as an SDK does at sign-in: the
    events already carry the profile id, so no answer changes, but profile funnels and retention
    join a realistic alias table."""
    ident = np.flatnonzero(plan.profile_id != "")
    alias_rows = len(ident)
    if alias_rows:
        stamp = [datetime.fromtimestamp(params.now_ms / 1000, UTC)] * alias_rows
        wh.insert_columns(
            "profile_aliases",
            ["project_id", "alias", "profile_id", "created_at", "event_id"],
            [
                [project_id] * alias_rows,
                plan.device_id[ident].tolist(),
                plan.profile_id[ident].tolist(),
                stamp,
                [f"alias-{i}" for i in ident.tolist()],
            ],
            token=f"bench:{project_id}:aliases",
        )
    return alias_rows


def count_rows(wh: Any, project_id: str) -> dict[str, Any]:
    return wh.query(
        "SELECT (SELECT count() FROM events WHERE project_id = {p:String}) AS events, "
        "(SELECT countIf(name NOT IN ('session_start', 'session_end')) FROM events "
        " WHERE project_id = {p:String}) AS client_events, "
        "(SELECT count() FROM sessions WHERE project_id = {p:String}) AS sessions, "
        "(SELECT uniqExact(device_id) FROM events WHERE project_id = {p:String}) AS devices, "
        "(SELECT min(created_at) FROM events WHERE project_id = {p:String}) AS first, "
        "(SELECT max(created_at) FROM events WHERE project_id = {p:String}) AS last",
        {"p": project_id},
    )[0]


def _summary(
    project: BenchProject,
    params: Params,
    counts: dict[str, Any],
    alias_rows: int,
    timing: dict[str, float],
    applied: Any,
    data_dir: Path,
) -> dict[str, Any]:
    return {
        "projectId": project.id,
        "read": {"clientId": project.read_id, "clientSecret": project.read_secret},
        "write": {"clientId": project.write_id, "clientSecret": project.write_secret},
        "params": {
            "events": params.events,
            "days": params.days,
            "devices": params.devices,
            "seed": params.seed,
            "batch_size": params.batch_size,
            "now": datetime.fromtimestamp(params.now_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        },
        "rows": {
            "events": int(counts["events"]),
            "client_events": int(counts["client_events"]),
            "sessions": int(counts["sessions"]),
            "devices": int(counts["devices"]),
            "aliases": alias_rows,
            "first": str(counts["first"]),
            "last": str(counts["last"]),
        },
        "timing_s": {k: round(timing[k], 1) for k in ("plan", "generate", "insert", "total")},
        "migrations_applied": applied,
        "data_dir": str(data_dir),
    }


def write_credentials(data_dir: Path, summary: dict[str, Any]) -> None:
    cred = data_dir / CREDENTIALS_FILE
    tmp = cred.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(cred)


def read_credentials(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / CREDENTIALS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())
