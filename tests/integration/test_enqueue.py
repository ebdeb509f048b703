from __future__ import annotations

import asyncio

import asyncpg
import pytest

pytestmark = pytest.mark.integration


async def test_enqueue_inserts_a_pending_event(conn: asyncpg.Connection) -> None:
    event_id = await conn.fetchval(
        "select syncd.enqueue('res.partner', 'upsert', 'cust-1', '{\"name\": \"Ada\"}'::jsonb)"
    )
    row = await conn.fetchrow("select * from syncd.outbox where id = $1", event_id)
    assert row is not None
    assert (row["model"], row["op"], row["key"], row["status"], row["attempts"]) == (
        "res.partner",
        "upsert",
        "cust-1",
        "pending",
        0,
    )
    assert row["odoo_id"] is None and row["result_id"] is None and row["done_at"] is None
    contract = {
        "id",
        "created_at",
        "model",
        "op",
        "key",
        "odoo_id",
        "payload",
        "status",
        "attempts",
        "available_at",
        "last_error",
        "done_at",
        "result_id",
    }
    assert contract <= set(row.keys())


async def test_enqueue_named_arguments_and_write(conn: asyncpg.Connection) -> None:
    event_id = await conn.fetchval(
        "select syncd.enqueue(model => 'res.partner', op => 'write', key => null,"
        ' payload => \'{"email": "a@b.c"}\', odoo_id => 42)'
    )
    assert await conn.fetchval("select odoo_id from syncd.outbox where id = $1", event_id) == 42


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("'Res Partner', 'upsert', 'k', '{\"a\":1}'", "is not an Odoo model name"),
        ("'res.partner', 'merge', 'k', '{\"a\":1}'", "op 'merge' is not one of"),
        ("'res.partner', 'upsert', null, '{\"a\":1}'", "needs a key"),
        ("'res.partner', 'upsert', '', '{\"a\":1}'", "needs a key"),
        ("'res.partner', 'write', 'k', '{\"a\":1}'", "needs odoo_id"),
        ("'res.partner', 'delete', null, null", "needs a key or an odoo_id"),
        ("'res.partner', 'upsert', 'k', '[1,2]'", "must be a JSON object"),
        ("'res.partner', 'upsert', 'k', '{}'", "needs a payload with at least one field"),
        ("'res.partner', 'write', null, '{\"a\":1}', -3", "must be a positive Odoo record id"),
    ],
)
async def test_enqueue_rejects_bad_events_with_a_clear_error(
    conn: asyncpg.Connection, args: str, message: str
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
        await conn.fetchval(f"select syncd.enqueue({args})")
    assert await conn.fetchval("select count(*) from syncd.outbox") == 0


async def test_delete_by_odoo_id_without_payload(conn: asyncpg.Connection) -> None:
    event_id = await conn.fetchval("select syncd.enqueue('res.partner', 'delete', null, null, 7)")
    assert await conn.fetchval("select payload from syncd.outbox where id = $1", event_id) == "{}"


async def test_enqueue_rolls_back_with_the_producer_transaction(conn: asyncpg.Connection) -> None:
    tr = conn.transaction()
    await tr.start()
    await conn.fetchval("select syncd.enqueue('res.partner', 'upsert', 'k', '{\"a\": 1}')")
    await tr.rollback()
    assert await conn.fetchval("select count(*) from syncd.outbox") == 0


async def test_one_notification_per_transaction(db_dsn: str, conn: asyncpg.Connection) -> None:
    listener = await asyncpg.connect(db_dsn)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("syncd_outbox", lambda *a: received.put_nowait(a[3]))
    try:
        async with conn.transaction():
            for i in range(50):
                await conn.fetchval(
                    "select syncd.enqueue('res.partner', 'upsert', $1, '{\"a\": 1}')", f"k{i}"
                )
        await asyncio.wait_for(received.get(), timeout=10)
        # a marker notification sent after the batch proves no further batch notifications are queued
        await conn.execute("select pg_notify('syncd_outbox', 'marker')")
        assert await asyncio.wait_for(received.get(), timeout=10) == "marker"
    finally:
        await listener.close()
