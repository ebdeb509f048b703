"""Writable mirror tables against the real Odoo 19, over both transports, with the real CLI: an app's
UPDATE and DELETE of mirror rows reach Odoo, conflicts are held and resolved, a write Odoo refuses
fails with Odoo's words and the row returns to Odoo's values, nothing flickers or echoes. (The same
behaviours against the fake, in-process and with fault injection: tests/integration/test_writable_mirror.py.)

``syncd --once`` polls, then delivers the outbox: a change is applied by one run and its row is read
back from Odoo by the next."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from syncd import metrics
from syncd.config import DatabaseSettings, Settings
from syncd.db import connect, create_pool
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer
from tests.e2e.helpers import Result, clean_env, syncd_async
from tests.odoo_targets import OdooTarget, Protocol, unique

pytestmark = [pytest.mark.e2e, pytest.mark.real_odoo]

MODEL = "res.partner"
TABLE = 'odoo."res_partner"'
FIELDS = ["name", "email", "phone", "active", "parent_id", "function"]


@dataclass
class Real:
    odoo: OdooTarget
    protocol: Protocol
    dsn: str
    conn: asyncpg.Connection
    admin: OdooClient

    def env(self, **extra: str) -> dict[str, str]:
        models = json.dumps([{"model": MODEL, "fields": FIELDS, "writable": True}])
        return clean_env(SYNCD_DATABASE__DSN=self.dsn, SYNCD_CDC__MODELS=models, SYNCD_HTTP__ENABLED="false",
                         SYNCD_OUTBOX__MAX_ATTEMPTS="1", **self.odoo.env(self.protocol), **extra)  # fmt: skip

    async def once(self, *args: str, code: int | None = 0, **extra: str) -> Result:
        r = await syncd_async(*(args or ("--once",)), env=self.env(**extra))
        if code is not None:
            assert r.code == code, (
                f"syncd {' '.join(args or ('--once',))} exited {r.code}\n{r.out}\n{r.err[-3000:]}"
            )
        return r

    async def row(self, rid: int) -> asyncpg.Record:
        row = await self.conn.fetchrow(f"select * from {TABLE} where id = $1", rid)
        assert row is not None, f"no mirror row {rid}"
        return row

    async def values(self, rid: int, *names: str) -> tuple[Any, ...]:
        (rec,) = await self.admin.read(MODEL, [rid], list(names))
        return tuple(rec[n] for n in names)

    async def events(self) -> list[asyncpg.Record]:
        return await self.conn.fetch("select * from syncd.outbox order by id")


@pytest.fixture(params=["json2", "jsonrpc"])
async def real(request: pytest.FixtureRequest, real_odoo: OdooTarget, db_dsn: str) -> AsyncIterator[Real]:
    conn = await connect(db_dsn, DatabaseSettings())  # jsonb decoded, as syncd reads it
    try:
        async with real_odoo.client() as admin:
            yield Real(real_odoo, request.param, db_dsn, conn, admin)
    finally:
        await conn.close()


async def partners(real: Real, n: int, label: str) -> list[int]:
    """``n`` new partners of this test, mirrored."""
    ids = await real.admin.create(MODEL, [{"name": unique(label)} for _ in range(n)])
    await real.once()
    return ids


async def test_an_app_update_reaches_odoo_and_nothing_echoes(real: Real) -> None:
    (rid,) = await partners(real, 1, "wm-update")
    await real.conn.execute(
        f"update {TABLE} set phone = '+32 2 000 00 00', function = 'Buyer' where id = $1", rid
    )
    assert (await real.row(rid))["_sync_state"] == "pending"
    r = await real.once()
    assert "outbox: 1 delivered" in r.out
    assert await real.values(rid, "phone", "function") == ("+32 2 000 00 00", "Buyer")
    assert (await real.row(rid))["_sync_state"] == "synced"
    await real.once()
    row = await real.row(rid)
    (write_date,) = await real.values(rid, "write_date")
    assert (row["phone"], row["_raw"]["write_date"]) == ("+32 2 000 00 00", write_date)
    assert len(await real.events()) == 1  # the runs' own writes of the mirror made no event


async def test_odoo_and_the_app_edit_different_fields_both_survive(real: Real) -> None:
    (rid,) = await partners(real, 1, "wm-both")
    await real.admin.write(MODEL, [rid], {"email": "odoo@both.test"})
    await real.conn.execute(f"update {TABLE} set phone = '+1 555 0100' where id = $1", rid)
    await real.once()
    await real.once()
    assert await real.values(rid, "email", "phone") == ("odoo@both.test", "+1 555 0100")
    row = await real.row(rid)
    assert (row["email"], row["phone"], row["_sync_state"]) == ("odoo@both.test", "+1 555 0100", "synced")


async def test_same_field_is_held_and_resolved_with_the_cli(real: Real) -> None:
    first, second = await partners(real, 2, "wm-held")
    for rid in (first, second):
        await real.admin.write(MODEL, [rid], {"function": f"Odoo {rid}"})
        await real.conn.execute(
            f"update {TABLE} set function = $2, phone = '+1' where id = $1", rid, f"App {rid}"
        )
    r = await real.once()
    assert (
        "outbox: 2 delivered, 0 to retry later, 0 dead; 2 of them with fields held as conflicts" in r.out
    ), r.out
    for rid in (first, second):
        assert await real.values(rid, "function", "phone") == (f"Odoo {rid}", "+1")
    held = {e["odoo_id"]: e for e in await real.events()}
    assert {e["status"] for e in held.values()} == {"conflict"}
    assert held[first]["conflicts"]["function"] == {
        "base": None,
        "app": f"App {first}",
        "odoo": f"Odoo {first}",
    }
    status = await real.once("status")
    assert "held conflicts of res.partner: 2" in status.out
    listed = await real.once("outbox", "list", "--status", "conflict")
    assert str(held[first]["id"]) in listed.out and "conflict held" in listed.out
    r = await real.once("outbox", "resolve", str(held[first]["id"]), "--take", "app")
    assert "1 held conflicts resolved" in r.out
    await real.once("outbox", "resolve", str(held[second]["id"]), "--take", "odoo")
    r = await real.once("outbox", "resolve", str(held[second]["id"]), "--take", "app", code=1)
    assert "is done, not a held conflict" in r.out
    await real.once()
    await real.once()
    assert await real.values(first, "function") == (f"App {first}",)
    assert await real.values(second, "function") == (f"Odoo {second}",)
    assert [(await real.row(rid))["function"] for rid in (first, second)] == [
        f"App {first}",
        f"Odoo {second}",
    ]


async def test_a_write_odoo_refuses_fails_with_odoos_words_and_the_row_returns(real: Real) -> None:
    (rid,) = await partners(real, 1, "wm-refused")
    await real.conn.execute(f"update {TABLE} set parent_id = id where id = $1", rid)  # its own parent
    await real.once(code=1)
    row = await real.row(rid)
    assert row["_sync_state"] == "failed"
    assert "recursive" in row["_sync_error"].lower(), row["_sync_error"]
    await real.once()
    row = await real.row(rid)
    assert (row["parent_id"], row["_sync_state"]) == (None, "failed")
    assert await real.values(rid, "parent_id") == (False,)


async def test_a_poll_before_delivery_keeps_the_apps_values(real: Real) -> None:
    (rid,) = await partners(real, 1, "wm-flicker")
    await real.conn.execute(f"update {TABLE} set function = 'Pending value' where id = $1", rid)
    await real.admin.write(MODEL, [rid], {"email": "odoo@flicker.test"})
    await real.once(SYNCD_OUTBOX__ENABLED="false")  # a poll, no delivery
    row = await real.row(rid)
    assert (row["function"], row["_sync_state"]) == ("Pending value", "pending")
    await real.once()
    await real.once()
    row = await real.row(rid)
    assert (row["function"], row["email"], row["_sync_state"]) == (
        "Pending value",
        "odoo@flicker.test",
        "synced",
    )


async def test_an_app_delete_reaches_odoo(real: Real) -> None:
    (rid,) = await partners(real, 1, "wm-delete")
    assert await real.conn.execute(f"delete from {TABLE} where id = $1", rid) == "DELETE 0"
    await real.once()
    assert await real.admin.search_count(MODEL, [("id", "=", rid)], context={"active_test": False}) == 0
    await real.once()
    assert (await real.row(rid))["_deleted_at"] is not None


async def test_a_mass_update_costs_a_few_odoo_calls(real: Real) -> None:
    """300 rows archived by one UPDATE: delivered in-process (to count the calls) as a few
    ``write(ids, values)`` and ``read`` calls, not one per row."""
    ids = await partners(real, 300, "wm-mass")
    status = await real.conn.execute(f"update {TABLE} set active = false where id = any($1::bigint[])", ids)
    assert status == "UPDATE 300"
    settings = Settings.model_validate({"odoo": real.odoo.settings(real.protocol).model_dump(),
                                        "cdc": {"models": [{"model": MODEL, "fields": FIELDS, "writable": True}]}})  # fmt: skip

    def calls(method: str) -> float:
        return sum(s.value for m in metrics.ODOO_REQUEST_SECONDS.collect() for s in m.samples
                   if s.name.endswith("_count") and s.labels.get("method") == method)  # fmt: skip

    before = {m: calls(m) for m in ("write", "read")}
    pool = await create_pool(real.dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
    try:
        async with OdooClient(settings.odoo) as odoo:
            report = await OutboxConsumer(settings, odoo, pool, real.dsn, "mass").drain()
    finally:
        await pool.close()
    assert (report.done, report.dead) == (300, 0)
    used = {m: calls(m) - before[m] for m in before}
    assert used["write"] <= 3 and used["read"] <= 3, used  # batches of 100
    assert await real.admin.search_count(MODEL, [("id", "in", ids), ("active", "=", True)]) == 0
