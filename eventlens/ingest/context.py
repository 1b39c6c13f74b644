"""What one request tells every event it carries: project, client address, user agent, geo, salts.

Built once per request (a batch shares it) from the headers and the authenticated caller, so the
per-event steps in ``ingest.pipeline`` never look at HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventlens.ingest.clientip import client_ip
from eventlens.ingest.geo import GeoLookup, enrich_geo
from eventlens.ingest.useragent import parse_user_agent


@dataclass(frozen=True)
class RequestContext:
    project_id: str
    ip: str
    user_agent: str
    now_ms: int
    salt: str
    prev_salt: str = ""
    server_side: bool = False
    sdk_name: str = ""
    sdk_version: str = ""
    origin: str = ""  # the request's Origin header: the page's site when paths come without one
    currency: str = "USD"  # the project's default currency: revenue events without one get it
    # per-request enrichment (user agent, geo): the same for every event of a batch
    enrichment: Mapping[str, Any] = field(default_factory=dict)


def enrichment(
    ip: str, user_agent: str, headers: Mapping[str, str], server_side: bool, geo: GeoLookup | None
) -> dict[str, Any]:
    """User agent and geo columns of a request."""
    ua = parse_user_agent(user_agent).columns()
    if server_side and ua["is_bot"]:
        # a server-side SDK authenticated with its secret is never a bot: its user agent is an
        # HTTP library's, not its visitors'
        ua["is_bot"] = 0
        if ua["device"] == "bot":
            ua["device"] = ""
    return {**ua, **enrich_geo(geo, ip, headers)._asdict()}


def user_agent_of(headers: Mapping[str, str]) -> str:
    return headers.get("user-agent", "")[:1024]


def build_context(
    project_id: str,
    headers: Mapping[str, str],
    peer: str | None,
    salts: tuple[str, str],
    *,
    ip_headers: Sequence[str],
    geo: GeoLookup | None,
    server_side: bool = False,
    now_ms: int | None = None,
    currency: str = "USD",
) -> RequestContext:
    """``headers`` with lower-case names; ``salts`` the current and the previous period's."""
    ip = client_ip(headers, ip_headers, peer)
    user_agent = user_agent_of(headers)
    return RequestContext(
        project_id=project_id,
        ip=ip,
        user_agent=user_agent,
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        salt=salts[0],
        prev_salt=salts[1],
        server_side=server_side,
        sdk_name=headers.get("openpanel-sdk-name", headers.get("event-lens-sdk-name", ""))[:64],
        sdk_version=headers.get("openpanel-sdk-version", headers.get("event-lens-sdk-version", ""))[:64],
        origin=(headers.get("origin") or "")[:512],
        currency=currency,
        enrichment=enrichment(ip, user_agent, headers, server_side, geo),
    )
