"""A property test of the outbox's per-record guarantees under concurrent producers, two consumers,
failures and crashes (hypothesis drives the interleaving; the sink is a model of Odoo in this process):

* never two at once: a claim never hands out an event of a record that a live consumer still holds;
* in order: a record's events are applied in id order (a batch re-applied after a crash may repeat
  what it applied, never go back before it);
* exactly once in effect: at the end every event is done and each record holds what applying all its
  events in id order gives, folded or not;
* a fold ends alike: the events folded into one call all end with that call's outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import db
from syncd.config import DatabaseSettings, Settings
from syncd.outbox.consumer import Event, OutboxConsumer, Outcome, fold
from syncd.testing.postgres import TestDatabases

pytestmark = pytest.mark.integration

MODEL = "res.partner"
KEYS = ("a", "b", "c")
DELETED = "<deleted>"

Step = tuple[Any, ...]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("produce"), st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(
            ("upsert", "upsert", "upsert", "delete"))), min_size=1, max_size=6)),
        st.tuples(st.just("claim"), st.integers(0, 1)),
        st.tuples(st.just("deliver"), st.integers(0, 1), st.sampled_from(("done", "done", "done", "retry", "dead"))),
        st.tuples(st.just("crash"), st.integers(0, 1)),
    ),
    min_size=5,
    max_size=40,
)  # fmt: skip


def apply(state: dict[str, Any], key: str, op: str, payload: dict[str, Any]) -> None:
    if op == "delete":
        state[key] = DELETED
    else:
        current = state.get(key)
        state[key] = {**(current if isinstance(current, dict) else {}), **payload}


@dataclass
class Slot:
    """One consumer process: replaced by a new one (a new lease holder) when it crashes."""

    consumer: OutboxConsumer
    held: list[Event] = field(default_factory=list)


class World:
    def __init__(self, pool: asyncpg.Pool, dsn: str, settings: Settings) -> None:
        self.pool, self.dsn, self.settings = pool, dsn, settings
        self.runs = 0
        self.slots = [self.new_slot(), self.new_slot()]
        self.state: dict[str, Any] = {}
        #: Per record, the highest event id applied and recorded done.
        self.done_up_to: dict[str, int] = {}
        self.produced: list[tuple[int, str, str, dict[str, Any]]] = []
        #: Dead events made pending again: new events then, queued behind what their record has now.
        self.redriven: set[int] = set()

    def new_slot(self) -> Slot:
        self.runs += 1
        return Slot(OutboxConsumer(self.settings, None, self.pool, self.dsn, f"run-{self.runs}"))  # type: ignore[arg-type]

    def holding(self, exclude: Slot) -> set[str]:
        return {e.key or "" for s in self.slots if s is not exclude for e in s.held}

    async def produce(self, events: list[tuple[str, str]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for key, op in events:
                n = len(self.produced)
                payload = {"name": f"{key}{n}", f"f{n % 3}": n} if op == "upsert" else None
                event_id = await conn.fetchval(
                    "select syncd.enqueue($1, $2, $3, $4)", MODEL, op, key, payload
                )
                self.produced.append((int(event_id), key, op, payload or {}))

    async def claim(self, slot: Slot) -> None:
        if slot.held:
            return
        events = await slot.consumer.claim()
        busy = self.holding(slot)
        for e in events:
            assert e.key not in busy, (
                f"event {e.id} of {e.key!r} handed out while another consumer holds {e.key!r}"
            )
        slot.held = events

    async def deliver(self, slot: Slot, status: str) -> None:
        if not slot.held:
            return
        heads, folded = fold(slot.held)
        outcomes: list[Outcome] = []
        for head in heads:
            members = [head, *folded.get(head.id, ())]
            key = head.key or ""
            first = min(e.id for e in members)
            redriven = any(e.id in self.redriven for e in members)
            if not redriven:
                assert first > self.done_up_to.get(key, 0), f"{key}: event {first} applied after a later one"
            if status == "done":
                apply(self.state, key, head.op, head.payload)
                if not redriven:
                    self.done_up_to[key] = max(e.id for e in members)
            outcomes += [
                Outcome(m, "retry" if status == "retry" else status, result_id=1, error="x", transient=True)
                for m in members
            ]
        slot.consumer.record(outcomes)
        slot.held = []
        await slot.consumer.flush()

    async def crash(self, index: int) -> None:
        slot = self.slots[index]
        if slot.held:
            # Its delivery may have reached Odoo or not; the next holder delivers the events again.
            await self.pool.execute(
                "update syncd.outbox set locked_until = now() - interval '1 second' where locked_by = $1",
                slot.consumer.instance,
            )
        self.slots[index] = self.new_slot()

    async def finish(self) -> None:
        """No more crashes: deliver until every event is done (dead ones are redriven)."""
        for _ in range(500):
            await self.pool.execute(
                "update syncd.outbox set available_at = now() where status = 'pending';"
                "update syncd.outbox set locked_until = now() where status = 'inflight'"
            )
            await self.pool.execute("select 1")  # a statement boundary for now()
            slot = self.slots[0]
            await self.claim(slot)
            if slot.held:
                await self.deliver(slot, "done")
                continue
            left = await self.pool.fetchval("select count(*) from syncd.outbox where status <> 'done'")
            if not left:
                return
            retried = await self.pool.fetch(db.queries["outbox_retry"], None)
            self.redriven.update(r["id"] for r in retried)
            await slot.consumer.housekeep()
        raise AssertionError("the outbox did not drain")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, fold_max=st.sampled_from([1, 3, 1000]), batch=st.sampled_from([1, 2, 100]))
def test_records_are_applied_in_order_one_at_a_time_exactly_once_in_effect(
    test_databases: TestDatabases, plan: list[Step], fold_max: int, batch: int
) -> None:
    asyncio.run(_example(test_databases, plan, fold_max, batch))


async def _example(databases: TestDatabases, plan: list[Step], fold_max: int, batch: int) -> None:
    dsn = databases.clone()
    settings_ = Settings.model_validate(
        {"odoo": {"url": "http://127.0.0.1:9", "api_key": "x"},
         "outbox": {"batch_size": batch, "fold_max_events": fold_max, "max_attempts": 1000,
                    "backoff_base_seconds": 0.001, "backoff_max_seconds": 0.001}}
    )  # fmt: skip
    pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
    try:
        world = World(pool, dsn, settings_)
        dead_ids: set[int] = set()
        for step in plan:
            kind = step[0]
            if kind == "produce":
                await world.produce(step[1])
            elif kind == "claim":
                await world.claim(world.slots[step[1]])
            elif kind == "deliver":
                slot = world.slots[step[1]]
                if step[2] == "dead":
                    dead_ids.update(e.id for e in slot.held)
                await world.deliver(slot, step[2])
            else:
                await world.crash(step[1])
        # a dead event does not block: it is redriven at the end, which applies it after what came later
        for slot in world.slots:
            slot.held = []
        world.slots = [world.new_slot(), world.new_slot()]
        await pool.execute("update syncd.outbox set locked_until = now() - interval '1 second'")
        await world.finish()
        rows = await pool.fetch("select id, status from syncd.outbox order by id")
        assert [r["status"] for r in rows] == ["done"] * len(world.produced)
        if not dead_ids:
            expected: dict[str, Any] = {}
            for _, key, op, payload in sorted(world.produced):
                apply(expected, key, op, payload)
            assert world.state == expected
    finally:
        await pool.close()
        databases.drop(dsn)
