"""Writable mirror tables (issue 13): an app's UPDATE and DELETE of a mirror row reach Odoo through the
outbox, each field checked against Odoo's current value, and the row shows its sync state. The CDC
poller and the outbox consumer run in this process against the fake Odoo over HTTP; the same
scenarios against the real Odoo 19 are in ``tests/e2e/test_writable_mirror_real.py``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from syncd import db
from syncd.cdc.poller import ModelPoller
from syncd.cdc.schema import MirrorTable
from syncd.config import DatabaseSettings, ModelSettings, Settings
from syncd.odoo import OdooClient
from syncd.outbox.consumer import DrainReport, OutboxConsumer
from syncd.testing import FakeOdoo, FakeOdooServer

pytestmark = pytest.mark.integration

MODEL = "res.partner"
TABLE = 'odoo."res_partner"'
FIELDS = ["name", "email", "phone", "active", "parent_id", "category_id", "type", "comment"]


@dataclass
class Rig:
    fake: FakeOdoo
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    settings: Settings

    def poller(self) -> ModelPoller:
        (model,) = self.settings.cdc.models
        return ModelPoller(model, self.settings.cdc, "odoo", self.odoo, self.pool)

    def consumer(self, name: str = "writer") -> OutboxConsumer:
        return OutboxConsumer(self.settings, self.odoo, self.pool, self.dsn, name)

    async def poll(self) -> None:
        await self.poller().poll()

    async def drain(self) -> DrainReport:
        return await self.consumer().drain()

    async def row(self, rid: int) -> asyncpg.Record:
        row = await self.pool.fetchrow(f"select * from {TABLE} where id = $1", rid)
        assert row is not None
        return row

    async def events(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("select * from syncd.outbox order by id")

    def odoo_values(self, rid: int, *names: str) -> tuple[Any, ...]:
        (rec,) = self.fake.search_read(MODEL, [("id", "=", rid)], list(names), context={"active_test": False})
        return tuple(rec[n] for n in names)

    def writes(self) -> int:
        return sum(1 for c in self.fake.calls if c.method == "write")


@pytest.fixture(params=["hold"])
async def rig(request: pytest.FixtureRequest, db_dsn: str) -> AsyncIterator[Rig]:
    policy = getattr(request, "param", "hold")
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server:
        settings = Settings.model_validate({
            "odoo": {"url": server.url, "api_key": "admin", "retries": 0},
            "cdc": {"lookback_seconds": 5,
                    "models": [{"model": MODEL, "fields": FIELDS, "writable": True, "conflict": policy}]},
            "outbox": {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02, "max_attempts": 1},
        })  # fmt: skip
        pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
        try:
            async with OdooClient(settings.odoo) as odoo:
                r = Rig(fake, odoo, pool, db_dsn, settings)
                await r.poll()  # the mirror table exists and holds every partner
                yield r
        finally:
            await pool.close()


def some_partner(r: Rig) -> int:
    return min(
        rid for rid, rec in r.fake.records(MODEL).items() if rec.get("active") and not rec.get("is_company")
    )


async def test_an_app_update_reaches_odoo_pending_then_synced_and_nothing_echoes(rig: Rig) -> None:
    rid = some_partner(rig)
    (before,) = rig.odoo_values(rid, "name")
    await rig.pool.execute(f"update {TABLE} set name = 'Renamed by the app' where id = $1", rid)
    row = await rig.row(rid)
    (event,) = await rig.events()
    assert (row["_sync_state"], row["_sync_event"], row["_sync_error"]) == ("pending", event["id"], None)
    assert (event["op"], event["odoo_id"], event["payload"], event["base"]) == (
        "write",
        rid,
        {"name": "Renamed by the app"},
        {"name": before},
    )
    assert str(event["source"]) == "odoo.res_partner"

    report = await rig.drain()
    assert (report.done, report.dead) == (1, 0)
    assert rig.odoo_values(rid, "name") == ("Renamed by the app",)
    row = await rig.row(rid)
    assert (row["_sync_state"], row["_sync_event"]) == ("synced", None)
    await rig.poll()
    row = await rig.row(rid)
    assert row["name"] == "Renamed by the app"
    assert row["_raw"]["write_date"] == rig.odoo_values(rid, "write_date")[0]  # Odoo's values, its write_date
    assert len(await rig.events()) == 1  # the CDC's writes made no event
    assert (await rig.drain()).done == 0


async def test_odoo_edits_one_field_while_the_app_changes_another_both_survive(rig: Rig) -> None:
    rid = some_partner(rig)
    rig.fake.write(MODEL, [rid], {"email": "odoo@edit.test"})  # the mirror has not seen it yet
    await rig.pool.execute(f"update {TABLE} set phone = '+32 555 00 00' where id = $1", rid)
    await rig.drain()
    assert rig.odoo_values(rid, "email", "phone") == ("odoo@edit.test", "+32 555 00 00")
    await rig.poll()
    row = await rig.row(rid)
    assert (row["email"], row["phone"], row["_sync_state"]) == ("odoo@edit.test", "+32 555 00 00", "synced")
    (event,) = await rig.events()
    assert event["status"] == "done" and event["conflicts"] is None


async def test_a_cdc_poll_before_delivery_leaves_the_apps_values_in_the_row(rig: Rig) -> None:
    rid = some_partner(rig)
    await rig.pool.execute(f"update {TABLE} set name = 'Not yet in Odoo' where id = $1", rid)
    rig.fake.write(MODEL, [rid], {"email": "odoo@changed.test"})  # the poll reads the record
    await rig.poll()
    row = await rig.row(rid)
    assert (row["name"], row["_sync_state"]) == ("Not yet in Odoo", "pending")
    await rig.drain()
    await rig.poll()
    row = await rig.row(rid)
    assert (row["name"], row["email"], row["_sync_state"]) == (
        "Not yet in Odoo",
        "odoo@changed.test",
        "synced",
    )


async def test_both_edit_the_same_field_held_then_resolved_either_way(rig: Rig) -> None:
    first, second = sorted(rid for rid, rec in rig.fake.records(MODEL).items() if rec.get("active"))[:2]
    for rid in (first, second):
        rig.fake.write(MODEL, [rid], {"name": f"Odoo's name {rid}"})
        await rig.pool.execute(
            f"update {TABLE} set name = $2, phone = '+1 555' where id = $1", rid, f"App's name {rid}"
        )
    report = await rig.drain()
    assert (report.done, report.dead) == (2, 0)
    for rid in (first, second):  # the phone went through, the name is held; Odoo's name stays
        assert rig.odoo_values(rid, "name", "phone") == (f"Odoo's name {rid}", "+1 555")
    events = {e["odoo_id"]: e for e in await rig.events()}
    held = events[first]
    assert held["status"] == "conflict" and held["done_at"] is None
    assert held["conflicts"]["name"]["app"] == f"App's name {first}"
    assert held["conflicts"]["name"]["odoo"] == f"Odoo's name {first}"
    assert "conflict held" in held["last_error"] and "name" in held["last_error"]
    await rig.poll()
    row = await rig.row(first)
    assert (row["name"], row["_sync_state"]) == (
        f"Odoo's name {first}",
        "conflict",
    )  # Odoo's value in the mirror
    assert "conflict held" in row["_sync_error"]

    assert await rig.pool.fetchval("select syncd.outbox_resolve($1, 'app')", held["id"]) == "pending"
    assert await rig.pool.fetchval("select syncd.outbox_resolve($1, 'odoo')", events[second]["id"]) == "done"
    assert (await rig.row(first))["_sync_state"] == "pending"
    await rig.drain()
    await rig.poll()
    assert rig.odoo_values(first, "name") == (f"App's name {first}",)
    assert rig.odoo_values(second, "name") == (f"Odoo's name {second}",)
    assert [(r["name"], r["_sync_state"]) for r in [await rig.row(first), await rig.row(second)]] == [
        (f"App's name {first}", "synced"),
        (f"Odoo's name {second}", "synced"),
    ]
    resolved = {e["odoo_id"]: e for e in await rig.events()}[first]
    assert resolved["status"] == "done" and resolved["conflicts"] == held["conflicts"]  # what happened stays
    with pytest.raises(asyncpg.InvalidParameterValueError, match="not a held conflict"):
        await rig.pool.fetchval("select syncd.outbox_resolve($1, 'app')", held["id"])


@pytest.mark.parametrize("rig", ["odoo_wins", "app_wins"], indirect=True)
async def test_odoo_wins_drops_the_field_and_app_wins_writes_it_both_recorded(rig: Rig) -> None:
    rid = some_partner(rig)
    rig.fake.write(MODEL, [rid], {"name": "Odoo's"})
    await rig.pool.execute(f"update {TABLE} set name = 'App''s' where id = $1", rid)
    await rig.drain()
    (event,) = await rig.events()
    policy = rig.settings.cdc.models[0].conflict
    assert event["status"] == "done" and event["conflicts"]["name"]["odoo"] == "Odoo's"
    assert rig.odoo_values(rid, "name") == ("Odoo's" if policy == "odoo_wins" else "App's",)
    await rig.poll()
    row = await rig.row(rid)
    assert (row["name"], row["_sync_state"]) == (rig.odoo_values(rid, "name")[0], "synced")


async def test_a_write_odoo_refuses_fails_and_the_row_returns_to_odoos_values(rig: Rig) -> None:
    rid = some_partner(rig)
    (before,) = rig.odoo_values(rid, "type")
    await rig.pool.execute(f"update {TABLE} set type = 'nonsense' where id = $1", rid)
    report = await rig.drain()
    assert report.dead == 1
    row = await rig.row(rid)
    assert row["_sync_state"] == "failed" and "nonsense" in row["_sync_error"]
    await rig.poll()
    row = await rig.row(rid)
    assert (row["type"], row["_sync_state"]) == (before, "failed")
    (event,) = await rig.events()
    assert event["payload"] == {"type": "nonsense"}  # kept for a redrive


async def test_a_replayed_write_sends_nothing(rig: Rig) -> None:
    rid = some_partner(rig)
    await rig.pool.execute("select syncd.enqueue($1, 'write', null, $2, $3, $4)", MODEL, {"name": "Same"}, rid,
                           {"name": "Before"})  # fmt: skip
    rig.fake.write(MODEL, [rid], {"name": "Same"})  # Odoo has the new value already
    writes = rig.writes()
    report = await rig.drain()
    assert report.done == 1 and rig.writes() == writes
    (event,) = await rig.events()
    assert event["conflicts"] is None


async def test_two_changes_before_delivery_fold_and_compare_with_the_first_base(rig: Rig) -> None:
    rid = some_partner(rig)
    (original,) = rig.odoo_values(rid, "name")
    await rig.pool.execute(f"update {TABLE} set name = 'Second' where id = $1", rid)
    await rig.pool.execute(f"update {TABLE} set name = 'Third' where id = $1", rid)
    first, second = await rig.events()
    assert (first["base"], second["base"]) == ({"name": original}, {"name": "Second"})
    report = await rig.drain()
    assert (report.done, report.dead) == (2, 0)
    assert rig.odoo_values(rid, "name") == ("Third",)
    assert {e["status"] for e in await rig.events()} == {"done"}
    await rig.poll()
    assert ((await rig.row(rid))["_sync_state"]) == "synced"


async def test_a_mass_update_costs_a_few_odoo_calls(rig: Rig) -> None:
    ids = rig.fake.create(MODEL, [{"name": f"mass {i}"} for i in range(5000)])
    await rig.poll()
    writes = rig.writes()
    status = await rig.pool.execute(f"update {TABLE} set active = false where id = any($1::bigint[])", ids)
    assert status == "UPDATE 5000"
    # One event per row, made for the whole statement at once, each the row's _sync_event.
    events = await rig.pool.fetch(
        f"select o.odoo_id, o.payload, o.base, m._sync_state from syncd.outbox o join {TABLE} m on m._sync_event = o.id"
    )
    assert sorted(e["odoo_id"] for e in events) == sorted(ids)
    assert {(json.dumps(e["payload"]), json.dumps(e["base"]), e["_sync_state"]) for e in events} == {
        ('{"active": false}', '{"active": true}', "pending")
    }
    report = await rig.drain()
    assert (report.done, report.dead) == (5000, 0)
    calls = rig.writes() - writes
    assert calls <= 5000 / rig.settings.outbox.batch_size, calls  # one per batch, not one per row
    records = rig.fake.records(MODEL)
    assert not any(records[i]["active"] for i in ids)
    await rig.poll()
    states = await rig.pool.fetch(f"select _sync_state, active, count(*) from {TABLE} where id = any($1::bigint[]) "
                                  "group by 1, 2", ids)  # fmt: skip
    assert [tuple(s) for s in states] == [("synced", False, 5000)]


async def test_an_app_delete_reaches_odoo_and_the_row_is_marked_deleted(rig: Rig) -> None:
    (rid,) = rig.fake.create(MODEL, [{"name": "to delete"}])
    await rig.poll()
    status = await rig.pool.execute(f"delete from {TABLE} where id = $1", rid)
    assert status == "DELETE 0"  # the row stays, pending, until Odoo deleted the record
    row = await rig.row(rid)
    assert row["_sync_state"] == "pending" and row["_deleted_at"] is None
    (event,) = await rig.events()
    assert (event["op"], event["odoo_id"]) == ("delete", rid)
    await rig.drain()
    assert rid not in rig.fake.records(MODEL)
    await rig.poll()
    row = await rig.row(rid)
    assert row["_deleted_at"] is not None and row["_sync_state"] == "synced"


async def test_inserts_and_changes_of_columns_odoo_does_not_let_clients_write_are_refused(rig: Rig) -> None:
    rid = some_partner(rig)
    with pytest.raises(asyncpg.FeatureNotSupportedError) as refused:
        await rig.pool.execute(f"insert into {TABLE} (id, name, _raw) values (999999, 'x', '{{}}')")
    assert "syncd.enqueue('res.partner', 'upsert'" in (refused.value.hint or "")
    for column, value, why in [("_sync_state", "'failed'", "syncd's own column"),
                               ("id", "id + 1000000", "Odoo record's id"),
                               ("_raw", "'{}'", "syncd's own column")]:  # fmt: skip
        with pytest.raises(asyncpg.FeatureNotSupportedError, match=why):
            await rig.pool.execute(f"update {TABLE} set {column} = {value} where id = $1", rid)
    assert await rig.events() == []
    await rig.pool.execute(f"update {TABLE} set name = name where id = $1", rid)  # nothing changed
    assert await rig.events() == []


async def test_a_locked_field_column_fails_the_whole_statement(db_dsn: str) -> None:
    fields = {"name": {"type": "char", "store": True},
              "write_date": {"type": "datetime", "store": True, "readonly": True}}  # fmt: skip
    table = MirrorTable.build(
        "odoo", ModelSettings(model=MODEL, fields=["name", "write_date"], writable=True), fields
    )
    conn = await asyncpg.connect(db_dsn)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('syncd.origin', 'cdc', true)")
            await conn.execute(table.create_sql())
            await conn.execute(table.trigger_sql())
            await conn.execute(f"insert into {table.qualified} (id, name, write_date, _raw) "
                               "select g, 'p' || g, now(), '{}' from generate_series(1, 100) g")  # fmt: skip
        # Field columns are checked for the whole statement (the statement trigger): one refused row
        # fails it all, and no event is left behind.
        with pytest.raises(
            asyncpg.FeatureNotSupportedError, match="write_date cannot be changed: Odoo sets it"
        ):
            await conn.execute(f"update {table.qualified} set name = name || '!', "
                               "write_date = case when id = 50 then now() + interval '1 day' else write_date end")  # fmt: skip
        assert await conn.fetchval("select count(*) from syncd.outbox") == 0
        assert (
            await conn.execute(f"update {table.qualified} set name = name || '!' where id <= 10")
            == "UPDATE 10"
        )
        assert await conn.fetchval("select count(*) from syncd.outbox") == 10
    finally:
        await conn.close()


async def test_a_discarded_change_returns_the_row_to_odoos_values(rig: Rig) -> None:
    rid = some_partner(rig)
    (before,) = rig.odoo_values(rid, "name")
    await rig.pool.execute(f"update {TABLE} set name = 'Never sent' where id = $1", rid)
    (event,) = await rig.events()
    await rig.pool.execute("delete from syncd.outbox where id = $1", event["id"])
    assert (await rig.row(rid))["_sync_state"] == "synced"
    await rig.poll()
    assert (await rig.row(rid))["name"] == before


async def test_an_app_role_needs_only_update_on_the_mirror_table(rig: Rig) -> None:
    """The trigger runs with syncd's rights (security definer): an app's role that may update the mirror
    table but has no right on the syncd schema still gets its change queued."""
    rid = some_partner(rig)
    role = "syncd_test_mirror_app"
    async with rig.pool.acquire() as conn:
        await conn.execute(f"drop role if exists {role}")
        await conn.execute(f"create role {role}")
        try:
            await conn.execute(f"grant usage on schema odoo to {role}")
            await conn.execute(f"grant select, update, delete on {TABLE} to {role}")
            async with conn.transaction():
                await conn.execute(f"set local role {role}")
                await conn.execute(f"update {TABLE} set phone = '+1 000' where id = $1", rid)
            async with conn.transaction():  # (and no other right on syncd)
                await conn.execute(f"set local role {role}")
                may_use = await conn.fetchval("select has_schema_privilege('syncd', 'usage')")
            assert may_use is False
        finally:
            await conn.execute(f"drop owned by {role}")
            await conn.execute(f"drop role {role}")
    (event,) = await rig.events()
    assert (event["op"], event["odoo_id"], event["payload"]) == ("write", rid, {"phone": "+1 000"})


async def test_resolving_an_older_conflict_leaves_the_row_showing_the_later_one(rig: Rig) -> None:
    """Two held conflicts of one row: deciding the older one must not make the row read synced while
    the later one is still held."""
    rid = some_partner(rig)
    rig.fake.write(MODEL, [rid], {"name": "Odoo's name"})
    await rig.pool.execute(f"update {TABLE} set name = 'App''s name' where id = $1", rid)
    await rig.drain()
    rig.fake.write(MODEL, [rid], {"email": "odoo@later.test"})
    await rig.pool.execute(f"update {TABLE} set email = 'app@later.test' where id = $1", rid)
    await rig.drain()
    older, later = await rig.events()
    assert (older["status"], later["status"]) == ("conflict", "conflict")
    await rig.pool.fetchval("select syncd.outbox_resolve($1, 'app')", older["id"])
    await rig.drain()
    assert rig.odoo_values(rid, "name") == ("App's name",)
    row = await rig.row(rid)
    assert row["_sync_state"] == "conflict" and "email" in row["_sync_error"]


async def test_a_dropped_mirror_table_does_not_stop_the_outbox(rig: Rig) -> None:
    """Events of a writable mirror table that an operator dropped since still finish: their outcome
    has no row to update, and must not fail the statement that records it (or every claim after)."""
    rid = some_partner(rig)
    await rig.pool.execute(f"update {TABLE} set phone = '+1 999' where id = $1", rid)
    await rig.pool.execute(f"drop table {TABLE}")
    report = await rig.drain()
    assert (report.done, report.dead) == (1, 0)
    assert rig.odoo_values(rid, "phone") == ("+1 999",)
