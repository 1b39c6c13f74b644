"""Paths: the most common sequences of steps (page paths, or event names) through sessions, as
the nodes and links of a Sankey diagram (``GET /insights/{p}/paths``).

One query does it all, in ClickHouse. Per session (events in range, filters and bots as
everywhere, grouped by their ``session_id``): the steps sorted by time (ties by the step's
value), consecutive repeats collapsed (``arrayCompact``), cut to the path asked for (from the
first step, from the first occurrence of ``start``, or up to the last occurrence of ``end``) and
numbered 1..depth. Each path then gives one ``(step, value, next)`` triple per step (``next`` is
'' after the last one), and the triples are counted.

Folding: at every step only the ``width`` nodes with the most sessions are kept (ties by value);
the others fold into one "other" node of that step. A node's total is the sum of its outgoing
triples, and also the sum of its incoming ones from the step before: paths that start later than
step 1 (those ending at ``end``) get a '' predecessor so that holds. The rank of a link's target
therefore comes from the same rows as the rank of its source (a window over the step's
triples), so ranking and folding need no second pass over the events. The folded triples are
grouped twice (``ARRAY JOIN [0, 1]``): as nodes (source alone) and as links (source, target).
"""

from __future__ import annotations

from typing import Any

from eventlens.insights.models import PathsParams
from eventlens.insights.scope import Scope, event_where
from eventlens.insights.sources import Json, Query, Rows, Sql

# what a step is, per ``type``: the value expression and the events it comes from
STEP_VALUES = {
    "page_view": ("path", " AND name IN {page_views:Array(String)}"),
    "event": ("toString(name)", ""),
}


def paths_sql(scope: Scope, kind: str, start: str | None, end: str | None, depth: int, width: int) -> Sql:
    params = scope.params()
    params["depth"] = depth
    params["width"] = width
    value, only = STEP_VALUES[kind]  # PathsParams allows only these
    where = f"{event_where(scope, params)}{only} AND session_id != '' AND {value} != ''"
    sequence = f"arrayCompact(arrayMap(x -> x.2, arraySort(groupArray((created_at, {value})))))"
    if start is not None:
        params["anchor"] = start
        cut = """
        SELECT arraySlice(seq, at, {depth:UInt8}) AS trail, 1 AS first
        FROM (SELECT seq, indexOf(seq, {anchor:String}) AS at FROM sequences) WHERE at > 0"""
    elif end is not None:
        params["anchor"] = end
        cut = """
        SELECT arraySlice(seq, greatest(1, toInt64(at) - {depth:UInt8} + 1), least(at, {depth:UInt8})) AS trail,
               {depth:UInt8} - length(trail) + 1 AS first
        FROM (SELECT seq, arrayLastIndex(x -> x = {anchor:String}, seq) AS at FROM sequences) WHERE at > 0"""
    else:
        cut = """
        SELECT arraySlice(seq, 1, {depth:UInt8}) AS trail, 1 AS first FROM sequences"""
    sql = f"""
WITH sequences AS (
    SELECT {sequence} AS seq FROM events FINAL WHERE {where} GROUP BY session_id
)
SELECT kind, step,
       if(source_kept, value, '') AS source, NOT source_kept AS source_other,
       if(kind = 1 AND target_kept, next, '') AS target, kind = 1 AND NOT target_kept AS target_other,
       sum(n) AS sessions
FROM (
    SELECT step, value, next, n,
           dense_rank() OVER (PARTITION BY step ORDER BY value = '', value_total DESC, value)
               <= {{width:UInt8}} AS source_kept,
           dense_rank() OVER (PARTITION BY step ORDER BY next = '', next_total DESC, next)
               <= {{width:UInt8}} AS target_kept
    FROM (
        SELECT step, value, next, n,
               sum(n) OVER (PARTITION BY step, value) AS value_total,
               sum(n) OVER (PARTITION BY step, next) AS next_total
        FROM (
            SELECT toUInt8(base + j - 1) AS step, steps[j] AS value, steps[j + 1] AS next, count() AS n
            FROM (
                SELECT if(first > 1, arrayPushFront(trail, ''), trail) AS steps,
                       if(first > 1, first - 1, first) AS base
                FROM ({cut}
                )
            )
            ARRAY JOIN arrayEnumerate(steps) AS j
            GROUP BY step, value, next
        )
    )
)
ARRAY JOIN [0, 1] AS kind
WHERE value != '' AND (kind = 0 OR next != '')
GROUP BY kind, step, source, source_other, target, target_other"""
    return sql, params


def shape_paths(rows: Rows) -> dict[str, list[dict[str, Any]]]:
    """Nodes and links, each by step, then sessions (most first), then name (the other node
    after a named one of the same count)."""
    nodes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for r in rows:
        source = None if int(r["source_other"]) else r["source"]
        if int(r["kind"]) == 0:
            nodes.append({"step": int(r["step"]), "name": source, "sessions": int(r["sessions"])})
        else:
            target = None if int(r["target_other"]) else r["target"]
            links.append(
                {"step": int(r["step"]), "source": source, "target": target, "sessions": int(r["sessions"])}
            )

    def name(v: str | None) -> tuple[bool, str]:
        return (v is None, v or "")

    nodes.sort(key=lambda n: (n["step"], -n["sessions"], name(n["name"])))
    links.sort(key=lambda k: (k["step"], -k["sessions"], name(k["source"]), name(k["target"])))
    return {"nodes": nodes, "links": links}


# route compute ---------------------------------------------------------------------------------
async def paths(project_id: str, params: PathsParams, query: Query) -> Json:
    scope = params.scope(project_id)
    sql = paths_sql(scope, params.type, params.start, params.end, params.depth, params.width)
    return shape_paths(await query(sql))
