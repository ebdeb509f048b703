"""Webhooks end to end, as an operator sets them up: ``syncd odoo webhooks install`` creates the rules
in Odoo (the fake, and the real Odoo 19 of ``../shared/odoo19``), ``syncd run`` serves the endpoint
they post to, and a change made in Odoo reaches the mirror long before the next poll (60 s with
webhooks on). When the hints are lost (a rule pointing elsewhere), the next poll still brings every
change. ``remove`` leaves no rule behind, whatever happened in between.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.helpers import Daemon, clean_env, syncd_async, wait_until
from tests.odoo_targets import OdooTarget, unique

pytestmark = pytest.mark.e2e

PARTNER = "res.partner"
SECRET = "e2e-odoo-S3cret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(
    odoo: OdooTarget, dsn: str, port: int, *, public_port: int | None = None, **extra: str
) -> dict[str, str]:
    """``syncd`` with webhooks on (so cdc.interval_seconds is 60 unless given), serving on ``port``;
    the rules point at ``public_port`` (default: the same)."""
    return clean_env(
        **odoo.env("json2"),
        SYNCD_DATABASE__DSN=dsn,
        SYNCD_CDC__MODELS=json.dumps([{"model": PARTNER, "fields": ["name", "email"]}]),
        SYNCD_HTTP__LISTEN=f"127.0.0.1:{port}",
        SYNCD_HTTP__WEBHOOK_SECRET=SECRET,
        SYNCD_HTTP__PUBLIC_URL=f"http://127.0.0.1:{public_port or port}",
        SYNCD_OUTBOX__ENABLED="false",
        **extra,
    )


async def rules(odoo: OdooTarget) -> list[str]:
    """The names of syncd's automation rules in Odoo, archived ones included."""
    async with odoo.client() as admin:
        found = await admin.search_read(
            "base.automation", [("name", "=like", "syncd: %")], ["name"], context={"active_test": False}
        )
    return sorted(r["name"] for r in found)


@asynccontextmanager
async def installed(odoo: OdooTarget, environ: dict[str, str]) -> AsyncIterator[None]:
    """syncd's rules installed (twice: the second changes nothing), and removed at the end whatever
    happened: a rule left behind would post to a dead URL on every partner change."""
    try:
        for _ in range(2):
            r = await syncd_async("odoo", "webhooks", "install", env=environ)
            assert r.code == 0, r.out + r.err
        assert await rules(odoo) == [f"syncd: {PARTNER} changed", f"syncd: {PARTNER} deleted"]
        yield
    finally:
        r = await syncd_async("odoo", "webhooks", "remove", env=environ)
        assert r.code == 0, r.out + r.err
        assert await rules(odoo) == []
    assert SECRET not in r.out + r.err


@asynccontextmanager
async def daemon(environ: dict[str, str], log: Path, dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """``syncd run`` until its first poll of the partners is done; a connection to the mirror."""
    d = await Daemon(environ, log).start()
    conn = await asyncpg.connect(dsn)
    try:
        await d.wait_ready(within=60)

        async def caught_up() -> bool:
            phase = await conn.fetchval("select phase from syncd.cdc_state where model = $1", PARTNER)
            return bool(phase == "incremental")

        await wait_until(caught_up, within=120, what="the partners' first sync")
        yield conn
    finally:
        await conn.close()
        await d.terminate()
    assert SECRET not in await asyncio.to_thread(log.read_text)


async def arrival(conn: asyncpg.Connection, rid: int, name: str, within: float) -> float:
    """Seconds until the mirror row ``rid`` holds ``name``."""

    async def there() -> bool:
        return await conn.fetchval("select name from odoo.res_partner where id = $1", rid) == name

    return await wait_until(there, within=within, interval=0.02, what=f"{name!r} in the mirror")


async def test_a_change_in_odoo_reaches_the_mirror_long_before_the_next_poll(
    odoo_target: OdooTarget, db_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    environ = env(odoo_target, db_dsn, port)
    async with installed(odoo_target, environ), daemon(environ, tmp_path / "syncd.log", db_dsn) as conn:
        async with odoo_target.client() as admin:
            name = unique("hinted")
            started = time.monotonic()
            (rid,) = await admin.create(PARTNER, [{"name": name}])
            took = await arrival(conn, rid, name, within=30)
            assert took < 5, f"{took:.2f} s: that was the poll, not the hint"

            renamed = unique("renamed")
            await admin.write(PARTNER, [rid], {"name": renamed})
            assert await arrival(conn, rid, renamed, within=30) < 5

            await admin.unlink(PARTNER, [rid])

            async def marked_deleted() -> bool:
                sql = "select _deleted_at is not null from odoo.res_partner where id = $1"
                return bool(await conn.fetchval(sql, rid))

            # The deleted rule's hint: the hinted record is read, Odoo no longer has it.
            assert await wait_until(marked_deleted, within=30, interval=0.02, what="the deletion") < 5
            assert time.monotonic() - started < 60, "all of it before the first interval poll"

        async def hint_recorded() -> bool:  # written at most once a second
            sql = "select last_hint_at is not null from syncd.cdc_state where model = $1"
            return bool(await conn.fetchval(sql, PARTNER))

        await wait_until(hint_recorded, within=10, what="syncd.cdc_state.last_hint_at")


async def test_lost_hints_cost_latency_never_data(
    odoo_target: OdooTarget, db_dsn: str, tmp_path: Path
) -> None:
    """The rules post to a port where nothing listens: every hint is lost, and the interval poll
    (2 s here) brings each change all the same."""
    port = free_port()
    environ = env(odoo_target, db_dsn, port, public_port=free_port(), SYNCD_CDC__INTERVAL_SECONDS="2")
    async with (
        installed(odoo_target, environ),
        daemon(environ, tmp_path / "syncd.log", db_dsn) as conn,
        odoo_target.client() as admin,
    ):
        names = [unique("unhinted") for _ in range(3)]
        ids = await admin.create(PARTNER, [{"name": n} for n in names])
        for rid, name in zip(ids, names, strict=True):
            await arrival(conn, rid, name, within=30)
        hinted = await conn.fetchval("select last_hint_at from syncd.cdc_state where model = $1", PARTNER)
        assert hinted is None, "no hint can have arrived: the rules point elsewhere"
