"""Flattening of event properties (eventlens.ingest.properties.flatten)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.ingest.properties import RESERVED, flatten

BIG = {"max_keys": 10_000, "max_key_len": 10_000, "max_value_len": 100_000}


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, {}),
        ({"a": "x"}, {"a": "x"}),
        ({"a": {"b": {"c": "deep"}}}, {"a.b.c": "deep"}),
        ({"a": [1, 2]}, {"a.0": "1", "a.1": "2"}),
        ({"a": {"b": [1, {"c": True}]}}, {"a.b.0": "1", "a.b.1.c": "true"}),
        ({"list": [[1, 2], [3]]}, {"list.0.0": "1", "list.0.1": "2", "list.1.0": "3"}),
        ({"t": True, "f": False, "n": None}, {"t": "true", "f": "false", "n": ""}),
        ({"i": 42, "neg": -7, "big": 2**60}, {"i": "42", "neg": "-7", "big": str(2**60)}),
        ({"f": 1.5, "whole": 3.0, "small": 1e-7}, {"f": "1.5", "whole": "3", "small": "1e-07"}),
        ({"empty_dict": {}, "empty_list": []}, {"empty_dict": "", "empty_list": ""}),
        ({"unicode": "ü→😀"}, {"unicode": "ü→😀"}),
        ({"a.b": "dotted key kept as is"}, {"a.b": "dotted key kept as is"}),
    ],
)
def test_flatten(props: dict[str, Any], expected: dict[str, str]) -> None:
    assert flatten(props, **BIG) == expected


def test_flatten_keeps_insertion_order() -> None:
    out = flatten({"z": 1, "a": {"y": 2, "b": 3}, "m": [4, 5]}, **BIG)
    assert list(out) == ["z", "a.y", "a.b", "m.0", "m.1"]


@pytest.mark.parametrize("key", RESERVED)
def test_reserved_top_level_keys_are_not_stored(key: str) -> None:
    assert flatten({key: "consumed", "kept": "1"}, **BIG) == {"kept": "1"}


def test_reserved_names_nested_are_ordinary_keys() -> None:
    assert flatten({"x": {"__path": "/a"}}, **BIG) == {"x.__path": "/a"}


def test_reserved_keys_do_not_count_against_the_limit() -> None:
    props = {**{k: "v" for k in RESERVED}, "a": 1, "b": 2}
    assert flatten(props, max_keys=2, max_key_len=10, max_value_len=10) == {"a": "1", "b": "2"}


def test_deep_nesting_does_not_recurse() -> None:
    props: dict[str, Any] = {}
    node = props
    for _ in range(5000):
        node["k"] = {}
        node = node["k"]
    node["k"] = "leaf"
    out = flatten(props, max_keys=10, max_key_len=100_000, max_value_len=10)
    assert list(out.values()) == ["leaf"]
    assert next(iter(out)).count(".") == 5000


@pytest.mark.parametrize(
    ("props", "limits", "code"),
    [
        ({"a": 1, "b": 2, "c": 3}, {"max_keys": 2}, "too_many_properties"),
        ({"a": [1, 2, 3]}, {"max_keys": 2}, "too_many_properties"),
        ({"a": {"b": 1, "c": 2, "d": 3}}, {"max_keys": 2}, "too_many_properties"),
        ({"k" * 11: 1}, {"max_key_len": 10}, "property_key_too_long"),
        ({"abcde": {"fghij": 1}}, {"max_key_len": 10}, "property_key_too_long"),  # "abcde.fghij" is 11
        ({"a": "x" * 11}, {"max_value_len": 10}, "property_value_too_long"),
        ({"a": [0, "x" * 11]}, {"max_value_len": 10}, "property_value_too_long"),
        ({"a": 12345678901}, {"max_value_len": 10}, "property_value_too_long"),
    ],
)
def test_limits_raise_422(props: dict[str, Any], limits: dict[str, int], code: str) -> None:
    full = {"max_keys": 100, "max_key_len": 100, "max_value_len": 100, **limits}
    with pytest.raises(ClientError) as info:
        flatten(props, **full)
    assert info.value.status == 422
    assert info.value.code == code
    assert info.value.body()["error"] == code


@pytest.mark.parametrize(
    ("props", "limits"),
    [
        ({"a": 1, "b": 2}, {"max_keys": 2}),
        ({"k" * 10: 1}, {"max_key_len": 10}),
        ({"a": "x" * 10}, {"max_value_len": 10}),
        ({"a": "ü" * 10}, {"max_value_len": 10}),  # characters, not bytes
    ],
)
def test_limits_are_inclusive(props: dict[str, Any], limits: dict[str, int]) -> None:
    full = {"max_keys": 100, "max_key_len": 100, "max_value_len": 100, **limits}
    out = flatten(props, **full)
    assert out == {k: str(v) for k, v in props.items()}  # never truncated


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
)
json_tree = st.recursive(
    json_leaf,
    lambda c: (
        st.lists(c, min_size=1, max_size=3)
        | st.dictionaries(st.text(alphabet="abcxyz", min_size=1, max_size=3), c, min_size=1, max_size=3)
    ),
    max_leaves=15,
)


def leaves(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [pair for k, v in value.items() for pair in leaves(v, f"{prefix}.{k}")]
    if isinstance(value, list) and value:
        return [pair for i, v in enumerate(value) for pair in leaves(v, f"{prefix}.{i}")]
    return [(prefix, value)]


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcxyz", min_size=1, max_size=3), json_tree, max_size=4))
def test_flatten_property_one_string_per_leaf(props: dict[str, Any]) -> None:
    """Keys without dots cannot collide: every leaf becomes exactly one dotted key with a string."""
    out = flatten(props, **BIG)
    expected = [pair for k, v in props.items() for pair in leaves(v, k)]
    assert list(out) == [k for k, _ in expected]
    assert all(isinstance(v, str) for v in out.values())
    for key, leaf in expected:
        if isinstance(leaf, str):
            assert out[key] == leaf
        elif leaf is None:
            assert out[key] == ""


scalars = st.one_of(
    st.text(max_size=6),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.text(alphabet="ab", min_size=1, max_size=5), st.sampled_from(RESERVED)), scalars
    ),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 5),
)
def test_flat_scalars_match_the_documented_rules(
    props: dict[str, Any], max_keys: int, max_key_len: int, max_value_len: int
) -> None:
    """The fast path for flat properties: reserved keys dropped, scalars as text, first violation wins."""
    limits = {"max_keys": max_keys, "max_key_len": max_key_len, "max_value_len": max_value_len}
    expected: dict[str, str] = {}
    error = None
    for k, v in props.items():
        if k in RESERVED:
            continue
        text = flatten({"x": v}, **BIG)["x"]
        if len(k) > max_key_len:
            error = "property_key_too_long"
        elif len(text) > max_value_len:
            error = "property_value_too_long"
        elif len(expected) + 1 > max_keys:
            error = "too_many_properties"
        if error:
            break
        expected[k] = text
    if error:
        with pytest.raises(ClientError) as exc:
            flatten(props, **limits)
        assert exc.value.code == error
    else:
        assert flatten(props, **limits) == expected
