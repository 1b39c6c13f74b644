"""The filters parameter: whitelisted fields, known operators, values only as bound parameters."""

from __future__ import annotations

import json
import re

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.ingest.properties import flatten
from eventlens.insights.filters import (
    COLUMNS,
    GROUP_OPERATORS,
    NUMBER_PATTERN,
    OPERATORS,
    Filter,
    filter_sql,
    parse_filters,
)


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
        f" AND (match(properties[{{f2k:String}}], '{NUMBER_PATTERN}')"
        " AND toFloat64OrNull(properties[{f2k:String}]) > {f2:Float64}) AND startsWith(path, {f3:String})"
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
    assume(field != "group" or op in GROUP_OPERATORS)

    def build(v: object) -> str:
        return sql_of([{"field": field, "operator": op, "value": [v] if op in ("in", "nin") else v}])[0]

    placeholder = 1 if isinstance(value, int) else "a"
    assert build(value) == build(placeholder)


# numbers as filter values --------------------------------------------------------------------
def _filter(op: str, literal: str) -> str:
    return '[{"field": "properties.n", "operator": "%s", "value": %s}]' % (op, literal)  # noqa: UP031


def _both_readers(op: str, literal: str) -> list[list[Filter]]:
    """The filter as a GET route reads it (JSON text, orjson) and as the funnel's body arrives
    (decoded by Python's json, which keeps every integer's digits)."""
    text = _filter(op, literal)
    return [parse_filters(text), parse_filters(json.loads(text))]


@pytest.mark.parametrize(
    ("literal", "text", "number"),
    [
        ("1e3", "1000", 1000.0),
        ("-0", "0", 0.0),
        ("-0.0", "0", -0.0),
        ("2.5", "2.5", 2.5),
        ("1e-7", "1e-07", 1e-7),
        # 2**53 + 1: its digits, not the float's (before: "9007199254740992", missing the event)
        ("9007199254740993", "9007199254740993", 9007199254740992.0),
        ("18446744073709551615", "18446744073709551615", 1.8446744073709552e19),
        # wider than 64 bits: ingest (orjson) reads it as a float, and so does the filter
        ("123456789012345678901234567890", "123456789012345677877719597056", 1.2345678901234568e29),
        ("1" * 40, str(int(float("1" * 40))), float("1" * 40)),
        ("1e300", str(int(1e300)), 1e300),
    ],
)
def test_a_number_matches_the_text_ingest_stores_for_it_and_compares_as_a_float(
    literal: str, text: str, number: float
) -> None:
    stored = flatten(orjson.loads('{"n": %s}' % literal), max_keys=5, max_key_len=10, max_value_len=1000)  # noqa: UP031
    assert stored == {"n": text}
    for op in ("eq", "ne", "in", "nin"):
        for parsed in _both_readers(op, f"[{literal}]" if op in ("in", "nin") else literal):
            assert parsed[0].value == ([text] if op in ("in", "nin") else text), (op, parsed)
    for op in ("gt", "gte", "lt", "lte"):
        for parsed in _both_readers(op, literal):
            assert parsed[0].value == number and isinstance(parsed[0].value, float)
            sql = filter_sql(parsed, {})
            assert f"match(properties[{{f0k:String}}], '{NUMBER_PATTERN}')" in sql


@pytest.mark.parametrize(
    ("literal", "get_why", "body_why"),
    [
        ("NaN", "not valid JSON (unexpected character", "finite number"),
        ("Infinity", "not valid JSON (unexpected character", "finite number"),
        ("-Infinity", "not valid JSON (no digit after sign", "finite number"),
        ("1e400", "number is infinity", "finite number"),
        ("1" * 400, "number is infinity", "beyond the range of a 64-bit float"),
    ],
)
def test_a_number_beyond_a_float_is_a_400_naming_the_filter_and_why(
    literal: str, get_why: str, body_why: str
) -> None:
    for op in ("eq", "gt", "in"):
        value = f"[{literal}]" if op == "in" else literal
        with pytest.raises(ClientError) as err:
            parse_filters(_filter(op, value))
        assert err.value.status == 400 and err.value.code == "invalid_filter"
        assert err.value.message.startswith("filters: ") and get_why in err.value.message
        with pytest.raises(ClientError) as err:
            parse_filters(json.loads(_filter(op, value)))  # Python's json reads all of these
        assert err.value.status == 400 and err.value.message.startswith("filters[0]: ")
        assert body_why in err.value.message


def test_which_stored_texts_are_numbers() -> None:
    """A JSON number as ingest writes one; not what a lenient float parser also reads."""
    number = re.compile(NUMBER_PATTERN)
    for text in ["0", "-0", "10", "2.5", "-3", "1000", "1e3", "1E3", "1e-07", "1e+16", "1" * 400, "1e400"]:
        assert number.search(text), text
    for text in ["", "inf", "-inf", "nan", "NaN", "Infinity", "+1", ".5", "1.", " 1", "1 ", "1_000", "0x1A"]:
        assert not number.search(text), text


# group (B2B account) filters -------------------------------------------------------------------
def test_group_filters_ask_the_groups_array_with_bound_values() -> None:
    sql, params = sql_of(
        [
            {"field": "group", "operator": "eq", "value": "acme"},
            {"field": "groups", "operator": "ne", "value": "x'); DROP TABLE events; --"},
            {"field": "groupId", "operator": "in", "value": ["a", 7]},
            {"field": "group", "operator": "nin", "value": ["b"]},
            {"field": "group", "operator": "contains", "value": "cm"},
            {"field": "group", "operator": "notContains", "value": "'"},
            {"field": "group", "operator": "startsWith", "value": "a"},
            {"field": "group", "operator": "endsWith", "value": "eu"},
            {"field": "group", "operator": "isNull"},
            {"field": "group", "operator": "isNotNull", "value": "ignored"},
        ]
    )
    assert sql.split(" AND ") == [
        "has(groups, {f0:String})",
        "NOT has(groups, {f1:String})",
        "hasAny(groups, {f2:Array(String)})",
        "NOT hasAny(groups, {f3:Array(String)})",
        "arrayExists(g -> position(g, {f4:String}) > 0, groups)",
        "NOT arrayExists(g -> position(g, {f5:String}) > 0, groups)",
        "arrayExists(g -> startsWith(g, {f6:String}), groups)",
        "arrayExists(g -> endsWith(g, {f7:String}), groups)",
        "empty(groups)",
        "notEmpty(groups)",
    ]
    assert params == {
        "f0": "acme",
        "f1": "x'); DROP TABLE events; --",
        "f2": ["a", "7"],
        "f3": ["b"],
        "f4": "cm",
        "f5": "'",
        "f6": "a",
        "f7": "eu",
    }


@pytest.mark.parametrize("op", sorted(set(OPERATORS) - set(GROUP_OPERATORS)))
def test_group_filters_refuse_an_order(op: str) -> None:
    with pytest.raises(ClientError) as err:
        parse_filters(json.dumps([{"field": "group", "operator": op, "value": "a"}]))
    assert (err.value.status, err.value.code) == (400, "invalid_filter")
    assert "filters[0]" in err.value.message and "group" in err.value.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"a": 1}, "string or a number"),
        (["acme"], "string or a number"),
        ("x" * 1001, "longer than 1000"),
        (None, "needs a value"),
        (float("nan"), "not valid JSON"),
    ],
)
def test_hostile_group_filter_values_are_400s(value: object, fragment: str) -> None:
    raw = json.dumps([{"field": "group", "operator": "eq", "value": value}])
    with pytest.raises(ClientError) as err:
        parse_filters(raw)
    assert err.value.status == 400 and fragment in err.value.message
