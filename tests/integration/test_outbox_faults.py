"""The outbox consumer in-process against a real PostgreSQL and the fake Odoo over HTTP, under faults:
polling without LISTEN, an unreachable database, a batch slower than its lease, and an Odoo call that
timed out on the client but committed in Odoo later."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncd import db
from syncd.config import DatabaseSettings, Settings
from syncd.daemon import run_outbox
from syncd.embedded import free_port
from syncd.errors import DatabaseUnavailable
from syncd.health import Health, HealthMonitor
from syncd.odoo import OdooClient
from syncd.outbox.consumer import MAX_CONSUMER_BACKOFF, Event, OutboxConsumer, Outcome
from syncd.outbox.xmlid import external_id
from syncd.testing import FakeOdoo
from syncd.testing.faults import DEADLOCK_TEXT, LOCK_TIMEOUT_TEXT, SERIALIZATION_TEXT
from tests.integration.outbox_support import outbox_env

pytestmark = pytest.mark.integration

MODEL = "res.partner"
ROOT = Path(__file__).resolve().parents[2]


class Rig:
    def __init__(self, fake: FakeOdoo, odoo: OdooClient, pool: asyncpg.Pool, dsn: str, settings: Settings):
        self.fake, self.odoo, self.pool, self.dsn, self.settings = fake, odoo, pool, dsn, settings

    def consumer(
        self, name: str = "test-consumer", pool: asyncpg.Pool | None = None, **outbox: Any
    ) -> OutboxConsumer:
        settings = self.settings.model_copy(update={"outbox": self.settings.outbox.model_copy(update=outbox)})
        return OutboxConsumer(settings, self.odoo, pool or self.pool, self.dsn, name)

    async def enqueue(self, key: str, payload: dict[str, Any]) -> int:
        return int(
            await self.pool.fetchval("select syncd.enqueue($1, 'upsert', $2, $3)", MODEL, key, payload)
        )

    async def event(self, event_id: int) -> asyncpg.Record:
        row = await self.pool.fetchrow("select * from syncd.outbox where id = $1", event_id)
        assert row is not None
        return row

    def named(self, name: str) -> list[int]:
        return [rid for rid, rec in self.fake.records(MODEL).items() if rec.get("name") == name]


def ended(fake: FakeOdoo) -> asyncio.Future[list[None]]:
    """Resolves once the fake's transactions open right now (e.g. a held late commit) have ended."""
    loop = asyncio.get_running_loop()
    waits = []
    for txn in fake.store.open_transactions():
        done: asyncio.Future[None] = loop.create_future()

        def resolve(done: asyncio.Future[None] = done) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        txn.add_done_callback(resolve)
        waits.append(done)
    assert waits, "no open transaction to wait for"
    return asyncio.gather(*waits)


@pytest.fixture
async def r(db_dsn: str) -> AsyncIterator[Rig]:
    async with outbox_env(FakeOdoo(), db_dsn, timeout_seconds=2) as env:
        yield Rig(env.fake, env.odoo, env.pool, env.dsn, env.settings)


async def test_polling_alone_delivers_within_the_poll_interval(r: Rig) -> None:
    """``outbox.listen = false`` (transaction-mode pooler): no LISTEN connection, and each event is
    still delivered within about one poll interval."""
    poll = 0.5
    consumer = r.consumer(listen=False, poll_interval_seconds=poll)
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    consumer.on_recorded = recorded.put_nowait
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    loop = asyncio.get_running_loop()
    try:
        for i in range(3):
            started = loop.time()
            event = await r.enqueue(f"poll-{i}", {"name": f"polled {i}"})
            outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
            took = loop.time() - started
            assert [(o.event.id, o.status) for o in outcomes] == [(event, "done")]
            # one interval plus slack for a loaded 2-core CI machine; LISTEN alone would be ~ms
            assert took <= poll + 1.5, f"event {i} took {took:.2f}s with a {poll}s poll interval"
            listeners = await r.pool.fetchval(
                "select count(*) from pg_stat_activity"
                " where datname = current_database() and query ilike 'listen%'"
            )
            assert listeners == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert all(len(r.named(f"polled {i}")) == 1 for i in range(3))


async def test_an_unreachable_database_is_a_syncd_error_and_the_consumer_keeps_trying(r: Rig) -> None:
    """PostgreSQL away (here: nothing listens on the port): claim and housekeeping fail with
    DatabaseUnavailable, not a raw driver error, so ``run()`` logs, waits and tries again instead of
    ending (which would leave `syncd run` alive but delivering nothing)."""
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    pool = await asyncpg.create_pool(nowhere, min_size=0, max_size=1, timeout=2)
    try:
        consumer = r.consumer(pool=pool, listen=False, poll_interval_seconds=0.05)
        with pytest.raises(DatabaseUnavailable):
            await consumer.claim()
        with pytest.raises(DatabaseUnavailable):
            await consumer.housekeep()

        claims = 0
        tried_thrice = asyncio.Event()
        claim = consumer.claim

        async def counting_claim() -> list[Event]:
            nonlocal claims
            claims += 1
            if claims >= 3:
                tried_thrice.set()
            return await claim()

        consumer.claim = counting_claim  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        waiter = asyncio.create_task(tried_thrice.wait())
        await asyncio.wait([task, waiter], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), f"run() ended: {task.exception() if task.done() else None!r}"
        assert tried_thrice.is_set()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        waiter.cancel()
    finally:
        await pool.close()


async def test_a_batch_slower_than_its_lease_is_not_taken_over(r: Rig) -> None:
    """The lease is extended while Odoo is slow, so a second consumer never claims (and delivers) the
    same event concurrently."""
    event = await r.enqueue("slow", {"name": "slow one"})
    holder, other = r.consumer("holder", lease_seconds=0.3), r.consumer("other", lease_seconds=0.3)
    r.fake.faults.latency_seconds = 1.0  # per call (fields_get, load): several leases in all
    claimed = await holder.claim()
    assert [e.id for e in claimed] == [event]
    delivering = asyncio.create_task(holder._deliver_batch(claimed))
    stolen: list[Event] = []
    while not delivering.done():
        stolen += await other.claim()
        await asyncio.sleep(0.05)
    assert [o.status for o in await delivering] == ["done"]
    assert stolen == []
    await holder.flush()
    row = await r.event(event)
    assert (row["status"], row["attempts"]) == ("done", 1)
    assert sum(1 for c in r.fake.calls if c.method == "load") == 1


async def test_a_load_that_timed_out_but_committed_later_is_not_applied_twice(r: Rig) -> None:
    """The ambiguous failure: the client gives up on a load that Odoo commits afterwards. The retry
    upserts through the same external id, so the record exists once and the event ends done."""
    consumer = r.consumer()
    event = await r.enqueue("late", {"name": "late one"})
    r.fake.faults.late_commit_next(1, methods={"load"})
    slow_odoo = r.settings.odoo.model_copy(update={"timeout_seconds": 0.3})
    async with OdooClient(slow_odoo) as odoo:
        consumer.odoo = odoo
        report = await consumer.drain()
    assert (report.done, report.retried, report.dead) == (0, 1, 0)
    committed = ended(r.fake)
    assert r.fake.faults.release_late_commits() == 1  # Odoo commits the first load now
    await asyncio.wait_for(committed, timeout=10)
    ref = r.fake.ref(external_id("syncd", MODEL, "late"))
    assert ref is not None

    consumer.odoo = r.odoo
    await r.pool.execute("update syncd.outbox set available_at = now()")
    report = await consumer.drain()
    assert (report.done, report.dead) == (1, 0)
    row = await r.event(event)
    assert (row["status"], row["attempts"], row["result_id"]) == ("done", 2, ref[1])
    assert r.named("late one") == [ref[1]]


async def test_a_load_retried_while_the_first_still_runs_creates_no_duplicate(r: Rig) -> None:
    """The client gives up on a slow load and repeats it (odoo.retries) while Odoo is still working on
    the first one, which commits afterwards: the key must still map to one record. (The repeat waits
    on the external id's unique index, as in a real Odoo: ``test_outbox_real_odoo.py``.)"""
    consumer = r.consumer()
    await r.enqueue("slow", {"name": "slow one"})
    r.fake.faults.late_commit_next(1, delay_seconds=1.0, methods={"load"})
    impatient = r.settings.odoo.model_copy(update={"timeout_seconds": 0.3, "retries": 3})
    async with OdooClient(impatient) as odoo:
        consumer.odoo = odoo
        report = await consumer.drain()
    assert (report.done, report.dead) == (1, 0)
    assert len([c for c in r.fake.calls if c.method == "load"]) >= 2, "the load was not repeated"
    if r.fake.store.open_transactions():
        await asyncio.wait_for(ended(r.fake), timeout=10)  # the first load commits after its delay
    ref = r.fake.ref(external_id("syncd", MODEL, "slow"))
    assert ref is not None
    assert r.named("slow one") == [ref[1]]


async def test_a_refused_login_holds_events_back_instead_of_dead_lettering_them(r: Rig) -> None:
    """A revoked or rotated API key (HTTP 401) is not the events' fault: they wait for a retry,
    the batch is not split row by row (one call, not one per row), and they land once Odoo takes
    the credentials again."""
    ids = [await r.enqueue(f"auth-{i}", {"name": f"auth {i}"}) for i in range(6)]
    consumer = r.consumer(batch_size=10)
    await consumer.drain()  # warm the fields_get cache so that only load() sees the refusal
    before = len(r.fake.calls)
    ids += [await r.enqueue(f"auth-{i}", {"name": f"auth {i}"}) for i in range(6, 12)]
    r.fake.faults.fail_next(1000, status=401, methods={"load"})
    report = await consumer.drain()
    loads = [c for c in r.fake.calls[before:] if c.method == "load"]
    assert report.dead == 0 and report.retried == 6, report
    assert len(loads) == 1, [c.fault for c in loads]
    rows = [await r.event(i) for i in ids[6:]]
    assert {row["status"] for row in rows} == {"pending"}
    assert all("401" in row["last_error"] for row in rows)
    r.fake.faults.clear()
    await r.pool.execute("update syncd.outbox set available_at = now() where status = 'pending'")
    await consumer.drain()
    assert {(await r.event(i))["status"] for i in ids} == {"done"}
    assert len(r.named("auth 11")) == 1


@pytest.mark.parametrize("text", [SERIALIZATION_TEXT, DEADLOCK_TEXT, LOCK_TIMEOUT_TEXT])
async def test_a_conflict_that_load_reports_in_band_is_retried_not_dead(r: Rig, text: str) -> None:
    """Another client writing the same record: Odoo's load() answers normally with ``ids: false`` and
    PostgreSQL's conflict text for that row. The row is retried later (transient), not dead-lettered;
    the rows rolled back with it go again at once, without splitting the batch row by row."""
    ids = [await r.enqueue(f"conc-{i}", {"name": f"conc {i}"}) for i in range(3)]
    consumer = r.consumer(batch_size=10)
    r.fake.faults.load_conflict_next(1, message=text, row=1)
    report = await consumer.drain()
    assert (report.done, report.retried, report.dead) == (2, 1, 0)
    row = await r.event(ids[1])
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert text.strip() in row["last_error"]
    assert [c.fault for c in r.fake.calls if c.method == "load"] == ["load_conflict", None]

    await r.pool.execute("update syncd.outbox set available_at = now() where status = 'pending'")
    report = await consumer.drain()
    assert (report.done, report.dead) == (1, 0)
    rows = [await r.event(i) for i in ids]
    assert [(x["status"], x["attempts"]) for x in rows] == [("done", 1), ("done", 2), ("done", 1)]
    assert all(len(r.named(f"conc {i}")) == 1 for i in range(3))


async def test_a_lone_upsert_that_load_reports_a_conflict_for_is_retried(r: Rig) -> None:
    """The same with one row in the load (no neighbour to blame): still transient."""
    event = await r.enqueue("alone", {"name": "alone"})
    consumer = r.consumer()
    r.fake.faults.load_conflict_next(1)
    report = await consumer.drain()
    assert (report.done, report.retried, report.dead) == (0, 1, 0)
    await r.pool.execute("update syncd.outbox set available_at = now()")
    report = await consumer.drain()
    assert (report.done, report.retried, report.dead) == (1, 0, 0)
    row = await r.event(event)
    assert (row["status"], row["attempts"]) == ("done", 2)


async def test_delivery_resumes_when_the_probe_sees_odoo_back_not_after_the_pause(
    r: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Odoo away (every call 503): the consumer's batch fails and it pauses (here 30 s, the longest
    pause). When the daemon's health probe sees Odoo answer again, the wiring of ``syncd run``
    (``run_outbox``) ends the pause at once: the event lands well before the pause would have ended,
    and one line says that delivery resumed."""
    caplog.set_level(logging.INFO, logger="syncd.outbox")
    pause = MAX_CONSUMER_BACKOFF
    consumer = r.consumer(poll_interval_seconds=pause)  # the first failed batch pauses this long
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    consumer.on_recorded = recorded.put_nowait
    health = Health()
    monitor = HealthMonitor(health, r.pool, r.odoo, interval=1e-9, timeout=5)  # every probe asks Odoo
    r.fake.faults.fail_next(1_000_000, status=503)
    await monitor.probe_odoo()
    assert health.checks["odoo"].ok is False

    stop = asyncio.Event()
    task = asyncio.create_task(run_outbox(consumer, health, stop))
    try:
        event = await r.enqueue("resume", {"name": "after the restart"})  # NOTIFY wakes the consumer
        outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
        assert [(o.event.id, o.status) for o in outcomes] == [(event, "retry")]
        assert consumer._pause == pause  # the whole batch failed: pausing

        # the event's own backoff is over (only the consumer's pause is under test)
        await r.pool.execute("update syncd.outbox set available_at = now()")
        r.fake.faults.clear()  # Odoo is back
        loop = asyncio.get_running_loop()
        back = loop.time()
        await monitor.probe_odoo()
        assert health.checks["odoo"].ok is True
        outcomes = await asyncio.wait_for(recorded.get(), timeout=pause / 3)
        assert [(o.event.id, o.status) for o in outcomes] == [(event, "done")]
        assert loop.time() - back < pause / 3
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert len(r.named("after the restart")) == 1
    resumed = [rec.getMessage() for rec in caplog.records if "delivery resumed after" in rec.getMessage()]
    assert len(resumed) == 1, resumed
    assert health._when_back["odoo"] == []  # the consumer stopped listening when it ended


@asynccontextmanager
async def fake_odoo_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``syncd fake-odoo`` (demo data) in its own process, so that SIGSTOP can freeze it the way a
    hung Odoo freezes: connections are still accepted by the kernel and requests queue up, then all
    run when it resumes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "fake-odoo", "--listen", f"127.0.0.1:{port}", "--demo-data",
        env={**env, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        assert f"listening on http://127.0.0.1:{port}" in line, line
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            await proc.wait()


async def test_after_a_timeout_a_record_waits_until_the_late_request_can_no_longer_land(db_dsn: str) -> None:
    """Odoo frozen (SIGSTOP): the write of event 1 times out on the client but stays queued in Odoo,
    which carries it out when it resumes. Event 1's retry, and so event 2 of the same record behind it,
    wait for ``outbox.timeout_fence_seconds`` after the failure, so that the old request cannot land
    after the newer value: the record ends with event 2's value."""
    timeout, fence = 0.5, 2.0
    async with fake_odoo_process() as (proc, url):
        settings = Settings.model_validate(
            {"odoo": {"url": url, "api_key": "admin", "retries": 0, "timeout_seconds": timeout},
             "outbox": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "poll_interval_seconds": 0.05,
                        "timeout_fence_seconds": fence}}
        )  # fmt: skip
        pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
        try:
            async with OdooClient(settings.odoo) as odoo:
                (partner,) = await odoo.create(MODEL, [{"name": "zero"}])
                consumer = OutboxConsumer(settings, odoo, pool, db_dsn, "test-consumer")
                await consumer._fields_of(MODEL)  # fields_get answered before the freeze

                async def write(name: str) -> int:
                    return int(
                        await pool.fetchval(
                            "select syncd.enqueue($1, 'write', null, $2, $3)", MODEL, {"name": name}, partner
                        )
                    )

                recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
                consumer.on_recorded = recorded.put_nowait
                before = await pool.fetchval("select now()")
                proc.send_signal(signal.SIGSTOP)
                first, second = await write("first"), await write("second")
                stop = asyncio.Event()
                task = asyncio.create_task(consumer.run(stop))
                try:
                    outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
                    assert [(o.event.id, o.status) for o in outcomes] == [(first, "retry")]
                    assert "no answer from Odoo" in (outcomes[0].error or "")
                    proc.send_signal(signal.SIGCONT)  # the timed-out write runs now, late
                    # (the read queues behind it): Odoo did carry out the request the client gave up on
                    assert (await odoo.read(MODEL, [partner], ["name"]))[0]["name"] == "first"
                    while (second, "done") not in {(o.event.id, o.status) for o in outcomes}:
                        outcomes = await asyncio.wait_for(recorded.get(), timeout=fence + 10)
                finally:
                    stop.set()
                    await asyncio.wait_for(task, timeout=10)
                rows = {
                    r["id"]: r
                    for r in await pool.fetch(
                        "select * from syncd.outbox where id = any($1)", [first, second]
                    )
                }
                # the failure came at least `timeout` after `before`; the retry at least `fence` after it
                earliest = before + timedelta(seconds=timeout + fence)
                assert (rows[first]["status"], rows[first]["attempts"]) == ("done", 2)
                assert rows[first]["available_at"] >= earliest
                assert rows[second]["status"] == "done"
                assert rows[second]["done_at"] >= earliest
                assert (await odoo.read(MODEL, [partner], ["name"]))[0]["name"] == "second"
        finally:
            await pool.close()
