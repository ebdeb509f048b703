"""Redriving dead events (issue 11): a retry must not set a record back to values that later events
of the same record already applied. ``syncd.outbox.redrive`` against a real PostgreSQL; the states
of the events are set directly, as the consumer would have left them."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from syncd import db
from syncd.outbox.redrive import RetryResult, retry_dead

pytestmark = pytest.mark.integration


async def enqueue(
    conn: asyncpg.Connection, op: str, key: str | None, status: str, odoo_id: int | None = None
) -> int:
    """An event of res.partner left in ``status`` (done ones with done_at, as the consumer does)."""
    payload = None if op == "delete" else json.dumps({"name": f"{op} {key or odoo_id}"})
    event_id = int(
        await conn.fetchval(
            "select syncd.enqueue('res.partner', $1, $2, $3::jsonb, $4)", op, key, payload, odoo_id
        )
    )
    await conn.execute(
        "update syncd.outbox set status = $2, done_at = case when $2 = 'done' then now() end,"
        " locked_by = case when $2 = 'inflight' then 'elsewhere' end,"
        " locked_until = case when $2 = 'inflight' then now() + interval '1 minute' end,"
        " attempts = case when $2 = 'pending' then 0 else 3 end where id = $1",
        event_id,
        status,
    )
    return event_id


async def statuses(conn: asyncpg.Connection, *ids: int) -> list[str]:
    rows = await conn.fetch("select id, status from syncd.outbox where id = any($1::bigint[])", list(ids))
    by_id = {r["id"]: r["status"] for r in rows}
    return [by_id[i] for i in ids]


def refused(result: RetryResult) -> dict[int, list[tuple[int, str, str]]]:
    return {s.id: [(e.id, e.op, e.status) for e in s.later] for s in result.refused}


async def test_a_dead_event_whose_key_was_applied_later_is_refused_unless_forced(
    conn: asyncpg.Connection,
) -> None:
    dead = await enqueue(conn, "upsert", "user-42", "dead")
    later = await enqueue(conn, "upsert", "user-42", "done")
    other = await enqueue(conn, "upsert", "user-43", "dead")  # an unrelated record, same call

    result = await retry_dead(conn, [dead, other])
    assert result.retried == [other]
    assert refused(result) == {dead: [(later, "upsert", "done")]}
    assert result.refused[0].later[0].done_at is not None
    assert (result.refused[0].model, result.refused[0].target) == ("res.partner", "user-42")
    assert result.forced == []
    assert await statuses(conn, dead, other) == ["dead", "pending"]

    forced = await retry_dead(conn, [dead], force=True)
    assert forced.retried == [dead] and forced.refused == []
    assert [(s.id, [e.id for e in s.later]) for s in forced.forced] == [(dead, [later])]
    row = await conn.fetchrow("select status, attempts, last_error from syncd.outbox where id = $1", dead)
    assert dict(row) == {"status": "pending", "attempts": 0, "last_error": None}


async def test_a_dead_write_whose_odoo_id_was_applied_later_is_refused_unless_forced(
    conn: asyncpg.Connection,
) -> None:
    dead = await enqueue(conn, "write", None, "dead", odoo_id=7)
    later = await enqueue(conn, "delete", None, "done", odoo_id=7)
    same_id_other_model = await conn.fetchval(
        "select syncd.enqueue('res.users', 'write', null, '{\"name\": \"x\"}', 8)"
    )
    unrelated = await enqueue(conn, "write", None, "dead", odoo_id=8)  # res.users #8 is not res.partner #8
    await conn.execute(
        "update syncd.outbox set status = 'done', done_at = now() where id = $1", same_id_other_model
    )

    result = await retry_dead(conn, [dead, unrelated])
    assert result.retried == [unrelated]
    assert refused(result) == {dead: [(later, "delete", "done")]}
    assert result.refused[0].target == "#7"
    assert await statuses(conn, dead) == ["dead"]

    assert (await retry_dead(conn, [dead], force=True)).retried == [dead]
    assert await statuses(conn, dead) == ["pending"]


async def test_later_events_only_pending_or_dead_do_not_hold_a_retry_back(conn: asyncpg.Connection) -> None:
    """The retried event is then the record's earliest unfinished one, and the claim applies it first."""
    earlier_done = await enqueue(conn, "upsert", "k", "done")  # before the dead one: no matter
    dead = await enqueue(conn, "upsert", "k", "dead")
    await enqueue(conn, "upsert", "k", "pending")
    await enqueue(conn, "upsert", "k", "dead")
    await enqueue(conn, "write", None, "done", odoo_id=5)  # another queue (odoo_id), even if the same record
    result = await retry_dead(conn, [dead])
    assert (result.retried, result.refused) == ([dead], [])
    assert await statuses(conn, earlier_done, dead) == ["done", "pending"]


async def test_a_later_event_in_flight_refuses_the_retry_too(conn: asyncpg.Connection) -> None:
    """It is being applied right now: the retried event would follow it, with older values."""
    dead = await enqueue(conn, "delete", "k", "dead", odoo_id=9)  # a delete can name both
    inflight = await enqueue(conn, "write", None, "inflight", odoo_id=9)
    result = await retry_dead(conn, [dead])
    assert refused(result) == {dead: [(inflight, "write", "inflight")]}
    assert result.refused[0].later[0].done_at is None
    assert result.refused[0].target == "k #9"


async def test_all_dead_checks_every_dead_event(conn: asyncpg.Connection) -> None:
    by_key = await enqueue(conn, "upsert", "a", "dead")
    by_id = await enqueue(conn, "write", None, "dead", odoo_id=3)
    free = await enqueue(conn, "upsert", "b", "dead")
    second_dead_of_a = await enqueue(conn, "upsert", "a", "dead")
    done_a = await enqueue(conn, "upsert", "a", "done")
    done_3a = await enqueue(conn, "write", None, "done", odoo_id=3)
    done_3b = await enqueue(conn, "delete", "c", "done", odoo_id=3)
    last_of_a = await enqueue(conn, "upsert", "a", "dead")  # after every applied event of "a"

    result = await retry_dead(conn, None)
    assert result.retried == [free, last_of_a]
    assert refused(result) == {
        by_key: [(done_a, "upsert", "done")],
        by_id: [(done_3a, "write", "done"), (done_3b, "delete", "done")],
        second_dead_of_a: [(done_a, "upsert", "done")],
    }
    assert await statuses(conn, by_key, by_id, free, second_dead_of_a, last_of_a) == [
        "dead", "dead", "pending", "dead", "pending"
    ]  # fmt: skip

    forced = await retry_dead(conn, None, force=True)
    assert forced.retried == [by_key, by_id, second_dead_of_a]
    assert [s.id for s in forced.forced] == [by_key, by_id, second_dead_of_a]
    assert await retry_dead(conn, None) == RetryResult([], [], [])


async def test_ids_that_are_not_dead_are_left_alone(conn: asyncpg.Connection) -> None:
    done = await enqueue(conn, "upsert", "k", "done")
    pending = await enqueue(conn, "upsert", "k", "pending")
    assert await retry_dead(conn, [done, pending, 999_999]) == RetryResult([], [], [])
    assert await retry_dead(conn, []) == RetryResult([], [], [])
    assert await statuses(conn, done, pending) == ["done", "pending"]


def _scans_of_outbox(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node.get("Relation Name") == "outbox" else []
    for child in node.get("Plans", []):
        found += _scans_of_outbox(child)
    return found


async def test_the_check_reads_the_table_once_for_any_number_of_dead_events(conn: asyncpg.Connection) -> None:
    """Done events are in no index by record: the check reads the events after the oldest dead one
    once, for all of them together — not once per dead event (which a join on ``later.id > dead.id``
    invites: a range scan of the primary key per id)."""
    await conn.execute(
        """
        insert into syncd.outbox (model, op, key, odoo_id, payload, status, done_at)
        select 'res.partner', case when g % 4 = 0 then 'write' else 'upsert' end,
               case when g % 4 = 0 then null else 'k' || (g % 2000) end,
               case when g % 4 = 0 then g % 500 + 1 end, '{"name": "x"}', 'done', now()
        from generate_series(1, 20000) g
        """
    )
    dead_ids = [
        r["id"]
        for r in await conn.fetch(
            "update syncd.outbox set status = 'dead', done_at = null where id % 997 = 5 returning id"
        )
    ]
    await conn.execute("analyze syncd.outbox")
    for ids in (dead_ids, None):
        plan = await conn.fetchval(
            "explain (analyze, format json) " + db.queries["outbox_retry_later_applied"], ids
        )
        scans = _scans_of_outbox(json.loads(plan)[0]["Plan"])
        assert scans and all(s["Actual Loops"] == 1 for s in scans), scans
        assert sum(s["Actual Rows"] + s.get("Rows Removed by Filter", 0) for s in scans) < 20000 + 2 * len(
            dead_ids
        )
    checked = await retry_dead(conn, dead_ids)
    assert len(checked.retried) + len(checked.refused) == len(dead_ids) and checked.refused
