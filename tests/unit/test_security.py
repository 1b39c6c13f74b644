"""Secrets, ids and browser origins (eventlens.security)."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.security import (
    generate_client_id,
    generate_project_id,
    generate_secret,
    hash_secret,
    normalize_origin,
    origin_allowed,
    verify_secret,
)


def test_generate_secret_is_random_and_url_safe() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", s)


def test_hash_secret_is_self_describing_and_salted() -> None:
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second  # fresh salt each time
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert len(base64.urlsafe_b64decode(digest + "=")) == 32
    assert "s3cret" not in first


def test_verify_secret_accepts_only_the_right_secret() -> None:
    encoded = hash_secret("correct horse")
    assert verify_secret("correct horse", encoded)
    assert not verify_secret("correct horsE", encoded)
    assert not verify_secret("", encoded)


def test_verify_secret_reads_its_parameters_from_the_encoding() -> None:
    # A hash made with other (cheaper) parameters still verifies: the cost can change over time.
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=1024, r=8, p=1, dklen=32)
    salt_b64, digest_b64 = (base64.urlsafe_b64encode(raw).decode().rstrip("=") for raw in (salt, digest))
    encoded = f"scrypt$1024$8$1${salt_b64}${digest_b64}"
    assert verify_secret("pw", encoded)
    assert not verify_secret("pw2", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt",
        "plaintext-secret",
        "bcrypt$16384$8$1$c2FsdA$aGFzaA",
        "scrypt$abc$8$1$c2FsdA$aGFzaA",
        "scrypt$1000$8$1$c2FsdA$aGFzaA",  # n not a power of two
        "scrypt$1$8$1$c2FsdA$aGFzaA",
        "scrypt$1073741824$8$1$c2FsdA$aGFzaA",  # absurd memory
        "scrypt$16384$0$1$c2FsdA$aGFzaA",
        "scrypt$16384$8$1$$aGFzaA",  # empty salt
        "scrypt$16384$8$1$c2FsdA$",  # empty hash
        "scrypt$16384$8$1$!!!$aGFzaA",  # not base64
        "scrypt$16384$8$1$c2FsdA$aGFzaA$extra",
    ],
)
def test_verify_secret_returns_false_on_malformed_encodings(encoded: str) -> None:
    assert verify_secret("anything", encoded) is False


def test_verify_secret_handles_none_and_non_strings() -> None:
    assert verify_secret("x", None) is False
    assert verify_secret(None, hash_secret("x")) is False  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_verify_secret_never_raises(encoded: str) -> None:
    assert verify_secret("secret", encoded) in (True, False)


def test_generate_client_id_is_uuid4() -> None:
    value = generate_client_id()
    assert uuid.UUID(value).version == 4
    assert str(uuid.UUID(value)) == value


def test_generate_project_id_is_short_lowercase_alnum() -> None:
    ids = {generate_project_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[a-z0-9]{12}", i) for i in ids)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("https://example.com", "https://example.com"),
        ("https://Example.COM/", "https://example.com"),
        ("  example.com  ", "example.com"),
        ("example.com/", "example.com"),
        ("*.example.com", "*.example.com"),
        ("https://*.Example.com", "https://*.example.com"),
        ("https://example.com:443", "https://example.com"),  # default port dropped, like browsers
        ("http://example.com:80", "http://example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("localhost:3000", "localhost:3000"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://bücher.de", "https://xn--bcher-kva.de"),
    ],
)
def test_normalize_origin(raw: str, stored: str) -> None:
    assert normalize_origin(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "*",
        "https://*",
        "*.com",
        "ftp://example.com",
        "javascript:alert(1)",
        "https://example.com/path",
        "https://example.com?q=1",
        "https://example.com#x",
        "https://user@example.com",
        "https://exa mple.com",
        "https://example.com:0",
        "https://example.com:99999",
        "https://example.com:abc",
        "https://-bad-.com",
        "https://",
        "*.[::1]",
    ],
)
def test_normalize_origin_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="invalid origin"):
        normalize_origin(raw)


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        ("https://example.com", ["https://example.com"], True),
        ("https://example.com:443", ["https://example.com"], True),
        ("http://example.com", ["https://example.com"], False),  # scheme is part of the origin
        ("https://example.com:8443", ["https://example.com"], False),
        ("https://example.com", ["example.com"], True),
        ("http://example.com", ["example.com"], True),
        ("http://example.com:8080", ["example.com"], False),
        ("http://example.com:8080", ["example.com:8080"], True),
        ("https://www.example.com", ["example.com"], False),
        ("https://www.example.com", ["*.example.com"], True),
        ("https://a.b.example.com", ["*.example.com"], True),
        ("https://example.com", ["*.example.com"], False),  # apex must be listed itself
        ("https://evilexample.com", ["*.example.com"], False),
        ("https://example.com.evil.net", ["example.com", "*.example.com"], False),
        ("http://www.example.com", ["https://*.example.com"], False),
        ("https://www.example.com", ["https://*.example.com"], True),
        ("http://localhost:3000", ["http://localhost:3000"], True),
        ("http://[::1]:8080", ["http://[::1]:8080"], True),
        ("null", ["example.com"], False),
        ("", ["example.com"], False),
        (None, ["example.com"], False),
        ("https://example.com", [], False),
        ("https://example.com/some/path", ["example.com"], False),
        ("ftp://example.com", ["example.com"], False),
        ("https://EXAMPLE.com", ["https://example.com"], True),
    ],
)
def test_origin_allowed(origin: str | None, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, allowed) is ok
