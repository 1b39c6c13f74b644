"""What the insight builders share: the ``(sql, params)`` shape, and where counts come from.

Every builder returns ``(sql, params)``. Values are bound parameters; identifiers are constants
or whitelisted column names. Raw ``events`` are read ``FINAL``, so a duplicate row (a client
retry that reached ClickHouse twice) counts once; ``sessions`` are read ``FINAL`` so only the
newest snapshot of each session counts.

Counts (visitors, events, page views) come from the hourly rollup when no filter applies and the
range is whole UTC hours nesting in the zone's buckets, from the per-dimension rollup when every
filter is on one rolled-up column, else from the raw table. Totals over the whole range read
whole UTC days from the daily rollups and only the edge hours from the hourly ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from eventlens.insights.filters import filter_sql
from eventlens.insights.scope import RANGE, Scope, event_where, rollup_dimension

Sql = tuple[str, dict[str, Any]]
Rows = list[dict[str, Any]]
Json = dict[str, Any] | list[Any]
# runs one built query: ``await query((sql, params))`` -> rows
Query = Callable[[Sql], Awaitable[Rows]]

ROLLUP_WHERE = (
    "project_id = {project:String} AND " + RANGE.format(col="hour") + " AND (is_bot = 0 OR {bots:UInt8} = 1)"
)


def rate(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole`` (0 when there is no whole)."""
    return round(part * 100 / whole, 2) if whole else 0


def ratio(part: float, whole: float) -> float:
    return round(part / whole, 2) if whole else 0


def seconds_per(total_ms: int, whole: int) -> float:
    """``total_ms`` milliseconds ÷ ``whole``, in seconds rounded half up to two decimals, in integer
    arithmetic: a sum of float seconds depends on the order ClickHouse adds them in, which decides
    an average lying exactly half-way between two hundredths."""
    if not whole:
        return 0
    hundredths = (2 * total_ms + 10 * whole) // (20 * whole)
    return hundredths / 100


def money(value: Any) -> float:
    """A ``Decimal(38, 4)`` sum (a ``Decimal``, or its text) as the JSON number the API answers:
    the double nearest the exact amount."""
    if value is None or value == "":
        return 0.0
    return float(value if isinstance(value, Decimal) else Decimal(str(value))) + 0.0  # -0.0 → 0.0


def int_rows(rows: Rows, *counts: str) -> Rows:
    """The count columns as ints (64-bit counts may arrive as text)."""
    for r in rows:
        for c in counts:
            r[c] = int(r[c])
    return rows


@dataclass(frozen=True)
class CountsSource:
    table: str  # "<table> WHERE <condition>"
    time: str  # the column holding the event (or hour) time
    visitors: str
    events: str
    page_views: str


def days_and_hours(
    hourly: str, daily: str, where: str, scope: Scope, params: dict[str, Any], columns: str = ""
) -> str:
    """Whole UTC days of the range from the daily table, its edge hours from the hourly one."""
    start, end = scope.rng.start, scope.rng.end
    first_day = (start + timedelta(days=1) - timedelta(microseconds=1)).date()  # first midnight >= start
    last_day = end.date()  # last midnight <= end
    if first_day >= last_day:
        return f"{hourly} WHERE {ROLLUP_WHERE}{where}"
    params["d0"], params["d1"] = first_day, last_day
    # the edge hours as two key ranges, so only their granules are read
    params["d0t"] = datetime.combine(first_day, datetime.min.time())
    params["d1t"] = datetime.combine(last_day, datetime.min.time())
    return f"""(
    SELECT {columns}visitors, events, page_views FROM {daily}
    WHERE project_id = {{project:String}} AND (is_bot = 0 OR {{bots:UInt8}} = 1)
      AND day >= {{d0:Date}} AND day < {{d1:Date}}{where}
    UNION ALL
    SELECT {columns}visitors, events, page_views FROM {hourly}
    WHERE project_id = {{project:String}} AND (is_bot = 0 OR {{bots:UInt8}} = 1)
      AND ((hour >= {{start:DateTime64(3, 'UTC')}} AND hour < {{d0t:DateTime64(3, 'UTC')}})
        OR (hour >= {{d1t:DateTime64(3, 'UTC')}} AND hour < {{end:DateTime64(3, 'UTC')}})){where}
)"""


def counts_source(
    scope: Scope, params: dict[str, Any], raw: bool = False, totals: bool = False
) -> CountsSource:
    """The hourly rollup without filters, the per-dimension rollup for filters on one rolled-up
    column, else the raw table (``FINAL``: a duplicate row counts once). ``totals`` (one row for
    the whole range) reads whole days from the daily rollups."""
    merged = ("hour", "uniqExactMerge(visitors)", "sum(events)", "sum(page_views)")
    if not raw and scope.rollup_ok():
        if totals:
            return CountsSource(days_and_hours("events_hourly", "events_daily", "", scope, params), *merged)
        return CountsSource(f"events_hourly WHERE {ROLLUP_WHERE}", *merged)
    dim = None if raw else rollup_dimension(scope)
    if dim is not None:
        params["dim"] = dim
        cond = " AND dim = {dim:String} AND " + filter_sql(scope.filters, params, column_expr="value")
        if totals:
            table = days_and_hours("events_dims_hourly", "events_dims_daily", cond, scope, params)
            return CountsSource(table, *merged)
        return CountsSource(f"events_dims_hourly WHERE {ROLLUP_WHERE}{cond}", *merged)
    return CountsSource(
        f"events FINAL WHERE {event_where(scope, params)}",
        "created_at",
        "uniqExact(device_id)",
        "count()",
        "countIf(name IN {page_views:Array(String)})",
    )


def dims_source(dim: str, params: dict[str, Any], scope: Scope) -> str:
    """Rows (value, visitors, events, page_views) of one rolled-up dimension in range (no filters)."""
    params["dim"] = dim
    where = " AND dim = {dim:String}"
    return days_and_hours("events_dims_hourly", "events_dims_daily", where, scope, params, "value, ")


def revenue_source(scope: Scope, params: dict[str, Any], raw: bool = False) -> tuple[str, str]:
    """Where revenue amounts come from, ``(<table> WHERE <condition>, time column)``: rows with a
    ``currency`` and a summable ``revenue``. The hourly revenue rollup (migration 0012) when the
    hourly rollups apply, else the raw events that carried revenue, filters and all (an event
    filter tests the revenue event's own columns, as for the event counts)."""
    if not raw and scope.rollup_ok():
        return f"revenue_hourly WHERE {ROLLUP_WHERE}", "hour"
    return (
        f"events FINAL WHERE {event_where(scope, params)} AND currency != '' AND {REVENUE_IN_RANGE}",
        "created_at",
    )


# Whether the project has any revenue event in the range's hours, filters aside: read from the
# hourly rollup (a few rows), it is a constant by the time the raw scan is planned, so a range
# without revenue (most projects, most filtered ranges) reads no raw events for it at all (10M
# events, 30 days, a country filter: 212 ms without it, 3 ms with it). The hours from the start's
# hour on hold every event of the range.
REVENUE_IN_RANGE = (
    "(SELECT count() FROM revenue_hourly WHERE project_id = {project:String}"
    " AND hour >= toStartOfHour({start:DateTime64(3, 'UTC')}) AND hour < {end:DateTime64(3, 'UTC')}) > 0"
)
