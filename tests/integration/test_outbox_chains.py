"""Per-record chains (migration 0007): claims that cost a batch whatever the backlog, folding of a
record's consecutive events into one call, bounded reclaims of lost leases, lease holders per run,
discarding out of a chain, late-committed events, and an upgrade with events in flight."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd import db, migrate
from syncd.config import Settings
from syncd.daemon import run_holder
from syncd.outbox.consumer import Event, OutboxConsumer, Outcome, discard_events
from syncd.testing import FakeOdoo
from syncd.testing.postgres import TestDatabases
from tests.integration.outbox_support import MODEL, Rig, ids, outbox_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def r(db_dsn: str) -> AsyncIterator[Rig]:
    async with outbox_env(FakeOdoo(demo_data=True), db_dsn) as env:
        yield Rig(env)


async def test_a_hot_records_upserts_are_folded_into_few_calls_ending_with_its_last_values(r: Rig) -> None:
    # every third event leaves `ref` out: the fold keeps the last value each field was given
    hot = [
        await r.enqueue("hot", {"name": f"v{i}", **({"ref": f"r{i}"} if i % 3 else {})}) for i in range(40)
    ]
    others = [await r.enqueue(f"o{i}", {"name": f"o{i}"}) for i in range(10)]
    report = await r.consumer(batch_size=10).drain()
    assert (report.done, report.dead) == (50, 0)
    rows = [await r.row(i) for i in hot + others]
    assert {row["status"] for row in rows} == {"done"}
    assert len({row["result_id"] for row in rows[:40]}) == 1  # the one record every folded event touched
    sent = r.loads_of("hot")
    assert 2 <= len(sent) <= 4, sent  # the first alone (it was new), then folds of the rest
    assert [int(row[1][1:]) for row in sent] == sorted(int(row[1][1:]) for row in sent)  # in order
    (partner,) = [p for p in r.fake.records(MODEL).values() if p.get("name") == "v39"]
    assert partner["ref"] == "r38"


async def test_a_fold_ends_at_a_delete_and_folds_writes_of_one_id_field_by_field(r: Rig) -> None:
    a = [await r.enqueue("a", {"name": "a1"}), await r.enqueue("a", {"name": "a2"})]
    a.append(await r.enqueue("a", None, op="delete"))
    a += [await r.enqueue("a", {"name": "a3"}), await r.enqueue("a", {"name": "a4"})]
    w = [
        await r.enqueue(None, {"name": "w1"}, op="write", odoo_id=3),
        await r.enqueue(None, {"email": "w@example.com"}, op="write", odoo_id=3),
        await r.enqueue(None, {"name": "w2"}, op="write", odoo_id=3),
    ]
    c = r.consumer()
    first = await c.claim()
    assert ids(first) == [a[0], w[0]]  # new: each record's first event alone, the rest queue behind
    c.record(await c.deliver(first))
    second = await c.claim()
    # a2 alone (the delete ends the run), w2 and w3 folded into one write
    assert ids(second) == [a[1], w[1], w[2]]
    assert [e.fold_of for e in second] == [None, None, w[1]]
    writes = [call for call in r.fake.calls if call.method == "write"]
    c.record(await c.deliver(second))
    writes = [call for call in r.fake.calls if call.method == "write"][len(writes) :]
    assert len(writes) == 1
    assert r.fake.records(MODEL)[3]["name"] == "w2" and r.fake.records(MODEL)[3]["email"] == "w@example.com"
    third = await c.claim()
    assert ids(third) == [a[2]]  # the delete, alone
    c.record(await c.deliver(third))
    fourth = await c.claim()
    assert ids(fourth) == [a[3], a[4]] and fourth[1].fold_of == a[3]
    c.record(await c.deliver(fourth))
    await c.flush()
    assert await r.statuses(*a, *w) == ["done"] * 8
    assert [row[1] for row in r.loads_of("a")] == ["a1", "a2", "a4"]


async def test_a_fold_takes_at_most_fold_max_events_and_ends_alike_on_a_retry(r: Rig) -> None:
    hot = [await r.enqueue("hot", {"name": f"v{i}"}) for i in range(8)]
    c = r.consumer(fold_max_events=3)
    (first,) = await c.claim()
    assert first.id == hot[0]  # new: alone; the others queue behind it
    c.record([Outcome(first, "done", result_id=9)])
    events = await c.claim()  # woken by the statement that finishes hot[0], with two folded in
    assert ids(events) == hot[1:4] and [e.fold_of for e in events] == [None, hot[1], hot[1]]
    c.record([Outcome(e, "retry", error="HTTP 503", transient=True) for e in events])  # the head's delay...
    assert await c.claim() == []  # backoff; nothing behind them may overtake
    assert await r.statuses(*hot[1:5]) == ["pending"] * 4
    assert len({(await r.row(i))["available_at"] for i in hot[1:4]}) == 1  # ...is the whole fold's
    await r.pool.execute("update syncd.outbox set available_at = now()")
    events = await c.claim()
    assert ids(events) == hot[1:4]
    c.record([Outcome(e, "done", result_id=9) for e in events])
    assert ids(await c.claim()) == hot[4:7]
    assert [(await r.row(i))["attempts"] for i in hot[:4]] == [1, 2, 2, 2]


async def test_an_event_whose_lease_keeps_running_out_ends_dead_and_the_next_proceeds(r: Rig) -> None:
    """Its consumer dies on it each time (OOM, a kill): after max_attempts lost leases it is dead with an
    error that says so, and the record's next event is claimed by the statement that says so."""
    poison = await r.enqueue("p", {"name": "kills its consumer"}, op="write", odoo_id=3)
    after = await r.enqueue("p", {"name": "fine"}, op="upsert")
    other = await r.enqueue("q", {"name": "q"})
    claimed: list[list[int]] = []
    for n in range(3):
        c = r.consumer(f"victim-{n}", max_attempts=3)
        claimed.append(ids(await c.claim()))
        await r.pool.execute(  # the consumer died holding it
            "update syncd.outbox set locked_until = now() - interval '1 second' where id = $1", poison
        )
    assert claimed == [[poison, other], [poison], [poison]]
    survivor = r.consumer("survivor", max_attempts=3)
    assert ids(await survivor.claim()) == [after]
    row = await r.row(poison)
    assert row["status"] == "dead" and row["leases_lost"] == 3 and row["attempts"] == 3
    assert "lease was lost 3 times" in row["last_error"] and "victim-2" in row["last_error"]


async def test_a_run_beside_another_with_the_same_instance_id_cannot_finish_its_events(r: Rig) -> None:
    settings = r.settings.model_copy(
        update={"daemon": r.settings.daemon.model_copy(update={"instance_id": "x"})}
    )
    daemon_holder, once_holder = run_holder(settings), run_holder(settings)
    assert daemon_holder != once_holder and daemon_holder.startswith("x/")
    event_id = await r.enqueue("k", {"name": "n"})
    daemon, once = r.consumer(daemon_holder), r.consumer(once_holder)
    (event,) = await daemon.claim()
    once.record([Outcome(event, "dead", error="not mine")])
    await once.flush()
    assert (await r.row(event_id))["status"] == "inflight"
    await daemon.flush()
    daemon.record([Outcome(event, "done", result_id=1)])
    await daemon.flush()
    assert (await r.row(event_id))["status"] == "done"


async def test_discarding_a_queued_event_moves_the_ones_behind_it_up(r: Rig) -> None:
    e = [await r.enqueue("k", {"name": f"v{i}"}) for i in range(4)]
    c = r.consumer(fold_max_events=1)
    assert ids(await c.claim()) == [e[0]]  # e1..e3 queue behind it
    async with r.pool.acquire() as conn:
        assert await discard_events(conn, [e[1], e[2]]) == [e[1], e[2]]
    (head,) = await c.claim() or [None]  # nothing: e0 still in flight, e3 behind it
    assert head is None
    c.record([Outcome(Event(e[0], MODEL, "upsert", "k", None, {}, 1), "done", result_id=1)])
    assert ids(await c.claim()) == [e[3]]
    # discarding a head that waits out a backoff wakes the event behind it
    f = [await r.enqueue("f", {"name": f"f{i}"}) for i in range(2)]
    (head_f,) = [x for x in await c.claim() if x.id == f[0]]
    c.record([Outcome(head_f, "retry", error="HTTP 503", transient=True)])
    await c.flush()
    async with r.pool.acquire() as conn:
        assert await discard_events(conn, [f[0]]) == [f[0]]
    assert f[1] in ids(await c.claim())


async def test_an_event_committed_after_a_later_one_of_its_record_waits_for_it(r: Rig) -> None:
    """Two producers of one record commit in the opposite order of their ids: the later-committed event
    is never in flight together with the other."""
    async with r.pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        early = int(
            await slow.fetchval("select syncd.enqueue($1, 'upsert', 'k', '{\"name\": \"early\"}')", MODEL)
        )
        late = await r.enqueue("k", {"name": "late"})  # higher id, committed first
        c = r.consumer()
        assert ids(await c.claim()) == [late]
        await tx.commit()
    assert await c.claim() == []  # `early` must not go while `late` is in flight
    assert await r.statuses(early, late) == ["pending", "inflight"]
    c.record([Outcome(Event(late, MODEL, "upsert", "k", None, {}, 1), "done", result_id=5)])
    assert ids(await c.claim()) == [early]


async def test_housekeeping_wakes_an_event_whose_predecessor_finished_without_waking_it(r: Rig) -> None:
    e = [await r.enqueue("k", {"name": f"v{i}"}) for i in range(2)]
    c = r.consumer(fold_max_events=1)
    assert ids(await c.claim()) == [e[0]]
    # as a consumer of a version before 0007 would finish it: status only, nobody woken
    await r.pool.execute("update syncd.outbox set status = 'done', done_at = now() where id = $1", e[0])
    assert await c.claim() == []
    await c.housekeep()
    assert ids(await c.claim()) == [e[1]]


async def test_outbox_wake_wakes_only_events_whose_predecessor_is_finished(r: Rig) -> None:
    """The follow-up of a claim that finished an event whose successor it could not see (queued after
    its snapshot began): outbox_wake with those ids wakes exactly the events nothing unfinished points at."""
    a = [await r.enqueue("a", {"name": f"a{i}"}) for i in range(2)]
    b = [await r.enqueue("b", {"name": f"b{i}"}) for i in range(2)]
    c = r.consumer(fold_max_events=1)
    assert ids(await c.claim()) == [a[0], b[0]]  # a[1], b[1] queue behind them
    await r.pool.execute("update syncd.outbox set status = 'done', done_at = now() where id = $1", a[0])
    woken = await r.pool.fetch(db.queries["outbox_wake"], [a[1], b[1]])
    assert [x["id"] for x in woken] == [a[1]]  # b[0] is still in flight: b[1] keeps waiting
    assert [(await r.row(i))["waiting"] for i in (a[1], b[1])] == [False, True]


async def test_an_upgrade_with_events_in_flight_chains_them_in_id_order(
    test_databases: TestDatabases,
) -> None:
    dsn = test_databases.clone()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("drop schema syncd cascade")
        known = migrate.load_migrations()
        before = [m for m in known if m.version < 7]
        await migrate.apply(conn, before)
        for i in range(6):
            sql = "select syncd.enqueue($1, 'upsert', $2, $3::text::jsonb)"
            await conn.fetchval(sql, MODEL, f"k{i % 2}", json.dumps({"name": f"v{i}"}))
        # the first event of k0 is in flight with a consumer of the old version
        await conn.execute(
            "update syncd.outbox set status = 'inflight', attempts = 1, locked_by = 'old', "
            "locked_until = now() + interval '1 minute' where id = 1"
        )
        await migrate.apply(conn, known)
        rows = await conn.fetch("select id, waiting, linked, next_id, status from syncd.outbox order by id")
        assert [(x["id"], x["waiting"], x["next_id"]) for x in rows] == [
            (1, False, 3), (2, False, 4), (3, True, 5), (4, True, 6), (5, True, None), (6, True, None)
        ]  # fmt: skip
        settings = Settings.model_validate({"odoo": {"url": "http://127.0.0.1:9", "api_key": "x"}})
        pool = await db.create_pool(dsn, settings.database)
        try:
            c = OutboxConsumer(settings, None, pool, dsn, "new")  # type: ignore[arg-type]  # no Odoo needed
            assert ids(await c.claim()) == [2, 4, 6]  # k1's head with its fold; k0 waits for the old consumer
            await conn.execute("update syncd.outbox set status = 'done', done_at = now() where id = 1")
            await c.housekeep()  # the old consumer woke nobody
            assert ids(await c.claim()) == [3, 5]
        finally:
            await pool.close()
    finally:
        await conn.close()
        test_databases.drop(dsn)


async def test_an_upgrade_under_load_loses_and_reorders_nothing(test_databases: TestDatabases) -> None:
    """Producers keep enqueueing while migration 0007 runs over a backlog (they wait for its lock, then
    go on): afterwards every event is delivered once, each record's in id order."""
    dsn = test_databases.clone()
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("drop schema syncd cascade")
        known = migrate.load_migrations()
        await migrate.apply(admin, [m for m in known if m.version < 7])
        sql = "select syncd.enqueue($1, 'upsert', $2, $3::text::jsonb)"
        for i in range(300):
            await admin.fetchval(sql, MODEL, f"k{i % 7}", json.dumps({"name": f"v{i}"}))
        migrated = False
        started = asyncio.Event()

        async def produce() -> int:
            n = 0
            producer = await asyncpg.connect(dsn)
            try:
                while not migrated or n < 50:
                    await producer.fetchval(sql, MODEL, f"k{n % 7}", json.dumps({"name": f"p{n}"}))
                    n += 1
                    started.set()
            finally:
                await producer.close()
            return n

        producing = asyncio.create_task(produce())
        await started.wait()  # the producer is under way before the migration takes its lock
        await migrate.apply(admin, known)
        migrated = True
        produced = await producing
        settings = Settings.model_validate({"odoo": {"url": "http://127.0.0.1:9", "api_key": "x"}})
        pool = await db.create_pool(dsn, settings.database)
        try:
            c = OutboxConsumer(settings, None, pool, dsn, "new")  # type: ignore[arg-type]  # no Odoo needed
            applied: dict[str, list[int]] = {}
            while events := await c.claim():
                for e in events:
                    applied.setdefault(e.key or "", []).append(e.id)
                c.record([Outcome(e, "done", result_id=1) for e in events])
            await c.flush()
        finally:
            await pool.close()
        total = 300 + produced
        assert await admin.fetchval("select count(*) from syncd.outbox where status = 'done'") == total
        assert sum(len(v) for v in applied.values()) == total
        assert all(v == sorted(v) for v in applied.values()), applied
    finally:
        await admin.close()
        test_databases.drop(dsn)


async def test_two_consumers_stop_at_an_empty_claim_only_when_nothing_is_claimable(r: Rig) -> None:
    """Each stops at its first empty claim (as a drain does): a claim that left a record's new events
    for the next one to place (the other consumer was placing that record) claims again instead of
    answering empty, so nothing claimable is left behind."""
    await r.pool.execute(
        """insert into syncd.outbox (model, op, key, payload)
           select $1, 'upsert', 'k' || (g % 300), jsonb_build_object('name', 'n' || g)
           from generate_series(1, 3000) g""",
        MODEL,
    )

    async def drain(name: str) -> None:
        c = r.consumer(name, batch_size=50)
        while events := await c.claim():
            c.record([Outcome(e, "done", result_id=1) for e in events])
        await c.flush()

    await asyncio.gather(drain("a"), drain("b"))
    left = await r.pool.fetch(
        "select id, key, status, waiting, linked, next_id, attempts from syncd.outbox where status <> 'done'"
        " order by key, id"
    )
    assert [dict(x) for x in left] == []
