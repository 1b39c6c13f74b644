"""One body → one WAL record (eventlens.ingest.pipeline): validation, OpenPanel fields, enrichment."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from eventlens.errors import ClientError
from eventlens.ingest.context import RequestContext
from eventlens.ingest.identity import device_hash, visitor_key
from eventlens.ingest.pipeline import Limits, prepare, validate_body
from eventlens.records import TABLES

NOW = 1_750_000_000_000
CTX = RequestContext(
    project_id="proj",
    ip="8.8.8.8",
    user_agent="Mozilla/5.0 (X11; Linux x86_64)",
    now_ms=NOW,
    salt="salt-of-the-day",
    sdk_name="web",
    sdk_version="1.2.3",
)
SERVER = RequestContext(**{**CTX.__dict__, "server_side": True})
LIMITS = Limits()


def track(**payload: Any) -> dict[str, Any]:
    return {"type": "track", "payload": {"name": "page_view", **payload}}


def prep(body: Any, ctx: RequestContext = CTX, limits: Limits = LIMITS) -> dict[str, Any]:
    return prepare(body, ctx, limits).record


def error_of(body: Any, ctx: RequestContext = CTX, limits: Limits = LIMITS) -> ClientError:
    with pytest.raises(ClientError) as info:
        prepare(body, ctx, limits)
    return info.value


# envelope and type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (None, 400, "invalid_body"),
        ([], 400, "invalid_body"),
        ("track", 400, "invalid_body"),
        ({}, 400, "invalid_type"),
        ({"payload": {"name": "x"}}, 400, "invalid_type"),
        ({"type": "Track", "payload": {"name": "x"}}, 400, "invalid_type"),
        ({"type": "screen_view", "payload": {}}, 400, "invalid_type"),
        ({"type": 1, "payload": {}}, 400, "invalid_type"),
        ({"type": ["track"], "payload": {}}, 400, "invalid_type"),
        ({"type": {"a": 1}, "payload": {}}, 400, "invalid_type"),
        ({"type": "track"}, 400, "invalid_payload"),
        ({"type": "track", "payload": None}, 400, "invalid_payload"),
        ({"type": "track", "payload": []}, 400, "invalid_payload"),
        ({"type": "track", "payload": "name=x"}, 400, "invalid_payload"),
        ({"type": "track", "payload": {}}, 400, "invalid_payload"),  # name is required
        (track(properties=[1, 2]), 400, "invalid_payload"),
        (track(properties="x"), 400, "invalid_payload"),
        (track(deviceId=""), 400, "invalid_payload"),
        (track(deviceId=123), 400, "invalid_payload"),
        (track(id="x" * 65), 400, "invalid_payload"),
        (track(id=""), 400, "invalid_payload"),
        (track(path="/" + "x" * 4096), 400, "invalid_payload"),
        (track(timestamp={"at": 1}), 400, "invalid_payload"),
        ({"type": "identify", "payload": {}}, 400, "invalid_payload"),
        ({"type": "identify", "payload": {"profileId": ""}}, 400, "invalid_payload"),
        ({"type": "increment", "payload": {"profileId": "u"}}, 400, "invalid_payload"),
        (
            {"type": "increment", "payload": {"profileId": "u", "property": "p", "value": "lots"}},
            400,
            "invalid_payload",
        ),
        ({"type": "decrement", "payload": {"profileId": "u", "property": ""}}, 400, "invalid_payload"),
        ({"type": "alias", "payload": {"profileId": "u"}}, 400, "invalid_payload"),
    ],
)
def test_invalid_bodies(body: Any, status: int, code: str) -> None:
    err = error_of(body)
    assert (err.status, err.code) == (status, code)
    assert err.message
    assert set(err.body()) == {"error", "message", "details"}


def test_validation_details_name_the_field_without_echoing_input() -> None:
    err = error_of(track(name="", deviceId=42, title="secret-title" * 100))
    locs = {d["loc"] for d in err.details}
    assert any(loc.endswith("name") for loc in locs)
    assert any(loc.endswith("deviceId") for loc in locs)
    assert any(loc.endswith("title") for loc in locs)
    assert "secret-title" not in str(err.body())
    assert "more" in err.message  # two problems: the message says there are more
    assert all("input" not in d for d in err.details)


def test_validate_body_returns_the_model() -> None:
    model = validate_body(track(deviceId="d1"))
    assert model.type == "track"
    assert model.payload.deviceId == "d1"  # type: ignore[union-attr]


# name --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "x" * 200, "ü" * 200, "😀" * 200, "Sign up → step 2", "with space", "with\u00a0nbsp"]
)
def test_valid_names(name: str) -> None:
    assert prep(track(name=name))["name"] == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 201,
        "😀" * 201,
        "a\x00b",
        "line\nbreak",
        "tab\there",
        "cr\r",
        "esc\x1b[0m",
        "del\x7f",
        "c1\x85",
        "c1\x9f",
    ],
)
def test_invalid_names_are_400(name: str) -> None:
    err = error_of(track(name=name))
    assert (err.status, err.code) == (400, "invalid_payload")
    assert any("name" in d["loc"] for d in err.details)


# the track record --------------------------------------------------------------------------------


def test_track_record_shape() -> None:
    prepared = prepare(
        track(
            name="signup",
            deviceId="dev-1",
            sessionId="sess-1",
            profileId="user-1",
            path="https://app.example.com/signup?utm_source=news&ref=x",
            referrer="https://www.google.com/",
            title="Sign up",
            timestamp=NOW - 5000,
            id="client-event-1",
            properties={"plan": "pro", "seats": 3},
            unknownField="ignored",
        ),
        CTX,
        LIMITS,
    )
    assert prepared.type == "track"
    assert prepared.shard_key == "dev-1"
    r = prepared.record
    assert r == {
        "_t": "events",
        "id": "client-event-1",
        "project_id": "proj",
        "name": "signup",
        "device_id": "dev-1",
        "profile_id": "user-1",
        "session_id": "sess-1",
        "created_at": NOW - 5000,
        "received_at": NOW,
        "title": "Sign up",
        "referrer": "https://www.google.com/",
        # the campaign's utm_source names the referrer (eventlens.ingest.referrer, unknown source)
        "referrer_name": "news",
        "referrer_type": "other",
        "properties": {"plan": "pro", "seats": "3"},
        "sdk_name": "web",
        "sdk_version": "1.2.3",
        "origin": "https://app.example.com",
        "path": "/signup",
        "utm_source": "news",
        "utm_medium": "",
        "utm_campaign": "",
        "utm_term": "",
        "utm_content": "",
        "groups": [],
    }
    assert set(r) - {"_t"} <= set(TABLES["events"])


def test_minimal_track_gets_server_defaults() -> None:
    prepared = prepare(track(), CTX, LIMITS)
    r = prepared.record
    assert uuid.UUID(r["id"]).version == 7  # server-assigned, time ordered
    assert r["created_at"] == NOW
    assert r["device_id"] == device_hash("proj", "8.8.8.8", CTX.user_agent, "salt-of-the-day")
    # a derived device is routed by the salt-free visitor key, not by its (salted) device id
    assert prepared.shard_key == "anon:" + visitor_key("8.8.8.8", CTX.user_agent)
    assert "_prev_device" not in r  # no previous salt in this context
    assert r["session_id"] == "" and r["profile_id"] == ""  # the shard assigns the session
    assert r["properties"] == {}
    assert r["origin"] == r["path"] == r["title"] == r["referrer"] == ""


def test_server_ids_are_unique_and_increasing() -> None:
    ids = [prep(track())["id"] for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids == sorted(ids)


def test_device_hash_changes_with_the_salt() -> None:
    other_day = RequestContext(**{**CTX.__dict__, "salt": "salt-of-tomorrow"})
    assert prep(track())["device_id"] != prep(track(), other_day)["device_id"]


# salt rotation -----------------------------------------------------------------------------------

DAY1 = RequestContext(**{**CTX.__dict__, "salt": "salt-1", "prev_salt": "salt-0"})
DAY2 = RequestContext(**{**CTX.__dict__, "salt": "salt-2", "prev_salt": "salt-1"})


def test_derived_device_carries_the_previous_salts_device_and_a_salt_free_shard_key() -> None:
    day1, day2 = prepare(track(), DAY1, LIMITS), prepare(track(), DAY2, LIMITS)
    hashed = {s: device_hash("proj", "8.8.8.8", CTX.user_agent, s) for s in ("salt-0", "salt-1", "salt-2")}
    assert (day1.record["device_id"], day1.record["_prev_device"]) == (hashed["salt-1"], hashed["salt-0"])
    assert (day2.record["device_id"], day2.record["_prev_device"]) == (hashed["salt-2"], hashed["salt-1"])
    # the visitor's id of the day before is what the shard may continue a visit under
    assert day2.record["_prev_device"] == day1.record["device_id"]
    assert day1.record["device_id"] != day2.record["device_id"]
    # both days route to the same shard: the key does not depend on the salt
    key = "anon:" + visitor_key("8.8.8.8", CTX.user_agent)
    assert day1.shard_key == day2.shard_key == key
    assert prepare(track(), CTX, LIMITS).shard_key == key  # nor on whether there is a previous salt
    # the routing key is never stored
    assert visitor_key("8.8.8.8", CTX.user_agent) not in str(day1.record)


def test_salt_free_shard_key_separates_visitors() -> None:
    other_ua = RequestContext(**{**DAY1.__dict__, "user_agent": "curl/8.0"})
    other_ip = RequestContext(**{**DAY1.__dict__, "ip": "9.9.9.9"})
    keys = {prepare(track(), ctx, LIMITS).shard_key for ctx in (DAY1, other_ua, other_ip)}
    assert len(keys) == 3


def test_forwarded_ip_of_a_server_side_sdk_is_the_visitor_for_device_and_shard_key() -> None:
    server = RequestContext(**{**DAY2.__dict__, "server_side": True})
    p = prepare(track(properties={"__ip": "1.1.1.1"}), server, LIMITS)
    assert p.record["device_id"] == device_hash("proj", "1.1.1.1", CTX.user_agent, "salt-2")
    assert p.record["_prev_device"] == device_hash("proj", "1.1.1.1", CTX.user_agent, "salt-1")
    assert p.shard_key == "anon:" + visitor_key("1.1.1.1", CTX.user_agent)


@pytest.mark.parametrize(
    "payload", [{"deviceId": "client-device"}, {"properties": {"__deviceId": "client-device"}}]
)
def test_explicit_device_id_has_no_previous_device_and_is_its_own_shard_key(payload: dict[str, Any]) -> None:
    day1, day2 = prepare(track(**payload), DAY1, LIMITS), prepare(track(**payload), DAY2, LIMITS)
    for p in (day1, day2):
        assert p.record["device_id"] == "client-device"
        assert "_prev_device" not in p.record
        assert p.shard_key == "client-device"


# OpenPanel reserved properties -------------------------------------------------------------------


def test_openpanel_reserved_properties_are_honoured_and_not_stored() -> None:
    r = prep(
        track(
            properties={
                "__path": "https://example.com/p?utm_campaign=c1",
                "__referrer": "https://news.ycombinator.com/",
                "__title": "Title",
                "__timestamp": "2025-06-15T15:00:00Z",
                "__deviceId": "op-device",
                "__ip": "1.1.1.1",
                "kept": "yes",
            }
        )
    )
    assert r["origin"] == "https://example.com"
    assert r["path"] == "/p"
    assert r["utm_campaign"] == "c1"
    assert r["referrer"] == "https://news.ycombinator.com/"
    assert r["title"] == "Title"
    assert r["created_at"] == 1_749_999_600_000
    assert r["device_id"] == "op-device"
    assert r["properties"] == {"kept": "yes"}


def test_payload_fields_win_over_reserved_properties() -> None:
    r = prep(
        track(
            path="/from-payload",
            referrer="https://payload.example/",
            title="payload",
            timestamp=NOW - 1,
            deviceId="payload-device",
            properties={
                "__path": "/from-props",
                "__referrer": "https://props.example/",
                "__title": "props",
                "__timestamp": NOW - 2,
                "__deviceId": "props-device",
            },
        )
    )
    assert (r["path"], r["referrer"], r["title"], r["created_at"], r["device_id"]) == (
        "/from-payload",
        "https://payload.example/",
        "payload",
        NOW - 1,
        "payload-device",
    )
    assert r["properties"] == {}


@pytest.mark.parametrize(
    ("props", "field", "expected"),
    [
        ({"__timestamp": NOW - 10}, "created_at", NOW - 10),
        ({"__timestamp": str(NOW - 10)}, "created_at", NOW - 10),
        ({"__title": 42}, "title", "42"),
        ({"__path": None}, "path", ""),
        ({"__deviceId": ""}, "device_id", device_hash("proj", "8.8.8.8", CTX.user_agent, "salt-of-the-day")),
    ],
)
def test_reserved_property_values(props: dict[str, Any], field: str, expected: Any) -> None:
    assert prep(track(properties=props))[field] == expected


@pytest.mark.parametrize(
    ("props", "status", "code"),
    [
        ({"__path": {"a": 1}}, 422, "invalid_property"),
        ({"__title": ["x"]}, 422, "invalid_property"),
        ({"__deviceId": True}, 422, "invalid_property"),
        ({"__timestamp": {"ms": 1}}, 400, "invalid_timestamp"),
        ({"__timestamp": [NOW]}, 400, "invalid_timestamp"),
        ({"__timestamp": True}, 400, "invalid_timestamp"),
        ({"__timestamp": "not a time"}, 400, "invalid_timestamp"),
    ],
)
def test_reserved_properties_of_the_wrong_type(props: dict[str, Any], status: int, code: str) -> None:
    err = error_of(track(properties=props))
    assert (err.status, err.code) == (status, code)


def test_ip_property_is_honoured_only_for_server_side_requests() -> None:
    body = track(properties={"__ip": "1.1.1.1"})
    browser = prep(body)
    server = prep(body, SERVER)
    assert browser["device_id"] == device_hash("proj", "8.8.8.8", CTX.user_agent, CTX.salt)
    assert server["device_id"] == device_hash("proj", "1.1.1.1", CTX.user_agent, CTX.salt)
    for r in (browser, server):
        assert r["properties"] == {}
        assert "1.1.1.1" not in str(r)  # the raw IP is never stored
    assert "8.8.8.8" not in str(browser)


def test_ip_is_not_stored() -> None:
    assert "8.8.8.8" not in str(prep(track(properties={"a": 1})))


# properties and limits ---------------------------------------------------------------------------


def test_nested_properties_are_flattened() -> None:
    r = prep(track(properties={"cart": {"items": [{"sku": "A1", "qty": 2}], "total": 9.5}, "ok": True}))
    assert r["properties"] == {
        "cart.items.0.sku": "A1",
        "cart.items.0.qty": "2",
        "cart.total": "9.5",
        "ok": "true",
    }


@pytest.mark.parametrize(
    ("props", "limits", "code"),
    [
        ({f"k{i}": i for i in range(4)}, Limits(max_properties=3), "too_many_properties"),
        ({"k": list(range(4))}, Limits(max_properties=3), "too_many_properties"),
        ({"k" * 9: 1}, Limits(max_property_key_length=8), "property_key_too_long"),
        ({"k": "v" * 9}, Limits(max_property_value_length=8), "property_value_too_long"),
    ],
)
def test_property_limits_are_422_never_truncated(props: dict[str, Any], limits: Limits, code: str) -> None:
    err = error_of(track(properties=props), limits=limits)
    assert (err.status, err.code) == (422, code)
    for kind in ("identify",):
        err = error_of({"type": kind, "payload": {"profileId": "u", "properties": props}}, limits=limits)
        assert (err.status, err.code) == (422, code)


def test_properties_at_the_limits_are_kept_whole() -> None:
    limits = Limits(max_properties=3, max_property_key_length=8, max_property_value_length=8)
    props = {"k" * 8: "v" * 8, "a": "b", "c": "d"}
    assert prep(track(properties=props), limits=limits)["properties"] == props


# timestamps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (NOW - 1000, NOW - 1000),
        ("2025-06-15T15:00:00Z", 1_749_999_600_000),
        (NOW + 60_000, NOW + 60_000),
        (NOW + 60_001, NOW),  # more than one minute ahead: server time
        (NOW + 86_400_000, NOW),
    ],
)
def test_timestamps(ts: Any, expected: int) -> None:
    assert prep(track(timestamp=ts))["created_at"] == expected


@pytest.mark.parametrize("ts", [NOW // 1000, str(NOW // 1000), "yesterday", True])
def test_bad_timestamps_are_400(ts: Any) -> None:
    err = error_of(track(timestamp=ts))
    assert (err.status, err.code) == (400, "invalid_timestamp")


def test_future_bound_is_configurable() -> None:
    limits = Limits(max_future_ms=1000)
    assert prep(track(timestamp=NOW + 1000), limits=limits)["created_at"] == NOW + 1000
    assert prep(track(timestamp=NOW + 1001), limits=limits)["created_at"] == NOW


# profile operations ------------------------------------------------------------------------------


def test_identify_record() -> None:
    p = prepare(
        {
            "type": "identify",
            "payload": {
                "profileId": "user-1",
                "firstName": "Ada",
                "email": "ada@example.com",
                "properties": {"plan": {"tier": "pro"}},
            },
        },
        CTX,
        LIMITS,
    )
    assert (p.type, p.shard_key) == ("identify", "profile:user-1")
    r = p.record
    assert r["_t"] == "profiles"
    assert r["first_name"] == "Ada" and r["last_name"] == "" and r["avatar"] == ""
    assert r["email"] == "ada@example.com"
    assert r["properties"] == {"plan.tier": "pro"}
    assert r["updated_at"] == NOW
    assert uuid.UUID(r["event_id"]).version == 7
    assert set(r) - {"_t"} <= set(TABLES["profiles"])


@pytest.mark.parametrize(
    ("kind", "value", "delta"),
    [
        ("increment", None, 1.0),
        ("increment", 5, 5.0),
        ("decrement", None, -1.0),
        ("decrement", 2.5, -2.5),
        ("increment", -3, -3.0),
    ],
)
def test_counter_records(kind: str, value: float | None, delta: float) -> None:
    payload: dict[str, Any] = {"profileId": "user-1", "property": "visits"}
    if value is not None:
        payload["value"] = value
    p = prepare({"type": kind, "payload": payload}, CTX, LIMITS)
    assert (p.type, p.shard_key) == (kind, "profile:user-1")
    assert p.record["_t"] == "profile_counters"
    assert p.record["delta"] == delta
    assert isinstance(p.record["delta"], float)
    assert p.record["property"] == "visits"
    assert set(p.record) - {"_t"} <= set(TABLES["profile_counters"])


def test_alias_record() -> None:
    p = prepare({"type": "alias", "payload": {"profileId": "user-1", "alias": "anon-9"}}, CTX, LIMITS)
    assert (p.type, p.shard_key) == ("alias", "profile:user-1")
    assert p.record["_t"] == "profile_aliases"
    assert (p.record["alias"], p.record["profile_id"], p.record["created_at"]) == ("anon-9", "user-1", NOW)
    assert set(p.record) - {"_t"} <= set(TABLES["profile_aliases"])


# the step list ------------------------------------------------------------------------------------


def test_steps_are_listed_per_message_type_in_order() -> None:
    from eventlens.ingest.pipeline import STEPS
    from eventlens.models import EVENT_TYPES

    assert set(STEPS) == set(EVENT_TYPES)
    assert [name for name, _ in STEPS["track"]] == [
        "event",
        "timestamp",
        "device",
        "revenue",
        "properties",
        "page",
        "referrer",
    ]
    assert [name for name, _ in STEPS["identify"]] == ["profile"]
    assert [name for name, _ in STEPS["group"]] == ["group"]
    assert [name for name, _ in STEPS["assign_group"]] == ["assign_group"]


def test_a_drop_is_a_value_naming_its_index_and_step() -> None:
    from eventlens.ingest.pipeline import Dropped, Prepared, run

    assert isinstance(run(track(), CTX, LIMITS, 0), Prepared)
    parse = run({"type": "nope"}, CTX, LIMITS, 7)
    assert isinstance(parse, Dropped)
    assert (parse.index, parse.step, parse.error.code) == (7, "parse", "invalid_type")
    late = run(track(timestamp="1999-12-31T00:00:00Z"), CTX, LIMITS, 3)
    assert isinstance(late, Dropped)
    assert (late.index, late.step, late.error.status) == (3, "timestamp", 400)
    bad_path = run(track(properties={"__path": {"x": 1}}), CTX, LIMITS, 2)
    assert isinstance(bad_path, Dropped)
    assert (bad_path.step, bad_path.error.code) == ("page", "invalid_property")


# groups (B2B accounts) ----------------------------------------------------------------------------


def test_track_groups_are_stored_once_each_in_order() -> None:
    assert prep(track(groups=["acme", "globex", "acme"]))["groups"] == ["acme", "globex"]
    assert prep(track(groups=[]))["groups"] == []
    assert prep(track())["groups"] == []
    assert prep(track(groups=None))["groups"] == []
    assert prep(track(groups=["x" * 256] * 50))["groups"] == ["x" * 256]


def test_group_record() -> None:
    body = {
        "type": "group",
        "payload": {
            "id": "acme",
            "type": "company",
            "name": "Acme Inc",
            "properties": {"plan": "enterprise", "seats": 40, "address": {"city": "Berlin"}},
            "profileId": "user-1",
            "unknown": "ignored",
        },
    }
    p = prepare(body, CTX, LIMITS)
    assert (p.type, p.shard_key) == ("group", "group:acme")
    assert p.record == {
        "_t": "groups",
        "project_id": "proj",
        "group_id": "acme",
        "type": "company",
        "name": "Acme Inc",
        "properties": {"plan": "enterprise", "seats": "40", "address.city": "Berlin"},
        "created_at": NOW,
        "updated_at": NOW,
        "_link": {"profile_id": "user-1", "group_ids": ["acme"]},
    }
    assert set(p.record) - {"_t", "_link"} <= set(TABLES["groups"])
    bare = prep({"type": "group", "payload": {"id": "g"}})
    assert (bare["type"], bare["name"], bare["properties"]) == ("", "", {})
    assert "_link" not in bare


def test_assign_group_record() -> None:
    body = {"type": "assign_group", "payload": {"groupIds": ["a", "b", "a"], "profileId": "user-1"}}
    p = prepare(body, CTX, LIMITS)
    assert (p.type, p.shard_key) == ("assign_group", "profile:user-1")
    assert p.record["_t"] == "profile_groups"
    assert p.record["_link"] == {"profile_id": "user-1", "group_ids": ["a", "b"]}
    assert p.record["assigned_at"] == NOW


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "group", "payload": {}}, "id"),
        ({"type": "group", "payload": {"id": ""}}, "id"),
        ({"type": "group", "payload": {"id": 5}}, "id"),
        ({"type": "group", "payload": {"id": None}}, "id"),
        ({"type": "group", "payload": {"id": ["a"]}}, "id"),
        ({"type": "group", "payload": {"id": "x" * 257}}, "id"),
        ({"type": "group", "payload": {"id": "g", "name": "n" * 257}}, "name"),
        ({"type": "group", "payload": {"id": "g", "type": {"a": 1}}}, "type"),
        ({"type": "group", "payload": {"id": "g", "properties": [1, 2]}}, "properties"),
        ({"type": "group", "payload": {"id": "g", "profileId": ""}}, "profileId"),
        ({"type": "assign_group", "payload": {"profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": [], "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": "acme", "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": [""], "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": [1], "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": [None], "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": ["g"] * 51, "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": ["x" * 257], "profileId": "u"}}, "groupIds"),
        ({"type": "assign_group", "payload": {"groupIds": ["g"]}}, "profileId"),
        ({"type": "assign_group", "payload": {"groupIds": ["g"], "profileId": ""}}, "profileId"),
        (track(groups="acme"), "groups"),
        (track(groups=[""]), "groups"),
        (track(groups=[1, 2]), "groups"),
        (track(groups=[["nested"]]), "groups"),
        (track(groups={"a": 1}), "groups"),
        (track(groups=["g"] * 51), "groups"),
        (track(groups=["x" * 257]), "groups"),
    ],
)
def test_hostile_group_input_is_a_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    err = error_of(body)
    assert (err.status, err.code) == (400, "invalid_payload")
    assert any(field in d["loc"] for d in err.details), err.details
    assert field in err.message


def test_group_properties_keep_the_property_limits() -> None:
    err = error_of({"type": "group", "payload": {"id": "g", "properties": {"k": "v" * 5000}}})
    assert err.status == 422
