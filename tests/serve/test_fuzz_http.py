"""hypothesis: arbitrary JSON bodies and headers to both ingest endpoints never produce a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Creds, Daemon

pytestmark = pytest.mark.ray

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["", "page_view", "2024-01-01T00:00:00Z", "1700000000000", "x" * 300, "\x00", "/a?b#c"]),
    st.sampled_from(["[]", "[{}]", '[{"type": 2}]', "[1]", "{}", "[" * 30]),  # replay payloads
)
payload_keys = st.sampled_from(
    [
        "name",
        "deviceId",
        "sessionId",
        "profileId",
        "path",
        "referrer",
        "title",
        "timestamp",
        "id",
        "properties",
        "firstName",
        "email",
        "property",
        "value",
        "alias",
        "groups",
        "groupIds",
        "type",
        "chunk_index",
        "events_count",
        "is_full_snapshot",
        "started_at",
        "ended_at",
        "payload",
    ]
)
payloads = st.dictionaries(payload_keys | st.text(max_size=8), field_values, max_size=8)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "track",
                    "identify",
                    "increment",
                    "decrement",
                    "alias",
                    "group",
                    "assign_group",
                    "replay",
                    "x",
                    1,
                    None,
                ]
            )
        },
        optional={"payload": payloads | json_values},
    ),
)
# what an HTTP client can send at all: visible ASCII, no surrounding white space
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "origin",
            "user-agent",
            "x-forwarded-for",
            "x-client-ip",
            "cf-connecting-ip",
            "content-type",
            "openpanel-sdk-name",
            "forwarded",
            "x-real-ip",
        ]
    ),
    header_text,
    max_size=4,
)


@pytest.fixture(scope="module")
def fuzz_creds(embedded: Daemon) -> Creds:
    return embedded.new_project("fuzz")


def _check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error", "message", "details"}, body
        assert "Traceback" not in r.text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, headers=extra_headers, auth=st.sampled_from(["good", "none", "garbage"]))
def test_track_never_5xx(
    embedded: Daemon, fuzz_creds: Creds, body: Any, headers: dict[str, str], auth: str
) -> None:
    h = dict(headers)
    if auth == "good":
        h.update(fuzz_creds.write_headers())
    elif auth == "garbage":
        h.update({"event-lens-client-id": "x" * 200, "openpanel-client-secret": "y"})
    _check(embedded.http.post("/track", content=json.dumps(body), headers=h))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    envelope=st.one_of(
        json_values, st.fixed_dictionaries({"events": st.lists(bodies, max_size=15) | json_values})
    ),
    headers=extra_headers,
)
def test_batch_never_5xx(embedded: Daemon, fuzz_creds: Creds, envelope: Any, headers: dict[str, str]) -> None:
    h = {**headers, **fuzz_creds.write_headers()}
    _check(embedded.http.post("/track/batch", content=json.dumps(envelope), headers=h))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_5xx(embedded: Daemon, fuzz_creds: Creds, raw: bytes) -> None:
    for path in ("/track", "/track/batch"):
        _check(embedded.http.post(path, content=raw, headers=fuzz_creds.write_headers()))
