"""Several replicas share the models: with R live replicas each polls at most ceil(models / R), a
replica that holds more hands one over per interval, and when one stops the others take its
models. With advisory locks (direct connections) and with leases (transaction-mode poolers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from pydantic import SecretStr

from syncd import db
from syncd.cdc.service import CdcService, fair_share
from syncd.config import DatabaseSettings, OdooSettings, Settings
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import wait_until
from tests.integration.test_cdc_leases import running

pytestmark = pytest.mark.integration

MODELS = ["res.partner", "res.country", "res.partner.category", "res.currency"]


def test_fair_shares_add_up_to_the_models() -> None:
    for models in range(0, 9):
        for replicas in range(1, 6):
            shares = [fair_share(models, replicas, rank) for rank in range(replicas)]
            assert sum(shares) == models and max(shares) - min(shares) <= 1, (models, replicas, shares)
    assert [fair_share(4, 3, rank) for rank in range(3)] == [2, 1, 1]
    assert fair_share(4, 0) == 4


@dataclass
class Rig:
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    pooler: str

    def service(self, instance: str) -> CdcService:
        settings = Settings.model_validate(
            {
                "database": {"pooler": self.pooler},
                "cdc": {
                    "interval_seconds": 0.1,
                    "models": [{"model": m, "fields": ["name"]} for m in MODELS],
                },
                "daemon": {"instance_id": instance},
            }
        )
        return CdcService(settings, self.odoo, self.pool, self.dsn)


@pytest.fixture(params=["none", "transaction"], ids=["advisory-locks", "leases"])
async def r(request: pytest.FixtureRequest, db_dsn: str) -> AsyncIterator[Rig]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        pool = await db.create_pool(db_dsn, DatabaseSettings(pool_max_size=8))
        try:
            settings = OdooSettings(url=server.url, api_key=SecretStr("admin"), retries=0)
            async with OdooClient(settings) as odoo:
                yield Rig(odoo, pool, db_dsn, request.param)
        finally:
            await pool.close()


async def test_replicas_share_the_models_and_take_over_those_of_one_that_stops(r: Rig) -> None:
    a, b, c = r.service("a"), r.service("b"), r.service("c")
    overlaps: list[set[str]] = []

    def split(*services: CdcService, sizes: list[int]) -> bool:
        held = [s.leading for s in services]
        for i, x in enumerate(held):
            for y in held[i + 1 :]:
                if x & y:
                    overlaps.append(x & y)
        return sorted(len(h) for h in held) == sizes and set().union(*held) == set(MODELS)

    async with running(a):
        await wait_until(lambda: _true(split(a, sizes=[4])), within=20, what="a polling every model")
        async with running(b) as stop_b:
            await wait_until(lambda: _true(split(a, b, sizes=[2, 2])), within=20, what="a and b at 2 each")
            async with running(c):
                await wait_until(lambda: _true(split(a, b, c, sizes=[1, 1, 2])), within=20, what="1/1/2")
                stop_b.set()
                await wait_until(
                    lambda: _true(split(a, c, sizes=[2, 2])), within=20, what="a and c at 2 each"
                )
    assert overlaps == []  # no model was ever seen polled by two replicas at once
    assert await r.pool.fetchval("select count(*) from syncd.cdc_replicas") == 0  # all left


async def _true(value: bool) -> bool:
    return value


async def test_the_share_of_a_replica_that_died_is_taken_over_once_its_presence_runs_out(r: Rig) -> None:
    """A replica killed with -9 leaves its presence row behind; until it runs out the others keep
    their shares, then they take its models too."""
    a = r.service("a")
    async with running(a):
        await wait_until(lambda: _true(len(a.leading) == 4), within=20, what="a polling every model")
        await r.pool.execute("insert into syncd.cdc_replicas values ('0-dead', now() + interval '2 seconds')")
        await wait_until(lambda: _true(len(a.leading) == 2), within=20, what="a making room for the other")
        await wait_until(lambda: _true(len(a.leading) == 4), within=20, what="a taking the dead one's share")


async def test_a_replica_whose_share_is_none_hands_every_model_over(r: Rig) -> None:
    """More live replicas than models: the last by rank polls nothing (a share of 0 is a share)."""
    a = r.service("a")
    async with running(a):
        await wait_until(lambda: _true(len(a.leading) == 4), within=20, what="a polling every model")
        await r.pool.execute(
            "insert into syncd.cdc_replicas select '0-other-' || i, now() + interval '1 hour'"
            " from generate_series(1, 4) as i"
        )
        await wait_until(lambda: _true(len(a.leading) == 0), within=20, what="a handing over its models")
