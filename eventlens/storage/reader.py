"""Read access to ClickHouse for insight replicas: through the chDB owner actor, or a server."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from eventlens.storage.clickhouse import Warehouse


class Reader(Protocol):
    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]: ...
    async def ping(self, timeout_s: float = 3.0) -> bool: ...


class ActorReader:
    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.actor.query.remote(sql, parameters)

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
