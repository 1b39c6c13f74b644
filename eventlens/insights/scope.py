"""What every insight query shares: project, range, time zone, filters and bots, as SQL + params."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from eventlens.insights.buckets import hour_aligned
from eventlens.insights.filters import Filter, filter_sql
from eventlens.insights.params import Range

MARKERS = ("session_start", "session_end")
PAGE_VIEWS = ("screen_view", "page_view")


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
            "markers": list(MARKERS),
            "page_views": list(PAGE_VIEWS),
        }


RANGE = "{col} >= {{start:DateTime64(3, 'UTC')}} AND {col} < {{end:DateTime64(3, 'UTC')}}"


def event_where(scope: Scope, params: dict[str, Any], *, markers: bool = False) -> str:
    """Events of the project in range (client events only unless ``markers``), bots and filters."""
    parts = [
        "project_id = {project:String}",
        RANGE.format(col="created_at"),
        "(is_bot = 0 OR {bots:UInt8} = 1)",
    ]
    if not markers:
        parts.append("name NOT IN {markers:Array(String)}")
    extra = filter_sql(scope.filters, params)
    if extra:
        parts.append(extra)
    return " AND ".join(parts)


def session_where(scope: Scope, params: dict[str, Any]) -> str:
    """Sessions that started in range; with filters, those holding a matching event in range.

    Only columns a session never changes (project, opened_at, is_bot, session_id) appear here,
    so the condition gives the same answer before and after ``FINAL`` picks the newest snapshot.
    """
    parts = [
        "project_id = {project:String}",
        RANGE.format(col="opened_at"),
        "(is_bot = 0 OR {bots:UInt8} = 1)",
    ]
    if scope.filters:
        parts.append(f"session_id IN (SELECT session_id FROM events WHERE {event_where(scope, params)})")
    return " AND ".join(parts)
