"""Writable mirror rows changed by an app while ``syncd run`` delivering them is killed with SIGKILL, then
started again: every change ends applied exactly once (a write Odoo had already applied before the
kill is recognised as a replay, not turned into a conflict), and the mirror ends equal to Odoo. Against
the fake (slowed down to a real Odoo's pace) and the real Odoo 19."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.config import DatabaseSettings
from syncd.db import connect
from tests.e2e.helpers import Daemon, clean_env, syncd_async, wait_until
from tests.odoo_targets import OdooTarget, unique

pytestmark = pytest.mark.e2e

MODEL = "res.partner"
TABLE = 'odoo."res_partner"'
FIELDS = ["name", "phone", "function", "active"]


async def test_kill_9_while_writes_are_in_flight_converges(
    odoo_target: OdooTarget, db_dsn: str, tmp_path: Path
) -> None:
    models = json.dumps([{"model": MODEL, "fields": FIELDS, "writable": True}])
    env = clean_env(SYNCD_DATABASE__DSN=db_dsn, SYNCD_CDC__MODELS=models, SYNCD_HTTP__ENABLED="false",
                    SYNCD_CDC__INTERVAL_SECONDS="0.5", SYNCD_OUTBOX__BATCH_SIZE="5", SYNCD_OUTBOX__LEASE_SECONDS="2",
                    SYNCD_OUTBOX__FOLD_MAX_EVENTS="1", SYNCD_OUTBOX__TIMEOUT_FENCE_SECONDS="1",
                    SYNCD_OUTBOX__BACKOFF_BASE_SECONDS="0.05", SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
                    **odoo_target.env("json2"))  # fmt: skip
    async with odoo_target.client() as admin:
        ids = await admin.create(MODEL, [{"name": unique("wm-kill")} for _ in range(40)])
        r = await syncd_async("--once", env=env)
        assert r.code == 0, r.err[-2000:]
        if odoo_target.fake is not None:  # a real Odoo's pace, so that the kill lands mid-delivery
            odoo_target.fake.faults.latency_seconds = 0.05
        conn = await connect(db_dsn, DatabaseSettings())
        try:
            for rid in ids:  # one change per row, then a second one for half of them, then a mass update
                await conn.execute(f"update {TABLE} set function = $2 where id = $1", rid, f"first {rid}")
            for rid in ids[::2]:
                await conn.execute(f"update {TABLE} set phone = $2 where id = $1", rid, f"+{rid}")
            await conn.execute(f"update {TABLE} set active = false where id = any($1::bigint[])", ids[:10])
            total = await conn.fetchval("select count(*) from syncd.outbox")
            assert total == 40 + 20 + 10

            async def finished(n: int) -> bool:
                return int(await conn.fetchval("select count(*) from syncd.outbox where not unfinished")) >= n

            first = await Daemon(env, tmp_path / "first.log").start()
            try:
                await wait_until(lambda: finished(8), within=60, interval=0.01, what="some changes delivered")
            finally:
                await first.kill()
            assert not await finished(total), "everything was delivered before the kill: it tested nothing"

            async def settled() -> bool:
                return bool(await conn.fetchval(
                    "select (select count(*) from syncd.outbox where unfinished) = 0"
                    " and (select count(*) from syncd.mirror_refresh) = 0"))  # fmt: skip

            second = await Daemon(env, tmp_path / "second.log").start()
            try:
                await wait_until(settled, within=120, what="every change delivered and read back")
                assert await second.terminate() == 0
            finally:
                await second.kill()
            statuses = await conn.fetch(
                "select status, count(*) as n, max(attempts) as tries from syncd.outbox group by 1"
            )
            assert {r["status"]: r["n"] for r in statuses} == {"done": total}, [dict(r) for r in statuses]
            assert max(r["tries"] for r in statuses) >= 2, (
                "no kill hit a claimed event: the chaos tested nothing"
            )
            r = await syncd_async("--once", env=env)  # the last polls: the mirror equals Odoo
            assert r.code == 0, r.err[-2000:]
            rows = await conn.fetch(f"select id, phone, function, active, _sync_state from {TABLE} "
                                    "where id = any($1::bigint[]) order by id", ids)  # fmt: skip
        finally:
            await conn.close()
        odoo = {r["id"]: r for r in await admin.read(MODEL, ids, ["phone", "function", "active"])}
    for row in rows:
        rid = row["id"]
        want = (f"+{rid}" if rid in ids[::2] else None, f"first {rid}", rid not in ids[:10])
        assert (row["phone"], row["function"], row["active"]) == want, rid
        assert (odoo[rid]["phone"] or None, odoo[rid]["function"], odoo[rid]["active"]) == want, rid
        assert row["_sync_state"] == "synced", rid
