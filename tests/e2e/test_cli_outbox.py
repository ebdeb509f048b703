from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import clean_env, syncd_async

pytestmark = pytest.mark.e2e


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


async def test_once_drains_the_outbox_and_operators_can_redrive(db_dsn: str, odoo: FakeOdooServer) -> None:
    env = clean_env(SYNCD_DATABASE__DSN=db_dsn, SYNCD_ODOO__URL=odoo.url, SYNCD_ODOO__API_KEY="admin")
    conn = await asyncpg.connect(db_dsn)
    try:
        for i in range(3):
            await conn.execute("select syncd.enqueue('res.partner', 'upsert', $1, $2::jsonb)", f"k{i}",
                               json.dumps({"name": f"Customer {i}"}))  # fmt: skip
        bad = await conn.fetchval("select syncd.enqueue('res.partner', 'upsert', 'bad', '{\"no_such\": 1}')")
        r = await syncd_async("--once", env=env)
        assert r.code == 1  # an event went dead in this run
        assert f"outbox: 3 delivered, 0 to retry later, 1 dead (ids {bad})" in r.out

        r = await syncd_async("outbox", "list", "--status", "dead", env=env)
        assert r.code == 0
        lines = r.out.splitlines()
        assert lines[0].split()[:3] == ["ID", "STATUS", "OP"]
        assert len(lines) == 2 and "field 'no_such' does not exist" in lines[1]

        r = await syncd_async("outbox", "retry", str(bad), "999999", env=env)
        assert "1 dead events made pending again" in r.out and "999999" in r.out
        row = await conn.fetchrow("select status, attempts from syncd.outbox where id = $1", bad)
        assert (row["status"], row["attempts"]) == ("pending", 0)

        r = await syncd_async("outbox", "discard", str(bad), env=env)
        assert "1 events discarded" in r.out
        assert await conn.fetchval("select count(*) from syncd.outbox where id = $1", bad) == 0

        r = await syncd_async("outbox", "retry", env=env)
        assert r.code == 2 and "--all-dead" in r.err
        r = await syncd_async("--once", env=env)
        assert r.code == 0 and "outbox: 0 delivered, 0 to retry later, 0 dead" in r.out
    finally:
        await conn.close()
