"""Goals: what counts as a conversion in a project, and how a goal becomes a SQL condition.

A goal is either

- ``page_view``: a page view (``page_view`` or ``screen_view``) whose path matches a pattern. A
  pattern without ``*`` is an exact path; ``*`` matches any run of characters but ``/`` (one path
  segment or part of one) and ``**`` any run including ``/`` (Plausible's rules): ``/blog/*``
  matches ``/blog/a`` but not ``/blog/a/b``; ``/blog/**`` matches both; ``/docs*`` matches
  ``/docs`` and ``/docs-v2``. Matching is case-sensitive and covers the whole path.
- ``event``: an event of that name, optionally only when one property has one value
  (``plan=pro``: the event's ``plan`` property is exactly ``pro``; an event without the
  property never matches).

The definitions live in the metadata store (``eventlens.storage.metadata``); this module holds the
model, input validation and the SQL. Every value in the SQL is a bound parameter: a pattern's
characters other than ``*`` are escaped into a literal RE2 regular expression (ClickHouse's
``match``; RE2 runs in linear time, so no pattern can make it backtrack).
"""

from __future__ import annotations

import builtins
import string
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eventlens.records import PAGE_VIEWS

GoalKind = Literal["page_view", "event"]
MAX_GOAL_NAME = 120
MAX_PATTERN = 1000  # as a filter value (filters.MAX_VALUE_LEN)
MAX_EVENT_NAME = 200
MAX_PROPERTY_KEY = 200
MAX_PROPERTY_VALUE = 1000
MAX_GOALS = 100  # per project


class Goal(BaseModel):
    """A stored goal."""

    model_config = ConfigDict(frozen=True)

    id: str
    project_id: str
    name: str
    kind: GoalKind
    path: str | None = None  # page_view: the path pattern
    event: str | None = None  # event: the event name
    property_key: str | None = None  # event: the optional property match
    property_value: str | None = None
    created_at: datetime

    def definition(self) -> dict[str, Any]:
        """What the goal matches (part of the response cache keys: a redefined goal misses)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "event": self.event,
            "property": self.property,
        }

    @property
    def property(self) -> dict[str, str] | None:
        if self.property_key is None:
            return None
        return {"key": self.property_key, "value": self.property_value or ""}

    def public(self) -> dict[str, Any]:
        """The goal as the API shows it."""
        return {**self.definition(), "createdAt": self.created_at.isoformat()}


class PropertyMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=MAX_PROPERTY_KEY)
    value: str = Field(max_length=MAX_PROPERTY_VALUE)


def _no_control(value: str, what: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} must not contain control characters")
    return value


class GoalSpec(BaseModel):
    """A new goal, as the API's JSON body and the CLI give it: a name and exactly one of ``path``
    (a page-view goal) or ``event`` (an event goal, optionally with ``property``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_GOAL_NAME)
    path: str | None = Field(None, min_length=1, max_length=MAX_PATTERN)
    event: str | None = Field(None, min_length=1, max_length=MAX_EVENT_NAME)
    property: PropertyMatch | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return _no_control(value, "name")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _no_control(value, "path")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.path is None) == (self.event is None):
            raise ValueError("give exactly one of path (a page-view goal) or event (an event goal)")
        if self.path is not None and self.property is not None:
            raise ValueError("property applies to event goals only")
        return self

    @builtins.property
    def kind(self) -> GoalKind:
        return "page_view" if self.path is not None else "event"


def parse_property(text: str) -> PropertyMatch:
    """``key=value`` (the CLI's ``--property``); the value may be empty and may hold ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"property {text[:60]!r} must be key=value")
    return PropertyMatch(key=key, value=value)


# SQL -----------------------------------------------------------------------------------------------
_PUNCTUATION = frozenset(string.punctuation)


def _literal(ch: str) -> str:
    """One character as an RE2 literal: ASCII punctuation escaped, control characters as hex."""
    if ch in _PUNCTUATION:
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{{{ord(ch):x}}}"
    return ch


def is_glob(pattern: str) -> bool:
    return "*" in pattern


def path_regex(pattern: str) -> str:
    """The anchored RE2 expression of a path pattern (``*``: no ``/``; ``**``: anything)."""
    out = ["(?s)^"]
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            continue
        ch = pattern[i]
        out.append("[^/]*" if ch == "*" else _literal(ch))
        i += 1
    out.append("$")
    return "".join(out)


def goal_sql(goal: Goal, params: dict[str, Any], prefix: str) -> str:
    """The condition on an ``events`` row that it converts for ``goal``; values bound in ``params``
    under names starting with ``prefix``."""
    if goal.kind == "page_view":
        assert goal.path is not None
        params[f"{prefix}n"] = sorted(PAGE_VIEWS)
        if is_glob(goal.path):
            params[f"{prefix}g"] = path_regex(goal.path)
            where = f"match(path, {{{prefix}g:String}})"
        else:
            params[f"{prefix}g"] = goal.path
            where = f"path = {{{prefix}g:String}}"
        return f"(name IN {{{prefix}n:Array(String)}} AND {where})"
    params[f"{prefix}g"] = goal.event
    if goal.property_key is None:
        return f"(name = {{{prefix}g:String}})"
    params[f"{prefix}k"] = goal.property_key
    params[f"{prefix}v"] = goal.property_value or ""
    return (
        f"(name = {{{prefix}g:String}} AND mapContains(properties, {{{prefix}k:String}})"
        f" AND properties[{{{prefix}k:String}}] = {{{prefix}v:String}})"
    )
