"""Geo enrichment (eventlens.ingest.geo) against the packaged DB-IP City Lite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest.geo import (
    COUNTRY_HEADERS,
    EMPTY_GEO,
    Geo,
    GeoLookup,
    country_from_headers,
    default_db_path,
    enrich_geo,
)


@pytest.fixture(scope="module")
def geo() -> Iterator[GeoLookup]:
    lookup = GeoLookup(None)
    yield lookup
    lookup.close()


# (ip, country, region or None = not asserted, city or None = not asserted)
KNOWN = [
    ("8.8.8.8", "US", "California", "Mountain View"),
    ("1.1.1.1", "AU", "New South Wales", "Sydney"),
    ("141.1.1.1", "DE", "Hesse", "Frankfurt am Main"),
    ("193.99.144.80", "DE", "Lower Saxony", None),
    ("210.130.0.1", "JP", "Tokyo", None),
    ("133.242.0.1", "JP", None, None),
    ("81.2.69.142", "GB", "England", "London"),
    ("9.9.9.9", "CH", None, None),
    # IPv6
    ("2a00:1450:4001::1", "DE", None, None),
    ("2001:4860:4860::8888", "CA", None, None),
    # IPv4-mapped IPv6 is looked up as the IPv4 address
    ("::ffff:8.8.8.8", "US", "California", "Mountain View"),
    # surrounding whitespace is ignored
    (" 8.8.8.8 ", "US", "California", "Mountain View"),
]


@pytest.mark.parametrize(("ip", "country", "region", "city"), KNOWN)
def test_known_public_addresses(geo: GeoLookup, ip: str, country: str, region: str | None, city: str | None):
    got = geo.lookup(ip)
    assert got.country == country
    if region is not None:
        assert got.region == region
    else:
        assert isinstance(got.region, str)
    if city is not None:
        assert got.city == city
    else:
        assert got.city  # the City database names a city for these ranges


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "169.254.1.1",
        "224.0.0.1",  # multicast
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:192.168.1.1",
        "",
        "   ",
        "not-an-ip",
        "999.1.1.1",
        "1.2.3",
        "8.8.8.8/32",
        "8.8.8.8:443",
        "[2a00:1450:4001::1]",
        "1" * 200,
        "８.８.８.８",  # full-width digits
    ],
)
def test_private_reserved_and_invalid_addresses_are_empty(geo: GeoLookup, ip: str):
    assert geo.lookup(ip) == EMPTY_GEO == Geo("", "", "")


@pytest.mark.parametrize("value", [None, 8, b"8.8.8.8", ["8.8.8.8"], {"ip": 1}])
def test_non_string_input_is_empty(geo: GeoLookup, value):
    assert geo.lookup(value) == EMPTY_GEO  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_lookup_never_raises(geo: GeoLookup, text: str):
    got = geo.lookup(text)
    assert isinstance(got, Geo)
    assert got.country == "" or (len(got.country) == 2 and got.country.isupper())


def test_lookups_are_cached(geo: GeoLookup):
    geo.lookup("141.1.1.1")
    before = geo.cache_info().hits
    assert geo.lookup("141.1.1.1").country == "DE"
    assert geo.cache_info().hits == before + 1


def test_configured_path_to_a_database(tmp_path: Path):
    with GeoLookup(default_db_path()) as lookup:
        assert lookup.path == default_db_path()
        assert lookup.database_type == "DBIP-City-Lite"
        assert lookup.build_epoch > 0
        assert lookup.lookup("8.8.8.8").country == "US"


def test_default_is_the_packaged_database():
    with GeoLookup() as lookup:
        assert lookup.path == default_db_path()
        assert Path(lookup.path).suffix == ".mmdb"


def test_missing_configured_path_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(ValueError, match="geo database not found"):
        GeoLookup(str(missing))
    with pytest.raises(ValueError, match="geo database not found"):
        GeoLookup(str(tmp_path))  # a directory is not a database


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path):
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"this is not a MaxMind DB file" * 10)
    with pytest.raises(ValueError, match="cannot open geo database"):
        GeoLookup(str(bogus))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"cf-ipcountry": "DE"}, "DE"),
        ({"cf-ipcountry": " de "}, "DE"),
        ({"CF-IPCountry": "FR"}, "FR"),  # plain dict, other capitalisation
        ({"cf-ipcountry": "XX"}, None),  # Cloudflare: no country
        ({"cf-ipcountry": "T1"}, None),  # Cloudflare: Tor
        ({"cloudfront-viewer-country": "JP"}, "JP"),
        ({"CloudFront-Viewer-Country": "BR"}, "BR"),
        ({"x-vercel-ip-country": "CA"}, "CA"),
        (
            {
                "x-akamai-edgescape": "georegion=246,country_code=US,region_code=CA,city=SANFRANCISCO,continent=NA"
            },
            "US",
        ),
        ({"x-akamai-edgescape": "georegion=1,country_code=reserved"}, None),
        ({"cf-ipcountry": "USA"}, None),
        ({"cf-ipcountry": "1A"}, None),
        ({"cf-ipcountry": ""}, None),
        ({"cf-ipcountry": "ÄÖ"}, None),
        ({"cf-ipcountry": 42}, None),
        ({"x-country-code": "DE"}, None),  # not a documented CDN header: not trusted by default
        ({"user-agent": "x"}, None),
        ({}, None),
        (None, None),
        # the first valid header in COUNTRY_HEADERS order wins; invalid ones are skipped
        ({"cloudfront-viewer-country": "JP", "cf-ipcountry": "DE"}, "DE"),
        ({"cf-ipcountry": "XX", "cloudfront-viewer-country": "JP"}, "JP"),
    ],
)
def test_country_from_headers(headers, expected):
    assert country_from_headers(headers) == expected


def test_country_from_case_insensitive_header_container():
    from starlette.datastructures import Headers

    assert country_from_headers(Headers({"CF-IPCountry": "NL"})) == "NL"
    assert country_from_headers(Headers({"Host": "x"})) is None


def test_country_header_names_are_configurable():
    assert country_from_headers({"x-country-code": "DE"}, names=("x-country-code",)) == "DE"
    assert "cf-ipcountry" in COUNTRY_HEADERS


@pytest.mark.parametrize(
    ("ip", "headers", "expected"),
    [
        ("8.8.8.8", None, Geo("US", "California", "Mountain View")),
        ("8.8.8.8", {}, Geo("US", "California", "Mountain View")),
        # CDN agrees with the database: keep region and city
        ("8.8.8.8", {"cf-ipcountry": "US"}, Geo("US", "California", "Mountain View")),
        # CDN disagrees: its country wins, the database's region/city belong to another country
        ("8.8.8.8", {"cf-ipcountry": "DE"}, Geo("DE", "", "")),
        ("141.1.1.1", {"cloudfront-viewer-country": "AT"}, Geo("AT", "", "")),
        # unusable CDN value: the database stands
        ("8.8.8.8", {"cf-ipcountry": "XX"}, Geo("US", "California", "Mountain View")),
        # no database answer (private, missing IP): the CDN country alone
        ("10.0.0.1", {"cf-ipcountry": "FR"}, Geo("FR", "", "")),
        (None, {"x-vercel-ip-country": "jp"}, Geo("JP", "", "")),
        ("", None, EMPTY_GEO),
        ("garbage", {"cf-ipcountry": "XX"}, EMPTY_GEO),
    ],
)
def test_enrich_geo(geo: GeoLookup, ip, headers, expected):
    assert enrich_geo(geo, ip, headers) == expected


def test_enrich_geo_without_a_database():
    assert enrich_geo(None, "8.8.8.8", {"cf-ipcountry": "SE"}) == Geo("SE", "", "")
    assert enrich_geo(None, "8.8.8.8", None) == EMPTY_GEO


def test_full_record_decoding_agrees_with_field_lookups():
    """The reader without get_path (pure-Python maxminddb) decodes whole records: same answers."""
    with GeoLookup(None) as by_path, GeoLookup(None) as by_record:
        by_record._get_path = None
        for ip, *_ in KNOWN:
            assert by_record.lookup(ip) == by_path.lookup(ip)
        for ip in ("10.0.0.1", "::1", "garbage"):
            assert by_record.lookup(ip) == EMPTY_GEO


def test_pickles_by_reopening_the_same_file(geo: GeoLookup):
    import pickle

    copy = pickle.loads(pickle.dumps(geo))
    try:
        assert copy.path == geo.path
        assert copy.lookup("8.8.8.8") == geo.lookup("8.8.8.8")
    finally:
        copy.close()
