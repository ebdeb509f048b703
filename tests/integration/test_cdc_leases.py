"""CDC leadership by lease (``database.pooler = "transaction"``): the lease statements, the fence in
every mirror transaction, and the service's run loop and ``--once`` pass — each against the test
PostgreSQL directly and through PgBouncer in transaction mode (skipped when PgBouncer is absent)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from syncd import db
from syncd.cdc.service import CdcService, LeaseLost, lease_seconds
from syncd.config import DatabaseSettings, OdooSettings, Settings
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import wait_until
from tests.pgbouncer import pgbouncer

pytestmark = pytest.mark.integration

MODEL = "res.partner"


@pytest.fixture(params=["direct", "pgbouncer"])
def dsn(request: pytest.FixtureRequest, db_dsn: str, tmp_path: Path) -> Iterator[str]:
    """The test database, directly or through PgBouncer in transaction mode."""
    if request.param == "direct":
        yield db_dsn
        return
    with pgbouncer(db_dsn, tmp_path / "pgbouncer") as bouncer:
        yield bouncer.dsn(db_dsn)


@dataclass
class Rig:
    fake: FakeOdoo
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str

    def service(self, instance: str, *, dry_run: bool = False, **cdc: Any) -> CdcService:
        settings = Settings.model_validate(
            {
                "database": {"pooler": "transaction"},
                "cdc": {"interval_seconds": 0.1, "models": [{"model": MODEL, "fields": ["name"]}], **cdc},
                "daemon": {"instance_id": instance},
            }
        )
        return CdcService(settings, self.odoo, self.pool, self.dsn, dry_run=dry_run)

    async def lease(self) -> asyncpg.Record | None:
        return await self.pool.fetchrow("select * from syncd.cdc_leases where model = $1", MODEL)

    async def mirrored_name(self, rid: int) -> str | None:
        name: str | None = await self.pool.fetchval("select name from odoo.res_partner where id = $1", rid)
        return name


@pytest.fixture
async def r(dsn: str) -> AsyncIterator[Rig]:
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server:
        pool = await db.create_pool(dsn, DatabaseSettings(pooler="transaction", pool_max_size=6))
        try:
            async with OdooClient(
                OdooSettings(url=server.url, api_key=SecretStr("admin"), retries=0)
            ) as odoo:
                yield Rig(fake, odoo, pool, dsn)
        finally:
            await pool.close()


async def take(pool: asyncpg.Pool, holder: str, seconds: float = 60.0) -> set[str]:
    rows = await pool.fetch(db.queries["cdc_lease_take"], [MODEL], holder, seconds)
    return {row["model"] for row in rows}


async def wait_for(condition: Callable[[], bool], *, within: float, what: str) -> None:
    """Until ``condition()`` holds (the state of another task)."""

    async def holds() -> bool:
        return condition()

    await wait_until(holds, within=within, interval=0.02, what=what)


@contextlib.asynccontextmanager
async def running(service: CdcService) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


# ----------------------------------------------------------------------------------- statements


async def test_a_lease_is_exclusive_renewable_and_taken_over_once_it_ran_out(r: Rig) -> None:
    assert await take(r.pool, "a") == {MODEL}
    first = await r.lease()
    assert first is not None and first["holder"] == "a"
    assert await take(r.pool, "b") == set()  # valid and someone else's
    assert await take(r.pool, "a", 120) == {MODEL}  # renewed by its holder
    renewed = await r.lease()
    assert renewed is not None
    assert renewed["lease_until"] > first["lease_until"]
    assert renewed["acquired_at"] == first["acquired_at"]

    await r.pool.execute("update syncd.cdc_leases set lease_until = now() - interval '1 second'")
    assert await take(r.pool, "b") == {MODEL}
    assert await take(r.pool, "a") == set()  # a's renewal comes too late: b holds it now
    taken = await r.lease()
    assert taken is not None and taken["holder"] == "b" and taken["acquired_at"] > first["acquired_at"]

    await r.pool.execute(db.queries["cdc_lease_release"], [MODEL], "a")  # not a's: nothing happens
    assert await r.lease() is not None
    await r.pool.execute(db.queries["cdc_lease_release"], [MODEL], "b")
    assert await r.lease() is None


async def test_a_replica_whose_lease_ran_out_commits_nothing(r: Rig) -> None:
    a = r.service("a")
    poller = a.pollers[MODEL]
    assert await take(r.pool, a.holder) == {MODEL}
    await poller.poll()
    [rid] = r.fake.search(MODEL, [], limit=1)
    name = await r.mirrored_name(rid)
    assert name is not None
    state = await r.pool.fetchrow(
        "select cursor_write_date, cursor_id from syncd.cdc_state where model = $1", MODEL
    )

    # a stalls past its lease; b takes the model over; then a wakes up with a page to write.
    await r.pool.execute("update syncd.cdc_leases set lease_until = now() - interval '1 second'")
    assert await take(r.pool, "b") == {MODEL}
    r.fake.write(MODEL, [rid], {"name": "written while a stalled"})
    with pytest.raises(LeaseLost):
        await poller.poll()
    assert await r.mirrored_name(rid) == name  # rolled back: neither the row …
    after = await r.pool.fetchrow(
        "select cursor_write_date, cursor_id from syncd.cdc_state where model = $1", MODEL
    )
    assert after == state  # … nor the cursor


async def test_a_page_being_committed_keeps_its_lease_and_blocks_no_renewal(r: Rig) -> None:
    a = r.service("a")
    assert await take(r.pool, a.holder, 0.5) == {MODEL}  # about to run out
    page = await r.pool.acquire()
    try:
        async with page.transaction():
            await page.execute(db.queries["cdc_mark_origin"])
            assert a.pollers[MODEL].guard is not None
            await a.pollers[MODEL].guard(page)  # checked while valid: the row is locked and renewed
            # … and a replica that hangs in here loses the transaction (and the lock) after a lease.
            assert await page.fetchval("show idle_in_transaction_session_timeout") == "5s"
            await asyncio.sleep(0.6)  # the lease as last committed has run out meanwhile
            # Another replica neither takes the model nor waits for the page (it would wait forever
            # here): the row is skipped while locked.
            assert await asyncio.wait_for(take(r.pool, "b"), 2) == set()
        assert await page.fetchval("show idle_in_transaction_session_timeout") == "0"  # local to it
        # Committed: the page's renewal is what b sees now.
        assert await asyncio.wait_for(take(r.pool, "b"), 2) == set()
        lease = await r.lease()
        assert lease is not None and lease["holder"] == a.holder

        async with page.transaction():
            await a.pollers[MODEL].guard(page)
            # The holder's own renewal skips the row its page holds, and counts it as its own.
            assert await asyncio.wait_for(take(r.pool, a.holder), 2) == {MODEL}
    finally:
        await r.pool.release(page)


# ---------------------------------------------------------------------------------------- run


async def test_run_polls_under_its_lease_and_hands_over_at_once_on_a_clean_stop(r: Rig) -> None:
    a, b = r.service("a"), r.service("b")
    assert a.by_lease and a.holder != b.holder and a.lease_seconds == lease_seconds(0.1) == 5.0
    [rid] = r.fake.create(MODEL, {"name": "while a leads"})
    async with running(a) as stop_a:
        await asyncio.wait_for(a.leadership_changed.wait(), 10)
        assert a.leading == {MODEL}
        lease = await r.lease()
        assert lease is not None and lease["holder"] == a.holder
        await until(lambda: r.mirrored_name(rid), "while a leads", what="a's poll")
        async with running(b):
            await renewed(r, a.holder, times=3)  # b has tried as often meanwhile (same interval)
            assert b.leading == set()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            stop_a.set()
            await asyncio.wait_for(b.leadership_changed.wait(), 10)
            took = loop.time() - t0
            assert b.leading == {MODEL} and a.leading == set()
            assert took < b.lease_seconds  # handed over, not run out
            lease = await r.lease()
            assert lease is not None and lease["holder"] == b.holder
            r.fake.write(MODEL, [rid], {"name": "after the handover"})
            await until(lambda: r.mirrored_name(rid), "after the handover", what="b's poll")
    assert await r.lease() is None  # b released it too


async def test_run_stops_polling_a_model_whose_lease_another_replica_took(
    r: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    a = r.service("a")
    async with running(a):
        await asyncio.wait_for(a.leadership_changed.wait(), 10)
        a.leadership_changed.clear()
        # As if a had stalled past its lease and another replica had taken the model meanwhile.
        await r.pool.execute(
            "update syncd.cdc_leases set holder = 'intruder', lease_until = now() + interval '1 hour'"
        )
        await wait_for(lambda: not a.leading, within=10, what="a to stop polling")
        assert "stopped polling res.partner on this replica" in caplog.text
        assert not a.leadership_changed.is_set()
        await r.pool.execute(db.queries["cdc_lease_release"], [MODEL], "intruder")
        await asyncio.wait_for(a.leadership_changed.wait(), 10)  # free again: a takes it back
        assert a.leading == {MODEL}


async def test_once_skips_a_model_leased_elsewhere_and_a_dry_run_takes_no_lease(r: Rig) -> None:
    assert await take(r.pool, "other") == {MODEL}
    report = await r.service("a").run_once()
    assert report.skipped == [MODEL] and not report.polls
    await r.pool.execute(db.queries["cdc_lease_release"], [MODEL], "other")

    report = await r.service("a", dry_run=True).run_once()
    assert list(report.polls) == [MODEL] and not report.skipped
    assert await r.lease() is None

    report = await r.service("a").run_once()
    assert list(report.polls) == [MODEL] and report.polls[MODEL].rows_written > 0
    assert not report.errors and not report.skipped
    assert await r.lease() is None  # released after the model's pass


async def renewed(r: Rig, holder: str, *, times: int) -> None:
    """Until ``holder`` has renewed its lease ``times`` times (it stays its own all along)."""
    seen: set[Any] = set()
    async with asyncio.timeout(10):
        while len(seen) <= times:
            lease = await r.lease()
            assert lease is not None and lease["holder"] == holder
            seen.add(lease["lease_until"])
            await asyncio.sleep(0.02)


async def until(read: Callable[[], Awaitable[Any]], expected: Any, *, what: str, within: float = 10) -> None:
    """Until ``await read()`` equals ``expected`` (a database read; a missing table is "not yet")."""

    async def reached() -> bool:
        try:
            return bool(await read() == expected)
        except asyncpg.UndefinedTableError:
            return False

    await wait_until(reached, within=within, what=what)
