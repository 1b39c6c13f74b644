"""Salts of the cookieless device hash: one per rotation period, shared through the metadata store."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from typing import Protocol

from eventlens.outage import outage_as


class SaltSource(Protocol):
    def get_or_create_salt(self, day: date | str) -> str: ...


def salt_key(period: int, rotation_s: int) -> date | str:
    """Daily rotation keys by UTC date; other periods by their number."""
    if rotation_s == 86400:
        return datetime.fromtimestamp(period * 86400, UTC).date()
    return f"r{period:09d}"


class SaltCache:
    """The current and the previous period's salt, from the metadata database (so every replica and
    node agrees), fetched once per period. The previous salt lets a visit survive the rotation."""

    def __init__(self, store: SaltSource, rotation_s: int = 86400) -> None:
        self.store = store
        self.rotation_s = rotation_s
        self.period = -1
        self.salts = ("", "")

    async def current(self) -> tuple[str, str]:
        period = int(time.time()) // self.rotation_s
        if period != self.period:
            with outage_as("metadata"):
                now = await asyncio.to_thread(
                    self.store.get_or_create_salt, salt_key(period, self.rotation_s)
                )
                prev = await asyncio.to_thread(
                    self.store.get_or_create_salt, salt_key(period - 1, self.rotation_s)
                )
            self.salts, self.period = (now, prev), period
        return self.salts
