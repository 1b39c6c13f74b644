"""Page URL → origin, path without query and fragment, and UTM parameters."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def split_page(url: str | None) -> dict[str, str]:
    """A fresh dict per call (callers may change it); the parse itself is cached: pages repeat."""
    return dict(_split_page(url))


@lru_cache(maxsize=20_000)
def _split_page(url: str | None) -> dict[str, str]:
    out = {"origin": "", "path": "", **dict.fromkeys(UTM_KEYS, "")}
    if not url:
        return out
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        out["path"] = url.split("?", 1)[0].split("#", 1)[0]
        return out
    host = parts.netloc.rpartition("@")[2]  # never store credentials (user:password@)
    if parts.scheme and host:
        out["origin"] = f"{parts.scheme.lower()}://{host.lower()}"
    out["path"] = parts.path or ("/" if parts.netloc else "")
    if parts.query:
        qs = parse_qs(parts.query, keep_blank_values=False)
        for key in UTM_KEYS:
            if qs.get(key):
                out[key] = qs[key][0][:1024]
    return out


def referrer_host(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""
