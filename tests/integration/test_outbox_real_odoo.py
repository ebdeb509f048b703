"""The outbox consumer in-process against the real Odoo 19, where what matters is how Odoo itself
behaves under concurrency (the fake's own version of these is in ``test_outbox_faults.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from syncd import db
from syncd.config import DatabaseSettings, Settings
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer
from syncd.outbox.xmlid import external_id
from tests.e2e.helpers import wait_until
from tests.odoo_targets import OdooTarget, Protocol, unique

pytestmark = [pytest.mark.integration, pytest.mark.real_odoo]

MODEL = "res.partner"


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
    try:
        yield p
    finally:
        await p.close()


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_a_load_repeated_while_the_first_still_runs_creates_no_duplicate(
    real_odoo: OdooTarget, pool: asyncpg.Pool, db_dsn: str, protocol: Protocol
) -> None:
    """The client gives up on a load that Odoo is still working on and repeats it, so that several
    loads of one new external id run at once in Odoo (held back by a lock on ``ir_model_data`` taken
    in Odoo's own PostgreSQL, then released together). Odoo's unique (module, name) index and its
    REPEATABLE READ transactions leave one record: the losers fail to serialize, and Odoo retries
    them into updates of the winner's record. (The fake models no such index: the xfail twin of this
    test in ``test_outbox_faults.py``.)"""
    assert real_odoo.pg_dsn, "ODOO19_PG_DSN is needed to hold a lock in Odoo's database"
    key = unique("repeated-load")
    event = await pool.fetchval("select syncd.enqueue($1, 'upsert', $2, $3)", MODEL, key, {"name": key})
    settings = Settings.model_validate({
        "odoo": real_odoo.settings(protocol, timeout_seconds=0.5, retries=3).model_dump(),
        # a failed attempt comes back only when the test says so (below), not within the first drain
        "outbox": {"backoff_base_seconds": 3600, "backoff_max_seconds": 3600, "timeout_fence_seconds": 0},
    })  # fmt: skip
    odoo_pg = await asyncpg.connect(real_odoo.pg_dsn)

    async def blocked() -> int:  # Odoo's requests waiting for the lock
        return int(await odoo_pg.fetchval(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and pid <> pg_backend_pid() "
            "and datname = current_database()"))  # fmt: skip

    async def busy() -> bool:  # any of Odoo's transactions still running (its own retries included)
        return bool(await odoo_pg.fetchval(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() "
            "and state in ('active', 'idle in transaction')"))  # fmt: skip

    async with real_odoo.client(protocol):  # JSON-RPC: Odoo hashes a password once (~0.6 s), then caches it
        pass
    try:
        async with OdooClient(settings.odoo) as odoo:
            consumer = OutboxConsumer(settings, odoo, pool, db_dsn, "repeated")
            tx = odoo_pg.transaction()
            await tx.start()
            await odoo_pg.execute("lock table ir_model_data in share row exclusive mode")
            first = await consumer.drain()  # every attempt times out on the client; Odoo keeps them
            assert (first.done, first.dead) == (0, 0), first
            waiting = await blocked()
            await tx.commit()  # all of them go on at once
        assert waiting >= 2, f"only {waiting} load(s) ran at once in Odoo: the test staged nothing"
        await wait_until(lambda: _not(busy), within=60, interval=0.1, what="Odoo to finish the held loads")
    finally:
        await odoo_pg.close()

    await pool.execute("update syncd.outbox set available_at = now() where id = $1", event)
    async with OdooClient(settings.odoo.model_copy(update={"timeout_seconds": 60})) as odoo:
        report = await OutboxConsumer(settings, odoo, pool, db_dsn, "again").drain()
    assert (report.done, report.dead) == (1, 0), report
    async with real_odoo.client() as admin:
        found = await admin.search(MODEL, [("name", "=", key)], context={"active_test": False})
        ref = await admin.check_object_reference(*external_id("syncd", MODEL, key).split(".", 1))
    assert len(found) == 1, f"{len(found)} partners for one key: {found}"
    assert ref == (MODEL, found[0])


async def _not(condition: Callable[[], Awaitable[bool]]) -> bool:
    return not await condition()
