"""hypothesis: arbitrary parameters and funnel bodies on every insight route never produce a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Creds, Daemon

pytestmark = pytest.mark.ray

ROUTES = [
    "insights/{p}/metrics",
    "insights/{p}/timeseries",
    "insights/{p}/pages",
    "insights/{p}/referrers",
    "insights/{p}/devices",
    "insights/{p}/geo",
    "insights/{p}/breakdown",
    "insights/{p}/retention",
    "insights/{p}/paths",
    "filters/{p}/event-names",
    "filters/{p}/property-keys",
    "filters/{p}/property-values",
    "filters/{p}/paths",
    "filters/{p}/countries",
    "insights/{p}/events",
    "insights/{p}/sessions",
    "insights/{p}/profiles",
    "insights/{p}/profiles/u%2F1",
    "insights/{p}/sessions/s1/replay",
    "insights/{p}/goals",
    "insights/{p}/sessions/%00%FF/replay",
]
text = st.text(max_size=40) | st.sampled_from(
    [
        "",
        "2026-01-01",
        "2026-01-01T10:00:00Z",
        "9999-12-31",
        "0000-00-00",
        "1e9",
        "-1",
        "UTC",
        "Europe/Berlin",
    ]
)
filter_item = st.fixed_dictionaries(
    {},
    optional={
        "field": st.sampled_from(["country", "path", "properties.plan", "x", "", "name; --"])
        | st.text(max_size=10),
        "operator": st.sampled_from(["eq", "in", "gt", "isNull", "like", ""]) | st.text(max_size=8),
        "value": st.none()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10)
        | st.lists(st.text(max_size=5)),
    },
)
filters = st.one_of(text, st.lists(filter_item, max_size=3).map(json.dumps), st.just("[" * 50))
params = st.fixed_dictionaries(
    {},
    optional={
        "startDate": text,
        "endDate": text,
        "timezone": text,
        "filters": filters,
        "interval": st.sampled_from(["minute", "hour", "day", "week", "month", "year"]) | text,
        "limit": st.integers(-5, 10**6).map(str) | text,
        "type": st.sampled_from(["all", "entry", "exit", "page_view", "event"]) | text,
        "dimension": st.sampled_from(["browser", "properties.plan", "properties.", "id"]) | text,
        "period": st.sampled_from(["day", "week", "month"]) | text,
        "compare": st.sampled_from(["previous"]) | text,
        "includeBots": st.sampled_from(["true", "false"]) | text,
        "key": text,
        "eventName": text,
        "cursor": text
        | st.sampled_from(["WyJlIiwxNzgwMDAwMDAwMDAwLCJhIl0", "WyJlIiwtMSwiYSJd", "WyJwIiwxLCIiXQ"]),
        "includeMarkers": st.sampled_from(["true", "false"]) | text,
        "start": text | st.sampled_from(["/", "page_view", "x" * 1001]),
        "end": text | st.sampled_from(["/", "page_view", "'; DROP TABLE events; --"]),
        "depth": st.integers(-1, 12).map(str) | text,
        "width": st.integers(-1, 60).map(str) | text,
        "fromChunk": st.integers(-5, 2_000_000).map(str) | text,
        "currency": st.sampled_from(["EUR", "usd", "E", "€€€"]) | text,
        "orderBy": st.sampled_from(["revenue", "count"]) | text,
    },
)


@pytest.fixture(scope="module")
def creds(embedded: Daemon) -> Creds:
    return embedded.new_project("fuzz-insights")


def _check(r: Any) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "message", "details"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), query=params)
def test_any_parameters_are_answered_without_a_5xx(
    embedded: Daemon, creds: Creds, route: str, query: dict[str, str]
) -> None:
    r = embedded.http.get("/" + route.format(p=creds.project_id), params=query, headers=creds.read_headers())
    _check(r)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "steps": st.lists(st.text(max_size=20), max_size=22) | json_values,
        "startDate": text | json_values,
        "endDate": text,
        "timezone": text,
        "window": st.integers(-10, 10**9) | json_values,
        "groupBy": st.sampled_from(["device", "session", "profile", "group"]) | text,
        "filters": st.lists(filter_item, max_size=3) | json_values,
        "includeBots": st.booleans() | json_values,
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies | json_values)
def test_any_funnel_body_is_answered_without_a_5xx(embedded: Daemon, creds: Creds, body: Any) -> None:
    r = embedded.http.post(f"/insights/{creds.project_id}/funnel", json=body, headers=creds.read_headers())
    _check(r)
