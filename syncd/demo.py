"""``syncd demo``: everything embedded — a throw-away PostgreSQL, the fake Odoo with demo data, and the
real daemon (``syncd run``, HTTP endpoint included) between them, with a little traffic both ways.

Every couple of seconds a partner changes in the fake Odoo (the demo prints when the mirror has it),
the "app" queues an outbox event with ``syncd.enqueue``, or it updates a row of the writable mirror
table (the demo prints when Odoo has it). It
shows where to look (the metrics URL, a psql line) and ends cleanly on Ctrl-C or after ``--seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from syncd import daemon, db, migrate
from syncd.config import Settings
from syncd.embedded import EmbeddedPostgres
from syncd.sdnotify import SystemdNotifier
from syncd.testing import FakeOdoo, FakeOdooServer

#: The port of ``http.listen``'s default; the demo takes a free one if it is busy.
DEMO_HTTP_PORT = 9187
FIELDS = ["name", "email", "parent_id", "active"]
PEOPLE = ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Alan Kay", "Frances Allen"]


async def run_demo(out: TextIO, seconds: float | None = None) -> int:
    """Run the demo, printing to ``out``, until Ctrl-C/SIGTERM or for ``seconds``. When ``out`` is a
    pipe whose reader left, the BrokenPipeError ends the demo (after its cleanup) and is raised."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    # Installed first, so that a Ctrl-C at any moment ends the demo through the cleanup below (the
    # daemon installs its own handlers while it runs; they end it the same way).
    stop = _stop_event()
    # The daemon's own log lines would drown the story; warnings and errors still show.
    logging.getLogger("syncd").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        say("syncd demo — everything embedded, nothing to configure")
        say("  starting a throw-away PostgreSQL ...")
        admin_dsn = await asyncio.to_thread(server.start)
        try:
            dsn = await db.ensure_database(admin_dsn, "syncd")
            conn = await asyncpg.connect(dsn)
            try:
                applied = await migrate.apply(conn)
                say(f"  PostgreSQL ready: {dsn} (migrations applied: {len(applied)})")
                async with FakeOdooServer(FakeOdoo(demo_data=True)) as odoo:
                    say(f"  fake Odoo 19 ready: {odoo.url} (database odoo, login admin/admin, API key admin)")
                    await _with_daemon(_settings(dsn, odoo.url), conn, odoo.fake, stop, seconds, say)
            finally:
                await conn.close()
        finally:
            # The server is stopped whatever the output does: `syncd demo | head` closes stdout
            # early, and a BrokenPipeError from this line must not leave PostgreSQL running on a
            # data folder that the temporary directory is about to delete.
            try:
                with contextlib.suppress(BrokenPipeError):
                    say("stopping ...")
            finally:
                await asyncio.to_thread(server.destroy)
    return 0


def _settings(dsn: str, odoo_url: str) -> Settings:
    return Settings.model_validate(
        {
            "odoo": {"url": odoo_url, "api_key": "admin"},
            "database": {"dsn": dsn},
            "cdc": {
                "interval_seconds": 1,
                "models": [{"model": "res.partner", "fields": FIELDS, "writable": True}],
            },
            "http": {"listen": f"127.0.0.1:{DEMO_HTTP_PORT if _port_free(DEMO_HTTP_PORT) else 0}"},
            "daemon": {"shutdown_grace_seconds": 5, "instance_id": "demo"},
        }
    )


async def _with_daemon(
    settings: Settings,
    conn: asyncpg.Connection,
    fake: FakeOdoo,
    stop: asyncio.Event,
    seconds: float | None,
    say: Callable[[str], None],
) -> None:
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(
        daemon.run_forever(
            settings,
            notifier=SystemdNotifier(None),
            on_listening=listening.set_result,
            stop=stop,
        )
    )
    try:
        url = await _first(listening, running)
        dsn = settings.database.dsn.get_secret_value() if settings.database.dsn else ""
        say(
            f"  syncd running: CDC of res.partner every {settings.cdc.interval_seconds:g} s, outbox consumer, {url}"
        )
        await _wait(lambda: _has_rows(conn), running)
        n = await conn.fetchval("select count(*) from odoo.res_partner")
        say(f"\nOdoo → PostgreSQL: mirrored {n} partners into odoo.res_partner")
        say("\nWhere to look while it runs:")
        say(f"  metrics:  curl -s {url}/metrics | grep ^syncd_")
        say(f"  ready?    curl -s {url}/readyz")
        say(
            f"  mirror:   psql '{dsn}' -c 'select id, name, email, _synced_at from odoo.res_partner order by _synced_at desc limit 5'"  # noqa: S608 - a hint printed for the user
        )
        say(
            f"  outbox:   psql '{dsn}' -c 'select id, op, key, status, result_id from syncd.outbox order by id desc limit 5'"  # noqa: S608 - a hint printed for the user
        )
        say("\nTraffic both ways (each line: what changed, and when the other side had it):")
        counter = itertools.count(1)
        await _odoo_change(conn, fake, running, say)
        await _app_event(conn, fake, next(counter), running, say)
        await _mirror_update(conn, fake, next(counter), running, say)
        say("Ctrl-C ends the demo." if seconds is None else f"The demo ends in {seconds:g} s.")
        deadline = None if seconds is None else time.monotonic() + seconds
        turn = 0
        while not (stop.is_set() or running.done()):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            # A pause between changes, cut short by Ctrl-C (the daemon's handler ends `running`).
            await asyncio.wait([running], timeout=2.0 if left is None else min(2.0, left))
            if running.done() or (deadline is not None and time.monotonic() >= deadline):
                break
            turn += 1
            if turn % 3 == 1:
                await _odoo_change(conn, fake, running, say)
            elif turn % 3 == 2:
                await _app_event(conn, fake, next(counter), running, say)
            else:
                await _mirror_update(conn, fake, next(counter), running, say)
    finally:
        stop.set()
        await running


async def _first(listening: asyncio.Future[str], running: asyncio.Task[bool]) -> str:
    either: list[asyncio.Future[Any]] = [listening, running]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not listening.done():
        running.result()  # raises what stopped the daemon
        raise RuntimeError("syncd stopped before it served HTTP")
    return listening.result()


async def _wait(
    condition: Callable[[], Awaitable[bool]], running: asyncio.Task[bool], within: float = 30
) -> float:
    """Until ``condition`` holds (checked every 20 ms); the seconds it took."""
    start = time.monotonic()
    while not await condition():
        if running.done():
            running.result()
            raise RuntimeError("syncd stopped")
        if time.monotonic() - start > within:
            raise TimeoutError(f"nothing happened within {within:.0f} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _has_rows(conn: asyncpg.Connection) -> bool:
    if not await conn.fetchval("select to_regclass('odoo.res_partner') is not null"):
        return False
    return bool(await conn.fetchval("select exists (select from odoo.res_partner)"))


async def _odoo_change(
    conn: asyncpg.Connection, fake: FakeOdoo, running: asyncio.Task[bool], say: Callable[[str], None]
) -> None:
    """Someone edits a partner in Odoo; the CDC poller brings it over."""
    ids = [i for i, r in fake.records("res.partner").items() if r.get("active", True) and r.get("email")]
    pid = random.choice(ids)
    name = fake.records("res.partner")[pid]["name"]
    email = f"{name.split()[0].lower()}.{random.randint(100, 999)}@example.com"
    fake.write("res.partner", [pid], {"email": email})
    took = await _wait(lambda: _mirror_has(conn, pid, email), running)
    say(
        f"  Odoo → PostgreSQL  partner {pid} ({name}) email → {email}: in odoo.res_partner after {took:.1f} s"
    )


async def _mirror_has(conn: asyncpg.Connection, pid: int, email: str) -> bool:
    return bool(await conn.fetchval("select email from odoo.res_partner where id = $1", pid) == email)


async def _app_event(
    conn: asyncpg.Connection, fake: FakeOdoo, n: int, running: asyncio.Task[bool], say: Callable[[str], None]
) -> None:
    """The app queues an upsert in its own transaction; the outbox consumer delivers it to Odoo."""
    key = f"demo-customer-{n}"
    person = PEOPLE[(n - 1) % len(PEOPLE)]
    payload: dict[str, Any] = {"name": person, "email": f"{person.split()[0].lower()}@example.com"}
    event = await conn.fetchval(
        "select syncd.enqueue('res.partner', 'upsert', $1, $2::text::jsonb)", key, json.dumps(payload)
    )
    took = await _wait(lambda: _delivered(conn, event), running)
    row = await conn.fetchrow("select status, result_id from syncd.outbox where id = $1", event)
    assert row is not None
    say(
        f"  PostgreSQL → Odoo  syncd.enqueue('res.partner', 'upsert', '{key}', {{name: {person!r}}}) = event {event}:"
        f" {row['status']}, Odoo res.partner {row['result_id']} after {took:.2f} s"
    )


async def _mirror_update(
    conn: asyncpg.Connection, fake: FakeOdoo, n: int, running: asyncio.Task[bool], say: Callable[[str], None]
) -> None:
    """The app updates a row of the writable mirror table; its trigger queues the write (the row says
    pending), the consumer applies it, and the row says synced."""
    pid = random.choice([i for i, r in fake.records("res.partner").items() if r.get("active", True)])
    name = f"{PEOPLE[(n - 1) % len(PEOPLE)]} #{n}"
    state = await conn.fetchval(
        "update odoo.res_partner set name = $2 where id = $1 returning _sync_state", pid, name
    )

    async def applied() -> bool:
        return bool(fake.records("res.partner")[pid]["name"] == name and await conn.fetchval(
            "select _sync_state = 'synced' from odoo.res_partner where id = $1", pid))  # fmt: skip

    took = await _wait(applied, running)
    say(
        f"  PostgreSQL → Odoo  update odoo.res_partner set name = {name!r} where id = {pid}: {state}, then"  # noqa: S608 - a line printed for the user
        f" synced, in Odoo after {took:.2f} s"
    )


async def _delivered(conn: asyncpg.Connection, event: int) -> bool:
    return (
        await conn.fetchval("select status in ('done', 'dead') from syncd.outbox where id = $1", event)
        is True
    )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop
