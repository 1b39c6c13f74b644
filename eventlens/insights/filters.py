"""The ``filters`` parameter: a JSON list of ``{field, operator, value}`` turned into a SQL condition.

Field names come only from ``COLUMNS`` (or ``properties.<key>``, whose key is bound as a value);
every value is a bound parameter. Anything else is a 400 that names the bad part.

``{"field": "goal", "operator": "is", "value": "<goal name>"}`` keeps the events that convert for
one of the project's goals (``isNot``: the others). Goals are project data, not known while the
parameters are parsed: the filter holds the name until ``resolve_goals`` gives it the goal, which
the route does before any SQL is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from eventlens.errors import ClientError
from eventlens.goals import Goal, goal_sql
from eventlens.records import ENTRY_FIELDS, EVENT_COLUMNS

# A filter or breakdown on ``group`` names one of the group ids an event carries (its ``groups``
# array): a filter asks whether one of them matches, a breakdown counts the event once per group.
GROUP = "group"
# Event columns a filter or breakdown may name: every text column of the events table but the
# event id and project (the project comes from the route), and ``group``.
COLUMNS = frozenset(
    name
    for name, default in EVENT_COLUMNS.items()
    if isinstance(default, str) and name not in {"id", "project_id"}
) | {GROUP}
# camelCase spellings SDKs and the original service use
ALIASES = {
    "deviceId": "device_id",
    "profileId": "profile_id",
    "sessionId": "session_id",
    "referrerName": "referrer_name",
    "referrerType": "referrer_type",
    "browserVersion": "browser_version",
    "osVersion": "os_version",
    "sdkName": "sdk_name",
    "sdkVersion": "sdk_version",
    "event": "name",
    "utmSource": "utm_source",
    "utmMedium": "utm_medium",
    "utmCampaign": "utm_campaign",
    "utmTerm": "utm_term",
    "utmContent": "utm_content",
    "groups": GROUP,
    "groupId": GROUP,
}
OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "nin",
    "contains",
    "notContains",
    "startsWith",
    "endsWith",
    "isNull",
    "isNotNull",
)
COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# operators a ``group`` filter takes: an order between group ids means nothing
GROUP_OPERATORS = tuple(op for op in OPERATORS if op not in COMPARE)
MAX_FILTERS = 20
MAX_VALUES = 100
MAX_VALUE_LEN = 1000
MAX_KEY_LEN = 200
GOAL = "goal"  # the column of a goal filter
# a goal filter keeps the converting events (is, eq) or the others (isNot, ne)
GOAL_OPERATORS = {"is": True, "eq": True, "isNot": False, "ne": False}


@dataclass(frozen=True)
class Filter:
    column: str  # a name from COLUMNS, or "" for a property, or GOAL
    key: str  # the property key when column == ""
    operator: str
    value: Any  # str | float (a numeric comparison) | list[str] | None; a goal's name
    goal: Goal | None = None  # a goal filter's goal, once resolved


class UnresolvedGoal(RuntimeError):
    """SQL was asked of a goal filter whose goal was never looked up (a bug, not bad input)."""


def goal_names(filters: list[Filter]) -> list[str]:
    return [f.value for f in filters if f.column == GOAL]


def resolve_goals(filters: list[Filter], goals: list[Goal]) -> list[Filter]:
    """The filters with each goal filter holding its goal; a name the project has no goal of is a
    400 naming it."""
    by_name = {g.name: g for g in goals}
    out = []
    for i, f in enumerate(filters):
        if f.column == GOAL:
            goal = by_name.get(f.value)
            if goal is None:
                known = ", ".join(repr(n[:40]) for n in sorted(by_name)[:10]) or "none"
                raise ClientError(
                    400,
                    "unknown_goal",
                    f"filters[{i}]: the project has no goal named {str(f.value)[:60]!r} (its goals: {known})",
                    [{"filter": i, "goal": str(f.value)[:120]}],
                )
            f = Filter(f.column, f.key, f.operator, f.value, goal)
        out.append(f)
    return out


def _bad(message: str, index: int | None = None) -> ClientError:
    where = f"filters[{index}]: " if index is not None else "filters: "
    return ClientError(400, "invalid_filter", where + message)


# what orjson (the ingest's JSON reader) keeps as an integer; it reads a wider one as a float
INT_RANGE = (-(2**63), 2**64 - 1)
# a stored text a numeric comparison reads as a number: a JSON number, as ingest writes one
# (``-0``, ``1000``, ``2.5``, ``1e-07``, long digit strings); ``inf``, ``nan``, ``+1``, ``.5``
# and anything else never match. The pattern is the same in SQL (re2) and in the tests.
NUMBER_PATTERN = "^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$"


def _scalar(value: Any, index: int, numeric: bool) -> str | int | float:
    """A filter value: text, or a number (``numeric``: one a comparison reads as a 64-bit float)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        # read as ingest reads the same number in an event (a float), so the texts agree
        try:
            value = float(value)
        except OverflowError:
            raise _bad("value is beyond the range of a 64-bit float", index) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad("value must be a finite number (not NaN, Infinity or beyond ±1.8e308)", index)
    if isinstance(value, int | float):
        return float(value) if numeric else value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_LEN:
            raise _bad(f"value is longer than {MAX_VALUE_LEN} characters", index)
        return value
    raise _bad("value must be a string or a number", index)


def _as_text(value: str | int | float) -> str:
    """A number as ingest stores it in properties (``eventlens.ingest.properties``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_filters(
    raw: str | list[Any] | None,
    columns: frozenset[str] = COLUMNS,
    aliases: dict[str, str] = ALIASES,
    known: str = "an event column such as path, country, browser, properties.<key> or goal",
    goals: bool = True,
) -> list[Filter]:
    """Validate the filters parameter (JSON text or an already decoded list).

    ``columns`` (and their ``aliases``) are the fields a filter may name besides
    ``properties.<key>`` (and ``goal`` when ``goals``): the event columns, unless the route lists
    rows of another table (profiles); ``known`` says which in the message."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # orjson says why (a number beyond a 64-bit float, NaN or Infinity, a stray character)
            why = f"{exc.msg} at character {exc.pos}"[:120]
            raise _bad(f"not valid JSON ({why}); expected a list of {{field, operator, value}}") from None
    if not isinstance(raw, list):
        raise _bad("expected a JSON list of {field, operator, value}")
    if len(raw) > MAX_FILTERS:
        raise _bad(f"at most {MAX_FILTERS} filters")
    out: list[Filter] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _bad("each filter is an object {field, operator, value}", i)
        field = item.get("field")
        op = item.get("operator")
        if not isinstance(field, str) or not field:
            raise _bad("field is missing", i)
        if field == GOAL and goals:
            out.append(_goal_filter(item, i))
            continue
        if op not in OPERATORS:
            raise _bad(f"unknown operator {str(op)[:40]!r}; use one of {', '.join(OPERATORS)}", i)
        column, key = "", ""
        if field.startswith("properties."):
            key = field[len("properties.") :]
            if not key or len(key) > MAX_KEY_LEN:
                raise _bad(f"property key must be 1-{MAX_KEY_LEN} characters", i)
        else:
            column = aliases.get(field, field)
            if column not in columns:
                raise _bad(f"unknown field {field[:60]!r}; use {known}", i)
            if column == GROUP and op not in GROUP_OPERATORS:
                raise _bad(f"field group takes the operators {', '.join(GROUP_OPERATORS)}", i)
        value: Any = item.get("value")
        if op in ("isNull", "isNotNull"):
            value = None
        elif op in ("in", "nin"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{op} needs a non-empty list value", i)
            if len(value) > MAX_VALUES:
                raise _bad(f"{op} takes at most {MAX_VALUES} values", i)
            value = [_as_text(_scalar(v, i, numeric=False)) for v in value]
        else:
            if value is None:
                raise _bad(f"{op} needs a value", i)
            value = _scalar(value, i, numeric=op in COMPARE)
            if op not in COMPARE:
                value = _as_text(value)
        out.append(Filter(column, key, op, value))
    return out


def _goal_filter(item: dict[str, Any], i: int) -> Filter:
    op = item.get("operator")
    if not isinstance(op, str) or op not in GOAL_OPERATORS:
        raise _bad(f"a goal filter takes the operator is or isNot, not {str(op)[:40]!r}", i)
    name = item.get("value")
    if not isinstance(name, str) or not name or len(name) > MAX_VALUE_LEN:
        raise _bad("a goal filter's value is the name of one of the project's goals", i)
    return Filter(GOAL, "", op, name)


# Columns a session keeps from its first event and never changes (see buffer.sessions): a filter
# on one of them selects sessions by their own value, as peers do for visit attributes.
SESSION_COLUMNS = (frozenset(ENTRY_FIELDS) - {"project_id", "is_bot"}) | {"session_id"}


def filter_sql(
    filters: list[Filter], params: dict[str, Any], prefix: str = "f", column_expr: str | None = None
) -> str:
    """AND of the filters as SQL on the events table; adds their bound values to ``params``.

    ``column_expr`` replaces the column name (a rollup keeps every column's value in ``value``).
    """
    parts: list[str] = []
    for i, f in enumerate(filters):
        p = f"{prefix}{i}"
        if f.column == GROUP:
            parts.append(_group_sql(f, p, params))
            continue
        if f.column == GOAL:
            if f.goal is None:
                raise UnresolvedGoal(f"goal filter {f.value!r} was not resolved")
            cond = goal_sql(f.goal, params, p)
            parts.append(cond if GOAL_OPERATORS[f.operator] else f"NOT {cond}")
            continue
        if f.column:
            expr = column_expr or f.column
        else:
            params[f"{p}k"] = f.key
            expr = f"properties[{{{p}k:String}}]"
        op = f.operator
        if op == "isNull":
            parts.append(f"NOT mapContains(properties, {{{p}k:String}})" if not f.column else f"{expr} = ''")
            continue
        if op == "isNotNull":
            parts.append(f"mapContains(properties, {{{p}k:String}})" if not f.column else f"{expr} != ''")
            continue
        params[p] = f.value
        if op == "eq":
            parts.append(f"{expr} = {{{p}:String}}")
        elif op == "ne":
            parts.append(f"{expr} != {{{p}:String}}")
        elif op == "in":
            parts.append(f"{expr} IN {{{p}:Array(String)}}")
        elif op == "nin":
            parts.append(f"{expr} NOT IN {{{p}:Array(String)}}")
        elif op == "contains":
            parts.append(f"position({expr}, {{{p}:String}}) > 0")
        elif op == "notContains":
            parts.append(f"position({expr}, {{{p}:String}}) = 0")
        elif op == "startsWith":
            parts.append(f"startsWith({expr}, {{{p}:String}})")
        elif op == "endsWith":
            parts.append(f"endsWith({expr}, {{{p}:String}})")
        elif isinstance(f.value, float):
            # numbers compare as 64-bit floats; a value that is not a number never matches
            parts.append(
                f"(match({expr}, '{NUMBER_PATTERN}') AND toFloat64OrNull({expr}) {COMPARE[op]} {{{p}:Float64}})"
            )
        else:
            parts.append(f"{expr} {COMPARE[op]} {{{p}:String}}")
    return " AND ".join(parts)


# what a ``group`` filter asks of one group id ``g`` (its value bound as ``{p}``)
_GROUP_TESTS = {
    "contains": "position(g, {{{p}:String}}) > 0",
    "notContains": "position(g, {{{p}:String}}) > 0",
    "startsWith": "startsWith(g, {{{p}:String}})",
    "endsWith": "endsWith(g, {{{p}:String}})",
}


def _group_sql(f: Filter, p: str, params: dict[str, Any]) -> str:
    """A ``group`` filter on the events' ``groups`` array: ``eq`` is "one of its groups is the
    value", ``ne`` "none is", ``isNull`` "no group"; ``contains`` and the like ask whether one of the
    event's groups contains the value (``notContains``: none does)."""
    op = f.operator
    if op == "isNull":
        return "empty(groups)"
    if op == "isNotNull":
        return "notEmpty(groups)"
    params[p] = f.value
    if op == "eq":
        return f"has(groups, {{{p}:String}})"
    if op == "ne":
        return f"NOT has(groups, {{{p}:String}})"
    if op == "in":
        return f"hasAny(groups, {{{p}:Array(String)}})"
    if op == "nin":
        return f"NOT hasAny(groups, {{{p}:Array(String)}})"
    test = _GROUP_TESTS[op].format(p=p)
    return f"{'NOT ' if op == 'notContains' else ''}arrayExists(g -> {test}, groups)"
