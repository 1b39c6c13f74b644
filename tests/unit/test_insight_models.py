"""Parameter models: defaults, field errors (422 through FastAPI) and route rules (400 codes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from eventlens.errors import ClientError
from eventlens.insights.models import (
    BREAKDOWN_DIMENSIONS,
    BreakdownParams,
    ColumnValuesParams,
    EventNamesParams,
    FunnelParams,
    ListParams,
    MetricsParams,
    PagesParams,
    ParamsError,
    PropertyKeysParams,
    PropertyValuesParams,
    RetentionParams,
    TimeseriesParams,
)


def rejected(model: type[BaseModel], **values: Any) -> ClientError:
    with pytest.raises(ClientError) as err:
        model(**values)
    assert isinstance(err.value, ParamsError) and err.value.status == 400
    return err.value


def test_common_parameters_and_their_defaults_are_the_cache_key() -> None:
    assert MetricsParams().model_dump() == {
        "startDate": None,
        "endDate": None,
        "timezone": None,
        "filters": None,
        "includeBots": False,
        "currency": None,
        "compare": None,
    }
    assert PagesParams().model_dump() == {
        **ListParams().model_dump(),
        "currency": None,
        "orderBy": "count",
        "type": "all",
    }
    assert TimeseriesParams().interval == "day" and RetentionParams().period == "day"
    assert EventNamesParams().limit == 500 and PropertyValuesParams(key="k").limit == 100
    assert ColumnValuesParams().limit == 500 and ListParams().limit == 50


def test_a_model_gives_the_scope_of_its_range_zone_filters_and_bots() -> None:
    p = MetricsParams(
        startDate="2026-01-01",
        endDate="2026-01-02",
        timezone="Europe/Berlin",
        filters='[{"field": "country", "operator": "eq", "value": "DE"}]',
        includeBots=True,
    )
    s = p.scope("proj")
    assert s.project == "proj" and s.include_bots and s.rng.timezone == "Europe/Berlin"
    assert s.rng.start == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert [(f.column, f.value) for f in s.filters] == [("country", "DE")]


def test_catalogue_pickers_take_the_zone_and_the_filters() -> None:
    """They ignored both before: the catalogue counted UTC days and the models dropped them."""
    common = {"startDate", "endDate", "timezone", "filters", "includeBots", "limit"}
    assert set(EventNamesParams.model_fields) == common
    assert set(PropertyKeysParams.model_fields) == common | {"eventName"}
    p = PropertyKeysParams.model_validate(
        {
            "startDate": "2026-01-01",
            "endDate": "2026-01-01",
            "timezone": "Asia/Tokyo",
            "filters": '[{"field": "country", "operator": "eq", "value": "JP"}]',
        }
    )
    s = p.scope("proj")
    assert s.rng.timezone == "Asia/Tokyo" and [(f.column, f.value) for f in s.filters] == [("country", "JP")]
    assert s.rng.start == datetime(2025, 12, 31, 15, tzinfo=UTC)
    assert rejected(EventNamesParams, filters="[{").code == "invalid_filter"
    assert rejected(EventNamesParams, timezone="Mars/Olympus").code == "invalid_timezone"


@pytest.mark.parametrize(
    ("model", "values", "name"),
    [
        (MetricsParams, {"interval": "hour"}, "interval"),
        (PagesParams, {"compare": "previous"}, "compare"),
        (ListParams, {"type": "entry"}, "type"),
        (RetentionParams, {"interval": "day"}, "interval"),
        (EventNamesParams, {"eventName": "signup"}, "eventName"),
        (ColumnValuesParams, {"key": "plan"}, "key"),
        (MetricsParams, {"timeZone": "Europe/Berlin"}, "timeZone"),  # a misspelling is not ignored
        (FunnelParams, {"steps": ["a"], "extra": 1}, "extra"),
        (FunnelParams, {"steps": ["a"], "interval": "day"}, "interval"),
    ],
)
def test_a_parameter_the_route_does_not_take_is_a_400_naming_it(
    model: type[BaseModel], values: dict[str, Any], name: str
) -> None:
    err = rejected(model, **values)
    assert err.code == "unknown_parameter" and repr(name) in err.message, err.message


@pytest.mark.parametrize(
    ("values", "code", "fragment"),
    [
        ({"startDate": "yesterday"}, "invalid_date", "startDate"),
        ({"startDate": "2026-02-01", "endDate": "2026-01-01"}, "invalid_range", "before endDate"),
        ({"startDate": "2000-01-01", "endDate": "2030-01-01"}, "range_too_large", "at most"),
        ({"timezone": "Mars/Olympus"}, "invalid_timezone", "IANA"),
        ({"filters": "[{"}, "invalid_filter", "not valid JSON"),
        (
            {"filters": '[{"field": "x) OR 1=1", "operator": "eq", "value": 1}]'},
            "invalid_filter",
            "unknown field",
        ),
    ],
)
def test_bad_ranges_and_filters_are_400s(values: dict[str, str], code: str, fragment: str) -> None:
    err = rejected(MetricsParams, **values)
    assert err.code == code and fragment in err.message


def test_breakdown_dimensions() -> None:
    assert BreakdownParams(dimension="event").column == "name"
    assert BreakdownParams(dimension="event_name").column == "name"
    assert BreakdownParams(dimension="properties.plan").column == "properties.plan"
    for dim in BREAKDOWN_DIMENSIONS:
        assert BreakdownParams(dimension=dim).column == dim
    for dim in ("device_id", "browser; DROP TABLE events", "", "properties"):
        err = rejected(BreakdownParams, dimension=dim)
        assert err.code == "invalid_dimension" and "properties.<key>" in err.message
    for dim in ("properties.", "properties." + "k" * 201):
        err = rejected(BreakdownParams, dimension=dim)
        assert err.code == "invalid_dimension" and "1-200" in err.message
    assert BreakdownParams(dimension="properties." + "k" * 200).limit == 50
    assert BreakdownParams(dimension="group").column == "group"


def test_group_units_for_funnels_and_retention() -> None:
    assert FunnelParams(steps=["a"], groupBy="group").groupBy == "group"
    assert RetentionParams().groupBy == "user"
    assert RetentionParams(groupBy="group").groupBy == "group"
    for model, values in (
        (FunnelParams, {"steps": ["a"], "groupBy": "account"}),
        (RetentionParams, {"groupBy": "device"}),
    ):
        with pytest.raises(ValidationError):
            model.model_validate(values)


def test_timeseries_interval() -> None:
    for interval in ("minute", "hour", "day", "week", "month"):
        assert TimeseriesParams(interval=interval).interval == interval
    err = rejected(TimeseriesParams, interval="fortnight")
    assert err.code == "invalid_interval" and "fortnight" in err.message


def test_retention_caps_the_periods_in_range() -> None:
    err = rejected(RetentionParams, period="day", startDate="2020-01-01", endDate="2026-01-01")
    assert err.code == "too_many_periods" and err.message.startswith("2193 days in range; at most 400")
    assert RetentionParams(period="week", startDate="2020-01-01", endDate="2026-01-01").period == "week"
    assert RetentionParams(period="day", startDate="2025-01-01", endDate="2026-02-04").period == "day"
    err = rejected(RetentionParams, period="day", startDate="2025-01-01", endDate="2026-02-05")
    assert err.message.startswith("401 days")


def test_funnel_steps() -> None:
    p = FunnelParams(steps=["a", "b" * 200])
    assert p.window == 86400 and p.groupBy == "device"
    err = rejected(FunnelParams, steps=["a", ""])
    assert err.code == "invalid_step" and "steps[1]" in err.message
    assert rejected(FunnelParams, steps=["x" * 201]).code == "invalid_step"
    err = rejected(FunnelParams, steps=["a"], filters=[{"field": "1=1", "operator": "eq", "value": 1}])
    assert err.code == "invalid_filter"


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (MetricsParams, {"compare": "always"}),
        (MetricsParams, {"includeBots": "maybe"}),
        (PagesParams, {"limit": 0}),
        (PagesParams, {"type": "middle"}),
        (ListParams, {"limit": 1001}),
        (BreakdownParams, {}),
        (RetentionParams, {"period": "year"}),
        (EventNamesParams, {"limit": 5001}),
        (PropertyKeysParams, {"eventName": "x" * 201}),
        (PropertyValuesParams, {"key": ""}),
        (FunnelParams, {"steps": []}),
        (FunnelParams, {"steps": ["a"] * 21}),
        (FunnelParams, {"steps": ["a"], "window": 0}),
        (FunnelParams, {"steps": ["a"], "groupBy": "ip"}),
        # field errors come first: the rules run only on valid fields
        (FunnelParams, {"steps": [""], "window": 0}),
        (BreakdownParams, {"dimension": "bad", "limit": 0}),
        (TimeseriesParams, {"interval": "fortnight", "compare": "always"}),
    ],
)
def test_field_errors_are_validation_errors(model: type[BaseModel], values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model(**values)
