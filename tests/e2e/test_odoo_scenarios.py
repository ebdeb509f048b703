"""End-to-end scenarios of both directions against each Odoo: the fake and the real Odoo 19.

Every scenario runs the real ``syncd`` CLI as a subprocess over both transports (JSON-2 with the API key,
JSON-RPC with the password), each in a fresh mirror database of its own. The real Odoo's database is
shared by the whole test run (and kept between runs), so every record a scenario makes carries a name
unique to the run (:func:`tests.odoo_targets.unique`), and a scenario only ever looks at its own
records. Scenarios that need what only a real server has (its own PostgreSQL for a long transaction,
fields created through ``ir.model.fields``, a confirmed sales order) ask for ``real_odoo``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncd.odoo import OdooClient
from tests.e2e.helpers import Daemon, Result, clean_env, syncd_async, wait_until
from tests.odoo_targets import RUN, OdooTarget, Protocol, unique

pytestmark = pytest.mark.e2e

PARTNER = "res.partner"
FIELDS = ["name", "email", "active", "parent_id", "type"]


@dataclass
class Scenario:
    """One Odoo, one transport, a fresh mirror database and the ``syncd`` runs against them."""

    odoo: OdooTarget
    protocol: Protocol
    dsn: str
    conn: asyncpg.Connection
    tmp: Path
    admin: OdooClient  # staging and checking, always JSON-2: the transport under test is syncd's

    def env(self, fields: list[str] | str = FIELDS, **extra: str) -> dict[str, str]:
        models = json.dumps([{"model": PARTNER, "fields": fields}])
        return clean_env(SYNCD_DATABASE__DSN=self.dsn, SYNCD_CDC__MODELS=models, SYNCD_HTTP__ENABLED="false",
                         **self.odoo.env(self.protocol), **extra)  # fmt: skip

    async def once(self, *, code: int = 0, fields: list[str] | str = FIELDS, **extra: str) -> Result:
        r = await syncd_async("--once", env=self.env(fields, **extra))
        assert r.code == code, f"syncd --once exited {r.code}\n{r.out}\n{r.err[-3000:]}"
        return r

    async def mirror(self, ids: list[int], *columns: str) -> dict[int, tuple[Any, ...]]:
        """The mirror rows of ``ids`` that are not marked deleted, as {id: (column, …)}."""
        cols = ", ".join(f'"{c}"' for c in columns)
        rows = await self.conn.fetch(
            f'select id, {cols} from odoo."res_partner" where id = any($1) and _deleted_at is null', ids
        )
        return {r["id"]: tuple(r[c] for c in columns) for r in rows}

    async def enqueue(self, op: str, key: str | None, payload: dict[str, Any] | None,
                      odoo_id: int | None = None) -> int:  # fmt: skip
        return int(await self.conn.fetchval("select syncd.enqueue($1, $2, $3, $4::jsonb, $5)", PARTNER, op,
                                            key, json.dumps(payload) if payload is not None else None, odoo_id))  # fmt: skip

    async def outbox(self) -> dict[int, asyncpg.Record]:
        rows = await self.conn.fetch("select id, status, attempts, last_error from syncd.outbox order by id")
        return {r["id"]: r for r in rows}

    async def partners(self, name_prefix: str) -> list[dict[str, Any]]:
        """Odoo's partners whose name starts with ``name_prefix``, archived ones included."""
        return await self.admin.search_read(PARTNER, [("name", "=like", f"{name_prefix}%")],
                                            ["name", "email", "phone", "active"], order="id",
                                            context={"active_test": False})  # fmt: skip


@asynccontextmanager
async def scenario(odoo: OdooTarget, protocol: Protocol, dsn: str, tmp: Path) -> AsyncIterator[Scenario]:
    conn = await asyncpg.connect(dsn)
    try:
        async with odoo.client() as admin:
            yield Scenario(odoo, protocol, dsn, conn, tmp, admin)
    finally:
        await conn.close()


@pytest.fixture(params=["json2", "jsonrpc"])
async def scn(
    request: pytest.FixtureRequest, odoo_target: OdooTarget, db_dsn: str, tmp_path: Path
) -> AsyncIterator[Scenario]:
    async with scenario(odoo_target, request.param, db_dsn, tmp_path) as s:
        yield s


@pytest.fixture(params=["json2", "jsonrpc"])
async def real(
    request: pytest.FixtureRequest, real_odoo: OdooTarget, db_dsn: str, tmp_path: Path
) -> AsyncIterator[Scenario]:
    """A scenario on the real Odoo only."""
    async with scenario(real_odoo, request.param, db_dsn, tmp_path) as s:
        yield s


# ------------------------------------------------------------------------------------ Odoo → PostgreSQL


async def test_same_second_writes_with_a_tiny_page_size(scn: Scenario) -> None:
    """Records written within one second, ids going down as the microseconds go up (the order that
    makes a keyset cursor skip records, odoo-facts "Searching"), all reach the mirror with pages of 2."""
    await scn.once()  # the backfill of every partner there is, with the default page size
    names = [unique("same-second") for _ in range(8)]
    ids = await scn.admin.create(PARTNER, [{"name": n} for n in names])  # one call: one write_date
    for rid in sorted(ids, reverse=True):  # one call each: later microseconds, lower ids
        await scn.admin.write(PARTNER, [rid], {"email": f"p{rid}@same-second.test"})
    r = await scn.once(SYNCD_CDC__PAGE_SIZE="2")
    assert "no reconciliation due" in r.out, r.out  # the polls found them all
    assert await scn.mirror(ids, "name", "email") == {
        rid: (name, f"p{rid}@same-second.test") for rid, name in zip(ids, names, strict=True)
    }


async def test_archive_delete_and_recreate(scn: Scenario) -> None:
    name = unique("lifecycle")
    (first,) = await scn.admin.create(PARTNER, [{"name": name}])
    await scn.once()
    assert await scn.mirror([first], "name", "active") == {first: (name, True)}

    await scn.admin.write(PARTNER, [first], {"active": False})
    await scn.once()
    assert await scn.mirror([first], "active") == {first: (False,)}  # archived: still mirrored

    await scn.admin.unlink(PARTNER, [first])
    r = await scn.once(SYNCD_CDC__RECONCILE_INTERVAL_SECONDS="0.001")  # deletions: the reconciliation
    assert "1 marked deleted" in r.out, r.out
    deleted_at = await scn.conn.fetchval('select _deleted_at from odoo."res_partner" where id = $1', first)
    assert deleted_at is not None

    (second,) = await scn.admin.create(PARTNER, [{"name": name}])
    await scn.once()
    assert second != first
    assert await scn.mirror([first, second], "name", "active") == {second: (name, True)}


async def test_a_late_commit_in_odoos_own_database_is_mirrored(real: Scenario) -> None:
    """A transaction in Odoo's PostgreSQL stamps write_date at its start and commits after syncd's
    cursor went past that second: the lookback still brings the row."""
    assert real.odoo.pg_dsn, "ODOO19_PG_DSN is needed to hold a transaction in Odoo's database"
    late_name, early_name = unique("late"), unique("early")
    late, early = await real.admin.create(PARTNER, [{"name": "late, before"}, {"name": "early, before"}])
    await real.once()
    odoo_pg = await asyncpg.connect(real.odoo.pg_dsn)
    try:
        tx = odoo_pg.transaction()
        await tx.start()
        started = await odoo_pg.fetchval(
            "update res_partner set name = $1, write_date = now() at time zone 'utc' where id = $2 "
            "returning write_date", late_name, late,
        )  # fmt: skip

        async def seconds_later() -> bool:  # beyond the one second that every poll re-reads anyway
            now = await real.conn.fetchval("select now() at time zone 'utc'")
            return bool((now.replace(microsecond=0) - started.replace(microsecond=0)).total_seconds() >= 3)

        await wait_until(seconds_later, within=10, what="3 seconds after the transaction's start")
        await real.admin.write(PARTNER, [early], {"name": early_name})
        await real.once()
        assert await real.mirror([late, early], "name") == {late: ("late, before",), early: (early_name,)}
        await tx.commit()
    finally:
        await odoo_pg.close()
    r = await real.once()
    assert "no reconciliation due" in r.out, r.out  # the poll's lookback found it
    assert await real.mirror([late], "name") == {late: (late_name,)}


async def test_a_field_the_model_gains_becomes_a_column(real: Scenario) -> None:
    """``fields = "*"``: a field created through ir.model.fields (an x_ field, as Studio makes them) is
    a column of the mirror once syncd asks for the fields again (``cdc.schema_refresh_seconds``; a
    daemon also at its start), its values mirrored."""
    field = f"x_syncd_{RUN}_{real.protocol}"
    name = unique("gains")
    (rid,) = await real.admin.create(PARTNER, [{"name": name}])
    await real.once(fields="*")
    (model_id,) = await real.admin.search("ir.model", [("model", "=", PARTNER)])
    (field_id,) = await real.admin.create("ir.model.fields", [
        {"name": field, "field_description": f"syncd test {RUN}", "model_id": model_id, "ttype": "char"}
    ])  # fmt: skip
    try:
        await real.admin.write(PARTNER, [rid], {field: "gained"})
        await real.once(fields="*", SYNCD_CDC__SCHEMA_REFRESH_SECONDS="0.001")
        assert await real.mirror([rid], "name", field) == {rid: (name, "gained")}
    finally:
        await real.admin.unlink("ir.model.fields", [field_id])


# ------------------------------------------------------------------------------------ PostgreSQL → Odoo


async def test_outbox_awkward_keys_write_by_id_delete_by_key_poison_rows_and_replay(scn: Scenario) -> None:
    """Upserts under keys that are no valid external id, a write by Odoo id, a delete by key, two poison
    rows that Odoo's own load() refuses (a bad selection value, a many2one to no record) dead with
    Odoo's message while the rest of their batch lands, and a replay of every upsert that creates
    nothing new."""
    tag = unique("outbox")
    keys = [
        f"{tag} with spaces",
        f"{tag}/slash.dot,comma",
        f"{tag}-ünïcødé",
        f"{tag}-" + "x" * 300,
        f"{tag}-plain",
    ]
    upserts = {k: {"name": f"{tag}:{i}", "email": f"k{i}@outbox.test"} for i, k in enumerate(keys)}
    for k, payload in upserts.items():
        await scn.enqueue("upsert", k, payload)
    bad_selection = await scn.enqueue("upsert", f"{tag}-poison-1", {"name": f"{tag}:p1", "type": "nonsense"})
    bad_relation = await scn.enqueue(
        "upsert", f"{tag}-poison-2", {"name": f"{tag}:p2", "parent_id": 2_000_000_000}
    )
    r = await scn.once(code=1)  # events went dead in this run
    assert "outbox: 5 delivered, 0 to retry later, 2 dead" in r.out, r.out
    outbox = await scn.outbox()
    assert "nonsense" in outbox[bad_selection]["last_error"], outbox[bad_selection]["last_error"]
    assert "2000000000" in outbox[bad_relation]["last_error"], outbox[bad_relation]["last_error"]
    created = await scn.partners(f"{tag}:")
    assert sorted(p["name"] for p in created) == sorted(p["name"] for p in upserts.values())

    by_name = {p["name"]: p["id"] for p in created}
    target = by_name[f"{tag}:4"]
    await scn.enqueue("write", None, {"phone": "+32 2 555 01 23"}, odoo_id=target)
    await scn.enqueue("delete", keys[0], None)
    for k, payload in upserts.items():  # the replay: same keys, same values
        if k != keys[0]:
            await scn.enqueue("upsert", k, payload)
    r = await scn.once()
    assert "outbox: 6 delivered, 0 to retry later, 0 dead" in r.out, r.out
    after = {p["name"]: p for p in await scn.partners(f"{tag}:")}
    assert sorted(after) == sorted(p["name"] for k, p in upserts.items() if k != keys[0])
    assert {p["id"] for p in after.values()} <= set(by_name.values())  # the replay made nothing new
    assert (after[f"{tag}:4"]["email"], after[f"{tag}:4"]["phone"]) == ("k4@outbox.test", "+32 2 555 01 23")
    assert await scn.admin.search_count(PARTNER, [("id", "=", by_name[f"{tag}:0"])],
                                        context={"active_test": False}) == 0  # fmt: skip


async def test_a_delete_odoo_refuses_is_dead_with_odoos_text(real: Scenario) -> None:
    """A partner used by a confirmed sales order cannot be deleted: the event is dead (not retried
    for ever) and says why in Odoo's words."""
    key = unique("refused")
    await real.enqueue("upsert", key, {"name": key})
    await real.once()
    ((partner,),) = [(p["id"],) for p in await real.partners(key)]
    (product,) = await real.admin.search("product.product", [("sale_ok", "=", True)], limit=1)
    (order,) = await real.admin.create("sale.order", [
        {"partner_id": partner, "order_line": [(0, 0, {"product_id": product, "product_uom_qty": 1})]}
    ])  # fmt: skip
    await real.admin.call("sale.order", "action_confirm", [order])
    event = await real.enqueue("delete", key, None)
    await real.once(code=1)
    row = (await real.outbox())[event]
    assert row["status"] == "dead" and row["attempts"] == 1
    assert "Another model is using the record you are trying to delete" in row["last_error"]
    assert len(await real.partners(key)) == 1


async def test_datetimes_do_not_shift_when_the_user_is_not_in_utc(real: Scenario) -> None:
    """The admin user in Europe/Brussels: a datetime upserted through the outbox lands in Odoo as the
    UTC value given, and the CDC mirrors Odoo's datetimes without shifting them."""
    assert real.odoo.pg_dsn, "ODOO19_PG_DSN is needed to read Odoo's stored values"
    field = f"x_syncd_when_{RUN}_{real.protocol}"
    (model_id,) = await real.admin.search("ir.model", [("model", "=", PARTNER)])
    (field_id,) = await real.admin.create("ir.model.fields", [
        {"name": field, "field_description": f"syncd when {RUN}", "model_id": model_id, "ttype": "datetime"}
    ])  # fmt: skip
    (admin,) = await real.admin.search("res.users", [("login", "=", real.odoo.login)])
    (before,) = await real.admin.read("res.users", [admin], ["tz"])
    await real.admin.write("res.users", [admin], {"tz": "Europe/Brussels"})
    try:
        key = unique("tz")
        await real.enqueue("upsert", key, {"name": key, field: "2026-03-29 01:30:00"})  # Brussels' DST night
        await real.once(fields=["name", "write_date", field])
        ((rid, stored),) = [(p["id"], p) for p in await real.partners(key)]
        odoo_pg = await asyncpg.connect(real.odoo.pg_dsn)
        try:
            row = await odoo_pg.fetchrow(f'select "{field}", write_date from res_partner where id = $1', rid)
        finally:
            await odoo_pg.close()
        assert str(row[field]) == "2026-03-29 01:30:00"
        await real.once(fields=["name", "write_date", field])
        mirrored = await real.conn.fetchrow(
            f'select "{field}", write_date from odoo."res_partner" where id = $1', rid
        )
        assert mirrored[field].isoformat() == "2026-03-29T01:30:00+00:00"
        assert mirrored["write_date"].replace(tzinfo=None) == row["write_date"].replace(microsecond=0)
        assert stored["name"] == key
    finally:
        await real.admin.write("res.users", [admin], {"tz": before["tz"]})
        await real.admin.unlink("ir.model.fields", [field_id])


async def test_kill_9_mid_delivery_leaves_exactly_one_record_per_key(scn: Scenario) -> None:
    """``syncd run`` killed with SIGKILL while it delivers: after a restart every event is done and Odoo
    holds exactly one record per key, with the key's last value."""
    tag = unique("kill")
    keys, rounds = 40, 3
    for seq in range(rounds):
        for k in range(keys):
            await scn.enqueue("upsert", f"{tag}-{k}", {"name": f"{tag}:{k:02d}:{seq}"})
    env = scn.env(SYNCD_CDC__ENABLED="false", SYNCD_OUTBOX__BATCH_SIZE="5", SYNCD_OUTBOX__FOLD_MAX_EVENTS="1",
                  SYNCD_OUTBOX__LEASE_SECONDS="2", SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
                  SYNCD_OUTBOX__TIMEOUT_FENCE_SECONDS="1")  # fmt: skip
    total = keys * rounds
    if scn.odoo.fake is not None:  # as slow as a real Odoo's load(), so that the kill lands mid-delivery
        scn.odoo.fake.faults.latency_seconds = 0.05

    async def done_at_least(n: int) -> bool:
        return int(await scn.conn.fetchval("select count(*) from syncd.outbox where status = 'done'")) >= n

    first = await Daemon(env, scn.tmp / "first.log").start()
    try:
        await wait_until(lambda: done_at_least(10), within=60, interval=0.01, what="10 delivered events")
        await first.kill()
    finally:
        await first.kill()
    assert not await done_at_least(total), "everything was delivered before the kill: it tested nothing"
    second = await Daemon(env, scn.tmp / "second.log").start()
    try:
        await wait_until(lambda: done_at_least(total), within=120, what="every event delivered")
        assert await second.terminate() == 0
    finally:
        await second.kill()
    outbox = await scn.outbox()
    assert {r["status"] for r in outbox.values()} == {"done"}
    found = await scn.partners(f"{tag}:")
    per_key: dict[str, list[str]] = {}
    for p in found:
        per_key.setdefault(p["name"].split(":")[1], []).append(p["name"])
    assert per_key == {f"{k:02d}": [f"{tag}:{k:02d}:{rounds - 1}"] for k in range(keys)}
