"""Client IP from headers (eventlens.ingest.clientip.client_ip)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest.clientip import client_ip

ORDER = ["x-client-ip", "x-forwarded-for", "cf-connecting-ip", "forwarded", "x-real-ip"]
V6 = "2606:4700:4700::1111"


@pytest.mark.parametrize(
    ("headers", "peer", "expected"),
    [
        ({}, "203.0.114.7", "203.0.114.7"),
        ({}, "10.0.0.5", "10.0.0.5"),  # the peer is the last resort, even if private
        ({}, None, ""),
        ({"x-forwarded-for": "8.8.8.8"}, "10.0.0.1", "8.8.8.8"),
        ({"x-forwarded-for": "8.8.8.8, 1.1.1.1"}, None, "8.8.8.8"),
        # private, loopback, link-local, CGNAT, documentation and unspecified hops are skipped
        ({"x-forwarded-for": "10.1.2.3, 192.168.0.9, 8.8.4.4"}, None, "8.8.4.4"),
        ({"x-forwarded-for": "127.0.0.1, 172.16.5.4, 9.9.9.9"}, None, "9.9.9.9"),
        ({"x-forwarded-for": "169.254.1.1,100.64.0.1,0.0.0.0,192.0.2.1,1.0.0.1"}, None, "1.0.0.1"),
        ({"x-forwarded-for": "::1, fe80::1, fc00::1, " + V6}, None, V6),
        ({"x-forwarded-for": "unknown, garbage, 8.8.8.8"}, None, "8.8.8.8"),
        ({"x-forwarded-for": " 8.8.8.8 "}, None, "8.8.8.8"),
        ({"x-forwarded-for": '"8.8.8.8"'}, None, "8.8.8.8"),
        # ports
        ({"x-forwarded-for": "8.8.8.8:443"}, None, "8.8.8.8"),
        ({"x-forwarded-for": f"[{V6}]:8080"}, None, V6),
        ({"x-forwarded-for": f"[{V6}]"}, None, V6),
        ({"x-forwarded-for": "2606:4700:4700:0:0:0:0:1111"}, None, V6),  # normalised
        # RFC 7239 Forwarded
        ({"forwarded": "for=8.8.8.8"}, None, "8.8.8.8"),
        ({"forwarded": "For=8.8.8.8:1234;proto=https;by=1.1.1.1"}, None, "8.8.8.8"),
        ({"forwarded": 'for="[2606:4700:4700::1111]:4711"'}, None, V6),
        ({"forwarded": "for=10.0.0.1, for=9.9.9.9"}, None, "9.9.9.9"),
        ({"forwarded": "for=_hidden, for=unknown"}, "10.9.9.9", "10.9.9.9"),
        ({"forwarded": "proto=https;by=8.8.8.8"}, None, ""),  # by= is the proxy, not the client
        # header order: the first header with a public address wins, not the first header present
        (
            {"x-client-ip": "10.0.0.1", "x-forwarded-for": "8.8.8.8", "cf-connecting-ip": "1.1.1.1"},
            None,
            "8.8.8.8",
        ),
        ({"x-client-ip": "1.1.1.1", "x-forwarded-for": "8.8.8.8"}, None, "1.1.1.1"),
        ({"x-real-ip": "8.8.8.8", "cf-connecting-ip": "1.1.1.1"}, None, "1.1.1.1"),
        ({"x-client-ip": ""}, "10.0.0.2", "10.0.0.2"),
        ({"x-client-ip": "10.0.0.1"}, "10.0.0.2", "10.0.0.2"),
        # headers not in the order are ignored
        ({"true-client-ip": "8.8.8.8"}, "10.0.0.2", "10.0.0.2"),
        # IPv4-mapped IPv6: private ones are private
        ({"x-forwarded-for": "::ffff:10.0.0.1, 8.8.8.8"}, None, "8.8.8.8"),
    ],
)
def test_client_ip(headers: dict[str, str], peer: str | None, expected: str) -> None:
    assert client_ip(headers, ORDER, peer) == expected


def test_ipv4_mapped_public_address_is_the_ipv4_address() -> None:
    """The same visitor through a dual-stack proxy must hash and geolocate the same."""
    assert client_ip({"x-forwarded-for": "::ffff:8.8.8.8"}, ORDER, None) == "8.8.8.8"


def test_order_is_configurable() -> None:
    headers = {"x-forwarded-for": "8.8.8.8", "cf-connecting-ip": "1.1.1.1"}
    assert client_ip(headers, ["cf-connecting-ip", "x-forwarded-for"], None) == "1.1.1.1"
    assert client_ip(headers, [], "10.0.0.1") == "10.0.0.1"


@settings(max_examples=100, deadline=None)
@given(st.ip_addresses(v=4), st.lists(st.ip_addresses(v=4, network="10.0.0.0/8"), max_size=4))
def test_private_hops_before_a_public_one_are_skipped(public: object, private: list[object]) -> None:
    chain = ", ".join([*map(str, private), str(public)])
    got = client_ip({"x-forwarded-for": chain}, ORDER, "peer")
    if public.is_global:  # type: ignore[attr-defined]
        assert got == str(public)
    else:
        assert got == "peer"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_garbage_never_raises(value: str) -> None:
    assert isinstance(client_ip({"x-forwarded-for": value, "forwarded": value}, ORDER, "p"), str)
