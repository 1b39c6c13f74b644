"""The filter pickers: event names, property keys and values, and the values of a column.

Event names and property keys come from the per-UTC-day catalogue when the range is whole UTC
days, else from the raw events; values always come from the raw events.
"""

from __future__ import annotations

from typing import Any

from eventlens.insights.models import (
    ColumnValuesParams,
    EventNamesParams,
    PropertyKeysParams,
    PropertyValuesParams,
)
from eventlens.insights.scope import Scope, event_where
from eventlens.insights.sources import Json, Query, Sql, int_rows

CATALOG_WHERE = (
    "project_id = {project:String} AND day >= toDate({start:DateTime64(3, 'UTC')})"
    " AND day < toDate({end:DateTime64(3, 'UTC')}) AND (is_bot = 0 OR {bots:UInt8} = 1)"
)


def _whole_utc_days(scope: Scope) -> bool:
    """The catalogue is per UTC day: it answers ranges from midnight to midnight (UTC)."""
    return all(t.hour == t.minute == t.second == t.microsecond == 0 for t in (scope.rng.start, scope.rng.end))


def event_names_sql(scope: Scope, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if _whole_utc_days(scope):
        source = f"""
SELECT name, toUInt64(sum(events)) AS count FROM event_catalog
WHERE {CATALOG_WHERE} AND property_key = ''"""
    else:
        source = f"SELECT name, count() AS count FROM events FINAL WHERE {event_where(scope, params)}"
    sql = f"""{source}
GROUP BY name ORDER BY count DESC, name LIMIT {{limit:UInt32}}"""
    return sql, params


def property_keys_sql(scope: Scope, event_name: str | None, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    named = ""
    if event_name:
        params["event"] = event_name
        named = " AND name = {event:String}"
    if _whole_utc_days(scope):
        source = f"""
SELECT property_key AS key, toUInt64(sum(events)) AS count FROM event_catalog
WHERE {CATALOG_WHERE} AND property_key != ''{named}"""
    else:
        source = f"""
SELECT arrayJoin(mapKeys(properties)) AS key, count() AS count FROM events FINAL
WHERE {event_where(scope, params)}{named}"""
    sql = f"""{source}
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
