"""Outcomes written by the next claim (one statement per batch) and the schema that keeps claims
cheap: what the statement records, what it must not record, that a record's next event is leased by
the statement that finishes its predecessor, that outcomes never wait for a claim, and that a claim
updates rows in place with one cached plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd import db
from syncd.config import DatabaseSettings
from syncd.embedded import free_port
from syncd.errors import DatabaseUnavailable
from syncd.outbox.consumer import Outcome, read_counts
from syncd.testing import FakeOdoo
from tests.integration.outbox_support import Rig, ids, outbox_env

pytestmark = pytest.mark.integration

#: Updates and heap-only (in-place) updates of syncd.outbox in the current transaction.
HOT_COUNTS = """select n_tup_upd as updated, n_tup_hot_upd as hot from pg_stat_xact_user_tables
                where relid = 'syncd.outbox'::regclass"""
#: outbox_claim's arguments with no outcomes to record.
CLAIM_ARGS = ("hot", 60.0, [], [], [], [], [], [], [], 10, 99, [], [])


@pytest.fixture
async def r(db_dsn: str) -> AsyncIterator[Rig]:
    async with outbox_env(FakeOdoo(demo_data=True), db_dsn) as env:
        yield Rig(env)


async def test_outcomes_ride_on_the_next_claim(r: Rig) -> None:
    """Done, retry and dead outcomes are written by the statement that claims the next batch, each
    with its own values, and the metrics-side signal sees them once that statement committed."""
    first = [await r.enqueue(f"k{i}", {"name": f"n{i}"}) for i in range(3)]
    later = await r.enqueue("k-later", {"name": "later"})
    c = r.consumer(batch_size=3)
    recorded: list[list[Outcome]] = []
    c.on_recorded = recorded.append
    batch = await c.claim()
    assert ids(batch) == first
    c.record([Outcome(batch[0], "done", result_id=42), Outcome(batch[1], "retry", error="HTTP 503", transient=True),
              Outcome(batch[2], "dead", error="field 'x' does not exist")])  # fmt: skip
    assert (await r.row(first[0]))["status"] == "inflight"  # nothing written yet
    assert recorded == []

    assert ids(await c.claim()) == [later]
    done, retry, dead = [await r.row(i) for i in first]
    assert (done["status"], done["result_id"], done["locked_by"], done["last_error"]) == (
        "done",
        42,
        None,
        None,
    )
    assert done["done_at"] is not None
    assert (retry["status"], retry["last_error"], retry["locked_by"], retry["attempts"]) == (
        "pending",
        "HTTP 503",
        None,
        1,
    )
    assert retry["available_at"] > retry["created_at"]
    assert (dead["status"], dead["last_error"], dead["done_at"]) == ("dead", "field 'x' does not exist", None)
    assert [[o.event.id for o in batch] for batch in recorded] == [first]  # fmt: skip


async def test_a_records_next_event_is_leased_by_the_statement_that_finishes_its_predecessor(r: Rig) -> None:
    """The ordering check would see the predecessor still in flight (one snapshot for the whole
    statement) unless the statement skips the events it finishes itself — done or dead."""
    a1 = await r.enqueue("a", {"name": "a1"})
    a2 = await r.enqueue("a", {"name": "a2"})
    b1 = await r.enqueue(None, {"name": "b1"}, op="write", odoo_id=3)
    b2 = await r.enqueue(None, {"name": "b2"}, op="write", odoo_id=3)
    c = r.consumer()
    first = await c.claim()
    assert ids(first) == [a1, b1]  # a2 and b2 wait for their predecessors
    c.record([Outcome(first[0], "done", result_id=7), Outcome(first[1], "dead", error="no")])
    second = await c.claim()
    assert ids(second) == [a2, b2]
    assert [(await r.row(i))["status"] for i in (a1, b1, a2, b2)] == ["done", "dead", "inflight", "inflight"]


async def test_a_retried_event_keeps_blocking_its_records_next_event(r: Rig) -> None:
    a1 = await r.enqueue("a", {"name": "a1"})
    a2 = await r.enqueue("a", {"name": "a2"})
    c = r.consumer(fold_max_events=1)  # else a2 is folded into a1's call (test_outbox_fold.py)
    (event,) = await c.claim()
    c.record([Outcome(event, "retry", error="HTTP 503", transient=True)])
    assert await c.claim() == []  # a1 waits out its backoff; a2 must not overtake it
    assert [(await r.row(i))["status"] for i in (a1, a2)] == ["pending", "pending"]
    await r.pool.execute("update syncd.outbox set available_at = now()")
    assert ids(await c.claim()) == [a1]


async def test_an_outcome_for_a_lost_lease_is_not_written_and_does_not_unblock(r: Rig) -> None:
    """The first holder's lease ran out and another consumer claimed the event again: the first
    holder's outcome changes nothing, and its statement does not lease the record's next event while
    the new holder still works on the first."""
    a1 = await r.enqueue("a", {"name": "a1"})
    a2 = await r.enqueue("a", {"name": "a2"})
    slow, other = r.consumer("slow", fold_max_events=1), r.consumer("other", fold_max_events=1)
    (event,) = await slow.claim()
    await r.expire_leases()
    assert ids(await other.claim()) == [a1]
    slow.record([Outcome(event, "done", result_id=1)])
    assert await slow.claim() == []
    row = await r.row(a1)
    assert (row["status"], row["locked_by"], row["attempts"], row["result_id"]) == (
        "inflight",
        "other",
        2,
        None,
    )
    assert (await r.row(a2))["status"] == "pending"


async def test_an_outcome_is_written_even_after_the_lease_ran_out_if_nobody_took_over(r: Rig) -> None:
    """Its lease ran out but no other consumer claimed it: the event is still this consumer's, its
    outcome is written, and the statement writing it does not lease it again."""
    event_id = await r.enqueue("a", {"name": "a1"})
    c = r.consumer()
    (event,) = await c.claim()
    await r.expire_leases()
    c.record([Outcome(event, "done", result_id=3)])
    assert await c.claim() == []
    row = await r.row(event_id)
    assert (row["status"], row["attempts"], row["result_id"]) == ("done", 1, 3)


async def test_flush_writes_outcomes_and_leases_nothing(r: Rig) -> None:
    a1 = await r.enqueue("a", {"name": "a1"})
    a2 = await r.enqueue("b", {"name": "b1"})
    c = r.consumer(batch_size=1)
    (event,) = await c.claim()
    c.record([Outcome(event, "done", result_id=5)])
    await c.flush()
    assert [(await r.row(i))["status"] for i in (a1, a2)] == ["done", "pending"]
    await c.flush()  # nothing waiting: no statement at all
    assert (await r.row(a2))["status"] == "pending"


async def test_outcomes_stay_queued_while_postgresql_is_away(r: Rig) -> None:
    """A claim that cannot reach PostgreSQL keeps the outcomes it carried; the next one writes them."""
    event_id = await r.enqueue("a", {"name": "a1"})
    c = r.consumer()
    (event,) = await c.claim()
    c.record([Outcome(event, "done", result_id=9)])
    nowhere = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=0, timeout=2
    )
    try:
        c.pool = nowhere
        with pytest.raises(DatabaseUnavailable):
            await c.claim()
    finally:
        await nowhere.close()
    c.pool = r.pool
    assert (await r.row(event_id))["status"] == "inflight"
    assert await c.claim() == []
    assert ((await r.row(event_id))["status"], (await r.row(event_id))["result_id"]) == ("done", 9)


async def test_run_writes_a_finished_batch_at_once_when_nothing_else_is_claimed(r: Rig) -> None:
    """Nothing else to claim, no NOTIFY, a poll interval of a minute: the delivered batch's outcome
    is still written straight away (by a claim that the finished batch triggers)."""
    event_id = await r.enqueue("idle", {"name": "idle"})
    c = r.consumer(listen=False, poll_interval_seconds=60)
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    c.on_recorded = recorded.put_nowait
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
        assert [(o.event.id, o.status) for o in outcomes] == [(event_id, "done")]
        assert (await r.row(event_id))["status"] == "done"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_run_writes_retries_during_its_own_pause(r: Rig) -> None:
    """A batch that fails as a whole makes the consumer pause (here a minute); its retry outcomes
    are written at once, not when the pause ends."""
    event_id = await r.enqueue("down", {"name": "down"})
    r.fake.faults.fail_next(100, status=503)
    c = r.consumer(listen=False, poll_interval_seconds=60, backoff_base_seconds=60, backoff_max_seconds=60)
    recorded: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    c.on_recorded = recorded.put_nowait
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    try:
        outcomes = await asyncio.wait_for(recorded.get(), timeout=10)
        assert [(o.event.id, o.status) for o in outcomes] == [(event_id, "retry")]
        row = await r.row(event_id)
        assert (row["status"], row["locked_by"]) == ("pending", None) and "503" in row["last_error"]
        assert c._pause > 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_the_pause_does_not_spin_when_outcomes_cannot_be_written(r: Rig) -> None:
    """PostgreSQL away during the consumer's pause: one attempt to write the waiting outcomes, then
    the next when more arrive or the pause ends — not a tight loop of connection attempts."""
    await r.enqueue("a", {"name": "a1"})
    c = r.consumer(listen=False)
    (event,) = await c.claim()
    c.record([Outcome(event, "done")])
    attempts = 0
    flush = c.flush

    async def counting_flush() -> None:
        nonlocal attempts
        attempts += 1
        await flush()

    c.flush = counting_flush  # type: ignore[method-assign]
    nowhere = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=0, timeout=2
    )
    try:
        c.pool = nowhere
        c._pause = 0.5
        await c._pause_writing_outcomes(asyncio.Event())
    finally:
        await nowhere.close()
    assert attempts == 1 and len(c._outcomes) == 1  # kept for the next statement


async def test_shutdown_writes_the_outcomes_of_finished_batches(r: Rig) -> None:
    for i in range(12):
        await r.enqueue(f"k{i}", {"name": f"n{i}"})
    c = r.consumer(batch_size=4, listen=False, poll_interval_seconds=60)
    first = asyncio.Event()
    c.on_recorded = lambda _: first.set()
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await asyncio.wait_for(first.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    statuses = [r["status"] for r in await r.pool.fetch("select status from syncd.outbox order by id")]
    assert "inflight" not in statuses and statuses.count("done") >= 4


async def test_no_index_names_a_column_that_a_claim_changes(r: Rig) -> None:
    """A claim (and a lease extended or given back) changes status, attempts, locked_by and
    locked_until. An index on any of them — or naming one in its predicate — would stop PostgreSQL
    from updating the row in place and add an entry to every index on each claim."""
    rows = await r.pool.fetch(
        """select i.indexrelid::regclass::text as index, a.attname
           from pg_index i
           join pg_attribute a on a.attrelid = i.indrelid
           where i.indrelid = 'syncd.outbox'::regclass
             and (a.attnum = any(i.indkey)
                  or pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M')
                  or pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"""
    )
    named = {(row["index"], row["attname"]) for row in rows}
    assert ("syncd.outbox_claimable_idx", "unfinished") in named  # the query sees predicates
    assert {a for _, a in named} & {
        "status",
        "attempts",
        "locked_by",
        "locked_until",
        "linked",
        "leases_lost",
    } == set(), named


async def test_a_claim_updates_rows_in_place_with_one_cached_plan(r: Rig, db_dsn: str) -> None:
    """Heap-only (HOT) updates for the claimed rows, counted inside the claiming transaction; and a
    generic plan for the prepared claim after PostgreSQL's five custom ones."""
    for i in range(30):
        await r.enqueue(f"k{i}", {"name": f"n{i}"})
    pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1))
    try:
        c = r.consumer(pool=pool, batch_size=4)
        async with pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(HOT_COUNTS)
            assert before is not None
            claimed = await conn.fetch(c._claim_sql, *CLAIM_ARGS)
            after = await conn.fetchrow(HOT_COUNTS)
            assert after is not None
        assert len([x for x in claimed if x[0] is not None]) == 4
        assert (after["updated"] - before["updated"], after["hot"] - before["hot"]) == (4, 4)
        for _ in range(7):
            c.record([Outcome(e, "done") for e in await c.claim()])
        async with pool.acquire() as conn:
            plans = await conn.fetchrow(
                "select generic_plans, custom_plans from pg_prepared_statements where statement = $1",
                c._claim_sql,
            )
        assert plans is not None and plans["generic_plans"] >= 1, plans
    finally:
        await pool.close()


async def test_counts_and_redrive_read_indexes_not_the_whole_table(r: Rig) -> None:
    """Migration 0006: every part of the status counts (housekeeping every 30 s, ``syncd status``)
    and the redrive of dead events can be served by an index (PostgreSQL finds a plan without a
    sequential scan when told to avoid one; without outbox_dead_idx it cannot), and the counts are
    exact in every status."""
    ids_ = [await r.enqueue(f"k{i}", {"name": f"n{i}"}) for i in range(6)]
    c = r.consumer(batch_size=2)
    first = await c.claim()
    c.record([Outcome(first[0], "done", result_id=7), Outcome(first[1], "dead", error="no such field")])
    assert ids(await c.claim()) == ids_[2:4]  # writes those outcomes, leases the next two
    async with r.pool.acquire() as conn:
        assert await read_counts(conn) == {"pending": 2, "inflight": 2, "done": 1, "dead": 1, "conflict": 0}
    async with r.pool.acquire() as conn, conn.transaction():
        await conn.execute("set local enable_seqscan = off")  # a scan stays only where no index serves
        for name, args in (("outbox_open_counts", ()), ("outbox_done_count", ()), ("outbox_retry", (None,))):
            sql = db.queries[name]
            plan = await conn.fetchval("explain (format json) " + sql, *args)
            assert "Seq Scan" not in str(plan), plan
    assert [x["id"] for x in await r.pool.fetch(db.queries["outbox_retry"], None)] == [ids_[1]]
