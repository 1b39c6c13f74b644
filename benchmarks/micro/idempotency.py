"""Micro-benchmark of the idempotency window (``eventlens.buffer.idempotency``): µs per event and
memory per million ids, for the file store (embedded) and the Redis store (shared, cluster).

    .venv/bin/python -m benchmarks.micro.idempotency [--ids 1000000] [--batch 1000] [--redis URL]

Does what a shard does per append call: hash each id, ask ``seen`` for the batch, ``add`` the new
ones; then asks again for a batch of retries (all found). Memory: the file store's arrays and its
dict of ids not yet merged (``nbytes`` + ``sys.getsizeof``); Redis's ``used_memory`` before and
after. Single-threaded, in this process. Not a test; prints a table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from eventlens.buffer.idempotency import FileIdIndex, RedisIdIndex, day_of, id_key

DAY = day_of(int(time.time() * 1000))


def run(ix: Any, ids: int, batch: int) -> dict[str, float]:
    project = "bench-project"
    hashing = seen = add = 0.0
    first: list[str] = []
    for start in range(0, ids, batch):
        names = [str(uuid.uuid4()) for _ in range(min(batch, ids - start))]
        if not first:
            first = names
        t0 = time.perf_counter()
        keys = [id_key(project, n) for n in names]
        t1 = time.perf_counter()
        found = ix.seen(keys, DAY)
        t2 = time.perf_counter()
        ix.add([k for k in keys if k not in found], DAY)
        t3 = time.perf_counter()
        hashing, seen, add = hashing + t1 - t0, seen + t2 - t1, add + t3 - t2
    t0 = time.perf_counter()
    durable_s = 0.0
    ix.durable()
    durable_s = time.perf_counter() - t0
    retry_keys = [id_key(project, n) for n in first]
    t0 = time.perf_counter()
    hits = len(ix.seen(retry_keys, DAY))
    retry_us = (time.perf_counter() - t0) / len(retry_keys) * 1e6
    assert hits == len(retry_keys), (hits, len(retry_keys))
    return {
        "hash_us": hashing / ids * 1e6,
        "seen_us": seen / ids * 1e6,
        "add_us": add / ids * 1e6,
        "total_us": (hashing + seen + add) / ids * 1e6,
        "retry_seen_us": retry_us,
        "durable_ms": durable_s * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip the Redis store")
    args = ap.parse_args()
    rows: list[tuple[str, dict[str, float], float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ix = FileIdIndex(Path(tmp), 0, window_days=7, today=DAY)
        res = run(ix, args.ids, args.batch)
        mem = ix.memory() / args.ids * 1e6
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*.ids")) / args.ids * 1e6
        ix.close()
        rows.append(("file (embedded)", res, mem))
        print(f"file store: {disk / 2**20:.1f} MiB on disk per million ids")
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        prefix = f"eventlens-bench:{uuid.uuid4().hex[:8]}:ids"
        before = int(client.info("memory")["used_memory"])
        rix = RedisIdIndex(client, lambda *p: ":".join((prefix, *map(str, p))), window_days=7)
        try:
            res = run(rix, args.ids, args.batch)
            used = int(client.info("memory")["used_memory"]) - before
            rows.append(("redis (shared)", res, used / args.ids * 1e6))
        finally:
            for k in client.scan_iter(match=f"{prefix}*"):
                client.delete(k)
    print(f"\n{args.ids:,} ids in batches of {args.batch}, pid {os.getpid()}")
    print(
        f"{'store':<16} {'hash µs':>8} {'seen µs':>8} {'add µs':>8} {'total µs':>9} {'retry µs':>9} {'MiB/M ids':>10}"
    )
    for name, r, mem in rows:
        print(
            f"{name:<16} {r['hash_us']:>8.2f} {r['seen_us']:>8.2f} {r['add_us']:>8.2f} "
            f"{r['total_us']:>9.2f} {r['retry_seen_us']:>9.2f} {mem / 2**20:>10.1f}"
        )


if __name__ == "__main__":
    main()
