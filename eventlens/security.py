"""Client credentials: generating ids and secrets, and storing secrets only as slow salted hashes.

Secrets are hashed with stdlib ``hashlib.scrypt`` so a leaked metadata database does not leak
usable credentials. The encoding names its own parameters (``scrypt$N$r$p$salt$hash``), so the cost
can be raised later without invalidating hashes already stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

# Interactive-login strength: 16 MiB and tens of milliseconds per hash. That is too slow to pay on
# every request, so callers on the hot path should remember successful verifications.
SCRYPT_N = 16384
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_SCHEME = "scrypt"
# Refuse absurd parameters from a tampered row instead of allocating gigabytes.
_MAX_N = 1 << 20
_MAX_R = 32
_MAX_P = 16

_PROJECT_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PROJECT_ID_LENGTH = 12


def generate_secret() -> str:
    """A new client secret: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def generate_client_id() -> str:
    """A new client id (a random UUID4 string)."""
    return str(uuid.uuid4())


def generate_project_id() -> str:
    """A new project id: 12 lowercase alphanumerics, safe in URLs and paths (~62 bits)."""
    return "".join(secrets.choice(_PROJECT_ID_ALPHABET) for _ in range(PROJECT_ID_LENGTH))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # maxmem must cover 128 * n * r bytes plus slack, or OpenSSL refuses the parameters.
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * n * r + (1 << 20)
    )


def hash_secret(secret: str) -> str:
    """Hash ``secret`` with a fresh random salt; the result is self-describing."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64encode(salt)}${_b64encode(digest)}"


def verify_secret(secret: str, encoded: str | None) -> bool:
    """True if ``secret`` matches ``encoded``; False (never an exception) for anything malformed."""
    if not isinstance(secret, str) or not isinstance(encoded, str):
        return False
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = _b64decode(parts[4])
        expected = _b64decode(parts[5])
    except (ValueError, binascii.Error):
        return False
    # n must be a power of two > 1 for scrypt; bounds keep a tampered row from exhausting memory.
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
        return False
    if not salt or not expected:
        return False
    try:
        actual = _scrypt(secret, salt, n, r, p, len(expected))
    except (ValueError, MemoryError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(actual, expected)


# --- browser origins -------------------------------------------------------------------------
# Secret-less write clients are tied to the web origins allowed to send them events. Stored forms:
#   https://example.com[:port]   exact scheme, host and port
#   example.com[:port]           that host over http or https (default port unless one is given)
#   *.example.com                any subdomain (not the apex; list it separately), any scheme
#   https://*.example.com        any subdomain over that scheme
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_RE = re.compile(rf"^(?:{_LABEL})(?:\.{_LABEL})*$")
_IPV6_RE = re.compile(r"^\[[0-9a-f:.]+\]$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host_port(hostport: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (host may be a bracketed IPv6 literal); ValueError if malformed."""
    if hostport.startswith("["):
        inner, bracket, rest = hostport[1:].partition("]")
        if not bracket or not _IPV6_RE.match(f"[{inner}]") or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid origin {what!r}: bad host")
        host, port_text = f"[{inner}]", (rest[1:] if rest else None)
    else:
        host, sep, after = hostport.partition(":")
        port_text = after if sep else None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid origin {what!r}: bad port")
    return host, int(port_text)


def normalize_origin(value: str) -> str:
    """Canonical stored form of an allowed origin (lowercase, no trailing slash, no default port).

    Raises ValueError naming the bad value: origins with paths, queries, credentials, other schemes
    or a bare ``*`` are refused, because an origin list that admits everything protects nothing.
    """
    raw = value.strip().lower()
    scheme: str | None = None
    rest = raw
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"invalid origin {value!r}: scheme must be http or https")
    rest = rest.rstrip("/")
    if not rest:
        raise ValueError(f"invalid origin {value!r}: empty host")
    if rest == "*":
        raise ValueError(f"invalid origin {value!r}: '*' would admit every site; list the origins")
    if any(c in rest for c in "/?#@\\ \t"):
        raise ValueError(f"invalid origin {value!r}: only scheme, host and port are allowed")
    wildcard = rest.startswith("*.")
    hostport = rest[2:] if wildcard else rest
    host, port = _split_host_port(hostport, value)
    if not host.startswith("["):
        try:
            # Browsers send internationalised hosts as punycode; store what they will send.
            host = host.encode("idna").decode("ascii") if not host.isascii() else host
        except UnicodeError as exc:
            raise ValueError(f"invalid origin {value!r}: bad host name") from exc
        if not _HOST_RE.match(host) or len(host) > 253:
            raise ValueError(f"invalid origin {value!r}: bad host name")
    elif wildcard:
        raise ValueError(f"invalid origin {value!r}: wildcards need a domain name")
    if wildcard and "." not in host:
        # "*.com" would admit a whole top-level domain.
        raise ValueError(f"invalid origin {value!r}: wildcard must name a domain like *.example.com")
    if scheme and port == _DEFAULT_PORTS[scheme]:
        port = None
    out = f"{scheme}://" if scheme else ""
    out += ("*." if wildcard else "") + host
    return out + (f":{port}" if port is not None else "")


def _parse_request_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an ``Origin`` header, or None if it is not a usable http(s) origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme]


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's ``Origin`` header matches one of the stored (normalised) ``allowed``."""
    if not origin:
        return False
    request = _parse_request_origin(origin)
    if request is None:
        return False
    req_scheme, req_host, req_port = request
    for entry in allowed:
        scheme, _, rest = entry.rpartition("://")
        if scheme and scheme != req_scheme:
            continue
        wildcard = rest.startswith("*.")
        hostport = rest[2:] if wildcard else rest
        try:
            host, port = _split_host_port(hostport, entry)
        except ValueError:
            continue
        host = host.strip("[]")
        if port is None:
            # An entry without a port means the scheme's default port, as in a browser's Origin.
            port = _DEFAULT_PORTS[scheme or req_scheme]
        if port != req_port:
            continue
        if wildcard:
            if req_host.endswith("." + host):
                return True
        elif req_host == host:
            return True
    return False
