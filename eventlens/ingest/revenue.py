"""Revenue of a track event: the OpenPanel SDKs' ``revenue(amount, props)`` sends a ``track``
event named ``revenue`` whose properties hold ``__revenue`` (the amount, a JSON number) and
optionally ``currency``. Any track event carrying ``__revenue`` is a revenue event.

Pure functions of the values: the amount must be a finite number that ``Decimal(18, 4)`` holds
(rounded half-even to 4 decimals, at most 14 integer digits; negative amounts are refunds, -0 is
0); the currency a 3-letter code, upper-cased, else the project's default. Anything else is a 400
naming the property, never a 500.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from eventlens.errors import ClientError

REVENUE_KEY = "__revenue"
CURRENCY_KEY = "currency"
# Decimal(18, 4): 14 digits before the point, 4 after
SCALE = Decimal("0.0001")
LIMIT = Decimal(10) ** 14
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")


def _bad_amount(why: str) -> ClientError:
    return ClientError(
        400,
        "invalid_revenue",
        f"properties.{REVENUE_KEY} {why}",
        [{"loc": f"properties.{REVENUE_KEY}", "msg": why}],
    )


def parse_amount(value: Any) -> str:
    """The amount as exact decimal text with 4 decimals (what the ``revenue`` column stores)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_amount("must be a number (the amount), not " + type(value).__name__)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad_amount("must be a finite number")
        exact = Decimal(repr(value))  # the shortest text of the double: what the client wrote
    else:
        if abs(value) >= LIMIT:  # before Decimal(): a huge int would cost a long conversion
            raise _bad_amount(f"must be smaller than {LIMIT:,} in magnitude")
        exact = Decimal(value)
    try:
        amount = exact.quantize(SCALE, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # more digits than the context holds: far out of range anyway
        raise _bad_amount(f"must be smaller than {LIMIT:,} in magnitude") from None
    if abs(amount) >= LIMIT:
        raise _bad_amount(f"must be smaller than {LIMIT:,} in magnitude")
    if amount == 0:
        amount = abs(amount)  # -0 is 0
    return str(amount)


def parse_currency(value: Any, default: str) -> str:
    """A 3-letter code upper-cased; ``default`` (the project's) when absent or empty."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _CURRENCY_RE.match(value):
        shown = str(value)[:20] if isinstance(value, str | int | float) else type(value).__name__
        raise ClientError(
            400,
            "invalid_currency",
            f"properties.{CURRENCY_KEY} {shown!r} is not a 3-letter ISO-4217 code such as USD or EUR",
            [{"loc": f"properties.{CURRENCY_KEY}", "msg": "expected 3 letters"}],
        )
    return value.upper()


def revenue_columns(props: dict[str, Any], default_currency: str) -> dict[str, str] | None:
    """``{"revenue": ..., "currency": ...}`` of an event's properties; None without ``__revenue``."""
    if REVENUE_KEY not in props or props[REVENUE_KEY] is None:
        return None
    return {
        "revenue": parse_amount(props[REVENUE_KEY]),
        "currency": parse_currency(props.get(CURRENCY_KEY), default_currency),
    }
