"""The filters parameter: whitelisted fields, known operators, values only as bound parameters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.insights.filters import COLUMNS, OPERATORS, filter_sql, parse_filters


def sql_of(raw: object) -> tuple[str, dict[str, object]]:
    params: dict[str, object] = {}
    return filter_sql(parse_filters(json.dumps(raw) if not isinstance(raw, str) else raw), params), params


def test_column_and_property_filters_bind_every_value() -> None:
    sql, params = sql_of(
        [
            {"field": "country", "operator": "eq", "value": "DE"},
            {"field": "properties.plan", "operator": "in", "value": ["pro", 10]},
            {"field": "properties.amount", "operator": "gt", "value": 2.5},
            {"field": "path", "operator": "startsWith", "value": "/docs"},
        ]
    )
    assert sql == (
        "country = {f0:String} AND properties[{f1k:String}] IN {f1:Array(String)}"
        " AND toFloat64OrNull(properties[{f2k:String}]) > {f2:Float64} AND startsWith(path, {f3:String})"
    )
    assert params == {
        "f0": "DE",
        "f1k": "plan",
        "f1": ["pro", "10"],
        "f2k": "amount",
        "f2": 2.5,
        "f3": "/docs",
    }


def test_null_operators_need_no_value() -> None:
    sql, params = sql_of(
        [{"field": "properties.plan", "operator": "isNull"}, {"field": "utm_source", "operator": "isNotNull"}]
    )
    assert sql == "NOT mapContains(properties, {f0k:String}) AND utm_source != ''"
    assert params == {"f0k": "plan"}


def test_camel_case_aliases() -> None:
    sql, _ = sql_of([{"field": "referrerName", "operator": "eq", "value": "Google"}])
    assert sql == "referrer_name = {f0:String}"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"field": "x"}', "expected a JSON list"),
        ([1], "filters[0]: each filter is an object"),
        ([{"field": "country; DROP TABLE events", "operator": "eq", "value": "x"}], "unknown field"),
        ([{"field": "country", "operator": "like", "value": "x"}], "unknown operator 'like'"),
        ([{"field": "country", "operator": "eq"}], "eq needs a value"),
        ([{"field": "country", "operator": "in", "value": "DE"}], "needs a non-empty list"),
        ([{"field": "country", "operator": "eq", "value": {"a": 1}}], "string or a number"),
        ([{"field": "properties.", "operator": "eq", "value": "x"}], "property key"),
        ([{"field": "country", "operator": "eq", "value": "x" * 1001}], "longer than"),
        ([{"field": "country", "operator": "eq", "value": "x"}] * 21, "at most 20 filters"),
    ],
)
def test_bad_filters_are_400_naming_the_part(raw: object, fragment: str) -> None:
    with pytest.raises(ClientError) as err:
        sql_of(raw)
    assert err.value.status == 400
    assert fragment in err.value.message


@given(
    field=st.sampled_from(sorted(COLUMNS))
    | st.text(min_size=1, max_size=30).map(lambda k: "properties." + k),
    op=st.sampled_from(OPERATORS),
    value=st.text(max_size=40) | st.integers(-(10**6), 10**6),
)
def test_sql_text_never_depends_on_values(field: str, op: str, value: object) -> None:
    """Same field, operator and value type give the same SQL: values only travel as parameters."""

    def build(v: object) -> str:
        return sql_of([{"field": field, "operator": op, "value": [v] if op in ("in", "nin") else v}])[0]

    placeholder = 1 if isinstance(value, int) else "a"
    assert build(value) == build(placeholder)
