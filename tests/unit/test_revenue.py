"""Revenue at ingest (``eventlens.ingest.revenue`` and the pipeline's ``revenue`` step): the amount
and currency of a ``__revenue`` event, and the 400s for hostile values (never a 500)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.errors import ClientError
from eventlens.ingest.context import RequestContext
from eventlens.ingest.pipeline import Dropped, Limits, prepare, run
from eventlens.ingest.revenue import LIMIT, parse_amount, parse_currency, revenue_columns

CTX = RequestContext(project_id="proj", ip="8.8.8.8", user_agent="ua", now_ms=1_750_000_000_000, salt="s")
EUR_PROJECT = RequestContext(**{**CTX.__dict__, "currency": "EUR"})


def revenue(props: dict[str, Any], name: str = "revenue") -> dict[str, Any]:
    return {"type": "track", "payload": {"name": name, "deviceId": "d", "properties": props}}


def record(props: dict[str, Any], ctx: RequestContext = CTX) -> dict[str, Any]:
    return prepare(revenue(props), ctx, Limits()).record


def refused(props: Any, ctx: RequestContext = CTX) -> ClientError:
    result = run(revenue(props), ctx, Limits())
    assert isinstance(result, Dropped), result
    assert result.error.status == 400
    assert result.step in ("revenue", "parse")
    return result.error


# accepted -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "stored"),
    [
        (19.99, "19.9900"),
        (0, "0.0000"),
        (-0.0, "0.0000"),  # -0 is 0
        (-0, "0.0000"),
        (-5, "-5.0000"),  # a refund
        (1e3, "1000.0000"),
        (0.00005, "0.0000"),  # half-even to 4 decimals
        (0.00015, "0.0002"),
        (1.23456, "1.2346"),
    ],
)
def test_amounts_are_stored_as_exact_text_with_four_decimals(amount: Any, stored: str) -> None:
    r = record({"__revenue": amount})
    assert r["revenue"] == stored
    assert r["currency"] == "USD"  # the project's default
    assert "__revenue" not in r["properties"]  # in the typed column, not the properties map


def test_the_largest_amounts_decimal_18_4_holds() -> None:
    assert parse_amount(99_999_999_999_999) == "99999999999999.0000"
    assert parse_amount(-99_999_999_999_999) == "-99999999999999.0000"
    assert parse_amount(12345678901234.56) == "12345678901234.5600"


def test_currency_is_upper_cased_else_the_projects() -> None:
    r = record({"__revenue": 5, "currency": "eur"})
    assert (r["revenue"], r["currency"]) == ("5.0000", "EUR")
    assert r["properties"] == {"currency": "eur"}  # the property itself is kept as sent
    assert record({"__revenue": 5}, EUR_PROJECT)["currency"] == "EUR"
    assert record({"__revenue": 5, "currency": ""}, EUR_PROJECT)["currency"] == "EUR"
    assert record({"__revenue": 5, "currency": None}, EUR_PROJECT)["currency"] == "EUR"
    assert record({"__revenue": 5, "currency": "JpY"}, EUR_PROJECT)["currency"] == "JPY"


def test_events_without_revenue_have_no_revenue_columns() -> None:
    r = record({"plan": "pro", "currency": "not a code"})  # no __revenue: currency is a plain property
    assert "revenue" not in r and "currency" not in r
    assert r["properties"] == {"plan": "pro", "currency": "not a code"}
    assert "revenue" not in record({"__revenue": None})
    # any event name may carry revenue
    r = prepare(revenue({"__revenue": 2}, name="purchase"), CTX, Limits()).record
    assert (r["name"], r["revenue"], r["currency"]) == ("purchase", "2.0000", "USD")


# refused --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "amount",
    [
        "1e3",
        "19.99",
        "",
        "NaN",
        True,
        False,
        [1],
        {"amount": 1},
        float("inf"),
        float("-inf"),
        float("nan"),
        1e14,
        -1e14,
        99999999999999.9999,  # the nearest double is 1e14
        1e300,
        10**14,
        -(10**14),
        10**400,
        int("9" * 4000),
        "9" * 10_000,
    ],
)
def test_hostile_amounts_are_a_400_naming_the_property(amount: Any) -> None:
    err = refused({"__revenue": amount})
    assert err.code == "invalid_revenue"
    assert "properties.__revenue" in err.message
    assert len(err.message) < 200  # never echoes a huge value


@pytest.mark.parametrize(
    "code",
    ["US", "USDX", "U$D", "12A", " usd", "usd ", "€€€", "ÄÖÜ", 840, True, ["USD"], {"c": 1}, "x" * 5000],
)
def test_bad_currencies_are_a_400_naming_the_property(code: Any) -> None:
    err = refused({"__revenue": 1, "currency": code})
    assert err.code == "invalid_currency"
    assert "properties.currency" in err.message
    assert len(err.message) < 200


def test_a_body_with_non_finite_json_numbers_never_reaches_the_pipeline() -> None:
    """JSON has no inf/nan: the body parser refuses 1e400 and NaN (``/track``: 400 invalid_json)."""
    for text in (b'{"__revenue": 1e400}', b'{"__revenue": NaN}', b'{"__revenue": Infinity}'):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.text(max_size=30),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
    st.one_of(st.none(), st.text(max_size=6), st.integers(), st.booleans()),
)
def test_any_value_is_accepted_exactly_or_refused_with_a_400(amount: Any, currency: Any) -> None:
    props: dict[str, Any] = {"__revenue": amount}
    if currency is not None:
        props["currency"] = currency
    try:
        cols = revenue_columns(props, "USD")
    except ClientError as err:
        assert err.status == 400 and err.code in ("invalid_revenue", "invalid_currency")
        return
    if amount is None:
        assert cols is None
        return
    assert cols is not None
    value = Decimal(cols["revenue"])
    assert abs(value) < LIMIT and value == value.quantize(Decimal("0.0001"))
    assert len(cols["currency"]) == 3 and cols["currency"].isupper()
    # the stored amount is the sent one rounded to 4 decimals
    assert abs(value - Decimal(repr(amount) if isinstance(amount, float) else amount)) <= Decimal("0.00005")


def test_parse_currency_default() -> None:
    assert parse_currency(None, "CHF") == "CHF"
    assert parse_currency("gbp", "CHF") == "GBP"
