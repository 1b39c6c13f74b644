"""People: profiles and their aliases, funnels (units reaching each step in order) and retention
(cohorts by first period, users active k periods later)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from eventlens.insights.buckets import bucket_start
from eventlens.insights.models import FunnelParams, RetentionParams
from eventlens.insights.scope import RANGE, Scope, event_where
from eventlens.insights.sources import ROLLUP_WHERE, Json, Query, Rows, Sql, rate

# profiles and their aliases -------------------------------------------------------------------
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
FUNNEL_TIME_SCALE = 32  # > models.MAX_FUNNEL_STEPS: room for one sub-millisecond slot per step


def _funnel_rows(scope: Scope, params: dict[str, Any], group_by: str) -> str:
    """``(SELECT unit, created_at, name ...)`` of the events of the funnel's steps, one unit each.

    Without filters it reads ``funnel_events`` (narrow, sorted by device and time, ids hashed);
    filters need the event columns, so they read the raw table. The ``profile`` unit is the
    person's profile after aliases: identified events count for their (aliased) profile, and an
    anonymous device's events count once an alias links the device to a profile.
    """
    steps = "name IN {steps:Array(String)}"
    if group_by == "group":
        # the narrow table has no groups: the raw events, one row per (event, group)
        where = f"{event_where(scope, params)} AND {steps} AND notEmpty(groups)"
        return (
            f"(SELECT arrayJoin(arrayDistinct(groups)) AS unit, created_at, name FROM events WHERE {where})"
        )
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


def shape_funnel(steps: list[str], rows: Rows) -> Rows:
    reached = {int(r["level"]): int(r["units"]) for r in rows}
    counts = [sum(n for level, n in reached.items() if level >= i + 1) for i in range(len(steps))]
    out = []
    for i, name in enumerate(steps):
        prev = counts[i - 1] if i else counts[0]
        out.append(
            {
                "name": name,
                "count": counts[i],
                "conversion": rate(counts[i], counts[0]) if i else (100.0 if counts[0] else 0),
                "conversionFromPrevious": rate(counts[i], prev) if i else (100.0 if counts[0] else 0),
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


def retention_sql(scope: Scope, period: str, group_by: str = "user") -> Sql:
    """Cohorts by the period of each user's first event in range; users active k periods later.

    Reads the hourly set of active users when the rollups apply, else the raw events. By
    ``group``, the units are group ids: a group is active in the periods of the events carrying it.
    """
    params = scope.params()
    expr, unit = PERIODS[period]
    if group_by == "group":
        source = f"""
    SELECT arrayJoin(arrayDistinct(groups)) AS user, {expr.format(col="created_at")} AS p
    FROM events WHERE {event_where(scope, params)} AND notEmpty(groups)"""
    else:
        if scope.rollup_ok():
            active = (
                f"SELECT user AS person, {expr.format(col='hour')} AS p FROM user_hours WHERE {ROLLUP_WHERE}"
            )
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


def shape_retention(rows: Rows, last_period: str, period: str) -> Rows:
    """Every (cohort, k) up to the range's last period, zeros included; k = 0 is the cohort."""
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
                    "retentionRate": rate(n, size),
                }
            )
    return out


# route computes --------------------------------------------------------------------------------
async def funnel(project_id: str, params: FunnelParams, query: Query) -> Json:
    scope = params.scope(project_id)
    rows = await query(funnel_sql(scope, params.steps, params.window, params.groupBy))
    return shape_funnel(params.steps, rows)


async def retention(project_id: str, params: RetentionParams, query: Query) -> Json:
    scope = params.scope(project_id)
    last = bucket_start(scope.rng.end - timedelta(milliseconds=1), params.period, scope.tz)
    rows = await query(retention_sql(scope, params.period, params.groupBy))
    return shape_retention(rows, last.astimezone(scope.tz).date().isoformat(), params.period)
