"""``syncd demo``: everything embedded — a throw-away PostgreSQL and the fake Odoo with demo data.

This version shows the foundation at work: the schema migrated into a fresh PostgreSQL, the Odoo
client reading the fake Odoo over JSON-2, and an outbox event written with ``syncd.enqueue``. The
CDC poller and the outbox consumer join the demo when they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from syncd import db, migrate
from syncd.config import DatabaseSettings, OdooSettings
from syncd.embedded import EmbeddedPostgres
from syncd.odoo import OdooClient
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
                        total = await client.search_count("res.partner", [], context={"active_test": False})
                        rows = await client.search_read(
                            "res.partner",
                            [("is_company", "=", True)],
                            ["name", "write_date"],
                            limit=3,
                            order="id",
                        )
                        say(
                            f"\nOdoo → PostgreSQL: Odoo holds {total} partners (protocol {client.protocol}), e.g.:"
                        )
                        for r in rows:
                            say(f"    {r['id']:>4}  {r['name']:<30} written {r['write_date']}")
                        say("    (the CDC mirror of these into odoo.res_partner arrives with the CDC poller)")

                    event = await conn.fetchval(
                        "select syncd.enqueue('res.partner', 'upsert', 'demo-customer-1', $1::jsonb)",
                        {"name": "Ada Lovelace", "email": "ada@example.com"},
                    )
                    say(f"\nPostgreSQL → Odoo: queued outbox event {event} with syncd.enqueue(...):")
                    say("    select syncd.enqueue('res.partner', 'upsert', 'demo-customer-1',")
                    say('                         \'{"name": "Ada Lovelace", "email": "ada@example.com"}\');')
                    say("    (its delivery to Odoo arrives with the outbox consumer)")
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
