"""What every insight query shares: project, range, time zone, filters and bots, as SQL + params."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from eventlens.insights.buckets import hour_aligned
from eventlens.insights.filters import SESSION_COLUMNS, Filter, filter_sql
from eventlens.insights.params import Range
from eventlens.records import MARKERS, PAGE_VIEWS


@dataclass(frozen=True)
class Scope:
    project: str
    rng: Range
    filters: list[Filter] = field(default_factory=list)
    include_bots: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.rng.timezone)

    def previous(self) -> Scope:
        """The period of the same length just before this one (for comparisons)."""
        span = self.rng.end - self.rng.start
        return replace(self, rng=Range(self.rng.start - span, self.rng.start, self.rng.timezone))

    def rollup_ok(self) -> bool:
        """Hourly rollups answer exactly: no filters, whole UTC hours nesting in the zone's buckets."""
        return not self.filters and hour_aligned(self.rng.start, self.rng.end, self.tz)

    def params(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "start": self.rng.start.replace(tzinfo=None),
            "end": self.rng.end.replace(tzinfo=None),
            "tz": self.rng.timezone,
            "bots": 1 if self.include_bots else 0,
            "markers": sorted(MARKERS),
            "page_views": sorted(PAGE_VIEWS),
        }


RANGE = "{col} >= {{start:DateTime64(3, 'UTC')}} AND {col} < {{end:DateTime64(3, 'UTC')}}"


def event_where(
    scope: Scope, params: dict[str, Any], *, markers: bool = False, prefix: str = "f", between: str = ""
) -> str:
    """Events of the project in range (client events only unless ``markers``), bots and filters.

    ``between`` replaces the range condition (the edges of a range whose middle a rollup answers).
    """
    parts = [
        "project_id = {project:String}",
        between or RANGE.format(col="created_at"),
        "(is_bot = 0 OR {bots:UInt8} = 1)",
    ]
    if not markers:
        parts.append("name NOT IN {markers:Array(String)}")
    extra = filter_sql(scope.filters, params, prefix)
    if extra:
        parts.append(extra)
    return " AND ".join(parts)


def session_where(scope: Scope, params: dict[str, Any]) -> str:
    """Sessions that started in range and match the filters.

    A filter on a visit attribute (source, geo, device, ...: ``SESSION_COLUMNS``) tests the
    session's own value, from its first event; any other filter (event name, path, properties)
    selects sessions holding a matching event in range. Only columns a session never changes
    appear here, so the condition gives the same answer before and after ``FINAL`` picks the
    newest snapshot.
    """
    parts = [
        "project_id = {project:String}",
        RANGE.format(col="opened_at"),
        "(is_bot = 0 OR {bots:UInt8} = 1)",
    ]
    own = [f for f in scope.filters if f.column in SESSION_COLUMNS]
    held = [f for f in scope.filters if f.column not in SESSION_COLUMNS]
    if own:
        parts.append(filter_sql(own, params, prefix="sf"))
    if held:
        events = replace(scope, filters=held)
        parts.append(
            f"session_id IN (SELECT session_id FROM events WHERE {event_where(events, params, prefix='hf')})"
        )
    return " AND ".join(parts)


# Columns with an hourly rollup per value (migration 0007): one of them may be filtered on.
DIMENSIONS = frozenset(
    {
        "country",
        "region",
        "city",
        "browser",
        "os",
        "device",
        "referrer_name",
        "referrer_type",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "path",
        "name",
    }
)


def rollup_dimension(scope: Scope) -> str | None:
    """The one rolled-up column every filter is on, when the hourly rollups apply."""
    columns = {f.column for f in scope.filters}
    if len(columns) != 1 or not hour_aligned(scope.rng.start, scope.rng.end, scope.tz):
        return None
    (column,) = columns
    return column if column in DIMENSIONS else None
