"""Page URL splitting (eventlens.ingest.page)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.ingest.page import UTM_KEYS, referrer_host, split_page

EMPTY_UTM = dict.fromkeys(UTM_KEYS, "")


def page(origin: str = "", path: str = "", **utm: str) -> dict[str, str]:
    return {"origin": origin, "path": path, **EMPTY_UTM, **utm}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, page()),
        ("", page()),
        ("https://example.com/pricing", page("https://example.com", "/pricing")),
        ("https://example.com", page("https://example.com", "/")),
        ("https://example.com/", page("https://example.com", "/")),
        ("HTTPS://Example.COM/Docs/A", page("https://example.com", "/Docs/A")),  # path case is kept
        ("http://localhost:3000/x", page("http://localhost:3000", "/x")),
        ("https://example.com/a/b?q=1#frag", page("https://example.com", "/a/b")),
        ("https://example.com/#/spa-route", page("https://example.com", "/")),
        ("  https://example.com/trim  ", page("https://example.com", "/trim")),
        ("/relative/path?x=1", page("", "/relative/path")),
        ("/r?utm_medium=email", page("", "/r", utm_medium="email")),
        (
            "https://shop.example.com/p?utm_source=google&utm_medium=cpc&utm_campaign=spring+sale"
            "&utm_term=shoes&utm_content=ad%201&other=1",
            page(
                "https://shop.example.com",
                "/p",
                utm_source="google",
                utm_medium="cpc",
                utm_campaign="spring sale",
                utm_term="shoes",
                utm_content="ad 1",
            ),
        ),
        ("https://e.com/?utm_source=a&utm_source=b", page("https://e.com", "/", utm_source="a")),
        ("https://e.com/?utm_source=", page("https://e.com", "/")),
        ("https://e.com/?UTM_SOURCE=x", page("https://e.com", "/")),  # parameter names are exact
        ("https://[2001:db8::1]:8443/v6", page("https://[2001:db8::1]:8443", "/v6")),
        ("http://[::1", page("", "http://[::1")),  # unparseable: kept as a path, no crash
        ("example.com/foo", page("", "example.com/foo")),  # no scheme: not an origin
        # the origin never carries credentials
        ("https://user:pw@Example.com:8080/x", page("https://example.com:8080", "/x")),
        ("https://token@example.com/x", page("https://example.com", "/x")),
        ("https://user@/x", page("", "/x")),
    ],
)
def test_split_page(url: str | None, expected: dict[str, str]) -> None:
    assert split_page(url) == expected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (None, ""),
        ("", ""),
        ("https://www.Google.com/search?q=x", "www.google.com"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("not a url", ""),
        ("http://[::1", ""),
        ("https://user@host.example:99/", "host.example"),
    ],
)
def test_referrer_host(url: str | None, host: str) -> None:
    assert referrer_host(url) == host


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_never_raises_and_path_has_no_query_or_fragment(url: Any) -> None:
    out = split_page(url)
    assert set(out) == {"origin", "path", *UTM_KEYS}
    assert all(isinstance(v, str) for v in out.values())
    assert "?" not in out["path"] and "#" not in out["path"]
    assert "@" not in out["origin"]
    assert isinstance(referrer_host(url), str)
