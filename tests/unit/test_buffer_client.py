"""Batched hand-off of records to shard actors (eventlens.buffer.client.BufferClient), without Ray.

A fake shard's ``append.remote(records)`` returns a coroutine, as a Ray ObjectRef is awaitable; the
tests run their event loop with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from eventlens.buffer.client import BufferClient, ShardUnavailable


class FakeShard:
    """Answers like BufferShard.append; ``mode`` is ok | overloaded | raise | hang.

    With ``gated`` a call waits until the test calls ``release()`` (oldest waiting call first), so
    "in flight" needs no timing.
    """

    def __init__(self, name: str = "s0", gated: bool = False) -> None:
        self.name = name
        self.gated = gated
        self.waiting: list[asyncio.Event] = []  # gated calls in flight, oldest first
        self.mode = "ok"
        self.calls: list[list[dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.append = SimpleNamespace(remote=self._remote)

    def _remote(self, records: bytes | list[dict[str, Any]]) -> Any:
        if isinstance(records, bytes):  # the router sends one JSON blob (buffer.client.encode)
            records = orjson.loads(records)
        self.calls.append(list(records))
        return self._reply(list(records), self.mode)

    async def _reply(self, records: list[dict[str, Any]], mode: str) -> dict[str, Any]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if mode == "hang":
                await asyncio.sleep(3600)
            if self.gated:
                gate = asyncio.Event()
                self.waiting.append(gate)
                await gate.wait()
            else:
                await asyncio.sleep(0)
            if mode == "raise":
                raise RuntimeError("actor died")
            if mode == "overloaded":
                return {"ok": False, "error": "overloaded", "message": "9 events waiting", "retry_after": 7}
            return {"ok": True, "results": [{"shard": self.name, "id": r["id"]} for r in records]}
        finally:
            self.in_flight -= 1

    async def wait_in_flight(self) -> None:
        for _ in range(1000):
            if self.waiting:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("no call went in flight")

    async def release(self) -> None:
        await self.wait_in_flight()
        self.waiting.pop(0).set()
        await asyncio.sleep(0)


def recs(caller: int, n: int) -> list[dict[str, Any]]:
    return [{"id": f"c{caller}-r{i}"} for i in range(n)]


def expected(shard: str, records: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"shard": shard, "id": r["id"]} for r in records]


def test_concurrent_appends_are_coalesced_and_results_split_per_caller() -> None:
    shard = FakeShard()
    sizes = [1 + i % 3 for i in range(50)]

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=5)
        return await asyncio.gather(*(router.append(0, recs(i, n)) for i, n in enumerate(sizes)))

    results = asyncio.run(main())
    assert len(shard.calls) == 1
    assert len(shard.calls[0]) == sum(sizes)
    for i, n in enumerate(sizes):
        assert results[i] == expected("s0", recs(i, n))


def test_coalesces_even_without_a_handoff_delay() -> None:
    shard = FakeShard()

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=0)
        return await asyncio.gather(*(router.append(0, recs(i, 2)) for i in range(20)))

    results = asyncio.run(main())
    assert len(shard.calls) < 20
    assert results == [expected("s0", recs(i, 2)) for i in range(20)]


def test_one_call_in_flight_per_shard_and_later_appends_ride_the_next_call() -> None:
    shard = FakeShard(gated=True)

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=1, max_in_flight=1)
        first = asyncio.create_task(router.append(0, recs(0, 1)))
        await shard.wait_in_flight()
        later = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(1, 11)]
        await asyncio.sleep(0.01)  # they queue behind the call in flight
        assert len(shard.calls) == 1
        await shard.release()
        await shard.release()
        return await asyncio.gather(first, *later)

    results = asyncio.run(main())
    assert shard.max_in_flight == 1
    assert [len(c) for c in shard.calls] == [1, 10]
    assert results == [expected("s0", recs(i, 1)) for i in range(11)]


def test_two_calls_in_flight_per_shard_then_appends_wait_for_one_of_them() -> None:
    shard = FakeShard(gated=True)

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=1, max_in_flight=2)
        first = asyncio.create_task(router.append(0, recs(0, 1)))
        await shard.wait_in_flight()
        second = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(1, 4)]
        for _ in range(100):  # the second call goes out while the first is still in flight
            await asyncio.sleep(0.001)
            if len(shard.calls) == 2:
                break
        third = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(4, 9)]
        await asyncio.sleep(0.01)
        assert len(shard.calls) == 2  # both slots busy: the third batch waits
        assert shard.in_flight == 2
        for _ in range(3):
            await shard.release()
        return await asyncio.gather(first, *second, *third)

    results = asyncio.run(main())
    assert shard.max_in_flight == 2
    assert [len(c) for c in shard.calls] == [1, 3, 5]
    assert results == [expected("s0", recs(i, 1)) for i in range(9)]


def test_shards_get_only_their_own_records() -> None:
    shards = [FakeShard("a"), FakeShard("b"), FakeShard("c")]

    async def main() -> list[Any]:
        router = BufferClient(shards, handoff_ms=2)
        return await asyncio.gather(*(router.append(i % 3, recs(i, 1)) for i in range(30)))

    results = asyncio.run(main())
    for i, result in enumerate(results):
        assert result == expected("abc"[i % 3], recs(i, 1))
    for k, shard in enumerate(shards):
        assert len(shard.calls) == 1
        assert {r["id"] for r in shard.calls[0]} == {f"c{i}-r0" for i in range(k, 30, 3)}


def test_empty_record_list_gets_an_empty_answer() -> None:
    shard = FakeShard()

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=1)
        return await asyncio.gather(router.append(0, []), router.append(0, recs(1, 2)), router.append(0, []))

    assert asyncio.run(main()) == [[], expected("s0", recs(1, 2)), []]


@pytest.mark.parametrize(
    ("mode", "message", "retry_after"),
    [("overloaded", "9 events waiting", 7), ("raise", "shard 0 unavailable: RuntimeError", 1)],
)
def test_failed_call_raises_shard_unavailable_for_every_caller_in_it(
    mode: str, message: str, retry_after: int
) -> None:
    shard = FakeShard()
    shard.mode = mode

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=2)
        return await asyncio.gather(*(router.append(0, recs(i, 2)) for i in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert len(shard.calls) == 1
    for r in results:
        assert isinstance(r, ShardUnavailable)
        assert str(r) == message
        assert r.retry_after_s == retry_after


def test_only_the_failed_batch_fails_and_the_router_recovers() -> None:
    shard = FakeShard(gated=True)

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        router = BufferClient([shard], handoff_ms=1, max_in_flight=1)
        shard.mode = "overloaded"
        first = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(3)]
        await shard.wait_in_flight()  # the failing call is in flight; the next one will succeed
        shard.mode = "ok"
        second = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(3, 6)]
        await asyncio.sleep(0.01)
        await shard.release()
        await shard.release()
        a = await asyncio.gather(*first, return_exceptions=True)
        b = await asyncio.gather(*second, return_exceptions=True)
        shard.gated = False
        c = [await router.append(0, recs(9, 1))]  # a fresh sender after the old one finished
        return a, b, c

    a, b, c = asyncio.run(main())
    assert all(isinstance(x, ShardUnavailable) for x in a)
    assert b == [expected("s0", recs(i, 1)) for i in range(3, 6)]
    assert c == [expected("s0", recs(9, 1))]
    assert len(shard.calls) == 3


def test_a_call_past_the_timeout_is_unavailable() -> None:
    shard = FakeShard()
    shard.mode = "hang"

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=1, timeout_s=0.05)
        return await asyncio.gather(*(router.append(0, recs(i, 1)) for i in range(3)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, ShardUnavailable) for r in results)
    assert "TimeoutError" in str(results[0])


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    shard = FakeShard(gated=True)

    async def main() -> list[Any]:
        router = BufferClient([shard], handoff_ms=1)
        tasks = [asyncio.create_task(router.append(0, recs(i, 1))) for i in range(4)]
        await shard.wait_in_flight()
        tasks[1].cancel()  # the client went away while its records were being logged
        await shard.release()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert [results[i] for i in (0, 2, 3)] == [expected("s0", recs(i, 1)) for i in (0, 2, 3)]
    assert len(shard.calls) == 1  # its records were sent anyway: a retry is deduplicated by id


class DeadShard(FakeShard):
    """An actor handle whose actor is gone for good: every call raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__("dead")
        self.exc = exc

    def _remote(self, records: bytes | list[dict[str, Any]]) -> Any:
        if isinstance(records, bytes):  # the router sends one JSON blob (buffer.client.encode)
            records = orjson.loads(records)
        self.calls.append(list(records))

        async def fail() -> dict[str, Any]:
            raise self.exc

        return fail()


def test_a_gone_actor_is_resolved_once_and_the_batch_goes_to_the_new_handle() -> None:
    from ray.exceptions import RayActorError

    dead, fresh = DeadShard(RayActorError()), FakeShard("fresh")
    resolved: list[int] = []

    def resolve(index: int) -> FakeShard:
        resolved.append(index)
        return fresh

    async def main() -> tuple[list[Any], list[Any]]:
        router = BufferClient([FakeShard("s0"), dead], handoff_ms=1, resolve=resolve)
        first = await asyncio.gather(*(router.append(1, recs(i, 1)) for i in range(3)))
        later = await asyncio.gather(router.append(1, recs(7, 1)))
        return first, later

    first, later = asyncio.run(main())
    assert resolved == [1]
    assert len(dead.calls) == 1
    assert first == [expected("fresh", recs(i, 1)) for i in range(3)]
    assert later == [expected("fresh", recs(7, 1))]
    assert [len(c) for c in fresh.calls] == [3, 1]


def test_two_calls_in_flight_on_a_gone_actor_resolve_it_once() -> None:
    from ray.exceptions import RayActorError

    class SlowDeadShard(DeadShard):
        def _remote(self, records: bytes | list[dict[str, Any]]) -> Any:
            self.calls.append(orjson.loads(records) if isinstance(records, bytes) else list(records))

            async def fail() -> dict[str, Any]:
                await asyncio.sleep(0.02)  # both calls are in flight when the first one fails
                raise self.exc

            return fail()

    dead, fresh = SlowDeadShard(RayActorError()), FakeShard("fresh")
    resolved: list[int] = []

    def resolve(index: int) -> FakeShard:
        resolved.append(index)
        return fresh

    async def main() -> list[Any]:
        router = BufferClient([dead], handoff_ms=1, resolve=resolve, max_in_flight=2)
        first = asyncio.create_task(router.append(0, recs(0, 1)))
        await asyncio.sleep(0.005)
        second = asyncio.create_task(router.append(0, recs(1, 1)))
        return await asyncio.gather(first, second)

    results = asyncio.run(main())
    assert len(dead.calls) == 2  # two calls were in flight on the dead handle
    assert resolved == [0]
    assert results == [expected("fresh", recs(0, 1)), expected("fresh", recs(1, 1))]


@pytest.mark.parametrize("resolve", [True, False], ids=["with-resolver", "without-resolver"])
def test_other_errors_are_not_resolved(resolve: bool) -> None:
    dead = DeadShard(RuntimeError("boom"))
    resolved: list[int] = []

    async def main() -> list[Any]:
        router = BufferClient(
            [dead], handoff_ms=1, resolve=(lambda i: resolved.append(i) or FakeShard()) if resolve else None
        )
        return await asyncio.gather(router.append(0, recs(0, 1)), return_exceptions=True)

    [result] = asyncio.run(main())
    assert isinstance(result, ShardUnavailable)
    assert "RuntimeError" in str(result)
    assert resolved == []
