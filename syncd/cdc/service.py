"""Runs the pollers of every configured model, each in exactly one replica at a time.

Leadership is a session-level PostgreSQL advisory lock per model, held on a dedicated connection:
when a replica dies its connection closes, the locks are released, and another replica takes the
models over at its next attempt (every ``cdc.interval_seconds``). A replica that loses its lock
connection stops polling at once, before it could race the new leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from syncd import db, metrics
from syncd.aio import wait_any
from syncd.cdc.poller import ModelPoller, PollResult, ReconcileResult
from syncd.config import Settings
from syncd.errors import SyncdError
from syncd.odoo import OdooClient

log = logging.getLogger("syncd.cdc")

#: Upper bound of the pause after a failed poll (doubling from interval_seconds).
MAX_ERROR_BACKOFF = 300.0


@dataclass
class OnceReport:
    """What ``syncd --once`` did per model."""

    polls: dict[str, PollResult] = field(default_factory=dict)
    reconciles: dict[str, ReconcileResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class CdcService:
    """The Odoo → PostgreSQL direction of the daemon."""

    def __init__(
        self,
        settings: Settings,
        odoo: OdooClient,
        pool: asyncpg.Pool,
        dsn: str,
        *,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.pollers = {
            m.model: ModelPoller(
                m, settings.cdc, settings.database.mirror_schema, odoo, pool, dry_run=dry_run
            )
            for m in settings.cdc.models
        }
        for name in self.pollers:
            # Every model's counters exist from the start at 0, so that rate()/increase() in the
            # alert rules see the first record and the first error too.
            metrics.CDC_RECORDS.labels(model=name)
            metrics.CDC_ERRORS.labels(model=name)
        self.leading: set[str] = set()
        #: Set whenever this replica starts leading a model (tests wait on it).
        self.leadership_changed = asyncio.Event()

    # -------------------------------------------------------------------------------------- once
    async def run_once(self) -> OnceReport:
        """Poll every model until caught up, then reconcile it; models another replica polls right
        now are skipped."""
        report = OnceReport()
        lock_conn = await db.connect(self.dsn, self.settings.database)
        try:
            for name, poller in self.pollers.items():
                if not await self._try_lock(lock_conn, name):
                    log.warning(
                        "%s is being polled by another syncd right now: skipped", name, extra={"model": name}
                    )
                    report.skipped.append(name)
                    continue
                try:
                    report.polls[name] = await poller.poll()
                    report.reconciles[name] = await poller.reconcile()
                except SyncdError as e:
                    log.error("%s: %s", name, e, extra={"model": name})
                    report.errors[name] = str(e)
                    await poller.record_error(e)
                finally:
                    with db.translate_errors("releasing the model lock"):
                        await lock_conn.fetchval(db.queries["cdc_leader_unlock"], name)
        finally:
            await lock_conn.close()
        return report

    # --------------------------------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event) -> None:
        """Hold leadership of as many models as possible and poll them until ``stop`` is set."""
        interval = self.settings.cdc.interval_seconds
        unreachable = False
        while not stop.is_set():
            try:
                lock_conn = await db.connect(self.dsn, self.settings.database)
            except SyncdError as e:
                # Once per outage, not once per attempt.
                if not unreachable:
                    log.warning("cdc: cannot reach PostgreSQL for leadership (%s); retrying", e)
                unreachable = True
                await wait_any(stop, seconds=interval)
                continue
            if unreachable:
                log.info("cdc: PostgreSQL reachable again; taking the models' leadership")
                unreachable = False
            try:
                await self._lead(lock_conn, stop)
            finally:
                self.leading.clear()
                with contextlib.suppress(Exception):
                    await lock_conn.close()

    async def _lead(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        lost = asyncio.Event()
        lock_conn.add_termination_listener(lambda _c: lost.set())
        try:
            while not stop.is_set() and not lost.is_set():
                for name in self.pollers:
                    if name in tasks:
                        continue
                    try:
                        got = await self._try_lock(lock_conn, name)
                    except SyncdError:
                        lost.set()
                        break
                    if got:
                        log.info("now polling %s on this replica", name, extra={"model": name})
                        self.leading.add(name)
                        self.leadership_changed.set()
                        tasks[name] = asyncio.create_task(
                            self._poll_loop(name, stop, lost), name=f"cdc {name}"
                        )
                await wait_any(stop, lost, seconds=self.settings.cdc.interval_seconds)
                if len(tasks) == len(self.pollers) and not stop.is_set():
                    # Everything is ours; make sure the connection that holds the locks still lives.
                    try:
                        with db.translate_errors("leadership connection"):
                            await lock_conn.fetchval("select 1")
                    except SyncdError:
                        lost.set()
            if lost.is_set() and not stop.is_set():
                log.warning("cdc: lost the leadership connection; stopped polling %s", sorted(tasks))
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for name in tasks:
                # Not ours any more: another replica reports its lag now (a stale, growing series
                # here would look like a stuck model).
                with contextlib.suppress(KeyError):
                    metrics.CDC_LAG.remove(name)

    async def _poll_loop(self, name: str, stop: asyncio.Event, lost: asyncio.Event) -> None:
        poller = self.pollers[name]
        cdc = self.settings.cdc
        failures = 0
        next_reconcile = time.monotonic()  # reconcile once at start, then every reconcile_interval
        while not stop.is_set() and not lost.is_set():
            try:
                await poller.poll()
                if time.monotonic() >= next_reconcile:
                    await poller.reconcile()
                    next_reconcile = time.monotonic() + cdc.reconcile_interval_seconds
                if failures:
                    log.info("%s: polling works again", name, extra={"model": name})
                failures = 0
                pause = cdc.interval_seconds
            except Exception as e:
                # Keep the model's loop alive whatever happens; back off, say it once per episode.
                failures += 1
                pause = min(cdc.interval_seconds * 2 ** min(failures, 10), MAX_ERROR_BACKOFF)
                if not isinstance(e, SyncdError):
                    log.exception(
                        "%s: unexpected error (retrying in %.0f s)", name, pause, extra={"model": name}
                    )
                elif failures == 1 or not e.transient:
                    log.error("%s: %s (retrying in %.0f s)", name, e, pause, extra={"model": name})
                await poller.record_error(e)
            await wait_any(stop, lost, seconds=pause)

    @staticmethod
    async def _try_lock(conn: asyncpg.Connection, name: str) -> bool:
        with db.translate_errors("taking the model lock"):
            return bool(await conn.fetchval(db.queries["cdc_leader_try_lock"], name))
