"""Read access to ClickHouse for insight replicas: through the chDB owner, or direct to a server."""

from __future__ import annotations

import asyncio
from typing import Any

from eventlens.config import Settings


class Querier:
    def __init__(self, settings: Settings) -> None:
        self.embedded = settings.embedded_clickhouse
        if self.embedded:
            from eventlens.actors.registry import warehouse_actor

            self.actor = warehouse_actor(settings)
        else:
            from eventlens.storage.clickhouse import Warehouse

            self.wh = Warehouse(settings.clickhouse_dsn, settings.clickhouse_database)

    async def query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        if self.embedded:
            return await self.actor.query.remote(sql, parameters)
        return await asyncio.to_thread(self.wh.query, sql, parameters)

    async def ping(self, timeout_s: float = 3.0) -> bool:
        try:
            if self.embedded:
                return bool(await asyncio.wait_for(self.actor.ping.remote(), timeout_s))
            return await asyncio.wait_for(asyncio.to_thread(self.wh.ping), timeout_s)
        except Exception:
            return False
