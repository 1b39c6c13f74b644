"""Goals without ClickHouse: the models, the pattern translation, the goal filter and the root-client
API over a real SQLite metadata store (the SQL runs in tests/unit/test_storage_insights.py)."""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from eventlens.api.auth import Authenticator
from eventlens.api.insights import create_api
from eventlens.errors import ClientError
from eventlens.goals import MAX_GOALS, Goal, GoalSpec, goal_sql, parse_property, path_regex
from eventlens.insights.filters import UnresolvedGoal, filter_sql, parse_filters, resolve_goals
from eventlens.insights.models import GoalsParams, MetricsParams, ProfilesParams
from eventlens.storage.metadata import open_metadata
from tests.reference import insights as ref

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T = datetime(2026, 1, 1, tzinfo=UTC)


def goal(name: str = "g", **kw: Any) -> Goal:
    kind = "page_view" if "path" in kw else "event"
    return Goal(id=f"id-{name}", project_id="p", name=name, kind=kind, created_at=T, **kw)


# the model -------------------------------------------------------------------------------------
def test_a_spec_is_a_page_view_or_an_event_goal() -> None:
    assert GoalSpec(name=" Blog ", path="/blog/*").kind == "page_view"
    assert GoalSpec(name="Blog", path="/blog/*").name == "Blog"
    spec = GoalSpec.model_validate(
        {"name": "Pro", "event": "signup", "property": {"key": "plan", "value": "pro"}}
    )
    assert spec.kind == "event" and spec.property is not None and spec.property.key == "plan"
    for bad, field in [
        ({"name": "x"}, ""),
        ({"name": "x", "path": "/a", "event": "e"}, ""),
        ({"name": "x", "path": "/a", "property": {"key": "k", "value": "v"}}, ""),
        ({"name": "", "path": "/a"}, "name"),
        ({"name": "   ", "path": "/a"}, "name"),
        ({"name": "x" * 121, "path": "/a"}, "name"),
        ({"name": "a\x00b", "path": "/a"}, "name"),
        ({"name": "x", "path": ""}, "path"),
        ({"name": "x", "path": "/" + "a" * 1000}, "path"),
        ({"name": "x", "path": "/a\nb"}, "path"),
        ({"name": "x", "event": "e" * 201}, "event"),
        ({"name": "x", "event": "e", "property": {"key": "", "value": "v"}}, "property.key"),
        ({"name": "x", "event": "e", "property": {"key": "k"}}, "property.value"),
        ({"name": "x", "event": "e", "extra": 1}, "extra"),
        ({"name": 5, "event": "e"}, "name"),
    ]:
        with pytest.raises(ValidationError) as err:
            GoalSpec.model_validate(bad)
        assert ".".join(str(p) for p in err.value.errors()[0]["loc"]) == field, bad


def test_property_is_parsed_as_key_equals_value() -> None:
    assert parse_property("plan=pro").model_dump() == {"key": "plan", "value": "pro"}
    assert parse_property("q=a=b").model_dump() == {"key": "q", "value": "a=b"}
    assert parse_property("empty=").model_dump() == {"key": "empty", "value": ""}
    for bad in ("plan", "=pro", ""):
        with pytest.raises(ValueError):
            parse_property(bad)


# pattern translation ---------------------------------------------------------------------------
def test_patterns_translate_to_anchored_literal_regexes() -> None:
    assert path_regex("/blog/*") == "(?s)^\\/blog\\/[^/]*$"
    assert path_regex("/blog/**") == "(?s)^\\/blog\\/.*$"
    assert path_regex("/a***b") == "(?s)^\\/a.*b$"
    assert path_regex("/100%") == "(?s)^\\/100\\%$"
    assert path_regex("/a_b") == "(?s)^\\/a\\_b$"
    assert path_regex("é") == "(?s)^é$"
    assert path_regex("a\x01") == "(?s)^a\\x{1}$"


PIECES = "/ab*%_.\\[]()^$|?+{}é'"


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=PIECES, min_size=1, max_size=12), st.text(alphabet=PIECES.replace("*", ""), max_size=12)
)
def test_the_regex_matches_what_the_reference_glob_matches(pattern: str, path: str) -> None:
    """Only ``*`` is special: every other character is escaped into a literal. (Python's ``re``
    reads ``\\<punctuation>`` as RE2 does; ClickHouse's own answers are checked in
    tests/unit/test_storage_insights.py.)"""
    regex = path_regex(pattern)
    assert regex.startswith("(?s)^") and regex.endswith("$")
    body = regex[len("(?s)^") : -1]
    assert bool(re.fullmatch(body, path, re.DOTALL)) == ref.glob(pattern, path), (pattern, path, regex)
    # a pattern matches itself read literally when it has no star
    if "*" not in pattern:
        assert re.fullmatch(body, pattern, re.DOTALL)


def test_long_and_hostile_patterns_stay_bound_values() -> None:
    hostile = "'; DROP TABLE events; --{x:String}%_\\" + "*" * 500 + "z" * 500
    params: dict[str, Any] = {}
    sql = goal_sql(goal(path=hostile), params, "g0")
    assert sql == "(name IN {g0n:Array(String)} AND match(path, {g0g:String}))"
    assert params["g0g"] == path_regex(hostile)
    params = {}
    sql = goal_sql(goal(event="x'y", property_key="k'", property_value="v'"), params, "g1")
    assert "'" not in sql and params == {"g1g": "x'y", "g1k": "k'", "g1v": "v'"}
    params = {}
    assert (
        goal_sql(goal(path="/exact"), params, "g2") == "(name IN {g2n:Array(String)} AND path = {g2g:String})"
    )


# the goal filter -------------------------------------------------------------------------------
def test_goal_filters_parse_and_resolve() -> None:
    raw = json.dumps(
        [
            {"field": "goal", "operator": "is", "value": "Blog"},
            {"field": "goal", "operator": "isNot", "value": "Buy"},
        ]
    )
    filters = parse_filters(raw)
    with pytest.raises(UnresolvedGoal):
        filter_sql(filters, {})
    blog, buy = goal("Blog", path="/blog/*"), goal("Buy", event="purchase")
    resolved = resolve_goals(filters, [blog, buy])
    params: dict[str, Any] = {}
    sql = filter_sql(resolved, params)
    assert sql == "(name IN {f0n:Array(String)} AND match(path, {f0g:String})) AND NOT (name = {f1g:String})"
    with pytest.raises(ClientError) as err:
        resolve_goals(filters, [blog])
    assert err.value.status == 400 and err.value.code == "unknown_goal" and "'Buy'" in err.value.message
    for bad in (
        [{"field": "goal", "operator": "contains", "value": "Blog"}],
        [{"field": "goal", "operator": "is", "value": ""}],
        [{"field": "goal", "operator": "is", "value": ["Blog"]}],
        [{"field": "goal", "operator": "is"}],
    ):
        with pytest.raises(ClientError) as err:
            parse_filters(json.dumps(bad))
        assert err.value.status == 400 and "filters[0]" in err.value.message


def test_models_take_goals_before_the_cache_key() -> None:
    flt = json.dumps([{"field": "goal", "operator": "is", "value": "Blog"}])
    params = MetricsParams.model_validate(
        {"filters": flt, "startDate": "2026-01-01", "endDate": "2026-01-02"}
    )
    assert params.needs_goals()
    blog = goal("Blog", path="/blog/*")
    params.use_goals([blog, goal("Other", event="x")])
    assert params.cache_fields()["_goals"] == [blog.definition()]
    redefined = MetricsParams.model_validate(
        {"filters": flt, "startDate": "2026-01-01", "endDate": "2026-01-02"}
    )
    redefined.use_goals([goal("Blog", path="/blog/**")])
    assert redefined.cache_fields() != params.cache_fields()
    plain = MetricsParams.model_validate({"startDate": "2026-01-01", "endDate": "2026-01-02"})
    assert not plain.needs_goals() and "_goals" not in plain.cache_fields()
    every = GoalsParams.model_validate({})
    assert every.needs_goals()
    every.use_goals([blog])
    assert every.cache_fields()["_goals"] == [blog.definition()]
    # the profiles list filters on the profile's own fields: there is no goal there
    with pytest.raises(ClientError):
        ProfilesParams.model_validate({"filters": flt})


# the root-client API over HTTP, without Ray -------------------------------------------------------
class NoReader:
    async def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        n = sql.count("countIf(")  # one per goal
        return [{"uniqueVisitors": 4, "conversions": [3] * n, "uniqueConversions": [2] * n}]

    async def ping(self) -> bool:
        return True


@pytest.fixture
def api(tmp_path: Path) -> Any:
    store = open_metadata(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    store.migrate()
    p = store.create_project("P", id="p1")
    store.create_project("Q", id="q1")
    ids = {}
    for kind in ("root", "read", "write"):
        c, secret = store.create_client(p.id, kind)
        ids[kind] = {"event-lens-client-id": c.id, "event-lens-client-secret": secret or ""}
    c, secret = store.create_client("q1", "root")
    ids["other"] = {"event-lens-client-id": c.id, "event-lens-client-secret": secret or ""}
    app = create_api(Authenticator(store), NoReader(), None, lambda: None)  # type: ignore[arg-type]
    yield TestClient(app, raise_server_exceptions=False), ids
    store.close()


def test_root_clients_manage_goals(api: Any) -> None:
    http, ids = api
    root = ids["root"]
    url = "/projects/p1/goals"
    assert http.get(url, headers=root).json() == {"goals": []}
    made = http.post(url, headers=root, json={"name": "Blog", "path": "/blog/*"})
    assert made.status_code == 201, made.text
    blog = made.json()
    assert blog["kind"] == "page_view" and blog["path"] == "/blog/*" and blog["property"] is None
    pro = http.post(
        url,
        headers=root,
        json={"name": "Pro", "event": "signup", "property": {"key": "plan", "value": "pro"}},
    )
    assert pro.status_code == 201 and pro.json()["property"] == {"key": "plan", "value": "pro"}
    assert [g["name"] for g in http.get(url, headers=root).json()["goals"]] == ["Blog", "Pro"]
    assert http.post(url, headers=root, json={"name": "Blog", "event": "x"}).status_code == 409
    # the insight route sees the new goal at once (this replica forgot its cached list)
    answer = http.get("/insights/p1/goals", headers=ids["read"]).json()
    assert answer["uniqueVisitors"] == 4 and [g["name"] for g in answer["goals"]] == ["Blog", "Pro"]
    flt = json.dumps([{"field": "goal", "operator": "is", "value": "Nope"}])
    unknown = http.get("/insights/p1/metrics", params={"filters": flt}, headers=ids["read"])
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_goal" and "Nope" in unknown.text
    gone = http.delete(f"{url}/{blog['id']}", headers=root)
    assert gone.status_code == 200 and gone.json()["deleted"]["name"] == "Blog"
    assert http.delete(f"{url}/{blog['id']}", headers=root).status_code == 404
    assert http.delete(f"{url}/{'x' * 500}", headers=root).status_code == 404
    assert [g["name"] for g in http.get(url, headers=root).json()["goals"]] == ["Pro"]


def test_only_the_projects_root_clients_may(api: Any) -> None:
    http, ids = api
    url = "/projects/p1/goals"
    body = {"name": "Blog", "path": "/blog/*"}
    for method, path in (("GET", url), ("POST", url), ("DELETE", f"{url}/abc")):
        assert http.request(method, path, json=body).status_code == 401
        wrong = {**ids["root"], "event-lens-client-secret": "nope"}
        assert http.request(method, path, json=body, headers=wrong).status_code == 401
        for who in ("read", "write", "other"):
            r = http.request(method, path, json=body, headers=ids[who])
            assert r.status_code == 403, (method, who, r.text)
    assert http.get(url, headers=ids["root"]).json() == {"goals": []}


def test_bad_bodies_are_400s_naming_the_field(api: Any) -> None:
    http, ids = api
    url = "/projects/p1/goals"
    root = ids["root"]
    for body, field in [
        ({"name": "x"}, "body"),
        ({"name": "", "path": "/a"}, "name"),
        ({"path": "/a"}, "name"),
        ({"name": "x", "path": 5}, "path"),
        ({"name": "x", "event": "e", "property": {"key": "k"}}, "property.value"),
        ({"name": "x", "event": "e", "property": "plan=pro"}, "property"),
        ({"name": "x", "event": "e", "kind": "event"}, "kind"),
        ([1, 2], "body"),
        ("text", "body"),
    ]:
        r = http.post(url, headers=root, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["message"].startswith(field), (body, r.json())
    for raw in (b"{", b"\xff\xfe", b'{"name": "\\ud800", "path": "/a"}', b""):
        r = http.post(url, headers={**root, "content-type": "application/json"}, content=raw)
        assert r.status_code == 400, (raw, r.text)
    big = http.post(url, headers=root, json={"name": "x", "path": "/" + "a" * 20_000})
    assert big.status_code == 413
    assert http.get(url, headers=root).json() == {"goals": []}


def test_a_project_has_at_most_max_goals(api: Any) -> None:
    http, ids = api
    url = "/projects/p1/goals"
    for i in range(MAX_GOALS):
        assert http.post(url, headers=ids["root"], json={"name": f"g{i}", "event": "e"}).status_code == 201
    r = http.post(url, headers=ids["root"], json={"name": "one more", "event": "e"})
    assert r.status_code == 400 and str(MAX_GOALS) in r.json()["message"]
