"""Cookieless device ids and shard routing (eventlens.ingest.identity)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlens.buffer.client import shard_of
from eventlens.ingest.identity import device_hash

BASE = ("proj", "8.8.8.8", "Mozilla/5.0", "salt-2025-06-15")


def test_device_hash_is_stable_and_hex() -> None:
    a = device_hash(*BASE)
    assert a == device_hash(*BASE)
    assert len(a) == 32
    int(a, 16)


@pytest.mark.parametrize("position", range(4), ids=["project", "ip", "user_agent", "salt"])
def test_device_hash_depends_on_every_input(position: int) -> None:
    changed = list(BASE)
    changed[position] += "x"
    assert device_hash(*changed) != device_hash(*BASE)


def test_device_hash_fields_are_separated() -> None:
    # moving characters between fields must not give the same id
    assert device_hash("ab", "c", "ua", "s") != device_hash("a", "bc", "ua", "s")
    assert device_hash("p", "1.2.3.4", "ua", "s") != device_hash("p", "1.2.3.", "4ua", "s")


def test_device_hash_is_the_same_in_another_process() -> None:
    code = f"from eventlens.buffer.client import shard_of; from eventlens.ingest.identity import device_hash; print(device_hash(*{BASE!r}), shard_of('p', 'k', 97))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [device_hash(*BASE), str(shard_of("p", "k", 97))]


# blake2b keys are at most 64 bytes: device_hash uses the first 64 bytes of the salt (a stored salt
# is 64 hex characters), so only salts that differ within those bytes must give different ids
salts = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) < 64)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=40), salts)
def test_device_hash_properties(project: str, ip: str, ua: str, salt: str) -> None:
    h = device_hash(project, ip, ua, salt)
    assert h == device_hash(project, ip, ua, salt)
    assert len(h) == 32
    assert h != device_hash(project, ip, ua, salt + "!")


def test_device_hash_keys_on_the_first_64_bytes_of_the_salt() -> None:
    stored = "ab" * 32  # what MetadataStore.get_or_create_salt creates: token_hex(32)
    assert device_hash(*BASE[:3], stored) != device_hash(*BASE[:3], stored[:-1] + "c")
    assert device_hash(*BASE[:3], stored) == device_hash(*BASE[:3], stored + "ignored")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.text(max_size=40), st.integers(min_value=1, max_value=4096))
def test_shard_of_is_stable_and_in_range(project: str, key: str, shards: int) -> None:
    s = shard_of(project, key, shards)
    assert 0 <= s < shards
    assert s == shard_of(project, key, shards)


def test_shard_of_single_shard() -> None:
    assert {shard_of("p", f"d{i}", 1) for i in range(50)} == {0}


def test_shard_of_spreads_keys() -> None:
    shards = 8
    counts = [0] * shards
    for i in range(8000):
        counts[shard_of("proj", f"device-{i}", shards)] += 1
    assert min(counts) > 800 and max(counts) < 1200  # roughly uniform


def test_shard_of_depends_on_the_project() -> None:
    differ = sum(shard_of("p1", f"k{i}", 64) != shard_of("p2", f"k{i}", 64) for i in range(200))
    assert differ > 150
