"""Device-hash salts per rotation period (eventlens.ingest.salts.SaltCache, salt_key) on a real SQLite
metadata store."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from eventlens.ingest import salts as salts_module
from eventlens.ingest.salts import SaltCache, salt_key
from eventlens.storage.metadata import MetadataStore, open_metadata

DAY = 86400
DAY_20000 = 20000 * DAY  # 2024-10-04T00:00:00Z


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    s = open_metadata(f"sqlite:///{tmp_path}/m.sqlite3")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


class Clock:
    """Stands in for the ``time`` module of eventlens.ingest.salts only (asyncio keeps the real one)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(DAY_20000)
    monkeypatch.setattr(salts_module, "time", types.SimpleNamespace(time=c.time))
    return c


class CountingStore:
    """Delegates to a real store and records the keys asked for."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.keys: list[date | str] = []

    def get_or_create_salt(self, key: date | str) -> str:
        self.keys.append(key)
        return self.store.get_or_create_salt(key)


# salt_key ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (0, date(1970, 1, 1)),
        (20000, date(2024, 10, 4)),
        (19999, date(2024, 10, 3)),
        (20454, date(2026, 1, 1)),
    ],
)
def test_daily_rotation_keys_by_utc_date(period: int, expected: date) -> None:
    assert salt_key(period, DAY) == expected


@pytest.mark.parametrize(
    ("period", "rotation_s", "expected"),
    [
        (0, 3600, "r000000000"),
        (5, 3600, "r000000005"),
        (486_111, 3600, "r000486111"),
        (175_000_000, 10, "r175000000"),  # the shortest period allowed, today
        (999_999_999, 10, "r999999999"),  # still 10 characters (until the year 2286)
        (20000, 2 * DAY, "r000020000"),  # only exactly one day keys by date
    ],
)
def test_other_periods_key_by_number_within_ten_characters(
    period: int, rotation_s: int, expected: str
) -> None:
    key = salt_key(period, rotation_s)
    assert key == expected
    assert isinstance(key, str) and len(key) <= 10


def test_store_accepts_every_key_kind_and_the_date_key_is_the_iso_day(store: MetadataStore) -> None:
    by_date = store.get_or_create_salt(date(2024, 10, 4))
    assert store.get_or_create_salt("2024-10-04") == by_date  # salts created before rotation_s existed
    by_number = store.get_or_create_salt(salt_key(175_000_000, 10))
    assert len({by_date, by_number}) == 2
    assert store.get_or_create_salt("r175000000") == by_number
    for bad in ("", "r1234567890"):
        with pytest.raises(ValueError):
            store.get_or_create_salt(bad)


# SaltCache ---------------------------------------------------------------------------------------


def test_daily_salts_rotate_and_keep_the_previous_one(store: MetadataStore, clock: Clock) -> None:
    counting = CountingStore(store)
    cache = SaltCache(counting, DAY)  # type: ignore[arg-type]
    salt, prev = asyncio.run(cache.current())
    assert salt == store.get_or_create_salt(date(2024, 10, 4))
    assert prev == store.get_or_create_salt(date(2024, 10, 3))
    assert salt and prev and salt != prev
    assert counting.keys == [date(2024, 10, 4), date(2024, 10, 3)]

    clock.now = DAY_20000 + DAY - 1  # the last second of the same UTC day
    assert asyncio.run(cache.current()) == (salt, prev)
    assert len(counting.keys) == 2  # fetched once per period

    clock.now = DAY_20000 + DAY  # the next day
    salt2, prev2 = asyncio.run(cache.current())
    assert prev2 == salt  # yesterday's current salt is today's previous one
    assert salt2 not in (salt, prev)
    assert counting.keys[2:] == [date(2024, 10, 5), date(2024, 10, 4)]


def test_every_replica_gets_the_same_salts(store: MetadataStore, clock: Clock) -> None:
    a, b = SaltCache(store, DAY), SaltCache(store, DAY)
    assert asyncio.run(a.current()) == asyncio.run(b.current())
    clock.now += DAY
    assert asyncio.run(b.current()) == asyncio.run(a.current())


def test_custom_rotation_period(store: MetadataStore, clock: Clock) -> None:
    rotation = 600
    clock.now = 1_750_000_000.5  # period 2_916_666, 400.5 s into it
    counting = CountingStore(store)
    cache = SaltCache(counting, rotation)  # type: ignore[arg-type]
    salt, prev = asyncio.run(cache.current())
    assert counting.keys == ["r002916666", "r002916665"]
    assert salt == store.get_or_create_salt("r002916666")
    assert prev == store.get_or_create_salt("r002916665")
    assert salt != prev

    clock.now = 1_750_000_199.9  # still period 2_916_666
    assert asyncio.run(cache.current()) == (salt, prev)
    assert len(counting.keys) == 2

    clock.now = 1_750_000_200  # period 2_916_667
    salt2, prev2 = asyncio.run(cache.current())
    assert (prev2, counting.keys[2:]) == (salt, ["r002916667", "r002916666"])
    assert salt2 != salt

    clock.now = 1_750_000_200 + 3 * rotation  # periods skipped (an idle replica): both fetched anew
    salt5, prev5 = asyncio.run(cache.current())
    assert counting.keys[4:] == ["r002916670", "r002916669"]
    assert len({salt, salt2, salt5, prev5}) == 4
