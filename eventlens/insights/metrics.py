"""Totals (``/metrics``) and counts per time bucket (``/timeseries``), optionally against the
period of the same length just before."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from eventlens.insights.buckets import CH_BUCKET, buckets, label
from eventlens.insights.models import MetricsParams, TimeseriesParams
from eventlens.insights.scope import Scope, session_where
from eventlens.insights.sources import (
    Json,
    Query,
    Rows,
    Sql,
    counts_source,
    money,
    rate,
    ratio,
    revenue_source,
    seconds_per,
)


# metrics ---------------------------------------------------------------------------------------
def metrics_sql(scope: Scope) -> Sql:
    """Visitors, events, page views, sessions, and the revenue per currency (two arrays: the codes
    and the exact sums as text) in one row."""
    params = scope.params()
    source = counts_source(scope, params, totals=True)
    events = f"""
    SELECT {source.visitors} AS uniqueVisitors, {source.events} AS totalEvents,
           {source.page_views} AS totalPageViews
    FROM {source.table}"""
    revenue, _ = revenue_source(scope, params)
    sql = f"""
SELECT e.uniqueVisitors, e.totalEvents, e.totalPageViews,
       s.totalSessions, s.bouncedSessions, s.totalDurationMs,
       r.revenueCurrencies, r.revenueAmounts
FROM ({events}) AS e
CROSS JOIN (
    SELECT count() AS totalSessions, countIf(is_bounce = 1) AS bouncedSessions,
           sumIf(toInt64(round(duration * 1000)), is_bounce = 0) AS totalDurationMs
    FROM sessions FINAL WHERE {session_where(scope, params)}
) AS s
CROSS JOIN (
    SELECT groupArray(currency) AS revenueCurrencies, groupArray(toString(amount)) AS revenueAmounts
    FROM (SELECT currency, sum(revenue) AS amount FROM {revenue} GROUP BY currency ORDER BY currency)
) AS r"""
    return sql, params


def shape_metrics(row: dict[str, Any], currency: str = "USD") -> dict[str, Any]:
    """The totals; revenue in ``currency`` only (``revenueByCurrency`` holds every currency's)."""
    sessions = int(row.get("totalSessions") or 0)
    views = int(row.get("totalPageViews") or 0)
    visitors = int(row.get("uniqueVisitors") or 0)
    by_currency = {
        str(c): Decimal(str(a))
        for c, a in zip(row.get("revenueCurrencies") or [], row.get("revenueAmounts") or [], strict=True)
    }
    total = money(by_currency.get(currency, Decimal(0)))
    return {
        "uniqueVisitors": visitors,
        "totalSessions": sessions,
        "totalPageViews": views,
        "totalEvents": int(row.get("totalEvents") or 0),
        "viewsPerSession": ratio(views, sessions),
        "bounceRate": rate(int(row.get("bouncedSessions") or 0), sessions),
        "avgSessionDuration": seconds_per(int(row.get("totalDurationMs") or 0), sessions),
        "totalRevenue": total,
        "revenuePerVisitor": ratio(total, visitors),
        "revenueByCurrency": {c: money(a) for c, a in by_currency.items()},
    }


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Change in percent from the previous period per number (None where it was zero)."""
    out: dict[str, Any] = {}
    for key, now in current.items():
        if isinstance(now, int | float) and isinstance(previous.get(key), int | float):
            before = previous[key]
            out[key] = round((now - before) * 100 / before, 2) if before else None
    return out


async def totals(scope: Scope, query: Query, currency: str = "USD") -> dict[str, Any]:
    rows = await query(metrics_sql(scope))
    return shape_metrics(rows[0] if rows else {}, currency)


async def metrics(project_id: str, params: MetricsParams, query: Query) -> Json:
    scope = params.scope(project_id)
    currency = params.revenue_currency
    body = await totals(scope, query, currency)
    if params.compare:
        previous = await totals(scope.previous(), query, currency)
        body["previous"] = previous
        body["change"] = compare(body, previous)
    return body


# timeseries ------------------------------------------------------------------------------------
def _epoch(expr: str) -> str:
    return f"toInt64(toUnixTimestamp(toDateTime({expr})))"


def timeseries_sql(scope: Scope, interval: str) -> tuple[Sql, Sql]:
    """Two queries (events per bucket, sessions per bucket), both keyed by the bucket's epoch."""
    params = scope.params()
    source = counts_source(scope, params, raw=interval == "minute")
    bucket = _epoch(CH_BUCKET[interval].format(col=source.time))
    events = f"""
SELECT {bucket} AS bucket, {source.visitors} AS uniqueVisitors, {source.events} AS totalEvents,
       {source.page_views} AS totalPageViews
FROM {source.table}
GROUP BY bucket"""
    sparams = scope.params()
    sbucket = _epoch(CH_BUCKET[interval].format(col="opened_at"))
    sessions = f"""
SELECT {sbucket} AS bucket, count() AS totalSessions
FROM sessions FINAL WHERE {session_where(scope, sparams)}
GROUP BY bucket"""
    return (events, params), (sessions, sparams)


def revenue_series_sql(scope: Scope, interval: str, currency: str) -> Sql:
    """The revenue in ``currency`` per bucket (exact sums as text), keyed by the bucket's epoch."""
    params = scope.params()
    params["currency"] = currency
    source, time = revenue_source(scope, params, raw=interval == "minute")
    bucket = _epoch(CH_BUCKET[interval].format(col=time))
    sql = f"""
SELECT {bucket} AS bucket, toString(sum(revenue)) AS totalRevenue
FROM {source} AND currency = {{currency:String}}
GROUP BY bucket"""
    return sql, params


def shape_timeseries(
    scope: Scope, interval: str, event_rows: Rows, session_rows: Rows, revenue_rows: Rows | None = None
) -> Rows:
    """One row per bucket of the range, empty buckets as zeros."""
    tz = scope.tz
    by_bucket = {int(r["bucket"]): r for r in event_rows}
    sessions = {int(r["bucket"]): int(r["totalSessions"]) for r in session_rows}
    revenue = {int(r["bucket"]): money(r["totalRevenue"]) for r in revenue_rows or []}
    out = []
    for b in buckets(scope.rng.start, scope.rng.end, interval, tz):
        epoch = int(b.timestamp())
        r = by_bucket.get(epoch, {})
        visitors = int(r.get("uniqueVisitors") or 0)
        total = revenue.get(epoch, 0.0)
        out.append(
            {
                "date": label(b, interval, tz),
                "uniqueVisitors": visitors,
                "totalSessions": sessions.get(epoch, 0),
                "totalPageViews": int(r.get("totalPageViews") or 0),
                "totalEvents": int(r.get("totalEvents") or 0),
                "totalRevenue": total,
                "revenuePerVisitor": ratio(total, visitors),
            }
        )
    return out


async def series(scope: Scope, interval: str, query: Query, currency: str = "USD") -> Rows:
    events, sessions = timeseries_sql(scope, interval)
    revenue = revenue_series_sql(scope, interval, currency)
    event_rows, session_rows, revenue_rows = await asyncio.gather(
        query(events), query(sessions), query(revenue)
    )
    return shape_timeseries(scope, interval, event_rows, session_rows, revenue_rows)


async def timeseries(project_id: str, params: TimeseriesParams, query: Query) -> Json:
    scope = params.scope(project_id)
    currency = params.revenue_currency
    rows = await series(scope, params.interval, query, currency)
    if params.compare:
        before = await series(scope.previous(), params.interval, query, currency)
        # aligned by position: bucket i of this period against bucket i of the previous one
        for i, row in enumerate(rows):
            row["previous"] = before[i] if i < len(before) else None
    return rows
