from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from syncd.config import Settings
from syncd.odoo import OdooClient
from syncd.outbox import consumer as consumer_module
from syncd.outbox.consumer import OutboxConsumer, Outcome
from syncd.outbox.xmlid import external_id
from syncd.testing import FakeOdoo
from tests.integration.outbox_support import outbox_env

pytestmark = pytest.mark.integration


class Rig:
    def __init__(
        self, fake: FakeOdoo, odoo: OdooClient, pool: asyncpg.Pool, dsn: str, settings: Settings
    ) -> None:
        self.fake, self.odoo, self.pool, self.dsn, self.settings = fake, odoo, pool, dsn, settings

    def consumer(self, name: str = "test-consumer", **outbox: Any) -> OutboxConsumer:
        settings = self.settings.model_copy(update={"outbox": self.settings.outbox.model_copy(update=outbox)})
        return OutboxConsumer(settings, self.odoo, self.pool, self.dsn, name)

    async def enqueue(
        self, model: str, op: str, key: str | None, payload: dict[str, Any] | None, odoo_id: int | None = None
    ) -> int:
        return int(
            await self.pool.fetchval(
                "select syncd.enqueue($1, $2, $3, $4, $5)", model, op, key, payload, odoo_id
            )
        )

    async def events(self) -> dict[int, asyncpg.Record]:
        return {r["id"]: r for r in await self.pool.fetch("select * from syncd.outbox order by id")}

    def by_xmlid(self, model: str, key: str) -> dict[str, Any] | None:
        ref = self.fake.ref(external_id("syncd", model, key))
        if ref is None:
            return None
        return {"id": ref[1], **self.fake.records(model)[ref[1]]}


@pytest.fixture
async def r(db_dsn: str) -> AsyncIterator[Rig]:
    async with outbox_env(FakeOdoo(demo_data=True), db_dsn) as env:
        yield Rig(env.fake, env.odoo, env.pool, env.dsn, env.settings)


async def test_upsert_is_idempotent_through_external_ids(r: Rig) -> None:
    consumer = r.consumer()
    first = await r.enqueue(
        "res.partner", "upsert", "cust 42 / ada@example.com", {"name": "Ada", "is_company": True}
    )
    report = await consumer.drain()
    assert (report.done, report.dead) == (1, 0)
    created = r.by_xmlid("res.partner", "cust 42 / ada@example.com")
    assert created is not None and created["name"] == "Ada" and created["is_company"] is True
    second = await r.enqueue(
        "res.partner", "upsert", "cust 42 / ada@example.com", {"name": "Ada Lovelace", "is_company": True}
    )
    await consumer.drain()
    events = await r.events()
    assert events[first]["status"] == events[second]["status"] == "done"
    assert events[first]["result_id"] == events[second]["result_id"] == created["id"]
    assert events[second]["done_at"] is not None
    assert r.fake.records("res.partner")[created["id"]]["name"] == "Ada Lovelace"
    assert len([p for p in r.fake.records("res.partner").values() if p["name"].startswith("Ada")]) == 1


async def test_write_and_delete_by_key_and_by_id(r: Rig) -> None:
    consumer = r.consumer()
    await r.enqueue("res.partner", "upsert", "k1", {"name": "To delete by key"})
    (victim,) = r.fake.create("res.partner", [{"name": "To delete by id"}])
    await r.enqueue("res.partner", "write", None, {"email": "w@example.com", "parent_id": 1}, 3)
    await consumer.drain()
    assert r.fake.records("res.partner")[3]["email"] == "w@example.com"
    await r.enqueue("res.partner", "delete", "k1", None)
    await r.enqueue("res.partner", "delete", None, None, victim)
    await r.enqueue("res.partner", "delete", "never-created", None)
    await consumer.drain()
    assert r.by_xmlid("res.partner", "k1") is None
    assert victim not in r.fake.records("res.partner")
    await r.enqueue("res.partner", "delete", None, None, victim)  # already gone: still a success
    report = await consumer.drain()
    assert (report.done, report.dead) == (1, 0)
    assert {e["status"] for e in (await r.events()).values()} == {"done"}


async def test_poison_events_die_alone_with_readable_errors(r: Rig) -> None:
    consumer = r.consumer(batch_size=50)
    good = [
        await r.enqueue("res.partner", "upsert", f"good-{i}", {"name": f"Good {i}", "type": "contact"})
        for i in range(40)
    ]
    unknown_field = await r.enqueue("res.partner", "upsert", "bad-1", {"name": "X", "no_such_field": 1})
    bad_selection = await r.enqueue("res.partner", "upsert", "bad-2", {"name": "Y", "type": "nonsense"})
    unknown_model = await r.enqueue("x.does.not.exist", "upsert", "bad-3", {"name": "Z"})
    wrong_type = await r.enqueue("res.partner", "upsert", "bad-4", {"name": "W", "parent_id": "20"})
    odoo_rejects = await r.enqueue(
        "res.partner", "upsert", "bad-5", {"name": ""}
    )  # passes syncd, fails in Odoo
    report = await consumer.drain()
    events = await r.events()
    assert report.dead == 5
    assert all(events[i]["status"] == "done" for i in good)
    assert "field 'no_such_field' does not exist" in events[unknown_field]["last_error"]
    assert "has no value 'nonsense'" in events[bad_selection]["last_error"]
    assert "x.does.not.exist" in events[unknown_model]["last_error"]
    assert "field 'parent_id' (many2one) cannot take '20'" in events[wrong_type]["last_error"]
    assert events[odoo_rejects]["status"] == "dead" and events[odoo_rejects]["last_error"]
    assert all(r.by_xmlid("res.partner", f"good-{i}") is not None for i in range(40))


async def test_events_of_one_record_apply_in_order(r: Rig) -> None:
    consumer = r.consumer(batch_size=10, fold_max_events=1)  # every value sent (folds: test_outbox_chains.py)
    for i in range(1, 51):
        await r.enqueue("res.partner", "upsert", "hot", {"name": f"v{i}"})
        await r.enqueue("res.partner", "upsert", f"other-{i}", {"name": f"o{i}"})
    await consumer.drain()
    hot = r.by_xmlid("res.partner", "hot")
    assert hot is not None and hot["name"] == "v50"
    seen = [
        row[1]
        for call in r.fake.calls
        if call.method == "load" and call.model == "res.partner"
        for row in (call.kwargs.get("data") or (call.args[1] if len(call.args) > 1 else []))
        if row and str(row[0]).endswith("__k_hot")
    ]
    assert seen == [f"v{i}" for i in range(1, 51)]


async def test_transient_failures_back_off_then_deliver(r: Rig) -> None:
    consumer = r.consumer()
    event = await r.enqueue("res.partner", "upsert", "k", {"name": "after the storm"})
    r.fake.faults.fail_next(2, status=503)
    report = await consumer.drain()
    assert (report.done, report.retried) == (0, 1)
    row = (await r.events())[event]
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "503" in row["last_error"]
    await r.pool.execute("update syncd.outbox set available_at = now()")
    await consumer.drain()
    await r.pool.execute("update syncd.outbox set available_at = now()")
    await consumer.drain()
    row = (await r.events())[event]
    assert (row["status"], row["attempts"], row["last_error"]) == ("done", 3, None)


async def test_transient_failures_end_dead_after_max_attempts(r: Rig) -> None:
    consumer = r.consumer(max_attempts=2)
    event = await r.enqueue("res.partner", "upsert", "k", {"name": "never"})
    r.fake.faults.fail_next(10, status=503)
    await consumer.drain()
    await r.pool.execute("update syncd.outbox set available_at = now()")
    report = await consumer.drain()
    row = (await r.events())[event]
    assert report.dead == 1
    assert row["status"] == "dead" and row["last_error"].startswith("gave up after 2 attempts")


async def test_concurrent_claims_never_share_an_event(r: Rig) -> None:
    for i in range(300):
        await r.enqueue("res.partner", "upsert", f"k{i}", {"name": f"n{i}"})
    consumers = [r.consumer(f"c{i}", batch_size=25) for i in range(4)]
    claimed: list[list[int]] = []
    while True:
        batches = await asyncio.gather(*(c.claim() for c in consumers))
        if not any(batches):
            break
        claimed += [[e.id for e in b] for b in batches]
    ids = [i for b in claimed for i in b]
    assert len(ids) == len(set(ids)) == 300


async def test_an_expired_lease_is_claimable_again(r: Rig) -> None:
    await r.enqueue("res.partner", "upsert", "k", {"name": "n"})
    dead_consumer, survivor = r.consumer("dies"), r.consumer("survives")
    assert len(await dead_consumer.claim()) == 1
    assert await survivor.claim() == []  # held by a live lease
    await r.pool.execute("update syncd.outbox set locked_until = now() - interval '1 second'")
    (event,) = await survivor.claim()
    assert event.attempts == 2
    outcomes = await survivor.deliver([event])
    dead_consumer.record([Outcome(event, "done", result_id=1)])
    await dead_consumer.flush()  # the old holder cannot complete it
    assert (await r.events())[event.id]["status"] == "inflight"
    survivor.record(outcomes)
    await survivor.flush()
    row = (await r.events())[event.id]
    assert (row["status"], row["locked_by"]) == ("done", None)


async def test_listen_wakes_the_consumer_at_once(r: Rig) -> None:
    """An event enqueued while the consumer is idle is delivered at once: only the NOTIFY can wake it
    before its next poll, an hour away. (Enqueued before the consumer's first claim, the event would
    be delivered by that claim, LISTEN or not.)"""
    consumer = r.consumer(poll_interval_seconds=3600)
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    consumer.on_recorded = recorded.put_nowait
    idle = asyncio.Event()
    claim = consumer.claim

    async def claim_and_tell() -> list[consumer_module.Event]:
        events = await claim()
        if not events:  # LISTENing already (run() does that first), now it waits for a wake-up
            idle.set()
        return events

    consumer.claim = claim_and_tell  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.wait_for(idle.wait(), timeout=10)
        event = await r.enqueue("res.partner", "upsert", "fast", {"name": "woken"})
        outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
        assert [(o.event.id, o.status) for o in outcomes] == [(event, "done")]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_shutdown_gives_back_nothing_stuck(r: Rig) -> None:
    for i in range(20):
        await r.enqueue("res.partner", "upsert", f"k{i}", {"name": f"n{i}"})
    consumer = r.consumer(batch_size=5)
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    consumer.on_recorded = recorded.put_nowait
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.wait_for(recorded.get(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    statuses = {e["status"] for e in (await r.events()).values()}
    assert "inflight" not in statuses


async def test_housekeeping_counts_done_events_every_few_minutes_the_rest_every_round(
    r: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The done count reads the table with its retained done events, so the gauge takes it every
    DONE_COUNT_EVERY seconds; pending, inflight and dead (an alert reads dead) every round."""

    def gauge(status: str) -> float | None:
        return REGISTRY.get_sample_value("syncd_outbox_events", {"status": status})

    consumer = r.consumer()
    await r.enqueue("res.partner", "upsert", "a", {"name": "a"})
    await consumer.drain()
    await consumer.housekeep()
    assert (gauge("done"), gauge("pending")) == (1, 0)
    await r.enqueue("res.partner", "upsert", "b", {"name": "b"})
    await consumer.drain()
    await r.enqueue("res.partner", "upsert", "c", {"name": "c"})
    await consumer.housekeep()
    assert (gauge("done"), gauge("pending")) == (1, 1)  # done: the count of the round before
    monkeypatch.setattr(consumer_module, "DONE_COUNT_EVERY", 0.0)
    await consumer.housekeep()
    assert (gauge("done"), gauge("pending")) == (2, 1)


async def test_housekeeping_deletes_old_done_events(r: Rig) -> None:
    consumer = r.consumer(retention_days=1)
    old = await r.enqueue("res.partner", "upsert", "old", {"name": "old"})
    new = await r.enqueue("res.partner", "upsert", "new", {"name": "new"})
    await consumer.drain()
    await r.pool.execute("update syncd.outbox set done_at = now() - interval '2 days' where id = $1", old)
    assert await consumer.housekeep() == 1
    assert set(await r.events()) == {new}
