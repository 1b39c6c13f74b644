"""Referrer classification (eventlens.ingest.referrer)."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest.referrer import (
    MEDIUM_TO_TYPE,
    TYPES,
    Referrer,
    _tables,
    classify_referrer,
    medium_type,
    same_site,
)

PAGE = "https://www.shop.com/products/1?utm_x=1#top"


def r(referrer: str, name: str, rtype: str) -> Referrer:
    return Referrer(referrer, name, rtype)


@pytest.mark.parametrize(
    ("referrer", "name", "rtype"),
    [
        # search
        ("https://www.google.com/search?q=shoes", "Google", "search"),
        ("https://google.com/", "Google", "search"),
        ("https://www.google.de/", "Google", "search"),
        ("https://www.google.co.uk/url?sa=t", "Google", "search"),
        ("https://news.google.co.uk/articles/x", "Google News", "search"),  # a parent-domain entry
        ("https://www.google.de/imgres?imgurl=x", "Google Images", "search"),  # a host + path entry
        ("https://www.bing.com/search?q=shoes", "Bing", "search"),
        ("https://duckduckgo.com/", "DuckDuckGo", "search"),
        ("https://html.duckduckgo.com/html/", "DuckDuckGo", "search"),
        ("https://search.yahoo.com/search?p=x", "Yahoo!", "search"),
        ("https://yandex.ru/search/?text=x", "Yandex", "search"),
        ("https://www.ecosia.org/search?q=x", "Ecosia", "search"),
        ("android-app://com.google.android.googlequicksearchbox/", "Google", "search"),
        # social
        ("https://www.facebook.com/", "Facebook", "social"),
        ("https://l.facebook.com/l.php?u=x", "Facebook", "social"),
        ("https://m.facebook.com/story.php", "Facebook", "social"),
        ("https://t.co/AbCdEf", "Twitter", "social"),
        ("https://x.com/someone/status/1", "Twitter", "social"),  # referers-extra.json
        ("https://www.linkedin.com/feed/", "LinkedIn", "social"),
        ("https://lnkd.in/abc", "LinkedIn", "social"),
        ("https://www.reddit.com/r/python/", "Reddit", "social"),
        ("https://old.reddit.com/r/python/", "Reddit", "social"),
        ("https://news.ycombinator.com/item?id=1", "Hacker News", "social"),
        ("https://www.youtube.com/watch?v=x", "Youtube", "social"),
        ("https://bsky.app/profile/x", "Bluesky", "social"),  # referers-extra.json
        # email
        ("https://mail.google.com/mail/u/0/", "Gmail", "email"),
        ("https://outlook.live.com/mail/0/inbox", "Outlook.com", "email"),
        ("https://mail.yahoo.com/d/folders/1", "Yahoo! Mail", "email"),
        ("android-app://com.google.android.gm/", "Gmail", "email"),
        # ad
        ("https://googleads.g.doubleclick.net/pagead/ads?x=1", "Google", "ad"),
        ("https://www.googleadservices.com/pagead/aclk?sa=L", "Google", "ad"),
        # known source, unknown medium → other with the name
        ("https://support.google.com/answer/1", "Google", "other"),
        ("https://chatgpt.com/", "ChatGPT", "other"),  # referers-extra.json
        ("https://gemini.google.com/app", "Gemini", "other"),  # not "Google search"
        # unknown hosts → other, name = host without www.
        ("https://www.example.org/blog/post", "example.org", "other"),
        ("https://blog.example.org/", "blog.example.org", "other"),
        ("https://EXAMPLE.org./x", "example.org", "other"),  # case and trailing dot
        ("http://203.0.113.7:8080/x", "203.0.113.7", "other"),
        ("example.org/page", "example.org", "other"),  # sent without a scheme
        ("//cdn.example.net/x", "cdn.example.net", "other"),
    ],
)
def test_known_and_unknown_referrers(referrer: str, name: str, rtype: str):
    assert classify_referrer(referrer, PAGE, {}) == r(referrer, name, rtype)


@pytest.mark.parametrize("referrer", [None, "", "   ", "\t\n"])
def test_no_referrer_is_direct(referrer):
    assert classify_referrer(referrer, PAGE, {}) == Referrer("", "", "direct")


@pytest.mark.parametrize(
    ("referrer", "page"),
    [
        ("https://www.shop.com/cart", "https://www.shop.com/checkout"),  # same host
        ("https://shop.com/cart", "https://www.shop.com/"),  # www. vs bare
        ("https://www.shop.com/", "https://shop.com/"),
        ("https://blog.shop.com/post", "https://www.shop.com/"),  # another subdomain, same site
        ("http://shop.com/", "https://shop.com/"),  # scheme does not matter
        ("https://shop.com:8443/", "https://shop.com/"),  # nor the port
        ("https://a.b.shop.co.uk/", "https://www.shop.co.uk/"),  # multi-label public suffix
        ("https://www.google.com/search?q=x", "https://www.google.com/maps"),  # listed host, same site
        ("http://localhost:3000/a", "http://localhost:5173/b"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1/b"),
        ("https://SHOP.COM/", "https://shop.com/"),
    ],
)
def test_same_site_is_internal(referrer: str, page: str):
    assert classify_referrer(referrer, page, {}) == r(referrer, "", "internal")


@pytest.mark.parametrize(
    ("referrer", "page", "rtype"),
    [
        ("https://shop.co.uk/", "https://other.co.uk/", "other"),  # same public suffix only
        ("https://alice.github.io/", "https://bob.github.io/", "other"),  # private suffix (PSL)
        ("https://shop.com.evil.net/", "https://shop.com/", "other"),
        ("https://google.com/", "https://google.de/", "search"),
        ("https://10.0.0.1/", "https://10.0.0.2/", "other"),
    ],
)
def test_different_sites_are_not_internal(referrer: str, page: str, rtype: str):
    assert classify_referrer(referrer, page, {}).referrer_type == rtype


def test_without_page_url_nothing_is_internal():
    assert classify_referrer("https://www.shop.com/", None, {}).referrer_type == "other"
    assert classify_referrer("https://www.shop.com/", "", {}).referrer_type == "other"
    assert classify_referrer("https://www.shop.com/", "/relative/path", {}).referrer_type == "other"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("www.shop.com", "shop.com", True),
        ("blog.shop.com", "shop.com", True),
        ("shop.com", "shop.net", False),
        ("alice.github.io", "bob.github.io", False),
        ("", "", False),
        ("localhost", "localhost", True),
    ],
)
def test_same_site(a: str, b: str, same: bool):
    assert same_site(a, b) is same


@pytest.mark.parametrize(
    "referrer",
    [
        "not a url",
        "http://",
        "https:///path-only",
        "http://[::1",  # unbalanced IPv6 bracket: urlsplit raises
        "http://[zz::1]/",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "about:blank",
        "data:text/html,hi",
        "http://exa mple.com/",
        "http://" + "a" * 300 + ".com/",
        "\x00\x01\x02",
        "💥",
    ],
)
def test_malformed_referrers_never_raise(referrer: str):
    got = classify_referrer(referrer, PAGE, {})
    assert got.referrer == referrer.strip()
    assert got.referrer_type in TYPES


@settings(max_examples=300, deadline=None)
@given(
    referrer=st.one_of(
        st.none(), st.text(max_size=60), st.builds(lambda s: "https://" + s, st.text(max_size=40))
    ),
    page=st.one_of(st.none(), st.text(max_size=40)),
    source=st.text(max_size=12),
    medium=st.text(max_size=12),
)
def test_classify_never_raises(referrer, page, source, medium):
    got = classify_referrer(referrer, page, {"utm_source": source, "utm_medium": medium})
    assert isinstance(got, Referrer)
    assert got.referrer_type in TYPES


@pytest.mark.parametrize(
    ("referrer", "utm", "name", "rtype"),
    [
        # utm_source → a known name; utm_medium → the type
        ("", {"utm_source": "google", "utm_medium": "cpc"}, "Google", "ad"),
        ("", {"utm_source": "Google", "utm_medium": "PPC"}, "Google", "ad"),
        ("", {"utm_source": "facebook", "utm_medium": "social"}, "Facebook", "social"),
        ("", {"utm_source": "fb", "utm_medium": "paid_social"}, "Facebook", "ad"),
        ("", {"utm_source": "linkedin", "utm_medium": "social-network"}, "LinkedIn", "social"),
        ("", {"utm_source": "news.google.com", "utm_medium": "referral"}, "Google News", "other"),
        ("", {"utm_source": "bing", "utm_medium": "organic"}, "Bing", "search"),
        ("", {"utm_source": "google", "utm_medium": "display"}, "Google", "ad"),
        ("", {"utm_source": "google", "utm_medium": "banner"}, "Google", "ad"),
        ("", {"utm_source": "x", "utm_medium": "sm"}, "Twitter", "social"),
        # an unknown source stays as given
        ("", {"utm_source": "newsletter", "utm_medium": "email"}, "newsletter", "email"),
        ("", {"utm_source": "Spring Newsletter", "utm_medium": "e-mail"}, "Spring Newsletter", "email"),
        ("", {"utm_source": "partner-blog", "utm_medium": "referral"}, "partner-blog", "other"),
        # utm_source alone: the known source's type, else other
        ("", {"utm_source": "google"}, "Google", "search"),
        ("", {"utm_source": "facebook"}, "Facebook", "social"),
        ("", {"utm_source": "newsletter"}, "newsletter", "other"),
        # UTM beats the referrer
        (
            "https://www.google.com/",
            {"utm_source": "newsletter", "utm_medium": "email"},
            "newsletter",
            "email",
        ),
        ("https://l.facebook.com/l.php", {"utm_source": "fb", "utm_medium": "cpc"}, "Facebook", "ad"),
        # utm_medium alone: the type; the name stays the referrer's
        ("https://www.google.com/", {"utm_medium": "cpc"}, "Google", "ad"),
        ("", {"utm_medium": "email"}, "", "email"),
        ("https://www.shop.com/", {"utm_medium": "newsletter"}, "", "email"),  # internal → email
        # an unrecognised medium: the referrer's type, never direct or internal
        ("https://www.google.com/", {"utm_medium": "qr-code"}, "Google", "search"),
        ("", {"utm_medium": "qr-code"}, "", "other"),
        ("https://www.shop.com/", {"utm_medium": "qr-code"}, "", "other"),
        ("", {"utm_source": "flyer", "utm_medium": "print"}, "flyer", "other"),
        # empty / blank / missing UTM values change nothing
        ("https://www.google.com/", {"utm_source": "", "utm_medium": " "}, "Google", "search"),
        ("https://www.google.com/", {"utm_campaign": "spring"}, "Google", "search"),
        ("", {}, "", "direct"),
    ],
)
def test_utm_overrides(referrer: str, utm: dict[str, str], name: str, rtype: str):
    assert classify_referrer(referrer, PAGE, utm) == Referrer(referrer, name, rtype)


def test_utm_may_be_omitted_or_none():
    assert classify_referrer("https://t.co/x", PAGE) == r("https://t.co/x", "Twitter", "social")
    assert classify_referrer("https://t.co/x", PAGE, None) == r("https://t.co/x", "Twitter", "social")


@pytest.mark.parametrize(
    ("medium", "expected"),
    [
        ("cpc", "ad"),
        ("PPC", "ad"),
        ("paid", "ad"),
        ("paidsearch", "ad"),
        ("paid_search", "ad"),
        ("paid-social", "ad"),
        ("display", "ad"),
        ("banner", "ad"),
        ("email", "email"),
        ("e-mail", "email"),
        ("E_Mail", "email"),
        ("newsletter", "email"),
        ("social", "social"),
        ("social-network", "social"),
        ("social media", "social"),
        ("sm", "social"),
        ("organic", "search"),
        ("referral", "other"),
        ("qr", None),
        ("", None),
        (None, None),
    ],
)
def test_medium_type(medium, expected):
    assert medium_type(medium) == expected


def test_referrer_list_is_packaged_with_its_licence():
    data = resources.files("eventlens").joinpath("data")
    snowplow = json.loads(data.joinpath("referers.json").read_text("utf-8"))
    assert set(snowplow) == {"unknown", "email", "social", "search", "paid"}
    assert set(MEDIUM_TO_TYPE) == set(snowplow)
    licence = data.joinpath("REFERERS-LICENSE").read_text("utf-8")
    assert "snowplow" in licence.lower() and "GNU GENERAL PUBLIC LICENSE" in licence
    tables = _tables()
    assert len(tables.hosts) > 1500 and len(tables.paths) > 100
    assert {t for _, t in tables.hosts.values()} <= set(TYPES) - {"direct", "internal"}
    assert all(host == host.lower() and "/" not in host for host in tables.hosts)


_URL_PARTS = st.tuples(
    st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "//", ""]),
    st.sampled_from(["", "user:pw@", "u@"]),
    st.sampled_from(
        ["a.com", "WWW.Shop.CO.uk.", "127.0.0.1", "[::1]", "xn--bcher-kva.de", "a..b", "", "a b.com"]
    )
    | st.from_regex(r"[A-Za-z0-9.\-]{0,20}", fullmatch=True)
    | st.text(max_size=12),
    st.sampled_from(["", ":80", ":8443", ":", ":99999", ":x"]),
    st.sampled_from(["", "/", "/a/b", "/imgres", "?q=1", "#f", "/p?q=1#f", "/\t/x", "/a\nb", " "]),
)


@settings(max_examples=500, deadline=None)
@given(parts=_URL_PARTS)
def test_fast_url_split_agrees_with_urlsplit(parts):
    from eventlens.ingest.referrer import _split, _split_slow

    url = "".join(parts)
    assert _split(url) == _split_slow(url.strip())


def test_warm_up_loads_the_tables():
    from eventlens.ingest.referrer import _extractor, warm_up

    warm_up()
    assert _tables.cache_info().currsize == 1
    assert _extractor.cache_info().currsize == 1
