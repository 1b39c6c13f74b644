"""Request parameters of the insight routes, one pydantic model per route.

FastAPI reads a route's query string (the funnel: its JSON body) into the route's model; a wrong
type or an out-of-range number is FastAPI's 422. Once every field is valid, the model's validator
refuses a parameter the route does not take, applies the route's rules (breakdown dimension,
funnel steps, interval, retention size) and parses the date range and the filters: a broken rule
is a ``ParamsError``, a 400 with the rule's code and a message naming the problem. The parsed
range and filters give the route's ``Scope``; every route, the filter pickers included, takes the
range in a zone, the filters and ``includeBots``.

A model's fields are also its cache key: every parameter, defaults included.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from eventlens.errors import ClientError
from eventlens.goals import Goal
from eventlens.insights.buckets import buckets, check_interval
from eventlens.insights.cursor import Kind, Position, decode_cursor
from eventlens.insights.filters import (
    COLUMNS,
    MAX_VALUE_LEN,
    Filter,
    goal_names,
    parse_filters,
    resolve_goals,
)
from eventlens.insights.params import Range, parse_range
from eventlens.insights.scope import Scope

# a breakdown groups by any filterable column but the ids (one row per visitor says nothing)
BREAKDOWN_DIMENSIONS = sorted(COLUMNS - {"device_id", "session_id", "profile_id"})
MAX_NAME_LEN = 200  # event names, property keys
MAX_FUNNEL_STEPS = 20
# cohorts x periods grows quadratically: keep retention to what a table can show
MAX_RETENTION_PERIODS = 400
DEFAULT_CURRENCY = "USD"  # when neither the request nor the project says (a model used alone)
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
# breakdown dimensions that accept orderBy=revenue: visit attributes (revenue of the visits) and
# the path (revenue of the events recorded on the page)
REVENUE_DIMENSIONS = (
    "referrer_name",
    "referrer_type",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "path",
)

Limit = Annotated[int, Field(ge=1, le=1000, description="Rows to return")]
PickerLimit = Annotated[int, Field(ge=1, le=5000)]
EventName = Annotated[str | None, Field(max_length=MAX_NAME_LEN)]


class ParamsError(ClientError):
    """A broken parameter rule. It is raised while FastAPI reads the request, before the route
    authenticates the caller; the route shows it only to a caller who may read the project."""

    def __init__(self, err: ClientError) -> None:
        super().__init__(err.status, err.code, err.message, err.details, err.headers)


class Scoped(BaseModel):
    """Parameters that select a project's data: a date range, filters, bots.

    Subclasses declare the fields (their order is the order FastAPI reports problems in) and say
    which ones hold the range through ``scope_fields``. A parameter the route does not take is
    never ignored: it is a 400 naming it (FastAPI hands every query parameter, or body key, to
    the model; ``extra="allow"`` keeps them so the validator can name them).
    """

    model_config = ConfigDict(extra="allow")

    _range: Range | None = PrivateAttr(None)
    _filters: list[Filter] = PrivateAttr(default_factory=list)
    # the route's path parameters besides the project (``/profiles/{profile_id}``): set by the
    # endpoint, part of the cache key
    _path: dict[str, str] = PrivateAttr(default_factory=dict)
    # the project's goals, once the route looked them up (``use_goals``)
    _goals: list[Goal] | None = PrivateAttr(None)
    # the route answers about every goal of the project (/goals), not only filtered ones
    wants_goals: ClassVar[bool] = False

    @abstractmethod
    def scope_fields(self) -> tuple[str | None, str | None, str | None, str | list[Any] | None]:
        """startDate, endDate, timezone, filters."""

    @abstractmethod
    def include_bots(self) -> bool: ...

    def rules(self) -> None:
        """Rules on the fields alone, checked before the range is parsed."""

    def range_rules(self, rng: Range) -> None:
        """Rules that need the parsed range."""

    def read_filters(self, raw: str | list[Any] | None) -> list[Filter]:
        """The parsed ``filters``: conditions on event columns, unless the route says otherwise."""
        return parse_filters(raw)

    @model_validator(mode="after")
    def _parse(self) -> Self:
        start, end, timezone, filters = self.scope_fields()
        try:
            self._no_extras()
            self.rules()
            rng = parse_range(start, end, timezone)
            self._filters = self.read_filters(filters)
            self.range_rules(rng)
        except ClientError as exc:
            raise ParamsError(exc) from None
        self._range = rng
        return self

    def _no_extras(self) -> None:
        extra = sorted(self.model_extra or {})
        if extra:
            takes = ", ".join(type(self).model_fields)
            more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
            raise ClientError(
                400,
                "unknown_parameter",
                f"parameter {extra[0][:40]!r}{more} does not apply to this route; it takes {takes}",
            )

    def scope(self, project: str) -> Scope:
        assert self._range is not None, "set by the validator"
        return Scope(project, self._range, self._filters, self.include_bots())

    def with_path(self, path: dict[str, str]) -> Self:
        self._path = dict(path)
        return self

    @property
    def path_params(self) -> dict[str, str]:
        return self._path

    def use_project_defaults(self, currency: str) -> None:
        """Fill what defaults to the project's settings (its currency), before the cache key is
        taken; the routes that take no such parameter ignore it."""

    def needs_goals(self) -> bool:
        """Whether the route must look the project's goals up before computing: it reports on
        them, or a filter names one."""
        return self.wants_goals or bool(goal_names(self._filters))

    def use_goals(self, goals: list[Goal]) -> Self:
        """Give the project's goals: goal filters get their definitions (a name the project has no
        goal of is a 400 naming it). Call before ``scope`` and ``cache_fields``."""
        self._filters = resolve_goals(self._filters, goals)
        self._goals = list(goals)
        return self

    @property
    def goals(self) -> list[Goal]:
        """The project's goals given by ``use_goals`` (none before)."""
        return list(self._goals or [])

    def cache_fields(self) -> dict[str, Any]:
        """What the cache key holds: every parameter, defaults included, the path's, and the
        definitions of the goals the answer depends on (a redefined goal is a new key)."""
        fields = self.model_dump()
        if self._path:
            fields["_path"] = self._path
        if self._goals is not None:
            named = set(goal_names(self._filters))
            used = [g for g in self._goals if self.wants_goals or g.name in named]
            if used:
                fields["_goals"] = [g.definition() for g in used]
        return fields


# what every insight route takes ------------------------------------------------------------------
class Common(Scoped):
    startDate: str | None = None
    endDate: str | None = None
    timezone: str | None = None
    filters: str | None = Field(None, description="JSON list of {field, operator, value}")
    includeBots: bool = False

    def scope_fields(self) -> tuple[str | None, str | None, str | None, str | list[Any] | None]:
        return self.startDate, self.endDate, self.timezone, self.filters

    def include_bots(self) -> bool:
        return self.includeBots


def check_currency(value: str | None) -> str | None:
    """The ``currency`` parameter upper-cased; a 400 naming it unless it is three letters."""
    if value is None:
        return None
    if not _CURRENCY_RE.match(value):
        raise ClientError(
            400,
            "invalid_currency",
            f"currency {value[:20]!r} is not a 3-letter ISO-4217 code such as USD or EUR",
            [{"parameter": "currency"}],
        )
    return value.upper()


class Revenue(Common):
    """A route that reports revenue: in ``currency`` only (default: the project's)."""

    currency: str | None = Field(None, description="ISO-4217 code; default: the project's currency")

    def rules(self) -> None:
        self.currency = check_currency(self.currency)

    def use_project_defaults(self, currency: str) -> None:
        if self.currency is None:
            self.currency = currency

    @property
    def revenue_currency(self) -> str:
        return self.currency or DEFAULT_CURRENCY


class MetricsParams(Revenue):
    compare: Literal["previous"] | None = None


class GoalsParams(Common):
    """Conversions per goal of the project (``/insights/{p}/goals``)."""

    wants_goals: ClassVar[bool] = True
    compare: Literal["previous"] | None = None


class TimeseriesParams(Revenue):
    interval: str = "day"
    compare: Literal["previous"] | None = None

    def rules(self) -> None:
        super().rules()
        check_interval(self.interval)


class Ranked(Revenue):
    """A ranked list that may be ordered by revenue (``orderBy=revenue``: each row then carries
    ``revenue``, in ``currency``)."""

    orderBy: Literal["count", "revenue"] = "count"

    @property
    def by_revenue(self) -> bool:
        return self.orderBy == "revenue"


class ListParams(Common):
    """A ranked list (devices)."""

    limit: Limit = 50


class RankedListParams(Ranked):
    """A ranked list that may be ordered by revenue (referrers, geo)."""

    limit: Limit = 50


class PagesParams(Ranked):
    limit: Limit = 50
    type: Literal["all", "entry", "exit"] = "all"


class BreakdownParams(Ranked):
    dimension: str
    limit: Limit = 50

    @property
    def column(self) -> str:
        """The column grouped by: ``event`` and ``event_name`` mean the event's name."""
        return "name" if self.dimension in ("event", "event_name") else self.dimension

    def rules(self) -> None:
        super().rules()
        dim = self.column
        if self.by_revenue and dim not in REVENUE_DIMENSIONS:
            raise ClientError(
                400,
                "invalid_order",
                f"orderBy=revenue applies to the dimensions {', '.join(REVENUE_DIMENSIONS)}, "
                f"not {self.dimension[:60]!r}",
                [{"parameter": "orderBy"}],
            )
        if dim.startswith("properties."):
            if not 0 < len(dim) - len("properties.") <= MAX_NAME_LEN:
                raise ClientError(
                    400, "invalid_dimension", "properties.<key> needs a key of 1-200 characters"
                )
        elif dim not in BREAKDOWN_DIMENSIONS:
            raise ClientError(
                400,
                "invalid_dimension",
                f"dimension {self.dimension[:60]!r} is not one of {', '.join(BREAKDOWN_DIMENSIONS)}"
                " or properties.<key>",
            )


class RetentionParams(Common):
    period: Literal["day", "week", "month"] = "day"
    # ``user``: a person (profile after aliases, else device); ``group``: a group (B2B account),
    # active in a period when an event carrying its id is
    groupBy: Literal["user", "group"] = "user"

    def range_rules(self, rng: Range) -> None:
        n = len(buckets(rng.start, rng.end, self.period, ZoneInfo(rng.timezone)))
        if n > MAX_RETENTION_PERIODS:
            raise ClientError(
                400,
                "too_many_periods",
                f"{n} {self.period}s in range; at most {MAX_RETENTION_PERIODS} — use a wider period",
            )


class EventNamesParams(Common):
    limit: PickerLimit = 500


class PropertyKeysParams(Common):
    eventName: EventName = None
    limit: PickerLimit = 500


class PropertyValuesParams(Common):
    key: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LEN)]
    eventName: EventName = None
    limit: PickerLimit = 100


class ColumnValuesParams(Common):
    """The values of one event column (paths, countries)."""

    limit: PickerLimit = 500


class PathsParams(Common):
    """The most common paths through a project's sessions (``/insights/{p}/paths``)."""

    type: Literal["page_view", "event"] = "page_view"
    start: str | None = Field(None, description="the page path or event name the paths begin at")
    end: str | None = Field(None, description="the page path or event name the paths end at")
    depth: int = Field(5, ge=2, le=10, description="steps per path")
    width: int = Field(10, ge=1, le=50, description="nodes kept per step; the rest fold into one")

    def rules(self) -> None:
        if self.start is not None and self.end is not None:
            raise ClientError(
                400,
                "invalid_anchor",
                "give start (paths beginning there) or end (paths ending there), not both",
            )
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value) <= MAX_VALUE_LEN:
                raise ClientError(
                    400,
                    "invalid_anchor",
                    f"{name} must be a page path or event name of 1-{MAX_VALUE_LEN} characters",
                )


# the funnel's JSON body ------------------------------------------------------------------------
class FunnelParams(Scoped):
    steps: list[str] = Field(min_length=1, max_length=MAX_FUNNEL_STEPS)
    startDate: str | None = None
    endDate: str | None = None
    timezone: str | None = None
    window: int = Field(86400, ge=1, le=90 * 86400, description="seconds from the first step")
    # ``group``: a group (B2B account) is the unit, all events carrying its id its events
    groupBy: Literal["device", "session", "profile", "group"] = "device"
    filters: list[Any] | None = None
    includeBots: bool = False

    def scope_fields(self) -> tuple[str | None, str | None, str | None, str | list[Any] | None]:
        return self.startDate, self.endDate, self.timezone, self.filters

    def include_bots(self) -> bool:
        return self.includeBots

    def rules(self) -> None:
        for i, step in enumerate(self.steps):
            if not 0 < len(step) <= MAX_NAME_LEN:
                raise ClientError(
                    400, "invalid_step", f"steps[{i}] must be an event name of 1-200 characters"
                )


# the read routes: pages of stored rows, newest first ------------------------------------------
DEFAULT_PAGE = 50
MAX_PAGE = 500
# the profiles list filters on the profile's own fields (or properties.<key>), not event columns
PROFILE_FILTER_COLUMNS = frozenset({"profile_id", "first_name", "last_name", "email", "avatar"})
PROFILE_FILTER_ALIASES = {
    "id": "profile_id",
    "profileId": "profile_id",
    "firstName": "first_name",
    "lastName": "last_name",
}


def check_page_size(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ClientError(
            400, "invalid_limit", f"limit must be 1-{MAX_PAGE} rows per page (default {DEFAULT_PAGE})"
        )


class Paged(Common):
    """A page of one list: ``limit`` rows after ``cursor`` (the previous page's ``nextCursor``)."""

    kind: ClassVar[Kind]
    limit: int = DEFAULT_PAGE
    cursor: str | None = Field(None, description="nextCursor of the previous page")

    _after: Position | None = PrivateAttr(None)

    def rules(self) -> None:
        check_page_size(self.limit)
        # an empty cursor is the first page, as if none were given
        self._after = decode_cursor(self.kind, self.cursor) if self.cursor else None

    @property
    def after(self) -> Position | None:
        return self._after


class EventsParams(Paged):
    kind: ClassVar[Kind] = "events"
    includeMarkers: bool = False


class SessionsParams(Paged):
    kind: ClassVar[Kind] = "sessions"


class ProfilesParams(Scoped):
    """Profiles updated (identified) in the range; filters on the profile's fields. A profile is
    never a bot: the route takes no ``includeBots``."""

    kind: ClassVar[Kind] = "profiles"
    startDate: str | None = None
    endDate: str | None = None
    timezone: str | None = None
    filters: str | None = Field(None, description="JSON list of {field, operator, value} on profile fields")
    limit: int = DEFAULT_PAGE
    cursor: str | None = Field(None, description="nextCursor of the previous page")

    _after: Position | None = PrivateAttr(None)

    def scope_fields(self) -> tuple[str | None, str | None, str | None, str | list[Any] | None]:
        return self.startDate, self.endDate, self.timezone, self.filters

    def include_bots(self) -> bool:
        return False

    def read_filters(self, raw: str | list[Any] | None) -> list[Filter]:
        return parse_filters(
            raw,
            PROFILE_FILTER_COLUMNS,
            PROFILE_FILTER_ALIASES,
            "a profile field (profile_id, first_name, last_name, email, avatar) or properties.<key>",
            goals=False,
        )

    def rules(self) -> None:
        check_page_size(self.limit)
        self._after = decode_cursor(self.kind, self.cursor) if self.cursor else None

    @property
    def after(self) -> Position | None:
        return self._after


class ProfileParams(Common):
    """One profile; ``limit`` bounds its sessions and its events, each newest first."""

    limit: int = DEFAULT_PAGE

    def rules(self) -> None:
        check_page_size(self.limit)
