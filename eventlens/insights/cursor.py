"""Page cursors of the read routes: an opaque token holding the sort key of a page's last row.

The lists are ordered newest first by a key that never changes for a row: ``(created_at, id)``
for events, ``(opened_at, session_id)`` for sessions, and ``(updated_at, profile_id)`` for
profiles (the one key that moves: an ``identify`` while paging moves a profile to the front). The
next page holds the rows strictly after that key in the same order, so every row is returned at
most once, and a row whose key does not change is returned exactly once, whatever is stored
between two pages.

A cursor is ``base64url(JSON [kind, milliseconds, id])`` without padding. It is not secret and
needs no signature: a forged one only moves where the next page starts, and its values are bound
parameters like any other. A token that does not decode to this shape, names another list, or
holds a time outside the dates the API accepts is a 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

import orjson

from eventlens.errors import ClientError
from eventlens.insights.params import MAX_DATE, MIN_DATE

Kind = Literal["events", "sessions", "profiles"]
KINDS: dict[Kind, str] = {"events": "e", "sessions": "s", "profiles": "p"}
MAX_CURSOR_LEN = 1024
MAX_KEY_ID_LEN = 300  # event ids are at most 64 characters, profile and session ids about 256
MIN_MS = int(MIN_DATE.timestamp() * 1000)
MAX_MS = int(MAX_DATE.timestamp() * 1000)


@dataclass(frozen=True)
class Position:
    """A row's sort key: its time (epoch milliseconds) and its id."""

    ms: int
    id: str


def encode_cursor(kind: Kind, pos: Position) -> str:
    raw = orjson.dumps([KINDS[kind], pos.ms, pos.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad(kind: Kind) -> ClientError:
    return ClientError(
        400,
        "invalid_cursor",
        f"cursor is not a cursor of this {kind} list; pass the nextCursor of the previous page unchanged",
    )


def decode_cursor(kind: Kind, token: str) -> Position:
    if not token or len(token) > MAX_CURSOR_LEN:
        raise _bad(kind)
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad(kind) from None
    if not (isinstance(value, list) and len(value) == 3 and value[0] == KINDS[kind]):
        raise _bad(kind)
    _, ms, ident = value
    if type(ms) is not int or not MIN_MS <= ms <= MAX_MS:
        raise _bad(kind)
    if not isinstance(ident, str) or len(ident) > MAX_KEY_ID_LEN:
        raise _bad(kind)
    return Position(ms, ident)
