"""Referrer URL (+ page URL, UTM) → referrer, referrer_name, referrer_type.

Types: ``direct | search | social | email | ad | internal | other``.

Rules, in order:

1. No referrer (empty, or nothing that parses to a host) → ``direct``, name "".
2. Same site as the page (equal host, or the same registrable domain by the Public Suffix
   List, e.g. ``blog.shop.co.uk`` vs ``www.shop.co.uk``) → ``internal``, name "".
3. A host in the referrer list (the host itself or a parent domain: ``news.google.co.uk`` →
   ``google.co.uk``; entries with a path such as ``google.de/imgres`` are tried first) →
   the list's source name, and its medium mapped: search→search, social→social,
   email→email, paid→ad, unknown→other.
4. Any other host → name = host without a leading ``www.``, type ``other``.

UTM values override (the page URL's ``utm_source``/``utm_medium``):

- ``utm_source`` sets the name: the list's spelling when the source is a known name
  (``google`` → "Google"), an alias (``fb`` → "Facebook") or a listed host
  (``news.google.com`` → "Google News"); otherwise the value as given (``newsletter``).
- ``utm_medium`` sets the type when recognised (``MEDIUM_TYPES``: cpc/ppc/paid*/display/
  banner → ad; email/newsletter → email; social/sm → social; organic → search;
  referral → other).
- Otherwise the type is the known source's type; ``other`` for an unknown source; and
  with ``utm_medium`` alone, the referrer's own type unless that is ``direct`` or
  ``internal`` (then ``other``): a tagged link is a campaign visit.

The list is Snowplow's referer-parser database (``eventlens/data/referers.json``, licence
in ``eventlens/data/REFERERS-LICENSE``) plus ``referers-extra.json``. Registrable domains
come from ``tldextract``'s bundled PSL snapshot: no network, no cache directory.
Pure and never raising on bad input; per-host work is cached.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import NamedTuple
from urllib.parse import urlsplit

import tldextract

TYPES = ("direct", "search", "social", "email", "ad", "internal", "other")

# Snowplow medium → our referrer_type
MEDIUM_TO_TYPE = {"search": "search", "social": "social", "email": "email", "paid": "ad", "unknown": "other"}

# utm_medium (lower-cased, only [a-z0-9] kept) → referrer_type
MEDIUM_TYPES: dict[str, str] = {
    **dict.fromkeys(["cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "sem", "ad", "ads"], "ad"),
    **dict.fromkeys(
        ["paid", "paidsearch", "paidsocial", "display", "banner", "retargeting", "remarketing"], "ad"
    ),
    **dict.fromkeys(["email", "mail", "newsletter", "emailnewsletter"], "email"),
    **dict.fromkeys(["social", "socialnetwork", "socialmedia", "sm", "socialorganic"], "social"),
    **dict.fromkeys(["organic", "search", "organicsearch", "seo"], "search"),
    **dict.fromkeys(["referral", "referal", "ref", "link"], "other"),
}

# utm_source shorthands → the list's source name
SOURCE_ALIASES = {
    "fb": "Facebook",
    "ig": "Instagram",
    "insta": "Instagram",
    "tw": "Twitter",
    "x": "Twitter",
    "li": "LinkedIn",
    "yt": "Youtube",
    "adwords": "Google",
    "googleads": "Google",
    "google_ads": "Google",
    "google-ads": "Google",
}

# when a source name appears under several mediums, the one a bare utm_source implies
_MEDIUM_PRIORITY = ("search", "social", "email", "paid", "unknown")

_MAX_HOST = 253
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_FAST_URL = re.compile(r"(?i)https?://([a-z0-9.-]+)(?::[0-9]{1,5})?(?=[/?#]|$)([^?#]*)")
_IPV4ISH = re.compile(r"^[0-9.]+$")
_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f]")
_DOMAINISH = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?(/|$)")


class Referrer(NamedTuple):
    referrer: str = ""
    referrer_name: str = ""
    referrer_type: str = "direct"


DIRECT = Referrer()


class _Tables(NamedTuple):
    hosts: dict[str, tuple[str, str]]  # host → (name, type)
    paths: dict[str, list[tuple[str, str, str]]]  # host → [(path prefix, name, type)], longest first
    names: dict[str, tuple[str, str]]  # lower-case source name → (name, type)


def _read(name: str) -> dict:
    return json.loads(resources.files("eventlens").joinpath("data", name).read_text("utf-8"))


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    hosts: dict[str, tuple[str, str]] = {}
    paths: dict[str, list[tuple[str, str, str]]] = {}
    by_name: dict[str, dict[str, str]] = {}
    for data in (_read("referers.json"), _read("referers-extra.json")):  # extras win
        for medium, sources in data.items():
            if medium not in MEDIUM_TO_TYPE:
                continue
            rtype = MEDIUM_TO_TYPE[medium]
            for name, info in sources.items():
                by_name.setdefault(name.lower(), {})[medium] = name
                for domain in info.get("domains", ()):
                    host, _, path = domain.strip().lower().partition("/")
                    if not host:
                        continue
                    if path:
                        entries = [e for e in paths.get(host, []) if e[0] != "/" + path.rstrip("/")]
                        entries.append(("/" + path.rstrip("/"), name, rtype))
                        entries.sort(key=lambda e: len(e[0]), reverse=True)
                        paths[host] = entries
                    else:
                        hosts[host] = (name, rtype)
    names = {}
    for key, mediums in by_name.items():
        medium = next(m for m in _MEDIUM_PRIORITY if m in mediums)
        names[key] = (mediums[medium], MEDIUM_TO_TYPE[medium])
    return _Tables(hosts, paths, names)


def warm_up() -> None:
    """Load the referrer list and the suffix list now (~50 ms), not on the first event."""
    _tables()
    _site("www.example.co.uk")


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    # the bundled Public Suffix List snapshot only: no download, no cache directory
    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), include_psl_private_domains=True)


def _split(url: str) -> tuple[str, str]:
    """(host, path) of an URL; ("", "") when there is no usable host."""
    url = url.strip()
    # the usual http(s)://host[:port]/path, without urlsplit's cost (which also drops tabs and
    # newlines anywhere: leave those URLs to it)
    m = _FAST_URL.match(url)
    if m is not None and "\t" not in url and "\n" not in url and "\r" not in url:
        host = m.group(1).lower().rstrip(".")
        if host and len(host) <= _MAX_HOST:
            return host, m.group(2)
    return _split_slow(url)


def _split_slow(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
        if not parts.netloc and not parts.scheme and _DOMAINISH.match(url):
            parts = urlsplit("http://" + url)  # "example.com/page" sent without a scheme
        host = parts.hostname or ""
    except ValueError:
        return "", ""
    host = host.rstrip(".")
    if not host or len(host) > _MAX_HOST or _BAD_HOST.search(host):
        return "", ""
    return host, parts.path


# Browsers send cross-origin referrers as a bare origin by default (strict-origin-when-cross-
# origin), so referrer strings repeat; page URLs repeat per page. Separate caches: many distinct
# page URLs must not evict the referrers.
_parse = lru_cache(maxsize=20_000)(_split)


@lru_cache(maxsize=10_000)
def _page_host(page_url: str) -> str:
    return _split(page_url)[0]


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") and len(host) > 4 else host


@lru_cache(maxsize=50_000)
def _site(host: str) -> str:
    """Registrable domain (eTLD+1) of a host; the host itself (without www.) for IPs,
    single labels and hosts under no known suffix."""
    if ":" in host or _IPV4ISH.match(host):
        with contextlib.suppress(ValueError):  # looks like an address but is not one: a hostname
            ipaddress.ip_address(host)
            return host
    try:
        site = _extractor()(host).top_domain_under_public_suffix
    except Exception:
        site = ""
    return site or _strip_www(host)


def same_site(host_a: str, host_b: str) -> bool:
    if not host_a or not host_b:
        return False
    return host_a == host_b or _site(host_a) == _site(host_b)


@lru_cache(maxsize=50_000)
def _candidates(host: str) -> tuple[str, ...]:
    """The host and its parent domains, down to two labels."""
    labels = host.split(".")
    return tuple(".".join(labels[i:]) for i in range(max(len(labels) - 1, 1)))


@lru_cache(maxsize=50_000)
def _host_match(host: str) -> tuple[str, str] | None:
    hosts = _tables().hosts
    for candidate in _candidates(host):
        hit = hosts.get(candidate)
        if hit is not None:
            return hit
    return None


def _lookup(host: str, path: str) -> tuple[str, str] | None:
    tables = _tables()
    if tables.paths:
        for candidate in _candidates(host):
            for prefix, name, rtype in tables.paths.get(candidate, ()):
                if path.startswith(prefix):
                    return name, rtype
    return _host_match(host)


@lru_cache(maxsize=10_000)
def _source(source: str) -> tuple[str, str] | None:
    """A known (name, type) for an utm_source value, else None."""
    key = source.strip().lower()
    if not key:
        return None
    names = _tables().names
    alias = SOURCE_ALIASES.get(key)
    if alias is not None:
        return names.get(alias.lower(), (alias, "other"))
    hit = names.get(key)
    if hit is not None:
        return hit
    if "." in key:
        host, path = _parse(key if "//" in key else "http://" + key)
        if host:
            return _lookup(host, path)
    return None


@lru_cache(maxsize=1_000)
def medium_type(medium: str | None) -> str | None:
    """referrer_type for an utm_medium value, None when not recognised."""
    if not medium:
        return None
    key = _NON_ALNUM.sub("", medium.lower())
    hit = MEDIUM_TYPES.get(key)
    if hit is None and key.startswith("paid"):
        hit = "ad"
    return hit


def classify_referrer(
    referrer_url: str | None, page_url: str | None, utm: Mapping[str, str] | None = None
) -> Referrer:
    try:
        result = _classify(referrer_url, page_url)
        if utm:
            result = _apply_utm(result, utm)
        return result
    except Exception:  # enrichment never fails an event
        ref = referrer_url.strip() if isinstance(referrer_url, str) else ""
        return Referrer(ref, "", "other" if ref else "direct")


def _classify(referrer_url: str | None, page_url: str | None) -> Referrer:
    if not isinstance(referrer_url, str) or not referrer_url.strip():
        return DIRECT
    ref = referrer_url.strip()
    host, path = _parse(ref)
    if not host:
        return Referrer(ref, "", "direct")
    if isinstance(page_url, str) and page_url and same_site(host, _page_host(page_url)):
        return Referrer(ref, "", "internal")
    hit = _lookup(host, path)
    if hit is not None:
        return Referrer(ref, hit[0], hit[1])
    return Referrer(ref, _strip_www(host), "other")


def _apply_utm(result: Referrer, utm: Mapping[str, str]) -> Referrer:
    source = _utm_value(utm, "utm_source")
    medium = _utm_value(utm, "utm_medium")
    if not source and not medium:
        return result
    name, rtype = result.referrer_name, result.referrer_type
    known = _source(source) if source else None
    if source:
        name = known[0] if known is not None else source
    by_medium = medium_type(medium)
    if by_medium is not None:
        rtype = by_medium
    elif known is not None:
        rtype = known[1]
    elif source or rtype in ("direct", "internal"):
        rtype = "other"
    return Referrer(result.referrer, name, rtype)


def _utm_value(utm: Mapping[str, str], key: str) -> str:
    value = utm.get(key)
    return value.strip() if isinstance(value, str) else ""
