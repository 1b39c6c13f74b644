"""A materialized view added to a live table, and its backfill, counting every row exactly once.

A migration that adds a rollup creates its table, a materialized view that feeds it from a source
table (``events``, or an hourly rollup for a daily one) and an ``INSERT INTO rollup SELECT ... FROM
source`` backfilling what the source held before. On a database that keeps receiving inserts while
the migration runs, running those statements one after the other is wrong: the view counts every
insert whose pipeline was built after the view existed, the backfill counts every row committed
before its own snapshot, so rows inserted in between are counted twice, and the old "only into an
empty table" guard skips the backfill altogether once the view has written anything (every row
stored before the migration is then missing).

The technique here (``ClickHouseLedger.apply`` runs such migrations through ``apply_with_views``
on a single server or chDB; a cluster runs the statements as written):

1. Merges on the source are stopped (``SYSTEM STOP MERGES``) for the whole migration, so the
   source's part names stay as they are until the backfill has read them.
2. The view is attached between two snapshots of the source's active parts: ``P0`` (before
   ``CREATE MATERIALIZED VIEW``) and ``P1`` (after), with a look at the running inserts in
   between. The backfill reads only the parts in ``P0`` (``_part IN P0``); the view counts every
   insert whose pipeline was built after it was created. That split is exact when no insert was in
   flight across the creation: an insert whose pipeline was built before the view existed either
   committed all its parts before ``P0`` (backfilled), or it was still running right after the
   ``CREATE`` (it started before it: seen in ``system.processes``), or it finished in between (its
   part is in ``P1`` but not in ``P0``). Either of the last two, or any new part at all between
   ``P0`` and ``P1`` (possibly a legitimate one: it cannot be told apart), undoes the attempt: the
   view is dropped, the inserts that started before the drop are waited for (the last ones that
   can push into the view), the rollup is emptied, and the view is attached again, a little later.
   This process's own inserts through the same ``Warehouse`` are held back during the attempt
   (``Warehouse.exclusive``), so only writers elsewhere (other processes on a ClickHouse server)
   can make an attempt fail; an attempt waits for a moment when no insert runs (shards flush every
   ``flush_max_age_ms``, so there are gaps unless ingest saturates the server), and inserts that
   never leave a gap for ``ATTACH_BUDGET_S`` fail the migration with a message saying to pause the
   writers. Nothing short of stopping the writers gives an exact boundary while one is in flight:
   whether an insert feeds a view is fixed when its pipeline is built, which no table or part
   records.
3. The backfill runs with the guard removed and every read of the source narrowed to ``P0``; a
   ``P0`` that is empty (a new database) skips it. Afterwards every part of ``P0`` must still be
   active (nothing merged or mutated it away before the backfill read it), else the migration
   fails rather than record a rollup that may miss rows.
4. A migration that did not complete (a crash) is not in the ledger and runs again from the top:
   each view it left is dropped (waiting out the inserts that could still push into it) and the
   view's table emptied first, so the rerun counts every row once, whatever the crashed run had
   counted. Merges that a crash left stopped are started again by that rerun (a server restart
   starts them too: ``SYSTEM STOP MERGES`` is not persisted).

Inserts are synchronous (``async_insert = 0``, ``clickhouse.INSERT_SETTINGS``): an asynchronous
insert would build its pipeline in a background flush that ``system.processes`` does not show. On a
server, the migrating user must see every user's queries in ``system.processes`` (the default user
does).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from eventlens.storage.cluster_ddl import _CREATE_MV_RE, _CREATE_TABLE_RE, _INSERT_SELECT_RE, _TABLE_REF_RE

if TYPE_CHECKING:
    from eventlens.storage.clickhouse import Warehouse

log = logging.getLogger(__name__)

# how long attaching one view may keep retrying, and waiting for a quiet moment before an attempt
ATTACH_BUDGET_S = 60.0
QUIET_WAIT_S = 1.0
# an insert that started before the view was attached may still push into it until it ends
INFLIGHT_TIMEOUT_S = 300.0
# the old crash guard at the end of a backfill: ``WHERE (SELECT count() FROM t) = 0``
_EMPTY_GUARD_RE = re.compile(
    r"\s+WHERE\s*\(\s*SELECT\s+count\(\)\s+FROM\s+(?P<table>\w+)\s*\)\s*=\s*0\s*$", re.I
)
_PART_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Migration(Protocol):
    """A ``migrations.Migration`` (not imported: the runner imports this module)."""

    @property
    def statements(self) -> tuple[str, ...]: ...


class BackfillError(RuntimeError):
    """A view could not be attached with an exact backfill boundary (or a migration asks for one
    in a form this module does not understand)."""


@dataclass(frozen=True)
class View:
    name: str
    target: str
    source: str
    statement: str


def views_with_backfills(migration: Migration) -> dict[str, View]:
    """The migration's views whose target the migration also creates and backfills, by target."""
    created = {m["name"] for s in migration.statements if (m := _CREATE_TABLE_RE.match(s.strip()))}
    backfilled = {m["target"] for s in migration.statements if (m := _INSERT_SELECT_RE.match(s.strip()))}
    views: dict[str, View] = {}
    for statement in migration.statements:
        mv = _CREATE_MV_RE.match(statement.strip())
        if mv is None or mv["target"] not in backfilled:
            continue
        sources = [
            r["name"] for r in _TABLE_REF_RE.finditer(mv["select"]) if not r["kw"].upper().startswith("ARRAY")
        ]
        if len(set(sources)) != 1:
            raise BackfillError(f"view {mv['name']} must read exactly one table, not {sources}")
        if mv["target"] not in created:
            # emptying the table on a rerun or a retry would delete rows the migration did not write
            raise BackfillError(
                f"view {mv['name']}: its backfilled table {mv['target']} must be created by the same migration"
            )
        if mv["target"] in views:
            raise BackfillError(f"two views feed {mv['target']}: its backfill boundary would be ambiguous")
        views[mv["target"]] = View(mv["name"], mv["target"], sources[0], statement)
    return views


def bounded_backfill(statement: str, view: View) -> str:
    """The backfill without its emptiness guard, every read of the view's source narrowed to the
    parts bound as ``{backfill_parts:Array(String)}``."""
    sql = statement.strip()
    guard = _EMPTY_GUARD_RE.search(sql)
    if guard is not None:
        if guard["table"] != view.target:
            raise BackfillError(f"backfill of {view.target} is guarded by the emptiness of {guard['table']}")
        sql = sql[: guard.start()]
    read = {r["name"] for r in _TABLE_REF_RE.finditer(sql) if not r["kw"].upper().startswith("ARRAY")}
    if read != {view.source}:
        raise BackfillError(f"backfill of {view.target} must read only {view.source}, not {sorted(read)}")

    def narrow(ref: re.Match[str]) -> str:
        if ref["kw"].upper().startswith("ARRAY"):
            return ref[0]
        return (
            f"{ref['kw']} (SELECT * FROM {ref['name']} "
            f"WHERE _part IN {{backfill_parts:Array(String)}}) AS {ref['name']}"
        )

    return _TABLE_REF_RE.sub(narrow, sql)


class _Database:
    """The statements the protocol needs, on one warehouse."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh

    def parts(self, table: str) -> list[str]:
        rows = self.wh.query(
            "SELECT name FROM system.parts WHERE database = currentDatabase() AND table = {t:String} "
            "AND active ORDER BY name",
            {"t": table},
        )
        names = [str(r["name"]) for r in rows]
        bad = [n for n in names if not _PART_NAME_RE.match(n)]
        if bad:
            raise BackfillError(f"unexpected part names in {table}: {bad[:3]}")
        return names

    def now_us(self) -> int:
        return int(self.wh.query("SELECT toUnixTimestamp64Micro(now64(6)) AS t")[0]["t"])

    def inserts_started_before(self, t_us: int) -> int:
        """Running inserts (into any table: conservative) that started before ``t_us`` (or up to
        1 ms after: the start is derived from ``elapsed``)."""
        rows = self.wh.query(
            "SELECT count() AS n FROM system.processes WHERE query_kind = 'Insert' "
            "AND toUnixTimestamp64Micro(now64(6)) - elapsed * 1000000 < {t:Int64} + 1000",
            {"t": t_us},
        )
        return int(rows[0]["n"])

    def wait_quiet(self, timeout_s: float) -> None:
        """Until no insert runs (or ``timeout_s`` passes): the best moment for an attempt."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and int(
            self.wh.query("SELECT count() AS n FROM system.processes WHERE query_kind = 'Insert'")[0]["n"]
        ):
            time.sleep(0.002)

    def wait_inserts_started_before(self, t_us: int, what: str) -> None:
        deadline = time.monotonic() + INFLIGHT_TIMEOUT_S
        while self.inserts_started_before(t_us):
            if time.monotonic() > deadline:
                raise BackfillError(f"inserts still running {INFLIGHT_TIMEOUT_S:.0f} s after {what}")
            time.sleep(0.02)

    def table_exists(self, table: str) -> bool:
        rows = self.wh.query(
            "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            {"t": table},
        )
        return bool(rows[0]["n"])

    def dependents(self, table: str) -> list[str]:
        rows = self.wh.query(
            "SELECT dependencies_table AS d FROM system.tables "
            "WHERE database = currentDatabase() AND name = {t:String}",
            {"t": table},
        )
        return [str(d) for d in rows[0]["d"]] if rows else []

    def rows(self, table: str) -> int:
        return int(self.wh.query(f"SELECT count() AS n FROM {table}")[0]["n"])

    def leftovers(self, view: View) -> bool:
        """Whether an earlier run of the migration left the view or rows in its table."""
        return self.table_exists(view.name) or (self.table_exists(view.target) and self.rows(view.target) > 0)

    def detach_view(self, view: View) -> None:
        """Drop the view, wait out the inserts that may still push into it, empty its table."""
        self.wh.command(f"DROP VIEW IF EXISTS {view.name}")
        self.wait_inserts_started_before(self.now_us(), f"dropping {view.name}")
        if self.table_exists(view.target):
            below = self.dependents(view.target)
            if below:
                # emptying it would leave their rows derived from rows that are then counted again
                raise BackfillError(f"{view.target} cannot be refilled: views {below} read it")
            self.wh.command(f"TRUNCATE TABLE {view.target}")


def attach(db: _Database, view: View, stopped: list[str]) -> list[str]:
    """Create the view; return the source's parts it does not count (those the backfill reads).
    Merges on the source stop first (``stopped`` collects the tables, for ``start_merges``)."""
    if view.source not in stopped:
        db.wh.command(f"SYSTEM STOP MERGES {view.source}")
        stopped.append(view.source)
    deadline = time.monotonic() + ATTACH_BUDGET_S
    attempt = 0
    while True:
        attempt += 1
        with db.wh.exclusive():  # this process's own inserts wait: they cannot straddle the view
            db.wait_quiet(QUIET_WAIT_S)  # a gap between other writers' inserts, if one comes soon
            before = db.parts(view.source)
            db.wh.command(view.statement)
            created = db.now_us()
            straddling = db.inserts_started_before(created)
            after = db.parts(view.source)
        if not straddling and after == before:
            return before
        log.info(
            "view %s: inserts into %s during its creation (attempt %d): detaching it to retry",
            view.name,
            view.source,
            attempt,
        )
        db.detach_view(view)
        if time.monotonic() > deadline:
            raise BackfillError(
                f"view {view.name}: inserts never left a gap long enough to attach it with an exact "
                f"backfill boundary ({attempt} attempts in {ATTACH_BUDGET_S:.0f} s); pause the "
                "writers and migrate again"
            )
        time.sleep(min(0.01 * attempt, 0.2))


def start_merges(wh: Warehouse, tables: list[str]) -> None:
    """Merges on again (also where they had been stopped before the migration: ClickHouse does not
    say whether they were)."""
    for table in tables:
        try:
            wh.command(f"SYSTEM START MERGES {table}")
        except Exception:  # pragma: no cover - the error that brought us here matters more
            log.exception("could not start merges on %s again", table)


def apply_with_views(wh: Warehouse, migration: Migration) -> None:
    """Run ``migration``'s statements, its views attached and its backfills bounded as the module
    docstring says. Raises ``BackfillError`` or the database's error; the caller names the file."""
    views = views_with_backfills(migration)
    db = _Database(wh)
    # what a crashed earlier run left (views, rollup rows) goes first: this run counts each row once
    for view in views.values():
        if db.leftovers(view):
            db.detach_view(view)
    snapshots: dict[str, list[str]] = {}
    stopped: list[str] = []
    try:
        for statement in migration.statements:
            sql = statement.strip()
            mv = _CREATE_MV_RE.match(sql)
            ins = _INSERT_SELECT_RE.match(sql)
            if mv is not None and mv["target"] in views:
                view = views[mv["target"]]
                snapshots[view.target] = attach(db, view, stopped)
            elif ins is not None and ins["target"] in views:
                view = views[ins["target"]]
                if view.target not in snapshots:
                    raise BackfillError(f"the backfill of {view.target} comes before its view")
                parts = snapshots[view.target]
                if not parts:
                    continue  # nothing was stored before the view: nothing to backfill
                wh.command(bounded_backfill(sql, view), {"backfill_parts": parts})
                gone = sorted(set(parts) - set(db.parts(view.source)))
                if gone:
                    raise BackfillError(
                        f"parts of {view.source} merged or mutated away during the backfill of "
                        f"{view.target}: {gone[:3]}"
                    )
            else:
                wh.command(sql)
    finally:
        start_merges(wh, stopped)
