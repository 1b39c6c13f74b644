"""Ranked lists: pages, referrers, devices, geo, and a breakdown by any column or property.

``orderBy=revenue`` (pages, referrers, geo, breakdown by a ``REVENUE_DIMENSIONS`` column) ranks
the rows by the revenue in the request's currency and adds it to each row as ``revenue``. Whom a
revenue event is credited to:

- a visit attribute (referrer, UTM source/medium/campaign, country, region, city; entry and exit
  page): the revenue of the visits, i.e. of the revenue events in range stored with the session id
  of a visit counted in the row (a session opened in range, matching the filters, whose own
  value the row has). Filters choose the visits, not the revenue events: a purchase on /checkout
  counts for a visit that a ``path = /pricing`` filter selected;
- the page path (``/pages?type=all``, ``/breakdown?dimension=path``): the revenue events recorded
  on that path, filters applying to them as to every event.

The row set is the union of the values with counted rows and the values with revenue: a value
with revenue but nothing counted (its visits' events were filtered out) shows counts of 0.
"""

from __future__ import annotations

from eventlens.insights.filters import GROUP
from eventlens.insights.models import BreakdownParams, ListParams, PagesParams, RankedListParams
from eventlens.insights.scope import DIMENSIONS, RANGE, Scope, event_where, session_where
from eventlens.insights.sources import Json, Query, Rows, Sql, dims_source, int_rows, money

# breakdown dimensions credited through the visit (the session row's own value)
VISIT_DIMENSIONS = frozenset(
    {"referrer_name", "referrer_type", "utm_source", "utm_medium", "utm_campaign", "country"}
)


def visit_revenue(scope: Scope, params: dict[str, object], columns: dict[str, str]) -> str:
    """``(<aliases>, revenue)`` per value of the session columns ``columns`` (alias → column):
    the revenue in ``{currency}`` of the events in range stored with the id of a visit that
    ``session_where`` counts."""
    select = ", ".join(f"s.{col} AS {alias}" for alias, col in columns.items())
    cols = ", ".join(dict.fromkeys(columns.values()))
    return f"""(
    SELECT {select}, sum(r.revenue) AS revenue
    FROM (
        SELECT session_id, sum(revenue) AS revenue FROM events FINAL
        WHERE project_id = {{project:String}} AND {RANGE.format(col="created_at")}
          AND currency = {{currency:String}} AND session_id != ''
        GROUP BY session_id
    ) AS r
    INNER JOIN (
        SELECT session_id, {cols} FROM sessions FINAL WHERE {session_where(scope, params)}
    ) AS s ON r.session_id = s.session_id
    GROUP BY {", ".join(columns)}
)"""


def event_revenue(scope: Scope, params: dict[str, object], columns: dict[str, str]) -> str:
    """``(<aliases>, revenue)`` per value of the event columns ``columns``: the revenue in
    ``{currency}`` of the revenue events in range matching the filters, by their own value."""
    select = ", ".join(f"{col} AS {alias}" for alias, col in columns.items())
    return f"""(
    SELECT {select}, sum(revenue) AS revenue
    FROM events FINAL WHERE {event_where(scope, params, prefix="rf")} AND currency = {{currency:String}}
    GROUP BY {", ".join(columns)}
)"""


def ranked_by_revenue(counted: str, revenue: str, keys: list[str], counts: list[str]) -> str:
    """The counted rows (``counted``: keys and counts, no order) and the revenue per key, joined
    on the keys (a key in either side is a row), by revenue, then the first count, then the keys."""
    keys_sql = ", ".join(keys)
    return f"""
SELECT {keys_sql}, {", ".join(f"c.{n} AS {n}" for n in counts)}, r.revenue AS revenue
FROM ({counted}) AS c
FULL OUTER JOIN {revenue} AS r USING ({keys_sql})
ORDER BY revenue DESC, {counts[0]} DESC, {keys_sql} LIMIT {{limit:UInt32}}"""


def revenue_rows(rows: Rows) -> Rows:
    for r in rows:
        r["revenue"] = money(r["revenue"])
    return rows


def pages_sql(scope: Scope, kind: str, limit: int, currency: str | None = None) -> Sql:
    """``currency`` ranks by revenue in it (``orderBy=revenue``)."""
    params = scope.params()
    params["limit"] = limit
    if currency is not None:
        params["currency"] = currency
        if kind == "all":
            counted = f"""
SELECT path, count() AS views, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)} AND name IN {{page_views:Array(String)}}
GROUP BY path"""
            revenue = event_revenue(scope, params, {"path": "path"})
        else:
            column = "entry_path" if kind == "entry" else "exit_path"
            counted = f"""
SELECT {column} AS path, count() AS views, uniqExact(device_id) AS uniqueVisitors
FROM sessions FINAL WHERE {session_where(scope, params)} AND {column} != ''
GROUP BY path"""
            # an empty entry or exit path is no row (as above): its visits' revenue goes nowhere
            revenue = visit_revenue(scope, params, {"path": column})
            revenue = f"(SELECT * FROM {revenue} WHERE path != '')"
        return ranked_by_revenue(counted, revenue, ["path"], ["views", "uniqueVisitors"]), params
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


def referrers_sql(scope: Scope, limit: int, currency: str | None = None) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if currency is not None:
        params["currency"] = currency
        counted = f"""
SELECT referrer_name AS referrerName, referrer_type AS referrerType, count() AS visits,
       uniqExact(device_id) AS uniqueVisitors
FROM sessions FINAL WHERE {session_where(scope, params)}
GROUP BY referrerName, referrerType"""
        revenue = visit_revenue(
            scope, params, {"referrerName": "referrer_name", "referrerType": "referrer_type"}
        )
        keys = ["referrerName", "referrerType"]
        return ranked_by_revenue(counted, revenue, keys, ["visits", "uniqueVisitors"]), params
    sql = f"""
SELECT referrer_name AS referrerName, referrer_type AS referrerType, count() AS visits,
       uniqExact(device_id) AS uniqueVisitors
FROM sessions FINAL WHERE {session_where(scope, params)}
GROUP BY referrerName, referrerType
ORDER BY visits DESC, referrerName, referrerType LIMIT {{limit:UInt32}}"""
    return sql, params


def _grouped_events(
    scope: Scope, columns: dict[str, str], limit: int, dim: str, currency: str | None = None
) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if currency is not None:
        # (country, region, city) are visit attributes: revenue is credited through the visit
        params["currency"] = currency
        select = ", ".join(f"{expr} AS {alias}" for alias, expr in columns.items())
        counted = f"""
SELECT {select}, count() AS count, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)}
GROUP BY {", ".join(columns)}"""
        revenue = visit_revenue(scope, params, columns)
        return ranked_by_revenue(counted, revenue, list(columns), ["count", "uniqueVisitors"]), params
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


def geo_sql(scope: Scope, limit: int, currency: str | None = None) -> Sql:
    columns = {"country": "country", "region": "region", "city": "city"}
    return _grouped_events(scope, columns, limit, "geo", currency)


def breakdown_sql(scope: Scope, dimension: str, limit: int, currency: str | None = None) -> Sql:
    """Events and visitors per value of a whitelisted column or of ``properties.<key>``;
    ``currency`` ranks by revenue in it (``dimension`` one of ``REVENUE_DIMENSIONS``)."""
    params = scope.params()
    params["limit"] = limit
    if currency is not None:
        params["currency"] = currency
        # BreakdownParams checked ``dimension`` against REVENUE_DIMENSIONS (a whitelist)
        counted = f"""
SELECT {dimension} AS value, count() AS count, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)}
GROUP BY value"""
        if dimension in VISIT_DIMENSIONS:
            revenue = visit_revenue(scope, params, {"value": dimension})
        else:
            revenue = event_revenue(scope, params, {"value": dimension})
        return ranked_by_revenue(counted, revenue, ["value"], ["count", "uniqueVisitors"]), params
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
def _currency(params: PagesParams | RankedListParams | BreakdownParams) -> str | None:
    return params.revenue_currency if params.by_revenue else None


def _shaped(rows: Rows, currency: str | None, *counts: str) -> Rows:
    int_rows(rows, *counts)
    return revenue_rows(rows) if currency is not None else rows


async def pages(project_id: str, params: PagesParams, query: Query) -> Json:
    cur = _currency(params)
    rows = await query(pages_sql(params.scope(project_id), params.type, params.limit, cur))
    return _shaped(rows, cur, "views", "uniqueVisitors")


async def referrers(project_id: str, params: RankedListParams, query: Query) -> Json:
    cur = _currency(params)
    rows = await query(referrers_sql(params.scope(project_id), params.limit, cur))
    return _shaped(rows, cur, "visits", "uniqueVisitors")


async def devices(project_id: str, params: ListParams, query: Query) -> Json:
    rows = await query(devices_sql(params.scope(project_id), params.limit))
    return int_rows(rows, "count", "uniqueVisitors")


async def geo(project_id: str, params: RankedListParams, query: Query) -> Json:
    cur = _currency(params)
    rows = await query(geo_sql(params.scope(project_id), params.limit, cur))
    return _shaped(rows, cur, "count", "uniqueVisitors")


async def breakdown(project_id: str, params: BreakdownParams, query: Query) -> Json:
    cur = _currency(params)
    rows = await query(breakdown_sql(params.scope(project_id), params.column, params.limit, cur))
    return _shaped(rows, cur, "count", "uniqueVisitors")
