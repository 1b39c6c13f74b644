"""The filter pickers: event names, property keys and values, and the values of a column.

Every picker takes the range in its time zone, the filters and ``includeBots`` like any insight
route. Event names and property keys read the per-UTC-day catalogue (``event_catalog``) for the
whole UTC days inside the range and the raw events (``FINAL``) for the part days at its edges (a
range in a zone other than UTC, or with times, starts and ends inside UTC days); filters on
anything but the event name need the event columns, so they read the raw events for the whole
range. Values always come from the raw events.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from eventlens.insights.filters import filter_sql
from eventlens.insights.models import (
    ColumnValuesParams,
    EventNamesParams,
    PropertyKeysParams,
    PropertyValuesParams,
)
from eventlens.insights.scope import Scope, event_where
from eventlens.insights.sources import Json, Query, Sql, int_rows

CATALOG_WHERE = (
    "project_id = {project:String} AND day >= {d0:Date} AND day < {d1:Date}"
    " AND (is_bot = 0 OR {bots:UInt8} = 1)"
)
EDGES = (
    "((created_at >= {start:DateTime64(3, 'UTC')} AND created_at < {d0t:DateTime64(3, 'UTC')})"
    " OR (created_at >= {d1t:DateTime64(3, 'UTC')} AND created_at < {end:DateTime64(3, 'UTC')}))"
)


def whole_utc_days(scope: Scope) -> tuple[date, date] | None:
    """The whole UTC days ``[first, last)`` inside the range, None when there is none."""
    start, end = scope.rng.start, scope.rng.end
    first = (start + timedelta(days=1) - timedelta(microseconds=1)).date()  # first midnight >= start
    last = end.date()  # last midnight <= end
    return (first, last) if first < last else None


def _catalog_ok(scope: Scope) -> bool:
    """The catalogue holds the event name, bots and the day: filters on the name alone apply."""
    return all(f.column == "name" for f in scope.filters)


def _catalogued(scope: Scope, params: dict[str, Any], catalog: str, raw: str, cond: str = "") -> str:
    """Rows ``(v, count)``: the catalogue's whole UTC days plus the raw events at the edges, or
    the raw events alone (no whole UTC day in range, or filters on other columns than the name).

    ``catalog`` is ``SELECT ... FROM event_catalog WHERE <its own condition>``, ``raw`` is
    ``SELECT ... FROM events FINAL WHERE``; ``cond`` is the picker's condition on both.
    """
    days = whole_utc_days(scope) if _catalog_ok(scope) else None
    if days is None:
        return f"{raw} {event_where(scope, params)}{cond} GROUP BY v"
    params["d0"], params["d1"] = days
    params["d0t"] = datetime.combine(days[0], datetime.min.time())
    params["d1t"] = datetime.combine(days[1], datetime.min.time())
    names = filter_sql(scope.filters, params, prefix="cf")  # the catalogue's own name column
    days_sql = f"{catalog} AND {CATALOG_WHERE}{f' AND {names}' if names else ''}{cond} GROUP BY v"
    if params["d0t"] == params["start"] and params["d1t"] == params["end"]:
        return days_sql  # midnight to midnight in UTC: no edges
    edges = event_where(scope, params, between=EDGES)
    return f"""{days_sql}
    UNION ALL
    {raw} {edges}{cond} GROUP BY v"""


def event_names_sql(scope: Scope, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    # the catalogue holds one row per name with property_key '' and one per (name, key)
    source = _catalogued(
        scope,
        params,
        "SELECT name AS v, sum(events) AS count FROM event_catalog WHERE property_key = ''",
        "SELECT name AS v, count() AS count FROM events FINAL WHERE",
    )
    sql = f"""
SELECT v AS name, toUInt64(sum(count)) AS count FROM (
    {source}
)
GROUP BY name ORDER BY count DESC, name LIMIT {{limit:UInt32}}"""
    return sql, params


def property_keys_sql(scope: Scope, event_name: str | None, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    named = ""
    if event_name:
        params["event"] = event_name
        named = " AND name = {event:String}"
    source = _catalogued(
        scope,
        params,
        "SELECT property_key AS v, sum(events) AS count FROM event_catalog WHERE property_key != ''",
        "SELECT arrayJoin(mapKeys(properties)) AS v, count() AS count FROM events FINAL WHERE",
        named,
    )
    sql = f"""
SELECT v AS key, toUInt64(sum(count)) AS count FROM (
    {source}
)
GROUP BY key ORDER BY count DESC, key LIMIT {{limit:UInt32}}"""
    return sql, params


def property_values_sql(scope: Scope, key: str, event_name: str | None, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    params["key"] = key
    where = event_where(scope, params) + " AND mapContains(properties, {key:String})"
    if event_name:
        params["event"] = event_name
        where += " AND name = {event:String}"
    sql = f"""
SELECT properties[{{key:String}}] AS value, count() AS count FROM events FINAL
WHERE {where}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
    return sql, params


def column_values_sql(scope: Scope, column: str, limit: int, page_views_only: bool = False) -> Sql:
    params = scope.params()
    params["limit"] = limit
    where = event_where(scope, params) + f" AND {column} != ''"
    if page_views_only:
        where += " AND name IN {page_views:Array(String)}"
    sql = f"""
SELECT {column} AS value, count() AS count FROM events FINAL
WHERE {where}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
    return sql, params


# route computes: ``{"success": true, "data": [...]}`` ----------------------------------------
def _success(data: list[Any]) -> Json:
    return {"success": True, "data": data}


async def event_names(project_id: str, params: EventNamesParams, query: Query) -> Json:
    rows = await query(event_names_sql(params.scope(project_id), params.limit))
    return _success(int_rows(rows, "count"))


async def property_keys(project_id: str, params: PropertyKeysParams, query: Query) -> Json:
    rows = await query(property_keys_sql(params.scope(project_id), params.eventName, params.limit))
    return _success(int_rows(rows, "count"))


async def property_values(project_id: str, params: PropertyValuesParams, query: Query) -> Json:
    sql = property_values_sql(params.scope(project_id), params.key, params.eventName, params.limit)
    return _success(int_rows(await query(sql), "count"))


async def paths(project_id: str, params: ColumnValuesParams, query: Query) -> Json:
    """Paths of page views."""
    sql = column_values_sql(params.scope(project_id), "path", params.limit, page_views_only=True)
    return _success(int_rows(await query(sql), "count"))


async def countries(project_id: str, params: ColumnValuesParams, query: Query) -> Json:
    sql = column_values_sql(params.scope(project_id), "country", params.limit, page_views_only=False)
    return _success(int_rows(await query(sql), "count"))
