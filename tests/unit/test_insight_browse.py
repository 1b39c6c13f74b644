"""The read routes without Ray: cursors, page-size and cursor rules, the SQL of each list (tables,
order, the position after a cursor, everything bound) and the shapes answered."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal
from typing import Any

import orjson
import pytest

from eventlens.errors import ClientError
from eventlens.insights import browse
from eventlens.insights.cursor import Position, decode_cursor, encode_cursor
from eventlens.insights.models import (
    MAX_PAGE,
    EventsParams,
    ParamsError,
    ProfileParams,
    ProfilesParams,
    SessionsParams,
)
from eventlens.insights.params import parse_range
from eventlens.insights.scope import Scope
from eventlens.records import EVENT_COLUMNS, SESSION_COLUMNS
from tests.unit.insight_sql import HOSTILE, PROJECT, check_bound, eq, scope

MS = 1_780_000_000_123


# cursors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["events", "sessions", "profiles"])
@pytest.mark.parametrize("ident", ["0193a8f2-6b1c-7d2e-9f40-3c5a7b9e1d02", "", HOSTILE, "ü/é~2", "x" * 264])
def test_a_cursor_decodes_to_the_position_it_was_made_from(kind: Any, ident: str) -> None:
    token = encode_cursor(kind, Position(MS, ident))
    assert decode_cursor(kind, token) == Position(MS, ident)
    # opaque and URL-safe: nothing to escape in a query string
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "zz",
        "!!!!",
        "not a cursor",
        "é",
        _token(["s", MS, "a"]),  # a sessions cursor on the events list
        _token(["e", MS]),
        _token(["e", MS, "a", "b"]),
        _token({"e": MS}),
        _token(["e", float(MS), "a"]),
        _token(["e", True, "a"]),
        _token(["e", str(MS), "a"]),
        _token(["e", -1, "a"]),  # before 1971
        _token(["e", 10**15, "a"]),  # after 2199
        _token(["e", MS, 7]),
        _token(["e", MS, "x" * 301]),
        _token(["e", MS, "a"]) + "x",
        "A" * 2000,
    ],
)
def test_a_bad_cursor_is_a_400_invalid_cursor(token: str) -> None:
    with pytest.raises(ClientError) as err:
        decode_cursor("events", token)
    assert err.value.status == 400 and err.value.code == "invalid_cursor"
    assert "nextCursor" in err.value.message


# parameter rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [EventsParams, SessionsParams, ProfilesParams, ProfileParams])
def test_page_size_is_1_to_500_default_50(model: Any) -> None:
    assert model().limit == 50 and model(limit=MAX_PAGE).limit == 500 and model(limit=1).limit == 1
    for bad in (0, -1, MAX_PAGE + 1, 10_000):
        with pytest.raises(ParamsError) as err:
            model(limit=bad)
        assert err.value.status == 400 and err.value.code == "invalid_limit" and "1-500" in err.value.message


def test_the_cursor_is_checked_with_the_parameters() -> None:
    events = encode_cursor("events", Position(MS, "e1"))
    assert EventsParams(cursor=events).after == Position(MS, "e1")
    assert EventsParams().after is None and EventsParams(cursor="").after is None  # the first page
    for model in (SessionsParams, ProfilesParams):
        with pytest.raises(ParamsError) as err:
            model(cursor=events)
        assert err.value.code == "invalid_cursor"
    sessions = encode_cursor("sessions", Position(MS, "s1"))
    assert SessionsParams(cursor=sessions).after == Position(MS, "s1")


def test_each_list_takes_only_its_parameters() -> None:
    assert EventsParams(includeMarkers=True).includeMarkers
    with pytest.raises(ParamsError) as err:
        SessionsParams(includeMarkers=True)
    assert err.value.code == "unknown_parameter" and "'includeMarkers'" in err.value.message
    # a profile is never a bot: the switch would be ignored, so it is refused
    with pytest.raises(ParamsError) as err:
        ProfilesParams(includeBots=True)
    assert err.value.code == "unknown_parameter" and "'includeBots'" in err.value.message
    with pytest.raises(ParamsError) as err:
        ProfileParams(cursor="x")
    assert err.value.code == "unknown_parameter"


def test_profiles_filter_on_profile_fields_events_on_event_columns() -> None:
    by_email = '[{"field": "email", "operator": "eq", "value": "a@b.c"}]'
    assert ProfilesParams(filters=by_email).scope("p").filters[0].column == "email"
    camel = '[{"field": "firstName", "operator": "startsWith", "value": "An"}]'
    assert ProfilesParams(filters=camel).scope("p").filters[0].column == "first_name"
    prop = '[{"field": "properties.plan", "operator": "eq", "value": "pro"}]'
    assert ProfilesParams(filters=prop).scope("p").filters[0].key == "plan"
    for model, flt in (
        (EventsParams, by_email),
        (ProfilesParams, '[{"field": "country", "operator": "eq", "value": "DE"}]'),
    ):
        with pytest.raises(ParamsError) as err:
            model(filters=flt)
        assert err.value.code == "invalid_filter" and "unknown field" in err.value.message


# SQL -------------------------------------------------------------------------------------------
def test_events_are_read_final_newest_first_without_markers_unless_asked() -> None:
    sql, params = browse.events_sql(scope(filters=eq("path", HOSTILE)), 50)
    assert "FROM events FINAL" in sql and "ORDER BY created_at DESC, id DESC" in sql
    assert "name NOT IN {markers:Array(String)}" in sql and "(is_bot = 0 OR {bots:UInt8} = 1)" in sql
    assert "path = {f0:String}" in sql and params["limit"] == 51  # one more: is there a next page?
    assert "after_ms" not in sql
    check_bound(sql, params, HOSTILE)
    sql, params = browse.events_sql(scope(), 10, markers=True)
    assert "markers" not in sql and params["limit"] == 11
    check_bound(sql, params)


def test_a_cursor_continues_strictly_after_its_row() -> None:
    sql, params = browse.events_sql(scope(), 50, Position(MS, HOSTILE))
    assert "created_at <= fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC')" in sql
    assert "(created_at < fromUnixTimestamp64Milli({after_ms:Int64}, 'UTC') OR id < {after_id:String})" in sql
    assert params["after_ms"] == MS and params["after_id"] == HOSTILE
    check_bound(sql, params, HOSTILE)
    sql, params = browse.sessions_sql(scope(), 50, Position(MS, HOSTILE))
    assert "OR session_id < {after_id:String}" in sql and "opened_at <= fromUnix" in sql
    check_bound(sql, params, HOSTILE)
    sql, params = browse.profiles_sql(scope(), 50, Position(MS, HOSTILE))
    assert "OR profile_id < {after_id:String}" in sql and "updated_at <= fromUnix" in sql
    check_bound(sql, params, HOSTILE)


def test_sessions_are_read_final_by_the_time_they_opened_with_the_session_filters() -> None:
    flt = [*eq("country", HOSTILE), *eq("name", "signup")]
    sql, params = browse.sessions_sql(scope(filters=flt), 20)
    assert "FROM sessions FINAL" in sql and "ORDER BY opened_at DESC, session_id DESC" in sql
    assert "opened_at >= {start:DateTime64(3, 'UTC')}" in sql
    # a visit attribute tests the session; an event condition selects sessions holding one
    assert "country = {sf0:String}" in sql and "session_id IN (SELECT session_id FROM events WHERE" in sql
    check_bound(sql, params, HOSTILE, "signup")


def test_profiles_are_read_final_by_their_last_update_with_profile_filters() -> None:
    p = ProfilesParams(filters='[{"field": "email", "operator": "eq", "value": "%s"}]' % HOSTILE)  # noqa: UP031
    sql, params = browse.profiles_sql(p.scope(PROJECT), 50)
    assert "FROM profiles FINAL" in sql and "ORDER BY updated_at DESC, profile_id DESC" in sql
    assert "updated_at >= {start:DateTime64(3, 'UTC')}" in sql and "email = {pf0:String}" in sql
    check_bound(sql, params, HOSTILE)


def test_one_profile_reads_by_key_and_its_person_through_the_aliases() -> None:
    for sql, params in (
        browse.profile_sql(PROJECT, HOSTILE),
        browse.counters_sql(PROJECT, HOSTILE),
        browse.aliases_sql(PROJECT, HOSTILE),
    ):
        check_bound(sql, params, HOSTILE)
    assert "FROM profile_counters FINAL" in browse.counters_sql(PROJECT, "u")[0]
    assert "HAVING argMax(profile_id, created_at) = {profile:String}" in browse.aliases_sql(PROJECT, "u")[0]
    for build in (browse.events_sql, browse.sessions_sql):
        sql, params = build(scope(), 5, person=HOSTILE)
        assert "if(profile_id != '', profile_id, device_id) = {profile:String}" in sql
        assert "IN (\nSELECT alias FROM profile_aliases" in sql
        check_bound(sql, params, HOSTILE)


# shapes ----------------------------------------------------------------------------------------
def event_row(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: "" for c in browse.EVENT_TEXT}
    row.update(id=f"e{i}", name="page_view", is_bot=0, properties={"plan": "pro"}, revenue=Decimal(0))
    row.update(created_at_ms=MS - i, received_at_ms=MS + 5)
    row.update(over)
    return row


def test_an_event_is_answered_with_every_column_in_camel_case() -> None:
    out = browse.event_json(event_row(0, utm_source="news", browser_version="120", is_bot=1))
    assert out["id"] == "e0" and out["name"] == "page_view" and out["utmSource"] == "news"
    assert out["browserVersion"] == "120" and out["isBot"] is True
    assert out["createdAt"] == "2026-05-28T20:26:40.123Z" and out["receivedAt"] == "2026-05-28T20:26:40.128Z"
    assert out["properties"] == {"plan": "pro"}
    assert out["revenue"] == 0 and out["currency"] == ""
    paid = browse.event_json(event_row(1, revenue=Decimal("19.9900"), currency="EUR"))
    assert (paid["revenue"], paid["currency"]) == (19.99, "EUR")
    columns = set(EVENT_COLUMNS) - {"project_id"}
    assert set(out) == {browse.camel(c) for c in columns}


def test_a_session_is_answered_with_its_stored_columns() -> None:
    row: dict[str, Any] = {c: "" for c in browse.SESSION_TEXT}
    row.update(session_id="s1", duration=12.5, page_views=3, events="4", is_bounce=0, is_closed=1, is_bot=0)
    row.update(started_at_ms=MS, ended_at_ms=MS + 12_500, opened_ms=MS)
    out = browse.session_json(row)
    assert out["id"] == "s1" and out["duration"] == 12.5 and out["pageViews"] == 3 and out["events"] == 4
    assert out["isClosed"] is True and out["isBounce"] is False and out["endedAt"].endswith("52.623Z")
    hidden = {"project_id", "session_id", "opened_at", "entry_at", "exit_at", "version", "shard"}
    assert set(out) == {"id"} | {browse.camel(c) for c in set(SESSION_COLUMNS) - hidden}


def test_a_page_has_a_next_cursor_only_when_more_rows_follow() -> None:
    rows = [event_row(i) for i in range(4)]
    full = browse.page("events", rows, 3, browse.event_json, browse._event_key)
    assert [e["id"] for e in full["data"]] == ["e0", "e1", "e2"]
    assert decode_cursor("events", full["nextCursor"]) == Position(MS - 2, "e2")
    last = browse.page("events", rows[:3], 3, browse.event_json, browse._event_key)
    assert len(last["data"]) == 3 and last["nextCursor"] is None
    assert browse.page("events", [], 3, browse.event_json, browse._event_key) == {
        "data": [],
        "nextCursor": None,
    }


class FakeQuery:
    """Answers each query by the table it reads."""

    def __init__(self, **tables: list[dict[str, Any]]) -> None:
        self.tables = tables
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, sql: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        self.sent.append(sql)
        for table in (
            "profile_counters",
            "profiles FINAL",
            "sessions FINAL",
            "events FINAL",
            "profile_aliases",
        ):
            if f"FROM {table}" in sql[0]:
                return self.tables.get(table.split()[0], [])
        raise AssertionError(sql[0])


def profile(pid: str, query: FakeQuery, **params: Any) -> Any:
    return asyncio.run(browse.profile(PROJECT, ProfileParams(**params).with_path({"profile_id": pid}), query))


def test_a_profile_nothing_is_known_of_is_a_404() -> None:
    for pid in ("u1", "", "x" * 257):
        with pytest.raises(ClientError) as err:
            profile(pid, FakeQuery())
        assert err.value.status == 404 and err.value.code == "not_found"


def test_a_profile_seen_only_on_events_is_answered_unidentified() -> None:
    q = FakeQuery(
        events=[event_row(i, profile_id="u1") for i in range(3)],
        profile_counters=[{"property": "logins", "value": 3.0}],
    )
    body = profile("u1", q, limit=2)
    assert body["id"] == "u1" and body["updatedAt"] is None and body["email"] == ""
    assert body["counters"] == {"logins": 3} and body["aliases"] == [] and body["sessions"] == []
    assert [e["id"] for e in body["events"]] == ["e0", "e1"]  # bounded by limit
    assert all(params["profile"] == "u1" and params["project"] == PROJECT for _, params in q.sent)


def test_a_profile_answer_has_its_state_counters_aliases_sessions_and_events() -> None:
    q = FakeQuery(
        profiles=[
            {
                "profile_id": "u1",
                "first_name": "Ada",
                "last_name": "L",
                "email": "ada@example.com",
                "avatar": "",
                "properties": {"plan": "pro"},
                "updated_ms": MS,
            }
        ],
        profile_counters=[{"property": "credits", "value": -1.5}],
        profile_aliases=[{"alias": "dev-1"}],
    )
    body = profile("u1", q)
    assert body == {
        "id": "u1",
        "firstName": "Ada",
        "lastName": "L",
        "email": "ada@example.com",
        "avatar": "",
        "properties": {"plan": "pro"},
        "updatedAt": "2026-05-28T20:26:40.123Z",
        "counters": {"credits": -1.5},
        "aliases": ["dev-1"],
        "sessions": [],
        "events": [],
    }


def test_the_range_applies_to_a_profiles_sessions_and_events() -> None:
    q = FakeQuery(
        profiles=[
            {
                "profile_id": "u1",
                "first_name": "",
                "last_name": "",
                "email": "",
                "avatar": "",
                "properties": {},
                "updated_ms": MS,
            }
        ]
    )
    profile("u1", q, startDate="2026-01-01", endDate="2026-01-31", timezone="Asia/Tokyo")
    rng = parse_range("2026-01-01", "2026-01-31", "Asia/Tokyo")
    windowed = [p for sql, p in q.sent if "FROM sessions" in sql or "FROM events" in sql]
    assert len(windowed) == 2
    assert all(p["start"] == rng.start.replace(tzinfo=None) for p in windowed)
    assert Scope(PROJECT, rng).params()["end"] == windowed[0]["end"]
