"""Goals end to end over real HTTP: a root client manages them (read and write clients may not; bad
bodies are 400s naming the field), events are tracked, and /insights/{p}/goals counts conversions,
converting visitors and the conversion rate; ``goal`` filters the other routes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Creds, Daemon, eventually

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def d(embedded: Daemon) -> Daemon:
    return embedded


@pytest.fixture
def creds(d: Daemon) -> Creds:
    return d.new_project("goals")


@pytest.fixture
def root(d: Daemon, creds: Creds) -> dict[str, str]:
    from eventlens.storage.metadata import open_metadata

    with open_metadata(d.settings.metadata_dsn) as store:
        client, secret = store.create_client(creds.project_id, "root")
    assert secret
    return {"event-lens-client-id": client.id, "event-lens-client-secret": secret}


def get(d: Daemon, creds: Creds, route: str, **params: Any) -> Any:
    r = d.http.get(f"/insights/{creds.project_id}/{route}", params=params, headers=creds.read_headers())
    assert r.status_code == 200, r.text
    return r.json()


def test_root_clients_manage_goals_and_others_may_not(d: Daemon, creds: Creds, root: dict[str, str]) -> None:
    url = f"/projects/{creds.project_id}/goals"
    body = {"name": "Blog", "path": "/blog/*"}
    assert d.http.post(url, json=body).status_code == 401
    assert d.http.get(url).status_code == 401
    for headers in (creds.read_headers(), creds.write_headers()):
        assert d.http.post(url, json=body, headers=headers).status_code == 403
        assert d.http.get(url, headers=headers).status_code == 403
        assert d.http.delete(f"{url}/x", headers=headers).status_code == 403
    other = d.new_project("other")
    assert d.http.get(f"/projects/{other.project_id}/goals", headers=root).status_code == 403
    for bad, field in [
        ({"name": "x"}, "body"),
        ({"name": "", "path": "/a"}, "name"),
        ({"name": "x", "event": "e", "property": {"key": "plan"}}, "property.value"),
        ({"name": "x", "path": "/a", "nope": 1}, "nope"),
    ]:
        r = d.http.post(url, json=bad, headers=root)
        assert r.status_code == 400 and r.json()["message"].startswith(field), (bad, r.text)
    r = d.http.post(url, content=b"{not json", headers={**root, "content-type": "application/json"})
    assert r.status_code == 400
    made = d.http.post(url, json=body, headers=root)
    assert made.status_code == 201, made.text
    assert d.http.post(url, json=body, headers=root).status_code == 409
    assert [g["name"] for g in d.http.get(url, headers=root).json()["goals"]] == ["Blog"]
    assert d.http.delete(f"{url}/{made.json()['id']}", headers=root).status_code == 200
    assert d.http.delete(f"{url}/{made.json()['id']}", headers=root).status_code == 404
    assert d.http.get(url, headers=root).json() == {"goals": []}


def test_conversions_per_goal_and_the_goal_filter(d: Daemon, creds: Creds, root: dict[str, str]) -> None:
    url = f"/projects/{creds.project_id}/goals"
    for body in (
        {"name": "Blog", "path": "/blog/*"},
        {"name": "Signup", "event": "signup"},
        {"name": "Pro signup", "event": "signup", "property": {"key": "plan", "value": "pro"}},
    ):
        assert d.http.post(url, json=body, headers=root).status_code == 201
    for payload in (
        {"name": "page_view", "deviceId": "v1", "path": "/blog/a"},
        {"name": "page_view", "deviceId": "v2", "path": "/blog/b"},
        {"name": "page_view", "deviceId": "v2", "path": "/blog/b/comments"},  # two segments: not /blog/*
        {"name": "page_view", "deviceId": "v3", "path": "/pricing"},
        {"name": "signup", "deviceId": "v1", "properties": {"plan": "pro"}},
        {"name": "signup", "deviceId": "v3", "properties": {"plan": "free"}},
    ):
        assert d.track(creds, payload).status_code == 200
    d.wait_metric(creds, "totalEvents", 6)
    body = get(d, creds, "goals")
    assert body["uniqueVisitors"] == 3
    numbers = {
        g["name"]: (g["conversions"], g["uniqueConversions"], g["visitors"], g["conversionRate"])
        for g in body["goals"]
    }
    assert numbers == {"Blog": (2, 2, 2, 66.67), "Signup": (2, 2, 2, 66.67), "Pro signup": (1, 1, 1, 33.33)}
    assert [g["name"] for g in body["goals"]] == ["Blog", "Signup", "Pro signup"]
    compared = get(d, creds, "goals", compare="previous")
    blog = next(g for g in compared["goals"] if g["name"] == "Blog")
    assert blog["previous"] == {"conversions": 0, "uniqueConversions": 0, "visitors": 0, "conversionRate": 0}
    assert blog["change"]["conversions"] is None and compared["previous"] == {"uniqueVisitors": 0}

    only = json.dumps([{"field": "goal", "operator": "is", "value": "Blog"}])
    m = get(d, creds, "metrics", filters=only)
    assert (m["totalEvents"], m["uniqueVisitors"], m["totalPageViews"]) == (2, 2, 2)
    pages = get(d, creds, "pages", filters=only)
    assert sorted(p["path"] for p in pages) == ["/blog/a", "/blog/b"]
    others = json.dumps([{"field": "goal", "operator": "isNot", "value": "Signup"}])
    assert get(d, creds, "metrics", filters=others)["totalEvents"] == 4
    unknown = json.dumps([{"field": "goal", "operator": "is", "value": "Nope"}])
    r = d.http.get(
        f"/insights/{creds.project_id}/metrics", params={"filters": unknown}, headers=creds.read_headers()
    )
    assert r.status_code == 400 and r.json()["error"] == "unknown_goal" and "Nope" in r.json()["message"]

    # a removed goal leaves the answer (other replicas within their cache time)
    signup = next(g for g in d.http.get(url, headers=root).json()["goals"] if g["name"] == "Signup")
    assert d.http.delete(f"{url}/{signup['id']}", headers=root).status_code == 200
    eventually(lambda: "Signup" not in {g["name"] for g in get(d, creds, "goals")["goals"]}, timeout=30)
