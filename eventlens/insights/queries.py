"""SQL for insight endpoints. Values are always bound parameters; identifiers are constants."""

from __future__ import annotations

from typing import Any

from eventlens.insights.params import Range

MARKERS = ("session_start", "session_end")
PAGE_VIEWS = ("screen_view", "page_view")


def base_params(project_id: str, rng: Range, include_bots: bool) -> dict[str, Any]:
    return {
        "project": project_id,
        "start": rng.start.replace(tzinfo=None),
        "end": rng.end.replace(tzinfo=None),
        "bots": 1 if include_bots else 0,
        "markers": list(MARKERS),
        "page_views": list(PAGE_VIEWS),
    }


BASE_WHERE = (
    "project_id = {project:String}"
    " AND created_at >= {start:DateTime64(3, 'UTC')} AND created_at < {end:DateTime64(3, 'UTC')}"
    " AND (is_bot = 0 OR {bots:UInt8} = 1)"
)


def metrics_sql() -> str:
    """Totals over the range. Event counts are distinct ids, so a duplicate row never counts twice."""
    return f"""
WITH sessions AS (
    SELECT
        session_id,
        countIf(name IN {{page_views:Array(String)}}) AS views,
        countIf(name NOT IN {{page_views:Array(String)}} AND name NOT IN {{markers:Array(String)}}) AS others,
        dateDiff('millisecond', min(created_at), max(created_at)) / 1000 AS duration,
        minIf(created_at, name = 'session_start') AS started
    FROM (SELECT * FROM events WHERE {BASE_WHERE} LIMIT 1 BY id)
    GROUP BY session_id
    HAVING countIf(name = 'session_start') > 0
)
SELECT
    (SELECT uniqExact(device_id) FROM events WHERE {BASE_WHERE} AND name NOT IN {{markers:Array(String)}})
        AS uniqueVisitors,
    (SELECT uniqExact(id) FROM events WHERE {BASE_WHERE} AND name NOT IN {{markers:Array(String)}})
        AS totalEvents,
    (SELECT uniqExact(id) FROM events WHERE {BASE_WHERE} AND name IN {{page_views:Array(String)}})
        AS totalPageViews,
    (SELECT count() FROM sessions) AS totalSessions,
    (SELECT countIf(views <= 1 AND others = 0) FROM sessions) AS bouncedSessions,
    (SELECT sumIf(duration, NOT (views <= 1 AND others = 0)) FROM sessions) AS totalDuration
"""


def shape_metrics(row: dict[str, Any]) -> dict[str, Any]:
    sessions = int(row.get("totalSessions") or 0)
    views = int(row.get("totalPageViews") or 0)
    bounced = int(row.get("bouncedSessions") or 0)
    duration = float(row.get("totalDuration") or 0.0)
    return {
        "uniqueVisitors": int(row.get("uniqueVisitors") or 0),
        "totalSessions": sessions,
        "totalPageViews": views,
        "totalEvents": int(row.get("totalEvents") or 0),
        "viewsPerSession": round(views / sessions, 2) if sessions else 0,
        "bounceRate": round(bounced * 100 / sessions, 2) if sessions else 0,
        "avgSessionDuration": round(duration / sessions, 2) if sessions else 0,
    }
