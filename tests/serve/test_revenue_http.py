"""Revenue end to end over real HTTP: revenue events posted to /track (the project's currency as
the default), hostile amounts and currencies refused with 400s, and the totals read back from
/metrics, /timeseries and a breakdown ordered by revenue. Runs once per daemon variant (SQLite and
MariaDB metadata: the project's currency comes from either)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Creds, Daemon, DaemonManager

pytestmark = pytest.mark.ray


@pytest.fixture(
    scope="module",
    params=["embedded", pytest.param("shared", marks=[pytest.mark.mariadb, pytest.mark.redis])],
)
def d(request: pytest.FixtureRequest, daemons: DaemonManager) -> Daemon:
    return daemons.use(request.param)


@pytest.fixture
def creds(d: Daemon) -> Creds:
    creds = d.new_project("shop")
    from eventlens.storage.metadata import open_metadata

    with open_metadata(d.settings.metadata_dsn) as store:  # before any request reads the client
        assert store.set_project_currency(creds.project_id, "eur").currency == "EUR"
    return creds


def revenue(amount: Any, device: str = "buyer-1", **props: Any) -> dict[str, Any]:
    return {"name": "revenue", "deviceId": device, "properties": {"__revenue": amount, **props}}


def get(d: Daemon, creds: Creds, route: str, **params: Any) -> Any:
    r = d.http.get(f"/insights/{creds.project_id}/{route}", params=params, headers=creds.read_headers())
    assert r.status_code == 200, r.text
    return r.json()


def test_revenue_is_stored_per_currency_and_totalled_in_one(d: Daemon, creds: Creds) -> None:
    landing = "https://shop.example/?utm_source=news&utm_campaign=spring"
    assert d.track(creds, {"name": "page_view", "deviceId": "buyer-1", "path": landing}).status_code == 200
    assert d.track(creds, {"name": "page_view", "deviceId": "visitor-2", "path": "/"}).status_code == 200
    assert d.track(creds, revenue(19.99)).status_code == 200  # the project's currency: EUR
    assert d.track(creds, revenue(5, currency="usd")).status_code == 200
    batch = {
        "events": [
            {"type": "track", "payload": revenue(0.015, currency="EUR")},  # half-even: 0.0150
            {"type": "track", "payload": revenue("12")},  # a string: refused, the rest accepted
        ]
    }
    r = d.http.post("/track/batch", json=batch, headers=creds.write_headers())
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert r.json()["rejected"][0]["error"] == "invalid_revenue"

    m = d.wait_metric(creds, "totalEvents", 5)
    assert m["totalRevenue"] == 20.005  # EUR only: 19.99 + 0.015
    assert m["revenuePerVisitor"] == round(20.005 / 2, 2)
    assert m["revenueByCurrency"] == {"EUR": 20.005, "USD": 5.0}
    usd = get(d, creds, "metrics", currency="usd")
    assert usd["totalRevenue"] == 5.0 and usd["revenueByCurrency"] == m["revenueByCurrency"]
    assert get(d, creds, "metrics", currency="GBP")["totalRevenue"] == 0

    series = get(d, creds, "timeseries", interval="day")
    assert round(sum(row["totalRevenue"] for row in series), 4) == 20.005
    # credited to the visit's campaign (the purchase itself came without one)
    rows = get(d, creds, "breakdown", dimension="utm_campaign", orderBy="revenue")
    assert rows[0]["value"] == "spring" and rows[0]["revenue"] == 20.005
    refs = get(d, creds, "referrers", orderBy="revenue", currency="USD")
    assert refs[0]["revenue"] == 5.0


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"__revenue": "1e3"}, "invalid_revenue"),
        ({"__revenue": 1e14}, "invalid_revenue"),
        ({"__revenue": 10**30}, "invalid_revenue"),
        ({"__revenue": True}, "invalid_revenue"),
        ({"__revenue": 1, "currency": "EURO"}, "invalid_currency"),
        ({"__revenue": 1, "currency": 978}, "invalid_currency"),
    ],
)
def test_hostile_revenue_is_a_400_naming_the_property(
    d: Daemon, creds: Creds, props: dict[str, Any], code: str
) -> None:
    r = d.track(creds, {"name": "revenue", "deviceId": "x", "properties": props})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == code
    assert ("properties.currency" if code == "invalid_currency" else "properties.__revenue") in r.json()[
        "message"
    ]


def test_non_finite_json_and_bad_parameters_are_400s(d: Daemon, creds: Creds) -> None:
    body = b'{"type": "track", "payload": {"name": "revenue", "properties": {"__revenue": 1e400}}}'
    r = d.http.post(
        "/track", content=body, headers={**creds.write_headers(), "content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_json", r.text
    base = f"/insights/{creds.project_id}"
    r = d.http.get(f"{base}/metrics", params={"currency": "EURO"}, headers=creds.read_headers())
    assert r.status_code == 400 and r.json()["error"] == "invalid_currency", r.text
    assert "currency" in r.json()["message"]
    r = d.http.get(
        f"{base}/breakdown",
        params={"dimension": "browser", "orderBy": "revenue"},
        headers=creds.read_headers(),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_order", r.text
    r = d.http.get(f"{base}/devices", params={"orderBy": "revenue"}, headers=creds.read_headers())
    assert r.status_code == 400 and r.json()["error"] == "unknown_parameter", r.text
