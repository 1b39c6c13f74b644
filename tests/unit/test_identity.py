"""Cookieless device ids and shard routing (eventlens.ingest.identity)."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jump import hash as jump_hash

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


def digest64(project: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{project}\x00{key}".encode(), digest_size=8).digest(), "little")


def paper_jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash as listed in Lamping & Veach (2014), with Python ints for its C++ types."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % 2**64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def modulo_shard(project: str, key: str, shards: int) -> int:
    """The routing shard_of replaced: it moves about N/(N+1) of the devices from N to N+1 shards."""
    return digest64(project, key) % shards


KEYS = [f"device-{i}" for i in range(20_000)]


def test_the_jump_hash_package_is_the_papers_algorithm() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        key, buckets = rng.getrandbits(64), rng.randint(1, 5000)
        assert jump_hash(key, buckets) == paper_jump_hash(key, buckets), (key, buckets)


def test_shard_of_is_jump_hash_of_the_digest() -> None:
    for shards in (1, 2, 5, 8, 97):
        for key in KEYS[:500]:
            assert shard_of("proj", key, shards) == paper_jump_hash(digest64("proj", key), shards)


# pinned so that any change of the routing scheme (which re-routes devices in a running
# deployment) fails here first
GOLDEN = [
    ("p", "k", 2, 0),
    ("p", "k", 8, 7),
    ("p", "k", 97, 7),
    ("proj", "device-3", 4, 0),
    ("proj", "device-3", 5, 0),  # stays from 4 to 5 shards
    ("proj", "device-6", 4, 0),
    ("proj", "device-6", 5, 4),  # moves from 4 to 5 shards, onto the new one
    ("proj", "device-4", 8, 7),
    ("5f2c1e0a", "0123456789abcdef0123456789abcdef", 16, 15),
    ("5f2c1e0a", "0123456789abcdef0123456789abcdef", 1000, 356),
]


@pytest.mark.parametrize(("project", "key", "shards", "expected"), GOLDEN)
def test_shard_of_golden_values(project: str, key: str, shards: int, expected: int) -> None:
    assert shard_of(project, key, shards) == expected


@pytest.mark.parametrize("n", range(1, 17))
def test_one_more_shard_moves_about_one_in_n_plus_one_devices_all_onto_the_new_shard(n: int) -> None:
    moved = [k for k in KEYS if shard_of("proj", k, n) != shard_of("proj", k, n + 1)]
    expected = len(KEYS) / (n + 1)
    assert 0.8 * expected <= len(moved) <= 1.2 * expected, f"{n}→{n + 1}: {len(moved)} of {len(KEYS)} moved"
    assert {shard_of("proj", k, n + 1) for k in moved} <= {n}


def test_four_to_five_shards_splits_about_a_fifth_of_open_sessions() -> None:
    # 10,000 devices, each with one open session owned by its shard out of 4 (device → shard)
    devices = [f"device-{i}" for i in range(10_000)]
    projects = ["proj-a", "proj-b", "proj-c", "proj-d"]
    population = [(projects[i % 4], d) for i, d in enumerate(devices)]
    jump_before = {(p, d): shard_of(p, d, 4) for p, d in population}
    modulo_before = {(p, d): modulo_shard(p, d, 4) for p, d in population}
    # after the restart with 5 shards, a device whose shard changed starts a new session there
    # while its old shard times the open one out: each moved device splits one visit in two
    jump_moved = [(p, d) for p, d in population if shard_of(p, d, 5) != jump_before[p, d]]
    modulo_moved = [(p, d) for p, d in population if modulo_shard(p, d, 5) != modulo_before[p, d]]
    figures = (
        f"4→5 shards over {len(population)} devices with an open session: jump hash moves "
        f"{len(jump_moved)} ({len(jump_moved) / len(population):.1%}, {len(jump_moved)} sessions split), "
        f"modulo would move {len(modulo_moved)} ({len(modulo_moved) / len(population):.1%})"
    )
    print(figures)
    assert 1_600 <= len(jump_moved) <= 2_400, figures
    assert all(shard_of(p, d, 5) == 4 for p, d in jump_moved), figures
    assert 7_600 <= len(modulo_moved) <= 8_400, figures
