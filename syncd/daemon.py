"""The one place that wires the services together: ``syncd run`` and ``syncd --once``.

Startup: resolve the database (embedded when no DSN), refuse an unmigrated or newer schema unless
told to migrate, open the pool and the Odoo client, then run the services until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from syncd import db, metrics, migrate
from syncd.cdc.service import CdcService, OnceReport
from syncd.config import Settings
from syncd.errors import SchemaError
from syncd.odoo import OdooClient
from syncd.outbox.consumer import DrainReport, OutboxConsumer

log = logging.getLogger("syncd.daemon")


def instance_id(settings: Settings) -> str:
    return settings.daemon.instance_id or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Resources:
    dsn: str
    pool: asyncpg.Pool
    odoo: OdooClient


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, *, migrate_first: bool = False) -> AsyncIterator[Resources]:
    """PostgreSQL (schema checked) and Odoo (connected), closed again on exit."""
    async with db.open_dsn(settings.database) as dsn:
        conn = await db.connect(dsn, settings.database)
        try:
            if migrate_first:
                for m in await migrate.apply(conn):
                    log.info("applied migration %04d_%s", m.version, m.name)
            status = await migrate.check(conn)
            if not status.current:
                raise SchemaError("the database schema is not current: " + "; ".join(status.problems()))
        finally:
            await conn.close()
        pool = await db.create_pool(dsn, settings.database)
        try:
            async with OdooClient(settings.odoo, observe=metrics.observe_odoo_request) as odoo:
                yield Resources(dsn, pool, odoo)
        finally:
            await pool.close()


@dataclass
class OnceResult:
    cdc: OnceReport
    outbox: DrainReport | None

    @property
    def failed(self) -> bool:
        return bool(self.cdc.errors) or bool(self.outbox and self.outbox.dead)


async def run_once(settings: Settings, *, dry_run: bool = False, migrate_first: bool = False) -> OnceResult:
    """One CDC pass over every model until caught up (and a reconciliation), then drain the outbox
    until nothing is claimable. A dry run reads and plans but delivers nothing."""
    async with open_resources(settings, migrate_first=migrate_first) as res:
        cdc_report = OnceReport()
        if settings.cdc.enabled:
            cdc = CdcService(settings, res.odoo, res.pool, res.dsn, dry_run=dry_run)
            cdc_report = await cdc.run_once()
        drained = None
        if settings.outbox.enabled and not dry_run:
            consumer = OutboxConsumer(settings, res.odoo, res.pool, res.dsn, instance_id(settings))
            drained = await consumer.drain()
        return OnceResult(cdc_report, drained)


async def run_forever(settings: Settings, *, migrate_first: bool = False) -> bool:
    """The daemon: the services until the first SIGTERM/SIGINT (a second one exits at once).

    Returns False when a service died on its own (the process should exit non-zero, so that
    systemd or Kubernetes restarts it) rather than being stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", sig.name)
            os._exit(1)
        log.info("%s received: shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    async with open_resources(settings, migrate_first=migrate_first) as res:
        services = []
        if settings.cdc.enabled and settings.cdc.models:
            cdc = CdcService(settings, res.odoo, res.pool, res.dsn)
            services.append(asyncio.create_task(cdc.run(stop), name="cdc"))
        if settings.outbox.enabled:
            consumer = OutboxConsumer(settings, res.odoo, res.pool, res.dsn, instance_id(settings))
            services.append(asyncio.create_task(consumer.run(stop), name="outbox"))
        log.info("syncd running as %s (%d models)", instance_id(settings), len(settings.cdc.models))
        stopping = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([stopping, *services], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not stopping]
        for task in crashed:
            error = task.exception() if not task.cancelled() else None
            log.error("the %s service ended unexpectedly: %r; shutting down", task.get_name(), error,
                      exc_info=error)  # fmt: skip
        stop.set()
        stopping.cancel()
        await asyncio.gather(*services, return_exceptions=True)
    log.info("syncd stopped")
    return not crashed
