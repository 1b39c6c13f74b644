"""Conversions per goal (``/insights/{p}/goals``).

Over the events of the range that the filters and bots setting select (client events only, as
every count), per goal of the project:

- ``conversions``: the events that match the goal;
- ``uniqueConversions`` (also ``visitors``, Plausible's name): the distinct devices with at least
  one such event;
- ``conversionRate``: ``uniqueConversions`` × 100 ÷ the range's unique visitors (the distinct
  devices of the same selection, ``uniqueVisitors`` of ``/metrics``), rounded to 2 decimals; 0
  when there are no visitors.

Goals come ranked by unique conversions, then conversions, then name. One query answers every
goal (two aggregates per goal over one scan of the selected events).
"""

from __future__ import annotations

from typing import Any

from eventlens.goals import Goal, goal_sql
from eventlens.insights.metrics import compare
from eventlens.insights.models import GoalsParams
from eventlens.insights.scope import Scope, event_where
from eventlens.insights.sources import Json, Query, Sql, rate

NUMBERS = ("conversions", "uniqueConversions", "visitors", "conversionRate")


def goals_sql(scope: Scope, goals: list[Goal]) -> Sql:
    """One row: ``uniqueVisitors`` and, in the order of ``goals``, two arrays ``conversions`` and
    ``uniqueConversions``."""
    params = scope.params()
    where = event_where(scope, params)
    conversions, unique = [], []
    for i, goal in enumerate(goals):
        cond = goal_sql(goal, params, f"g{i}")
        conversions.append(f"countIf({cond})")
        unique.append(f"uniqExactIf(device_id, {cond})")
    arrays = ""
    if goals:
        arrays = f", [{', '.join(conversions)}] AS conversions, [{', '.join(unique)}] AS uniqueConversions"
    sql = f"SELECT uniqExact(device_id) AS uniqueVisitors{arrays} FROM events FINAL WHERE {where}"
    return sql, params


def shape_goals(goals: list[Goal], row: dict[str, Any]) -> dict[str, Any]:
    visitors = int(row.get("uniqueVisitors") or 0)
    conversions = row.get("conversions") or [0] * len(goals)
    unique = row.get("uniqueConversions") or [0] * len(goals)
    out = []
    for goal, n, u in zip(goals, conversions, unique, strict=True):
        u = int(u)
        out.append(
            {
                **goal.definition(),
                "conversions": int(n),
                "uniqueConversions": u,
                "visitors": u,
                "conversionRate": rate(u, visitors),
            }
        )
    out.sort(key=lambda g: (-g["uniqueConversions"], -g["conversions"], g["name"]))
    return {"uniqueVisitors": visitors, "goals": out}


async def conversions(scope: Scope, goals: list[Goal], query: Query) -> dict[str, Any]:
    rows = await query(goals_sql(scope, goals))
    return shape_goals(goals, rows[0] if rows else {})


async def goals(project_id: str, params: GoalsParams, query: Query) -> Json:
    scope = params.scope(project_id)
    defined = params.goals
    body = await conversions(scope, defined, query)
    if params.compare:
        before = await conversions(scope.previous(), defined, query)
        previous = {g["id"]: {k: g[k] for k in NUMBERS} for g in before["goals"]}
        for g in body["goals"]:
            now = {k: g[k] for k in NUMBERS}
            g["previous"] = previous[g["id"]]
            g["change"] = compare(now, g["previous"])
        body["previous"] = {"uniqueVisitors": before["uniqueVisitors"]}
        body["change"] = compare({"uniqueVisitors": body["uniqueVisitors"]}, body["previous"])
    return body
