"""Helpers of the insight SQL unit tests: scopes from request-like values, placeholder checks."""

from __future__ import annotations

import json
import re
from typing import Any

from eventlens.insights.filters import parse_filters
from eventlens.insights.params import parse_range
from eventlens.insights.scope import Scope

PROJECT = "proj-7f3a"
HOSTILE = "x' OR 1=1 --"
PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def scope(
    start: str = "2026-01-01",
    end: str = "2026-01-07",
    tz: str | None = None,
    filters: list[dict[str, Any]] | None = None,
    bots: bool = False,
) -> Scope:
    """A scope as a request with these parameters gets it (date-only ``end`` includes that day)."""
    raw = json.dumps(filters) if filters is not None else None
    return Scope(PROJECT, parse_range(start, end, tz), parse_filters(raw), bots)


def eq(field: str, value: Any) -> list[dict[str, Any]]:
    return [{"field": field, "operator": "eq", "value": value}]


def placeholders(sql: str) -> dict[str, str]:
    """``{name: type}`` of every bound parameter the SQL names."""
    return dict(PLACEHOLDER.findall(sql))


def values(params: dict[str, Any]) -> list[Any]:
    """Every bound value, lists flattened."""
    out: list[Any] = []
    for v in params.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


def check_bound(sql: str, params: dict[str, Any], *hostile: str) -> None:
    """Every placeholder has a value; every hostile text is a bound value and never in the SQL."""
    missing = set(placeholders(sql)) - set(params)
    assert not missing, missing
    assert "{" + PROJECT not in sql and PROJECT not in sql
    assert params["project"] == PROJECT
    for text in hostile:
        assert text not in sql
        assert text in values(params), (text, params)
