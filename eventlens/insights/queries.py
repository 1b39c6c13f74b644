"""SQL builders and result shapers for the insight endpoints (pure: no I/O).

Every builder returns ``(sql, params)``. Values are bound parameters; identifiers are constants
or whitelisted column names. Raw ``events`` are read ``FINAL``, so a duplicate row (a client
retry that reached ClickHouse twice) counts once; ``sessions`` are read ``FINAL`` so only the
newest snapshot of each session counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlens.insights.buckets import CH_BUCKET, buckets, label
from eventlens.insights.filters import COLUMNS, filter_sql
from eventlens.insights.scope import DIMENSIONS, RANGE, Scope, event_where, rollup_dimension, session_where

Sql = tuple[str, dict[str, Any]]

ROLLUP_WHERE = (
    "project_id = {project:String} AND " + RANGE.format(col="hour") + " AND (is_bot = 0 OR {bots:UInt8} = 1)"
)


def _rate(part: float, whole: float) -> float:
    return round(part * 100 / whole, 2) if whole else 0


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 2) if whole else 0


# where visitor, event and page-view counts come from -------------------------------------------
@dataclass(frozen=True)
class CountsSource:
    table: str  # "<table> WHERE <condition>"
    time: str  # the column holding the event (or hour) time
    visitors: str
    events: str
    page_views: str


def _days_and_hours(
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


def _counts_source(
    scope: Scope, params: dict[str, Any], raw: bool = False, totals: bool = False
) -> CountsSource:
    """The hourly rollup without filters, the per-dimension rollup for filters on one rolled-up
    column, else the raw table (``FINAL``: a duplicate row counts once). ``totals`` (one row for
    the whole range) reads whole days from the daily rollups."""
    merged = ("hour", "uniqExactMerge(visitors)", "sum(events)", "sum(page_views)")
    if not raw and scope.rollup_ok():
        if totals:
            return CountsSource(_days_and_hours("events_hourly", "events_daily", "", scope, params), *merged)
        return CountsSource(f"events_hourly WHERE {ROLLUP_WHERE}", *merged)
    dim = None if raw else rollup_dimension(scope)
    if dim is not None:
        params["dim"] = dim
        cond = " AND dim = {dim:String} AND " + filter_sql(scope.filters, params, column_expr="value")
        if totals:
            table = _days_and_hours("events_dims_hourly", "events_dims_daily", cond, scope, params)
            return CountsSource(table, *merged)
        return CountsSource(f"events_dims_hourly WHERE {ROLLUP_WHERE}{cond}", *merged)
    return CountsSource(
        f"events FINAL WHERE {event_where(scope, params)}",
        "created_at",
        "uniqExact(device_id)",
        "count()",
        "countIf(name IN {page_views:Array(String)})",
    )


def _dims(dim: str, params: dict[str, Any], scope: Scope) -> str:
    """Rows (value, visitors, events, page_views) of one rolled-up dimension in range (no filters)."""
    params["dim"] = dim
    where = " AND dim = {dim:String}"
    return _days_and_hours("events_dims_hourly", "events_dims_daily", where, scope, params, "value, ")


# metrics ---------------------------------------------------------------------------------------
def metrics_sql(scope: Scope) -> Sql:
    params = scope.params()
    source = _counts_source(scope, params, totals=True)
    events = f"""
    SELECT {source.visitors} AS uniqueVisitors, {source.events} AS totalEvents,
           {source.page_views} AS totalPageViews
    FROM {source.table}"""
    sql = f"""
SELECT e.uniqueVisitors, e.totalEvents, e.totalPageViews,
       s.totalSessions, s.bouncedSessions, s.totalDuration
FROM ({events}) AS e
CROSS JOIN (
    SELECT count() AS totalSessions, countIf(is_bounce = 1) AS bouncedSessions,
           sumIf(duration, is_bounce = 0) AS totalDuration
    FROM sessions FINAL WHERE {session_where(scope, params)}
) AS s"""
    return sql, params


def shape_metrics(row: dict[str, Any]) -> dict[str, Any]:
    sessions = int(row.get("totalSessions") or 0)
    views = int(row.get("totalPageViews") or 0)
    return {
        "uniqueVisitors": int(row.get("uniqueVisitors") or 0),
        "totalSessions": sessions,
        "totalPageViews": views,
        "totalEvents": int(row.get("totalEvents") or 0),
        "viewsPerSession": _ratio(views, sessions),
        "bounceRate": _rate(int(row.get("bouncedSessions") or 0), sessions),
        "avgSessionDuration": _ratio(float(row.get("totalDuration") or 0.0), sessions),
    }


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Change in percent from the previous period per number (None where it was zero)."""
    out: dict[str, Any] = {}
    for key, now in current.items():
        if isinstance(now, int | float) and isinstance(previous.get(key), int | float):
            before = previous[key]
            out[key] = round((now - before) * 100 / before, 2) if before else None
    return out


# timeseries ------------------------------------------------------------------------------------
def _epoch(expr: str) -> str:
    return f"toInt64(toUnixTimestamp(toDateTime({expr})))"


def timeseries_sql(scope: Scope, interval: str) -> tuple[Sql, Sql]:
    """Two queries (events per bucket, sessions per bucket), both keyed by the bucket's epoch."""
    params = scope.params()
    source = _counts_source(scope, params, raw=interval == "minute")
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


def shape_timeseries(
    scope: Scope, interval: str, event_rows: list[dict[str, Any]], session_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    tz = scope.tz
    by_bucket = {int(r["bucket"]): r for r in event_rows}
    sessions = {int(r["bucket"]): int(r["totalSessions"]) for r in session_rows}
    out = []
    for b in buckets(scope.rng.start, scope.rng.end, interval, tz):
        epoch = int(b.timestamp())
        r = by_bucket.get(epoch, {})
        out.append(
            {
                "date": label(b, interval, tz),
                "uniqueVisitors": int(r.get("uniqueVisitors") or 0),
                "totalSessions": sessions.get(epoch, 0),
                "totalPageViews": int(r.get("totalPageViews") or 0),
                "totalEvents": int(r.get("totalEvents") or 0),
            }
        )
    return out


def bucket_label(epoch: int, scope: Scope, interval: str) -> str:
    return label(datetime.fromtimestamp(epoch, UTC), interval, scope.tz)


# pages, referrers, devices, geo, breakdown ------------------------------------------------------
def pages_sql(scope: Scope, kind: str, limit: int) -> Sql:
    params = scope.params()
    params["limit"] = limit
    if kind == "all" and scope.rollup_ok():
        sql = f"""
SELECT value AS path, toUInt64(sum(page_views)) AS views, uniqExactMerge(visitors) AS uniqueVisitors
FROM {_dims("page", params, scope)}
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
    FROM {_dims(dim, params, scope)}
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


BREAKDOWN_DIMENSIONS = sorted(COLUMNS - {"device_id", "session_id", "profile_id"})


def breakdown_sql(scope: Scope, dimension: str, limit: int) -> Sql:
    """Events and visitors per value of a whitelisted column or of ``properties.<key>``."""
    params = scope.params()
    params["limit"] = limit
    if dimension in DIMENSIONS and scope.rollup_ok():
        sql = f"""
SELECT value, toUInt64(sum(events)) AS count, uniqExactMerge(visitors) AS uniqueVisitors
FROM {_dims(dimension, params, scope)}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
        return sql, params
    if dimension.startswith("properties."):
        params["bk"] = dimension[len("properties.") :]
        expr = "properties[{bk:String}]"
    else:
        expr = dimension  # caller checked it against BREAKDOWN_DIMENSIONS
    sql = f"""
SELECT {expr} AS value, count() AS count, uniqExact(device_id) AS uniqueVisitors
FROM events FINAL WHERE {event_where(scope, params)}
GROUP BY value ORDER BY count DESC, value LIMIT {{limit:UInt32}}"""
    return sql, params


def int_rows(rows: list[dict[str, Any]], *counts: str) -> list[dict[str, Any]]:
    for r in rows:
        for c in counts:
            r[c] = int(r[c])
    return rows


# people: profiles and their aliases -----------------------------------------------------------
# An event's person is its profile id, else its device id. ``alias`` rows link another id (an
# anonymous device id, or another profile id) to a profile; the newest row of an alias wins, and
# one hop is followed (an alias of an alias is not chased). Resolved at query time, so an alias
# sent after the events it covers still merges them.
ALIASES = """(
    SELECT alias AS akey, argMax(profile_id, created_at) AS target
    FROM profile_aliases WHERE project_id = {project:String} GROUP BY alias
)"""
# the same map on the sipHash64 ids of ``funnel_events``
HASHED_ALIASES = """(
    SELECT sipHash64(alias) AS akey, sipHash64(argMax(profile_id, created_at)) AS target
    FROM profile_aliases WHERE project_id = {project:String} GROUP BY alias
)"""


# funnel ----------------------------------------------------------------------------------------
UNITS = {"device": "device_id", "session": "session_id", "profile": "profile_id"}
NARROW_UNITS = {"device": "device", "session": "session", "profile": "profile"}
MAX_FUNNEL_STEPS = 20
FUNNEL_TIME_SCALE = 32  # > MAX_FUNNEL_STEPS: room for one sub-millisecond slot per step


def _funnel_rows(scope: Scope, params: dict[str, Any], group_by: str) -> str:
    """``(SELECT unit, created_at, name ...)`` of the events of the funnel's steps, one unit each.

    Without filters it reads ``funnel_events`` (narrow, sorted by device and time, ids hashed);
    filters need the event columns, so they read the raw table. The ``profile`` unit is the
    person's profile after aliases: identified events count for their (aliased) profile, and an
    anonymous device's events count once an alias links the device to a profile.
    """
    steps = "name IN {steps:Array(String)}"
    if scope.filters:
        table, where, empty = "events", f"{event_where(scope, params)} AND {steps}", "''"
        profile, device, aliases = "profile_id", "device_id", ALIASES
    else:
        table, empty = "funnel_events", "0"
        where = (
            "project_id = {project:String} AND "
            + RANGE.format(col="created_at")
            + f" AND (is_bot = 0 OR {{bots:UInt8}} = 1) AND {steps}"
        )
        profile, device, aliases = "profile", "device", HASHED_ALIASES
    if group_by != "profile":
        unit = (UNITS if scope.filters else NARROW_UNITS)[group_by]
        return f"(SELECT {unit} AS unit, created_at, name FROM {table} WHERE {where} AND {unit} != {empty})"
    return f"""(
        SELECT if(a.target != {empty}, a.target, e.pid) AS unit, e.created_at AS created_at, e.name AS name
        FROM (
            SELECT {profile} AS pid, if({profile} != {empty}, {profile}, {device}) AS person, created_at, name
            FROM {table} WHERE {where}
        ) AS e
        LEFT JOIN {aliases} AS a ON e.person = a.akey
        WHERE unit != {empty}
    )"""


def funnel_sql(scope: Scope, steps: list[str], window_s: int, group_by: str) -> Sql:
    """Units reaching each level: steps in order, strictly later in time, all within the window."""
    params = scope.params()
    conds = []
    for i, step in enumerate(steps):
        params[f"s{i}"] = step
        conds.append(f"name = {{s{i}:String}}")
    params["steps"] = steps
    params["window_ms"] = window_s * 1000
    rows = _funnel_rows(scope, params, group_by)
    ts = "toUInt64(toUnixTimestamp64Milli(created_at))"
    if len(set(steps)) == len(steps):
        inner = f"""
    SELECT unit,
           windowFunnel({{window_ms:UInt64}}, 'strict_increase')({ts}, {", ".join(conds)}) AS level
    FROM {rows}
    GROUP BY unit"""
    else:
        # windowFunnel reads the conditions of one row in step order, so an event matching steps
        # i and i+1 (a repeated step) would overwrite step i before step i+1 looks at it. One row
        # per (event, matching step) with time*K + (K-1-step) puts later steps first within an
        # event; with the window scaled by K the order and window tests equal the millisecond ones.
        k = FUNNEL_TIME_SCALE
        params["window_scaled"] = window_s * 1000 * k
        step_conds = ", ".join(f"c = {i}" for i in range(len(steps)))
        inner = f"""
    SELECT unit,
           windowFunnel({{window_scaled:UInt64}}, 'strict_increase')(toUInt64(t * {k} + ({k - 1} - c)), {step_conds}) AS level
    FROM (
        SELECT unit, {ts} AS t,
               arrayJoin(arrayFilter(i -> {{steps:Array(String)}}[i + 1] = name, range({len(steps)}))) AS c
        FROM {rows}
    )
    GROUP BY unit"""
    sql = f"""
SELECT level, count() AS units FROM ({inner}
)
WHERE level > 0 GROUP BY level"""
    return sql, params


def shape_funnel(steps: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reached = {int(r["level"]): int(r["units"]) for r in rows}
    counts = [sum(n for level, n in reached.items() if level >= i + 1) for i in range(len(steps))]
    out = []
    for i, name in enumerate(steps):
        prev = counts[i - 1] if i else counts[0]
        out.append(
            {
                "name": name,
                "count": counts[i],
                "conversion": _rate(counts[i], counts[0]) if i else (100.0 if counts[0] else 0),
                "conversionFromPrevious": _rate(counts[i], prev) if i else (100.0 if counts[0] else 0),
                "dropoff": prev - counts[i] if i else 0,
            }
        )
    return out


# retention -------------------------------------------------------------------------------------
PERIODS = {
    "day": ("toDate({col}, {{tz:String}})", "day"),
    "week": ("toMonday(toDate({col}, {{tz:String}}))", "week"),
    "month": ("toStartOfMonth(toDate({col}, {{tz:String}}))", "month"),
}


def retention_sql(scope: Scope, period: str) -> Sql:
    """Cohorts by the period of each user's first event in range; users active k periods later.

    Reads the hourly set of active users when the rollups apply, else the raw events.
    """
    params = scope.params()
    expr, unit = PERIODS[period]
    if scope.rollup_ok():
        active = f"SELECT user AS person, {expr.format(col='hour')} AS p FROM user_hours WHERE {ROLLUP_WHERE}"
    else:
        person = "if(profile_id != '', profile_id, device_id)"
        active = f"SELECT {person} AS person, {expr.format(col='created_at')} AS p FROM events WHERE {event_where(scope, params)}"
    # a person with an alias counts as the aliased profile (see ALIASES)
    source = f"""
    SELECT if(a.target != '', a.target, s.person) AS user, s.p AS p
    FROM ({active}) AS s LEFT JOIN {ALIASES} AS a ON s.person = a.akey"""
    sql = f"""
SELECT toString(cohort) AS cohortDate, dateDiff('{unit}', cohort, p) AS periodNumber,
       count() AS retainedUsers
FROM (SELECT user, groupUniqArray(p) AS periods, min(p) AS cohort FROM ({source}) GROUP BY user)
ARRAY JOIN periods AS p
GROUP BY cohortDate, periodNumber
ORDER BY cohortDate, periodNumber"""
    return sql, params


def shape_retention(rows: list[dict[str, Any]], last_period: str, period: str) -> list[dict[str, Any]]:
    """Every (cohort, k) up to the range's last period, zeros included; k = 0 is the cohort."""
    from datetime import date

    by_cohort: dict[str, dict[int, int]] = {}
    for r in rows:
        by_cohort.setdefault(r["cohortDate"], {})[int(r["periodNumber"])] = int(r["retainedUsers"])
    last = date.fromisoformat(last_period)
    out = []
    for cohort in sorted(by_cohort):
        counts = by_cohort[cohort]
        size = counts.get(0, 0)
        c = date.fromisoformat(cohort)
        if period == "day":
            span = (last - c).days
        elif period == "week":
            span = (last - c).days // 7
        else:
            span = (last.year - c.year) * 12 + last.month - c.month
        for k in range(span + 1):
            n = counts.get(k, 0)
            out.append(
                {
                    "cohortDate": cohort,
                    "periodNumber": k,
                    "retainedUsers": n,
                    "cohortSize": size,
                    "retentionRate": _rate(n, size),
                }
            )
    return out


# filter pickers --------------------------------------------------------------------------------
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
