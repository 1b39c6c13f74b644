"""Ranked lists: pages, referrers, devices, geo, and a breakdown by any column or property."""

from __future__ import annotations

from eventlens.insights.filters import GROUP
from eventlens.insights.models import BreakdownParams, ListParams, PagesParams
from eventlens.insights.scope import DIMENSIONS, Scope, event_where, session_where
from eventlens.insights.sources import Json, Query, Sql, dims_source, int_rows


def pages_sql(scope: Scope, kind: str, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if kind == "all" and scope.rollup_ok():
        sql = f"""
SELECT value AS path, toUInt64(sum(page_views)) AS views, uniqExactMerge(visitors) AS uniqueVisitors
FROM {dims_source("page", params, scope)}
GROUP BY path ORDER BY views DESC, path LIMIT {{limit:UInt32}}"""
    elif kind == "all":
        sql = f"""
SELECT path, count() AS views, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)} AND name IN {{page_views:Array(String)}}
GROUP BY path ORDER BY views DESC, path LIMIT {{limit:UInt32}}"""
    else:
        column = "entry_path" if kind == "entry" else "exit_path"
        sql = f"""
SELECT {column} AS path, count() AS views, uniqExact(device_id) AS uniqueVisitors
FROM sessions FINAL WHERE {session_where(scope, params)} AND {column} != ''
GROUP BY path ORDER BY views DESC, path LIMIT {{limit:UInt32}}"""
    return sql, params


def referrers_sql(scope: Scope, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    sql = f"""
SELECT referrer_name AS referrerName, referrer_type AS referrerType, count() AS visits,
       uniqExact(device_id) AS uniqueVisitors
FROM sessions FINAL WHERE {session_where(scope, params)}
GROUP BY referrerName, referrerType
ORDER BY visits DESC, referrerName, referrerType LIMIT {{limit:UInt32}}"""
    return sql, params


def _grouped_events(scope: Scope, columns: dict[str, str], limit: int, dim: str) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if scope.rollup_ok():
        # the rollup keeps the tuple tab-joined in one value
        parts = ", ".join(f"splitByChar('\\t', value)[{i + 1}] AS {alias}" for i, alias in enumerate(columns))
        sql = f"""
SELECT {parts}, count, uniqueVisitors FROM (
    SELECT value, toUInt64(sum(events)) AS count, uniqExactMerge(visitors) AS uniqueVisitors
    FROM {dims_source(dim, params, scope)}
    GROUP BY value
)
ORDER BY count DESC, {", ".join(columns)} LIMIT {{limit:UInt32}}"""
        return sql, params
    select = ", ".join(f"{expr} AS {alias}" for alias, expr in columns.items())
    keys = ", ".join(columns)
    sql = f"""
SELECT {select}, count() AS count, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)}
GROUP BY {keys} ORDER BY count DESC, {keys} LIMIT {{limit:UInt32}}"""
    return sql, params


def devices_sql(scope: Scope, limit: int) -> Sql:
    return _grouped_events(scope, {"device": "device", "browser": "browser", "os": "os"}, limit, "devices")


def geo_sql(scope: Scope, limit: int) -> Sql:
    return _grouped_events(scope, {"country": "country", "region": "region", "city": "city"}, limit, "geo")


def breakdown_sql(scope: Scope, dimension: str, limit: int) -> Sql:
    """Events and visitors per value of a whitelisted column or of ``properties.<key>``."""
    params = scope.params()
    params["limit"] = limit
    if dimension in DIMENSIONS and scope.rollup_ok():
        sql = f"""
SELECT value, toUInt64(sum(events)) AS count, uniqExactMerge(visitors) AS uniqueVisitors
FROM {dims_source(dimension, params, scope)}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
        return sql, params
    if dimension.startswith("properties."):
        params["bk"] = dimension[len("properties.") :]
        expr = "properties[{bk:String}]"
    elif dimension == GROUP:
        # one row per group id: an event counts once in each of its groups, '' when it has none
        expr = "arrayJoin(if(empty(groups), [''], arrayDistinct(groups)))"
    else:
        expr = dimension  # BreakdownParams checked it against BREAKDOWN_DIMENSIONS
    sql = f"""
SELECT {expr} AS value, count() AS count, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
    return sql, params


# route computes --------------------------------------------------------------------------------
async def pages(project_id: str, params: PagesParams, query: Query) -> Json:
    rows = await query(pages_sql(params.scope(project_id), params.type, params.limit))
    return int_rows(rows, "views", "uniqueVisitors")


async def referrers(project_id: str, params: ListParams, query: Query) -> Json:
    rows = await query(referrers_sql(params.scope(project_id), params.limit))
    return int_rows(rows, "visits", "uniqueVisitors")


async def devices(project_id: str, params: ListParams, query: Query) -> Json:
    rows = await query(devices_sql(params.scope(project_id), params.limit))
    return int_rows(rows, "count", "uniqueVisitors")


async def geo(project_id: str, params: ListParams, query: Query) -> Json:
    rows = await query(geo_sql(params.scope(project_id), params.limit))
    return int_rows(rows, "count", "uniqueVisitors")


async def breakdown(project_id: str, params: BreakdownParams, query: Query) -> Json:
    rows = await query(breakdown_sql(params.scope(project_id), params.column, params.limit))
    return int_rows(rows, "count", "uniqueVisitors")
