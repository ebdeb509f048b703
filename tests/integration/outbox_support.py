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
from syncd.testing import FakeOdoo, FakeOdooServer


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
