"""The one place that wires the services together: ``syncd run`` and ``syncd --once``.

``syncd run``: serve HTTP (``/healthz`` answers from the first second, ``/readyz`` says 503 until
both sides are reached), resolve the database (embedded when no DSN), refuse an unmigrated or newer
schema unless told to migrate, wait for PostgreSQL and Odoo as long as they are unreachable (one log
line per change of state), tell systemd READY, then run the CDC service and the outbox consumer
under a supervisor until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from syncd import __version__, db, metrics, migrate
from syncd.aio import wait_any
from syncd.backoff import backoff
from syncd.cdc.hints import HintRouter
from syncd.cdc.service import CdcService, OnceReport
from syncd.config import Settings, redact_dsn
from syncd.errors import ConfigError, OdooAuthenticationError, SchemaError, SyncdError
from syncd.health import Health, HealthMonitor
from syncd.http import HttpServer
from syncd.odoo import OdooClient
from syncd.odoo.transport import safe_url
from syncd.outbox.consumer import DrainReport, OutboxConsumer
from syncd.sdnotify import SystemdNotifier
from syncd.supervisor import Component, Supervisor

log = logging.getLogger("syncd.daemon")


def loop_name() -> str:
    loop = type(asyncio.get_running_loop())
    return "uvloop" if loop.__module__.startswith("uvloop") else "asyncio"


def instance_id(settings: Settings) -> str:
    return settings.daemon.instance_id or f"{socket.gethostname()}:{os.getpid()}"


def run_holder(settings: Settings) -> str:
    """The outbox lease holder of this process run: the instance id and a random suffix, so that a
    ``syncd --once`` beside a daemon configured with the same ``daemon.instance_id`` (or a restarted
    daemon) never passes the other's ``locked_by`` checks (as the CDC leases' holders)."""
    return f"{instance_id(settings)}/{secrets.token_hex(4)}"


#: Pauses between attempts to reach PostgreSQL or Odoo at start-up double from this (jittered:
#: replicas that boot together do not knock together) …
CONNECT_BACKOFF_BASE = 1.0
#: … up to this.
MAX_CONNECT_BACKOFF = 30.0
#: While waiting for a dependency at start: how much longer than the next attempt systemd waits.
START_TIMEOUT_STEP = 60.0


@dataclass
class Resources:
    dsn: str
    pool: asyncpg.Pool
    odoo: OdooClient

    async def close(self) -> None:
        try:
            await self.odoo.close()
        finally:
            await self.pool.close()


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, *, migrate_first: bool = False) -> AsyncIterator[Resources]:
    """PostgreSQL (schema checked) and Odoo (connected), closed again on exit."""
    async with db.open_dsn(settings.database) as dsn:
        pool = await _open_pool(settings, dsn, migrate_first)
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
    async with contextlib.AsyncExitStack() as stack:
        try:
            res = await stack.enter_async_context(open_resources(settings, migrate_first=migrate_first))
            # JSON-2 connects without logging in: a refused key would fail every poll and pause the
            # consumer batch after batch; stop at once instead, naming the key (as `syncd run` does).
            await res.odoo.check_credentials()
        except OdooAuthenticationError as e:
            raise ConfigError(settings.odoo.credentials_refused(str(e))) from None
        cdc_report = OnceReport()
        if settings.cdc.enabled:
            cdc = CdcService(settings, res.odoo, res.pool, res.dsn, dry_run=dry_run)
            cdc_report = await cdc.run_once()
        drained = None
        if settings.outbox.enabled and not dry_run:
            consumer = OutboxConsumer(settings, res.odoo, res.pool, res.dsn, run_holder(settings))
            drained = await consumer.drain()
        return OnceResult(cdc_report, drained)


async def run_forever(
    settings: Settings,
    *,
    migrate_first: bool = False,
    notifier: SystemdNotifier | None = None,
    on_listening: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> bool:
    """The daemon (``syncd run``): serve HTTP at once, reach both sides (waiting for them as long as
    it takes), then run the CDC service and the outbox consumer under a :class:`Supervisor` until
    the first SIGTERM/SIGINT; a second one exits at once.

    Returns False when the supervisor gave up on a component that kept crashing (the process should
    exit non-zero so that systemd or Kubernetes restart it). Permanent start-up problems (schema not
    current, credentials refused, the HTTP port taken) raise. ``stop``, when given, ends the daemon
    like a signal does (``syncd demo`` uses it); ``on_listening`` is told the HTTP endpoint's URL.
    """
    notifier = notifier if notifier is not None else SystemdNotifier.from_env()
    loop = asyncio.get_running_loop()
    health = Health()
    supervisor = Supervisor(
        [],
        grace_seconds=settings.daemon.shutdown_grace_seconds,
        on_restart=lambda name: metrics.COMPONENT_RESTARTS.labels(component=name).inc(),
    )

    def on_signal(sig: signal.Signals) -> None:
        if supervisor.stopping.is_set():
            log.warning("second %s: exiting now", sig.name)
            os._exit(1)
        log.info(
            "%s received: stopping (in-flight work has %.0f s to finish)",
            sig.name, settings.daemon.shutdown_grace_seconds,
        )  # fmt: skip
        health.set_stopping()
        notifier.stopping("stopping: finishing in-flight work")
        supervisor.shutdown()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    # Hints are taken from the first second; until the workers run they are dropped (counted).
    hints = HintRouter(settings) if settings.http.webhooks_enabled else None
    try:
        if settings.http.enabled:
            http = HttpServer(
                settings.http.listen, health, webhook_secret=settings.http.webhook_secret, hints=hints
            )
            await http.start()
            if on_listening is not None:
                on_listening(http.url)
            supervisor.start(Component("http", http.run, phase=1))
        if notifier.watchdog_interval:
            supervisor.start(Component("watchdog", _watchdog(notifier), phase=1))
        running = asyncio.create_task(supervisor.run(), name="supervisor")
        if stop is not None:
            stop_watch = asyncio.create_task(_on_stop(stop, health, notifier, supervisor))
            running.add_done_callback(lambda _t: stop_watch.cancel())
        try:
            async with db.open_dsn(settings.database) as dsn:
                res = await _reach_both_sides(
                    settings, dsn, health, supervisor.stopping, migrate_first, notifier
                )
                if res is not None:
                    try:
                        _start_workers(settings, res, health, supervisor, hints)
                        health.set_serving(True)
                        models = len(settings.cdc.models) if settings.cdc.enabled else 0
                        status = (
                            f"CDC of {models} models, outbox {'on' if settings.outbox.enabled else 'off'}"
                        )
                        notifier.ready(status)
                        log.info(
                            "syncd running as %s (%s, %s): %s",
                            instance_id(settings), __version__, loop_name(), status,
                        )  # fmt: skip
                        await asyncio.shield(running)
                    finally:
                        supervisor.shutdown()
                        await running
                        await res.close()
        finally:
            supervisor.shutdown()
            await running
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        notifier.close()
    if supervisor.gave_up:
        log.error("syncd stopped: %s kept crashing", supervisor.gave_up)
        return False
    log.info("syncd stopped")
    return True


async def _on_stop(stop: asyncio.Event, health: Health, notifier: SystemdNotifier, sup: Supervisor) -> None:
    await stop.wait()
    health.set_stopping()
    notifier.stopping("stopping")
    sup.shutdown()


def _watchdog(notifier: SystemdNotifier) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def run(stop: asyncio.Event) -> None:
        # WATCHDOG=1 comes from a task on the event loop itself: a loop that hangs stops pinging.
        pinging = asyncio.create_task(notifier.watchdog_loop())
        try:
            await stop.wait()
        finally:
            pinging.cancel()
            await asyncio.gather(pinging, return_exceptions=True)

    return run


def _start_workers(
    settings: Settings, res: Resources, health: Health, supervisor: Supervisor, hints: HintRouter | None
) -> None:
    monitor = HealthMonitor(
        health,
        res.pool,
        res.odoo,
        interval=settings.daemon.probe_interval_seconds,
        timeout=min(settings.odoo.timeout_seconds, 10.0),
    )
    supervisor.start(Component("health", monitor.run, phase=1))
    if settings.cdc.enabled and settings.cdc.models:

        async def cdc(stop: asyncio.Event) -> None:
            # A fresh service on every (re)start: nothing of a crashed one is reused.
            service = CdcService(settings, res.odoo, res.pool, res.dsn)
            if hints is not None:
                hints.service = service
            try:
                await service.run(stop)
            finally:
                if hints is not None and hints.service is service:
                    hints.service = None

        supervisor.start(Component("cdc", cdc))
    if hints is not None:
        # Also in an outbox-only process (cdc.enabled = false): Odoo may post to any replica, and
        # this one passes the hints on to the one that polls the model.
        router = hints

        async def route_hints(stop: asyncio.Event) -> None:
            await router.run(stop, res.pool, res.dsn)

        supervisor.start(Component("hints", route_hints))
    if settings.outbox.enabled:

        async def outbox(stop: asyncio.Event) -> None:
            consumer = OutboxConsumer(settings, res.odoo, res.pool, res.dsn, run_holder(settings))
            await run_outbox(consumer, health, stop)

        supervisor.start(Component("outbox", outbox))


async def run_outbox(consumer: OutboxConsumer, health: Health, stop: asyncio.Event) -> None:
    """Run the outbox consumer until ``stop``. When the health probe sees Odoo answer again after
    failing, the consumer's pause after failed batches ends at once: delivery resumes within a probe
    interval of Odoo's return rather than after the pause (up to 30 s)."""
    stop_watching = health.when_back("odoo", consumer.odoo_is_back)
    try:
        await consumer.run(stop)
    finally:
        stop_watching()


async def _reach_both_sides(
    settings: Settings,
    dsn: str,
    health: Health,
    stop: asyncio.Event,
    migrate_first: bool,
    notifier: SystemdNotifier,
) -> Resources | None:
    """Open the pool (schema checked) and connect the Odoo client, waiting for whichever side is
    unreachable; None if ``stop`` came first. Permanent problems raise.

    While it waits, systemd's start timeout is extended step by step: an Odoo outage at boot is
    waited out instead of turning into a restart loop, and a start that hangs is still killed."""
    pool: asyncpg.Pool | None = None
    odoo: OdooClient | None = None
    attempt = 0
    try:
        while not stop.is_set():
            attempt += 1
            if pool is None:
                try:
                    pool = await _open_pool(settings, dsn, migrate_first)
                except SyncdError as e:
                    if not e.transient:
                        raise
                    health.set("postgres", False, str(e))
                else:
                    health.set("postgres", True, redact_dsn(dsn))
                    health.set("schema", True, "current")
            if odoo is None:
                client = OdooClient(settings.odoo, observe=metrics.observe_odoo_request)
                try:
                    await client.connect()
                    # JSON-2 connects without logging in: prove the credentials now, so that a
                    # wrong key stops the start instead of failing every call later.
                    await client.check_credentials()
                except OdooAuthenticationError as e:
                    await client.close()
                    raise ConfigError(settings.odoo.credentials_refused(str(e))) from None
                except SyncdError as e:
                    await client.close()
                    if not e.transient:
                        raise
                    health.set("odoo", False, str(e))
                else:
                    odoo = client
                    health.set("odoo", True, f"{safe_url(settings.odoo.url)} ({client.protocol})")
            if pool is not None and odoo is not None:
                res, pool, odoo = Resources(dsn, pool, odoo), None, None
                return res
            missing = " and ".join(name for name, up in (("PostgreSQL", pool), ("Odoo", odoo)) if up is None)
            delay = backoff(attempt, CONNECT_BACKOFF_BASE, MAX_CONNECT_BACKOFF)
            notifier.extend_timeout(delay + START_TIMEOUT_STEP, f"waiting for {missing}")
            await wait_any(stop, seconds=delay)
        return None
    finally:
        if odoo is not None:
            await odoo.close()
        if pool is not None:
            await pool.close()


async def _open_pool(settings: Settings, dsn: str, migrate_first: bool) -> asyncpg.Pool:
    conn = await db.connect(dsn, settings.database)
    try:
        if migrate_first:
            for m in await migrate.apply(conn):
                log.info("applied migration %04d_%s", m.version, m.name)
        status = await migrate.check(conn)
        if not status.current:
            raise SchemaError(
                "the database schema is not current: "
                + "; ".join(status.problems())
                + " (or start with `syncd run --migrate`)"
            )
    finally:
        await conn.close()
    return await db.create_pool(dsn, settings.database)
