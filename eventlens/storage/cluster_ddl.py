"""The ClickHouse migrations rewritten for a sharded, replicated cluster (``clickhouse_cluster``).

Pure text in, text out: no client, no server. ``for_cluster`` takes every migration in order and
returns the same migrations with each statement replaced by its cluster form:

- ``CREATE TABLE x (...) ENGINE = <Kind>MergeTree[(args)] ...`` becomes two statements:
  ``x_local``, created ``ON CLUSTER`` with ``Replicated<Kind>MergeTree('/clickhouse/tables/{shard}/
  {database}/x_local', '{replica}'[, args])`` (the same columns, keys and settings;
  ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window``), and ``x``,
  a ``Distributed`` table over ``x_local`` on every shard, sharded by ``cityHash64`` of ``SHARDING_KEYS[x]``. Readers
  and writers keep using ``x``: the application's SQL does not change.
- ``CREATE MATERIALIZED VIEW v TO t AS SELECT ... FROM s`` is created ``ON CLUSTER`` and reads
  ``s_local`` into ``t_local``: a view fires on the node that stores an insert into ``s_local``
  (views never see what passes through a Distributed table), writes the aggregate of that block to
  the same node's ``t_local``, and replication copies the result; chained views (hourly → daily)
  chain on the local tables the same way. The rollups are then read through ``t``'s Distributed
  table, whose queries merge the shards' partial aggregates (visitor sets are unions, counts
  sums), so the answer does not depend on which shard holds which rows.
- ``INSERT INTO t SELECT ...`` (the migrations' backfills) is left as it is: it reads the
  Distributed tables and writes through ``t``'s Distributed table, which places each row by its
  sharding key; its ``WHERE (SELECT count() FROM t) = 0`` guard counts the whole cluster.
- ``ALTER TABLE x ...`` gets ``ON CLUSTER`` on ``x_local``; column changes also go to ``x``'s
  Distributed table, whose structure must follow.

Anything else raises ``ClusterDDLError``: a statement this module does not understand must not
reach a cluster unchanged (it would create a non-replicated table on one node only).

Sharding keys (``SHARDING_KEYS``) are chosen so that the rows ``FINAL`` must collapse, or that
must be counted once, live on one shard: ``FINAL`` merges within a shard only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

# a ``migrations.Migration`` (a dataclass with ``statements``); not imported: the runner imports us
M = TypeVar("M", bound=Any)

__all__ = [
    "CLUSTER_RE",
    "LOCAL_SUFFIX",
    "SHARDING_KEYS",
    "ClusterDDLError",
    "ClusterRewriter",
    "create_database",
    "for_cluster",
    "ledger_ddl",
    "validate_cluster",
]

# A cluster name goes into DDL text (quoted): only this shape is accepted.
CLUSTER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
DATABASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"

# How a Distributed table spreads rows over the shards. Device-keyed tables follow the ingest
# sharding (project, device): a client retry of an event has the same device, so its duplicate
# lands on the same shard and ``events FINAL`` collapses it; a session's snapshots all land on
# the shard of its device, so ``sessions FINAL`` keeps only the newest. Profiles and aliases are
# replaced per (project, profile) and (project, alias), so those key their shard. The rollups are
# written by views on the local tables (their rows sit where the events sit); the key below only
# places rows inserted through the Distributed table (the backfills), and their queries merge
# across shards, so any placement gives the same answer: project (and user or device where the
# table has one, to spread a large project over the shards).
SHARDING_KEYS: dict[str, tuple[str, ...]] = {
    "events": ("project_id", "device_id"),
    "sessions": ("project_id", "device_id"),
    "profiles": ("project_id", "profile_id"),
    "profile_counters": ("project_id", "profile_id"),
    "profile_aliases": ("project_id", "alias"),
    "replays": ("project_id", "session_id"),
    "groups": ("project_id", "group_id"),
    "profile_groups": ("project_id", "profile_id"),
    "events_hourly": ("project_id",),
    "event_catalog": ("project_id",),
    "user_hours": ("project_id", "user"),
    "funnel_events": ("project_id", "device"),
    "events_dims_hourly": ("project_id",),
    "events_daily": ("project_id",),
    "events_dims_daily": ("project_id",),
    "revenue_hourly": ("project_id",),
}

_MERGE_TREES = frozenset(
    {
        "MergeTree",
        "ReplacingMergeTree",
        "AggregatingMergeTree",
        "SummingMergeTree",
        "CollapsingMergeTree",
        "VersionedCollapsingMergeTree",
    }
)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE_TABLE_RE = re.compile(
    rf"^CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s*\(", re.I
)
_ENGINE_RE = re.compile(rf"^\s*ENGINE\s*=\s*(?P<engine>{_IDENT})\s*", re.I)
_CREATE_MV_RE = re.compile(
    rf"^CREATE\s+MATERIALIZED\s+VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s+"
    rf"TO\s+(?P<target>{_IDENT})\s+AS\s+(?P<select>SELECT\b.*)$",
    re.I | re.S,
)
_INSERT_SELECT_RE = re.compile(rf"^INSERT\s+INTO\s+(?P<target>{_IDENT})\s+SELECT\b", re.I)
_ALTER_RE = re.compile(rf"^ALTER\s+TABLE\s+(?P<name>{_IDENT})\s+(?P<rest>.*)$", re.I | re.S)
# ALTER commands a Distributed table must follow (its columns), and those for the storage only
_ALTER_COLUMNS_RE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_ALTER_LOCAL_RE = re.compile(
    r"^(MODIFY\s+(SETTING|TTL|ORDER\s+BY)|RESET\s+SETTING|ADD\s+(INDEX|PROJECTION)|"
    r"DROP\s+(INDEX|PROJECTION)|MATERIALIZE\s+(INDEX|PROJECTION|COLUMN))\b",
    re.I,
)
# ARRAY JOIN (of an array expression, not a table) first: the leftmost match wins
_TABLE_REF_RE = re.compile(rf"\b(?P<kw>ARRAY\s+JOIN|FROM|JOIN)\s+(?P<name>{_IDENT})\b", re.I)
_DEDUP_WINDOW_RE = re.compile(r"\bnon_replicated_deduplication_window\b")


class ClusterDDLError(ValueError):
    """A statement, cluster name or table the cluster rewrite does not know how to handle."""


def validate_cluster(cluster: str) -> str:
    if not CLUSTER_RE.match(cluster or ""):
        raise ClusterDDLError(f"clickhouse_cluster {cluster!r} must match {CLUSTER_RE.pattern}")
    return cluster


def _validate_database(database: str) -> str:
    if not DATABASE_RE.match(database or ""):
        raise ClusterDDLError(f"database {database!r} must match {DATABASE_RE.pattern}")
    return database


def _on(cluster: str) -> str:
    return f"ON CLUSTER '{cluster}'"


def create_database(database: str, cluster: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS `{_validate_database(database)}` {_on(validate_cluster(cluster))}"


def ledger_ddl(cluster: str) -> str:
    """The migration ledger on a cluster: one replicated table on every node of every shard (one
    replication group for the whole cluster, so whichever node runs the next migration reads the
    whole ledger), with no Distributed table in front. The replica name includes the shard: the
    ``{replica}`` macro need only be unique within a shard."""
    on = _on(validate_cluster(cluster))
    return f"""
CREATE TABLE IF NOT EXISTS schema_migrations {on}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{{database}}/schema_migrations', '{{shard}}-{{replica}}')
ORDER BY version
"""


def _closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at ``open_at`` (quotes respected)."""
    depth, quote, i = 0, "", open_at
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ClusterDDLError("unbalanced parentheses")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]


class ClusterRewriter:
    """Rewrites statements in migration order, remembering the tables created so far (a later
    migration's view or backfill refers to tables of earlier ones)."""

    def __init__(
        self, cluster: str, database: str, sharding_keys: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        self.cluster = validate_cluster(cluster)
        self.database = _validate_database(database)
        self.sharding_keys = dict(SHARDING_KEYS if sharding_keys is None else sharding_keys)
        self.tables: dict[str, _Table] = {}

    @property
    def on(self) -> str:
        return _on(self.cluster)

    def rewrite(self, statement: str) -> list[str]:
        sql = statement.strip()
        if _CREATE_TABLE_RE.match(sql):
            return self._create_table(sql)
        if (mv := _CREATE_MV_RE.match(sql)) is not None:
            return [self._create_view(mv)]
        if (ins := _INSERT_SELECT_RE.match(sql)) is not None:
            self._known(ins["target"], "INSERT INTO")
            return [sql]
        if (alter := _ALTER_RE.match(sql)) is not None:
            return self._alter(alter["name"], alter["rest"])
        raise ClusterDDLError(f"statement not understood by the cluster rewrite: {sql[:80]!r}")

    def _known(self, name: str, where: str) -> _Table:
        if name not in self.tables:
            raise ClusterDDLError(f"{where} {name}: not a table created by an earlier statement")
        return self.tables[name]

    # CREATE TABLE ---------------------------------------------------------------------------
    def _create_table(self, sql: str) -> list[str]:
        head = _CREATE_TABLE_RE.match(sql)
        assert head is not None
        name = head["name"]
        if name.endswith(LOCAL_SUFFIX):
            raise ClusterDDLError(
                f"table {name}: the {LOCAL_SUFFIX} suffix is reserved for the cluster rewrite"
            )
        if name in self.tables:
            raise ClusterDDLError(f"table {name} is created twice")
        open_at = head.end() - 1
        close_at = _closing(sql, open_at)
        body = sql[open_at + 1 : close_at]
        columns = tuple(part.split()[0].strip("`") for part in _split_top_level(body))
        tail = sql[close_at + 1 :]
        engine = _ENGINE_RE.match(tail)
        if engine is None or engine["engine"] not in _MERGE_TREES:
            found = engine["engine"] if engine else "none"
            raise ClusterDDLError(f"table {name}: engine {found} is not of the MergeTree family")
        rest = tail[engine.end() :]
        args: list[str] = []
        if rest.startswith("("):
            args_end = _closing(rest, 0)
            args = _split_top_level(rest[1:args_end])
            rest = rest[args_end + 1 :]
        key = self.sharding_keys.get(name)
        if key is None:
            raise ClusterDDLError(f"table {name} has no sharding key: add one to cluster_ddl.SHARDING_KEYS")
        missing = [c for c in key if c not in columns]
        if missing:
            raise ClusterDDLError(f"table {name}: sharding key names missing columns {missing}")
        self.tables[name] = _Table(name, columns)

        local = name + LOCAL_SUFFIX
        ine = "IF NOT EXISTS " if head["ine"] else ""
        path = REPLICA_PATH.format(table=local)
        engine_args = ", ".join([f"'{path}'", "'{replica}'", *args])
        rest = _DEDUP_WINDOW_RE.sub("replicated_deduplication_window", rest.strip())
        local_sql = (
            f"CREATE TABLE {ine}{local} {self.on}\n({body})\n"
            f"ENGINE = Replicated{engine['engine']}({engine_args})" + (f"\n{rest}" if rest else "")
        )
        dist_sql = (
            f"CREATE TABLE {ine}{name} {self.on} AS {local}\n"
            f"ENGINE = Distributed('{self.cluster}', '{self.database}', '{local}', cityHash64({', '.join(key)}))"
        )
        return [local_sql, dist_sql]

    # CREATE MATERIALIZED VIEW ---------------------------------------------------------------
    def _create_view(self, mv: re.Match[str]) -> str:
        target = self._known(mv["target"], f"materialized view {mv['name']} TO")
        select = mv["select"]
        sources: list[str] = []

        def local(ref: re.Match[str]) -> str:
            if ref["kw"].upper().startswith("ARRAY"):
                return ref[0]
            if ref["kw"].upper() == "JOIN":
                raise ClusterDDLError(
                    f"materialized view {mv['name']}: a JOIN in a view would read one shard only"
                )
            source = self._known(ref["name"], f"materialized view {mv['name']} FROM")
            sources.append(source.name)
            return f"{ref['kw']} {source.name}{LOCAL_SUFFIX}"

        select = _TABLE_REF_RE.sub(local, select)
        if len(sources) != 1:
            raise ClusterDDLError(
                f"materialized view {mv['name']} must read exactly one table, not {sources}"
            )
        ine = "IF NOT EXISTS " if mv["ine"] else ""
        return f"CREATE MATERIALIZED VIEW {ine}{mv['name']} {self.on} TO {target.name}{LOCAL_SUFFIX} AS\n{select}"

    # ALTER TABLE ----------------------------------------------------------------------------
    def _alter(self, name: str, rest: str) -> list[str]:
        table = self._known(name, "ALTER TABLE")
        commands = _split_top_level(rest)
        if not commands:
            raise ClusterDDLError(f"ALTER TABLE {name} without a command")
        columns = [c for c in commands if _ALTER_COLUMNS_RE.match(c)]
        local_only = [c for c in commands if _ALTER_LOCAL_RE.match(c)]
        unknown = [c for c in commands if c not in columns and c not in local_only]
        if unknown:
            raise ClusterDDLError(
                f"ALTER TABLE {name}: command not understood by the cluster rewrite: {unknown[0]!r}"
            )
        local = _DEDUP_WINDOW_RE.sub("replicated_deduplication_window", ", ".join(commands))
        out = [f"ALTER TABLE {table.name}{LOCAL_SUFFIX} {self.on} {local}"]
        if columns:
            out.append(f"ALTER TABLE {table.name} {self.on} {', '.join(columns)}")
        return out


def rewrite_statements(statements: Iterable[str], cluster: str, database: str) -> list[str]:
    """Every statement's cluster form, in order (a convenience for one list of statements)."""
    rewriter = ClusterRewriter(cluster, database)
    return [out for statement in statements for out in rewriter.rewrite(statement)]


def for_cluster(migrations: Sequence[M], cluster: str, database: str) -> list[M]:
    """The migrations with their statements rewritten for ``cluster``; names and checksums stay
    those of the files (the ledger records what the files say, whichever form ran)."""
    rewriter = ClusterRewriter(cluster, database)
    out = []
    for migration in migrations:
        statements = tuple(s for statement in migration.statements for s in rewriter.rewrite(statement))
        out.append(replace(migration, statements=statements))
    return out
