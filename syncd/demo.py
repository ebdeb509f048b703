"""``syncd demo``: everything embedded — a throw-away PostgreSQL and the fake Odoo with demo data.

It mirrors res.partner from the fake Odoo into ``odoo.res_partner``, changes a partner in Odoo and
shows the next poll pick it up, then writes an outbox event with ``syncd.enqueue`` and delivers it
to Odoo.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from syncd import db, migrate
from syncd.cdc.poller import ModelPoller
from syncd.config import CdcSettings, DatabaseSettings, ModelSettings, OdooSettings, Settings
from syncd.embedded import EmbeddedPostgres
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer
from syncd.testing import FakeOdoo, FakeOdooServer


async def run_demo(out: TextIO, seconds: float | None = None) -> int:
    """Run the demo, printing to ``out``, until Ctrl-C/SIGTERM or for ``seconds``."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    # Installed first, so that a Ctrl-C at any moment ends the demo through the cleanup below.
    stop = _stop_event()

    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        say("syncd demo — everything embedded, nothing to configure")
        say("  starting a throw-away PostgreSQL ...")
        admin_dsn = await asyncio.to_thread(server.start)
        try:
            dsn = await db.ensure_database(admin_dsn, "syncd")
            conn = await db.connect(dsn, DatabaseSettings())
            try:
                applied = await migrate.apply(conn)
                say(f"  PostgreSQL ready: {dsn} (migrations applied: {len(applied)})")
                async with FakeOdooServer(FakeOdoo(demo_data=True)) as odoo:
                    say(f"  fake Odoo 19 ready: {odoo.url} (database odoo, login admin/admin, API key admin)")
                    settings = OdooSettings(url=odoo.url, api_key=SecretStr("admin"))
                    async with OdooClient(settings) as client:
                        await _mirror(client, dsn, odoo.fake, say)
                    event = await conn.fetchval(
                        "select syncd.enqueue('res.partner', 'upsert', 'demo-customer-1', $1::jsonb)",
                        {"name": "Ada Lovelace", "email": "ada@example.com"},
                    )
                    say(f"\nPostgreSQL → Odoo: queued outbox event {event} with syncd.enqueue(...):")
                    say("    select syncd.enqueue('res.partner', 'upsert', 'demo-customer-1',")
                    say('                         \'{"name": "Ada Lovelace", "email": "ada@example.com"}\');')
                    async with OdooClient(settings) as client:
                        await _deliver(client, dsn, odoo.fake, say)
                    say(f"\nLook around:  psql '{dsn}' -c 'table syncd.outbox'")
                    say(
                        '              syncd check  (with [odoo] url = the fake Odoo above, api_key = "admin")'
                    )
                    say("Ctrl-C ends the demo." if seconds is None else f"The demo ends in {seconds:g} s.")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=seconds)
            finally:
                await conn.close()
        finally:
            say("stopping ...")
            await asyncio.to_thread(server.destroy)
    return 0


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _mirror(client: OdooClient, dsn: str, fake: FakeOdoo, say: Callable[[str], None]) -> None:
    """Odoo → PostgreSQL: a first sync of res.partner, then one change in Odoo and the next poll."""
    model = ModelSettings(model="res.partner", fields=["name", "email", "parent_id", "active"])
    pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        poller = ModelPoller(model, CdcSettings(), "odoo", client, pool)
        first = await poller.poll()
        say(f"\nOdoo → PostgreSQL: mirrored {first.rows_written} partners into odoo.res_partner")
        fake.write("res.partner", [3], {"email": "mitchell.admin@example.com"})
        again = await poller.poll()
        row = await pool.fetchrow("select id, name, email from odoo.res_partner where id = 3")
        assert row is not None
        say(
            f"    changed partner 3 in Odoo; the next poll read {again.rows_read} and wrote {again.rows_written}:"
        )
        say(f"    odoo.res_partner id={row['id']} name={row['name']!r} email={row['email']!r}")
    finally:
        await pool.close()


async def _deliver(client: OdooClient, dsn: str, fake: FakeOdoo, say: Callable[[str], None]) -> None:
    """PostgreSQL → Odoo: drain the outbox once and show the record Odoo now holds."""
    pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        consumer = OutboxConsumer(Settings(), client, pool, dsn, "demo")
        report = await consumer.drain()
        row = await pool.fetchrow("select status, result_id from syncd.outbox order by id desc limit 1")
        assert row is not None
        partner = fake.records("res.partner").get(row["result_id"] or 0, {})
        say(f"    delivered {report.done}: event {row['status']}, Odoo created res.partner {row['result_id']}"
            f" named {partner.get('name')!r} (external id syncd.res_partner__k_demo-customer-1)")  # fmt: skip
    finally:
        await pool.close()
