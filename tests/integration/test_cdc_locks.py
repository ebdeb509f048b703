"""CDC leadership by advisory lock (``database.pooler = "none"``): each model's lock has a key of its
own (``syncd.cdc_lock_keys``), the same in every replica, and two models never share one — as they
did when the key was ``hashtext(model)`` alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd import db
from syncd.cdc.service import CdcService

pytestmark = pytest.mark.integration

#: Two model names with the same ``hashtext`` (found by grouping 'x.1' … 'x.300000' by it).
COLLIDING = ("x.21443", "x.51293")


@pytest.fixture
async def replicas(db_dsn: str) -> AsyncIterator[list[asyncpg.Connection]]:
    """Three lock connections, as three replicas would hold."""
    conns = [await asyncpg.connect(db_dsn) for _ in range(3)]
    try:
        yield conns
    finally:
        for c in conns:
            await c.close()


async def lock(conn: asyncpg.Connection, model: str) -> bool:
    return await CdcService._try_lock(conn, model)


async def test_models_whose_names_hash_alike_have_locks_of_their_own(
    replicas: list[asyncpg.Connection],
) -> None:
    a, b, _ = replicas
    one, two = COLLIDING
    assert await a.fetchval("select hashtext($1) = hashtext($2)", one, two)  # the premise
    assert await lock(a, one)
    assert await lock(b, two)  # under hashtext(model): False, replica a held "both"
    assert not await lock(b, one)
    assert not await lock(a, two)
    await a.fetchval(db.queries["cdc_leader_unlock"], one)
    assert await lock(b, one)
    keys = dict(await a.fetch("select model, key from syncd.cdc_lock_keys"))
    assert keys == {one: await a.fetchval("select hashtext($1)", one),  # the first keeps its hash
                    two: await a.fetchval("select hashtext($1 || '#1')", two)}  # fmt: skip


async def test_a_replica_of_before_0010_and_a_new_one_exclude_each_other(
    replicas: list[asyncpg.Connection],
) -> None:
    """During an upgrade, old replicas (which lock ``hashtext(model)``) and new ones run side by
    side: a model's key is its hash unless another model has that one, so they do not both poll it."""
    old, new, _ = replicas
    legacy = "select pg_try_advisory_lock(1937337955, hashtext($1))"
    assert await old.fetchval(legacy, "res.partner")
    assert not await lock(new, "res.partner")
    assert await lock(new, "sale.order")
    assert not await old.fetchval(legacy, "sale.order")


async def test_every_replica_locks_the_same_key_whatever_models_it_has_and_their_order(
    replicas: list[asyncpg.Connection],
) -> None:
    a, b, c = replicas
    for model in ["res.partner", "sale.order"]:  # replica a: its two models
        assert await lock(a, model)
    for model in ["sale.order", "product.product", "res.partner"]:  # b: three, in another order
        assert await lock(b, model) == (model == "product.product")
    numbered = dict(await a.fetch("select model, key from syncd.cdc_lock_keys"))
    assert len(set(numbered.values())) == 3
    await a.close()  # replica a dies: its locks go with its connection
    assert await lock(c, "sale.order")
    assert await lock(c, "res.partner")
    assert dict(await b.fetch("select model, key from syncd.cdc_lock_keys")) == numbered  # for good


async def test_replicas_numbering_models_at_the_same_time_agree(db_dsn: str) -> None:
    """Ten replicas try to lock the same six new models (two of them hashing alike) at once: each
    model gets one key, and one lock holder at the most (a replica that lost the race for a key
    gets the lock next time)."""
    models = [*COLLIDING, *(f"m.{i}" for i in range(4))]
    conns = [await asyncpg.connect(db_dsn) for _ in range(10)]
    try:

        async def replica(conn: asyncpg.Connection, start: int) -> list[str]:
            order = models[start:] + models[:start]  # each replica in another order
            return [m for m in order if await lock(conn, m)]

        for _ in range(2):
            held = await asyncio.gather(*(replica(c, i % len(models)) for i, c in enumerate(conns)))
            holders = {m: sum(m in h for h in held) for m in models}
            assert all(n <= 1 for n in holders.values()), holders
        assert set(holders.values()) == {1}  # numbered by now: the second round has a holder each
        keys = await conns[0].fetch("select model, key from syncd.cdc_lock_keys")
        assert sorted(r["model"] for r in keys) == sorted(models)
        assert len({r["key"] for r in keys}) == len(models)
    finally:
        for c in conns:
            await c.close()


async def test_the_documented_query_names_the_holder_of_each_model(
    replicas: list[asyncpg.Connection],
) -> None:
    """The query of the README (SyncdCdcLagHigh) and docs/supabase.md."""
    a, b, _ = replicas
    assert await lock(a, "res.partner")
    assert await lock(b, "product.product")
    signs = await a.fetchval("select array_agg(sign(key) order by model) from syncd.cdc_lock_keys")
    assert sorted(signs) == [-1, 1]  # both halves of the key range: pg_locks shows them as oid
    rows = await a.fetch(
        """
        select k.model, a.pid, a.application_name, a.client_addr, a.state, a.backend_start
        from pg_locks l
        join pg_stat_activity a on a.pid = l.pid
        join syncd.cdc_lock_keys k on l.objid = k.key::oid
        where l.locktype = 'advisory' and l.classid = 1937337955 and l.objsubid = 2;
        """
    )
    pids = {r["model"]: r["pid"] for r in rows}
    assert pids == {
        "res.partner": await a.fetchval("select pg_backend_pid()"),
        "product.product": await b.fetchval("select pg_backend_pid()"),
    }
