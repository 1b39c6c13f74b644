"""The client's IP: first valid public address in a configurable header order, then the peer."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache


@lru_cache(maxsize=65536)  # visitors repeat; parsing an address is most of a request's IP cost
def _public(candidate: str) -> str | None:
    text = candidate.strip().strip('"')
    if text.lower().startswith("for="):  # RFC 7239 Forwarded: for=1.2.3.4
        text = text[4:].strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:1.2.3.4 from a dual-stack proxy is the visitor's IPv4 address
    if ip.is_global:
        return str(ip)
    return None


def client_ip(headers: Mapping[str, str], order: Sequence[str], peer: str | None) -> str:
    """Raw IP for geo and the device hash; never stored. Falls back to the peer, even if private."""
    for name in order:
        value = headers.get(name)
        if not value:
            continue
        for part in value.replace(";", ",").split(","):
            found = _public(part)
            if found:
                return found
    return peer or ""
