"""Shared pieces of the CDC tests: a poller wired to the fake Odoo (over HTTP) and a test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import SecretStr

from syncd import db
from syncd.cdc.poller import ModelPoller
from syncd.config import CdcSettings, DatabaseSettings, ModelSettings, OdooSettings
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo, FakeOdooServer
from syncd.testing.fake import ManualClock

PARTNER_FIELDS = ["name", "email", "parent_id", "active", "is_company", "category_id", "color"]


@dataclass
class Rig:
    fake: FakeOdoo
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    server: FakeOdooServer | None = field(default=None, repr=False)

    def serve(self, fake: FakeOdoo) -> None:
        """Put another fake Odoo behind the same server, client and pool (property tests reuse one
        rig across their examples)."""
        assert self.server is not None
        self.fake = self.server.fake = fake

    def poller(
        self, model: str = "res.partner", fields: list[str] | str = PARTNER_FIELDS, **cdc: Any
    ) -> ModelPoller:
        settings = CdcSettings.model_validate({"lookback_seconds": 120, **cdc})
        return ModelPoller(ModelSettings(model=model, fields=fields), settings, "odoo", self.odoo, self.pool,
                           clock=self.odoo_seconds)  # fmt: skip

    def odoo_seconds(self) -> float:
        """The fake Odoo's clock in seconds (a manual one does not tick on this reading): the
        poller's clock, so that records settle as the fake's time passes, not the test's."""
        clock = self.fake.clock
        now = clock.now if isinstance(clock, ManualClock) else clock()
        return now.timestamp()

    async def mirror(self, table: str = "res_partner", *, deleted: bool = False) -> dict[int, dict[str, Any]]:
        """The mirror's live rows (or only the ones marked deleted) as {id: _raw}."""
        cond = "is not null" if deleted else "is null"
        rows = await self.pool.fetch(f'select id, _raw from odoo."{table}" where _deleted_at {cond}')
        return {r["id"]: r["_raw"] for r in rows}

    def odoo_state(self, model: str, fields: list[str]) -> dict[int, dict[str, Any]]:
        """What Odoo returns now for every record, archived ones included, as the poller reads it."""
        rows = self.fake.search_read(model, [], [*fields, "write_date"] if "write_date" not in fields else fields,
                                     context={"active_test": False})  # fmt: skip
        return {r["id"]: r for r in rows}


@asynccontextmanager
async def rig(fake: FakeOdoo, dsn: str) -> AsyncIterator[Rig]:
    async with FakeOdooServer(fake) as server:
        settings = OdooSettings(url=server.url, api_key=SecretStr("admin"), retries=0)
        pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
        try:
            async with OdooClient(settings) as odoo:
                yield Rig(fake, odoo, pool, dsn, server)
        finally:
            await pool.close()
