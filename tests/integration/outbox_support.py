"""The outbox tests' shared set-up: the fake Odoo over HTTP, a client, a pool and fast-retry settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from syncd import db
from syncd.config import DatabaseSettings, Settings
from syncd.odoo import OdooClient
from syncd.outbox.consumer import Event, OutboxConsumer
from syncd.testing import FakeOdoo, FakeOdooServer

MODEL = "res.partner"


@dataclass
class OutboxEnv:
    fake: FakeOdoo
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    settings: Settings


@asynccontextmanager
async def outbox_env(fake: FakeOdoo, dsn: str, **odoo: Any) -> AsyncIterator[OutboxEnv]:
    """Retries and backoff shrunk to milliseconds so that tests wait for events, not for time."""
    async with FakeOdooServer(fake) as server:
        settings = Settings.model_validate(
            {"odoo": {"url": server.url, "api_key": "admin", "retries": 0, **odoo},
             "outbox": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "poll_interval_seconds": 0.05}}
        )  # fmt: skip
        pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
        try:
            async with OdooClient(settings.odoo) as client:
                yield OutboxEnv(fake, client, pool, dsn, settings)
        finally:
            await pool.close()


class Rig:
    """One consumer's view for claim-level tests: consumers with settings overridden, enqueue into
    ``res.partner``, rows, and the rows that reached the fake's load()."""

    def __init__(self, env: OutboxEnv) -> None:
        self.fake, self.odoo, self.pool, self.dsn, self.settings = (
            env.fake,
            env.odoo,
            env.pool,
            env.dsn,
            env.settings,
        )

    def consumer(self, name: str = "me", pool: asyncpg.Pool | None = None, **outbox: Any) -> OutboxConsumer:
        settings = self.settings.model_copy(update={"outbox": self.settings.outbox.model_copy(update=outbox)})
        return OutboxConsumer(settings, self.odoo, pool or self.pool, self.dsn, name)

    async def enqueue(
        self, key: str | None, payload: dict[str, Any] | None, op: str = "upsert", odoo_id: int | None = None
    ) -> int:
        return int(
            await self.pool.fetchval("select syncd.enqueue($1, $2, $3, $4, $5)", MODEL, op, key, payload, odoo_id)
        )  # fmt: skip

    async def row(self, event_id: int) -> asyncpg.Record:
        row = await self.pool.fetchrow("select * from syncd.outbox where id = $1", event_id)
        assert row is not None
        return row

    async def statuses(self, *event_ids: int) -> list[str]:
        return [(await self.row(i))["status"] for i in event_ids]

    async def expire_leases(self) -> None:
        await self.pool.execute("update syncd.outbox set locked_until = now() - interval '1 second'")

    def loads_of(self, key: str) -> list[list[Any]]:
        """The rows of ``key`` in the load() calls the fake received, in order."""
        return [
            row
            for call in self.fake.calls
            if call.method == "load"
            for row in (call.kwargs.get("data") or (call.args[1] if len(call.args) > 1 else []))
            if row and str(row[0]).endswith(f"__k_{key}")
        ]


def ids(events: list[Event]) -> list[int]:
    return [e.id for e in events]
