from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd.outbox.xmlid import external_id
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


async def test_retry_refuses_to_set_records_back_to_older_values(db_dsn: str, odoo: FakeOdooServer) -> None:
    """Issue 11: dead events retried after later events of the same record were applied set the
    record back to the older values. They are refused (by key and by odoo_id), the others in the same
    call are retried, and ``--force`` retries them anyway."""
    env = clean_env(SYNCD_DATABASE__DSN=db_dsn, SYNCD_ODOO__URL=odoo.url, SYNCD_ODOO__API_KEY="admin")
    conn = await asyncpg.connect(db_dsn)

    async def enqueue(op: str, key: str | None, name: str, odoo_id: int | None = None) -> int:
        sql = "select syncd.enqueue('res.partner', $1, $2, $3::jsonb, $4)"
        return int(await conn.fetchval(sql, op, key, json.dumps({"name": name}), odoo_id))

    async def die(event_id: int) -> None:  # as after max_attempts transient failures
        await conn.execute(
            "update syncd.outbox set status = 'dead', attempts = 10, last_error = 'could not serialize'"
            " where id = $1",
            event_id,
        )

    def names() -> tuple[str | None, str | None, str | None]:
        partners = odoo.fake.records("res.partner")
        ada, bob = (odoo.fake.ref(external_id("syncd", "res.partner", k)) for k in ("ada", "bob"))
        return (
            partners[ada[1]]["name"] if ada else None,
            partners[bob[1]]["name"] if bob else None,
            partners[3]["name"],
        )

    try:
        old = await enqueue("upsert", "ada", "Ada Old")
        old_3 = await enqueue("write", None, "Old 3", 3)
        bob = await enqueue("upsert", "bob", "Bob")  # another record
        for event_id in (old, old_3, bob):
            await die(event_id)
        new = await enqueue("upsert", "ada", "Ada New")
        new_3 = await enqueue("write", None, "New 3", 3)
        r = await syncd_async("--once", env=env)
        assert r.code == 0 and "outbox: 2 delivered" in r.out, r
        assert names() == ("Ada New", None, "New 3")

        r = await syncd_async("outbox", "retry", str(old), str(old_3), str(bob), env=env)
        assert r.code == 1, r
        assert "1 dead events made pending again" in r.out
        assert f"refused {old} (res.partner ada): later events of this record: {new} upsert done " in r.out
        assert f"refused {old_3} (res.partner #3): later events of this record: {new_3} write done " in r.out
        assert f"`syncd outbox retry --force {old} {old_3}`" in r.out
        r = await syncd_async("--once", env=env)
        assert r.code == 0 and "outbox: 1 delivered" in r.out, r
        assert names() == ("Ada New", "Bob", "New 3")  # nothing set back

        r = await syncd_async("outbox", "retry", "--force", str(old), str(old_3), env=env)
        assert r.code == 0, r
        assert "2 dead events made pending again" in r.out
        assert (
            f"forced {old} (res.partner ada): its values overwrite what later events applied: {new} " in r.out
        )
        r = await syncd_async("--once", env=env)
        assert r.code == 0 and "outbox: 2 delivered" in r.out, r
        assert names() == ("Ada Old", "Bob", "Old 3")  # what --force says it does
    finally:
        await conn.close()


async def test_retry_all_dead_checks_each_dead_event(db_dsn: str, odoo: FakeOdooServer) -> None:
    env = clean_env(SYNCD_DATABASE__DSN=db_dsn, SYNCD_ODOO__URL=odoo.url, SYNCD_ODOO__API_KEY="admin")
    conn = await asyncpg.connect(db_dsn)
    try:
        ids = [
            await conn.fetchval("select syncd.enqueue('res.partner', 'upsert', $1, '{\"name\": \"x\"}')", key)
            for key in ("a", "b", "a", "c", "c")
        ]
        await conn.execute(
            "update syncd.outbox set status = case when id = any($1::bigint[]) then 'done' else 'dead' end,"
            " done_at = case when id = any($1::bigint[]) then now() end",
            [ids[2], ids[3]],
        )  # a: dead, then done; b: dead; c: done, then dead
        r = await syncd_async("outbox", "retry", "--all-dead", env=env)
        assert r.code == 1, r
        assert "2 dead events made pending again" in r.out
        refusals = [line.split(":")[0] for line in r.out.splitlines() if line.startswith("refused ")]
        assert refusals == [f"refused {ids[0]} (res.partner a)"]
        status = dict(await conn.fetch("select id, status from syncd.outbox"))
        assert [status[i] for i in ids] == ["dead", "pending", "done", "done", "pending"]

        r = await syncd_async("outbox", "retry", "--all-dead", "--force", env=env)
        assert r.code == 0 and "1 dead events made pending again" in r.out and f"forced {ids[0]} " in r.out, r
    finally:
        await conn.close()
