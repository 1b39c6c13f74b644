"""Read access to ClickHouse for insight replicas: through the chDB owner actor, or a server."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from eventlens.storage.clickhouse import QUERY_SETTINGS, Warehouse

# An insight query ends within ClickHouse's own bound (``max_execution_time``). A call to the chDB
# owner that takes longer means the owner does not answer (frozen, stuck, swapped out): the wait
# ends with a TimeoutError, an outage (503 + Retry-After), instead of holding the request for as
# long as the owner stays stuck.
ACTOR_QUERY_TIMEOUT_S = float(QUERY_SETTINGS["max_execution_time"]) + 5


class Reader(Protocol):
    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]: ...
    async def ping(self, timeout_s: float = 3.0) -> bool: ...


class ActorReader:
    def __init__(self, actor: Any, timeout_s: float = ACTOR_QUERY_TIMEOUT_S) -> None:
        self.actor = actor
        self.timeout_s = timeout_s

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return await asyncio.wait_for(self.actor.query.remote(sql, parameters), self.timeout_s)

    async def ping(self, timeout_s: float = 3.0) -> bool:
        try:
            return bool(await asyncio.wait_for(self.actor.ping.remote(), timeout_s))
        except Exception:
            return False


class ServerReader:
    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wh.query, sql, parameters)

    async def ping(self, timeout_s: float = 3.0) -> bool:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.wh.ping), timeout_s)
        except Exception:
            return False
