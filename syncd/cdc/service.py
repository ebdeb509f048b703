"""Runs the pollers of every configured model, each in exactly one replica at a time.

Leadership comes in two kinds, chosen by ``database.pooler``:

- **Advisory locks** (``none``, ``session``): a session-level PostgreSQL advisory lock per model,
  held on a dedicated connection, keyed by the model's row in ``syncd.cdc_lock_keys`` (added once,
  by the first replica that locks the model: unlike a bare hash of the name, no two models share a
  key, and every replica uses the same whatever models it is configured with). When a replica dies its connection closes, the locks are released,
  and another replica takes the models over at its next attempt (every ``cdc.interval_seconds``). A
  replica that loses its lock connection stops polling at once, before it could race the new leader.
- **Leases** (``transaction``): behind a transaction-mode pooler a session lock would stay on
  whichever server connection took it, long after the replica is gone, so leadership is a row per
  model in ``syncd.cdc_leases`` instead. One short statement every interval takes or renews the
  leases (for :func:`lease_seconds`); a lease that is not renewed runs out and another replica takes
  the model. Time alone cannot fence a replica that stalls (GC pause, SIGSTOP, a slow network), so
  every mirror transaction first re-checks and locks its model's lease row and rolls back when the
  lease is no longer its own: a replica whose lease ran out never commits over the new leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import asyncpg

from syncd import db, metrics
from syncd.aio import wait_any
from syncd.backoff import backoff
from syncd.cdc.poller import ModelPoller, PollResult, ReconcileResult
from syncd.config import Settings
from syncd.errors import DatabaseUnavailable, SyncdError
from syncd.odoo import OdooClient

log = logging.getLogger("syncd.cdc")

#: Upper bound of the pause after a failed poll: after n failures in a row it is drawn between
#: ``interval_seconds * 2**(n-1)`` and twice that (at least one interval), up to this.
MAX_ERROR_BACKOFF = 300.0
#: A lease lasts this many poll intervals (renewed every interval: two renewals may fail) …
LEASE_INTERVALS = 3
#: … but never less than this, so that a short interval does not turn a hiccup into a takeover.
MIN_LEASE_SECONDS = 5.0
#: After a wake-up (a webhook hint), how long a model's loop waits for more hints before it polls:
#: a burst of hints becomes one poll.
HINT_DEBOUNCE_SECONDS = 0.05
#: Record ids remembered per model between two polls: a hinted poll reads them (one ``read``);
#: beyond this many it probes the window since the cursor instead.
MAX_HINTED_IDS = 1000


def fair_share(models: int, replicas: int, rank: int = 0) -> int:
    """How many models the replica of ``rank`` (0-based, by holder name) among ``replicas`` live
    ones polls: the models split evenly, the first ``models % replicas`` taking one more, so that
    the shares add up to exactly ``models``."""
    replicas = max(1, replicas)
    return models // replicas + (1 if rank < models % replicas else 0)


def lease_seconds(interval_seconds: float) -> float:
    """How long a CDC lease lasts without renewal (``database.pooler = "transaction"``)."""
    return max(LEASE_INTERVALS * interval_seconds, MIN_LEASE_SECONDS)


class LeaseLost(SyncdError):
    """A mirror transaction found that this replica no longer holds the model's lease; nothing of
    it was committed."""


@dataclass
class OnceReport:
    """What ``syncd --once`` did per model."""

    polls: dict[str, PollResult] = field(default_factory=dict)
    reconciles: dict[str, ReconcileResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class CdcService:
    """The Odoo → PostgreSQL direction of the daemon.

    ``leading`` is the set of models this replica polls right now; ``leadership_changed`` is set
    whenever it starts polling one (tests wait on it). Both hold for either kind of leadership.
    """

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
        self.pool = pool
        self.dry_run = dry_run
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
        #: Per model: set by :meth:`wake` (a webhook hint); the model's loop polls at once.
        self._wakes = {name: asyncio.Event() for name in self.pollers}
        #: Per model: the record ids hinted since its last poll (None: too many, probe instead).
        self._hinted: dict[str, set[int] | None] = {name: set() for name in self.pollers}
        #: Set whenever this replica starts leading a model (tests wait on it).
        self.leadership_changed = asyncio.Event()
        #: Leases instead of advisory locks: the DSN goes through a transaction-mode pooler.
        self.by_lease = not settings.database.session_state
        self.lease_seconds = lease_seconds(settings.cdc.interval_seconds)
        # The instance id names the replica for operators; the token tells apart two services that
        # share one (a restarted service, a `syncd --once` next to the daemon with the same config),
        # so that neither can renew — or commit under — the other's lease.
        instance = settings.daemon.instance_id or f"{socket.gethostname()}:{os.getpid()}"
        self.holder = f"{instance}/{secrets.token_hex(4)}"
        #: How long this replica counts as alive after each renewal of its cdc_replicas row: a
        #: replica that died stops counting within two intervals, and the others take its share.
        self.presence_seconds = 2 * settings.cdc.interval_seconds + 1.0
        if self.by_lease:
            for name, poller in self.pollers.items():
                poller.guard = self._lease_guard(name)

    # ------------------------------------------------------------------------------------- hints
    def wake(self, model: str, ids: Iterable[int] = ()) -> bool:
        """A hint that ``model`` changed (records ``ids``): when this replica polls the model, its
        loop polls it now (hints that arrive meanwhile are coalesced into that poll) and reads the
        hinted records in full; True then. False when another replica, or none, polls it here:
        nothing is done (the caller may pass the hint on)."""
        if model not in self.leading:
            return False
        hinted = self._hinted[model]
        if hinted is not None:
            hinted.update(ids)
            if len(hinted) > MAX_HINTED_IDS:
                self._hinted[model] = None  # too many to read by id: the poll probes instead
        self._wakes[model].set()
        return True

    # -------------------------------------------------------------------------------------- once
    async def run_once(self) -> OnceReport:
        """Poll every model until caught up, then reconcile it when its reconciliation is due
        (``cdc.reconcile_interval_seconds`` since the last, whichever process ran it); models another
        replica polls right now are skipped."""
        for poller in self.pollers.values():
            poller.stored_schema_ok = True  # a --once from cron starts often: no fields_get each time
        if self.by_lease:
            return await self._once_by_lease()
        report = OnceReport()
        lock_conn = await db.connect(self.dsn, self.settings.database)
        try:
            for name, poller in self.pollers.items():
                if not await self._try_lock(lock_conn, name):
                    self._skip(report, name)
                    continue
                try:
                    await self._once(report, name, poller)
                finally:
                    with db.translate_errors("releasing the model lock"):
                        await lock_conn.fetchval(db.queries["cdc_leader_unlock"], name)
        finally:
            await lock_conn.close()
        return report

    async def _once_by_lease(self) -> OnceReport:
        report = OnceReport()
        for name, poller in self.pollers.items():
            if self.dry_run:
                # A dry run writes nothing, not even a lease: it only stays away from held models.
                if name in await self._leased_by_others():
                    self._skip(report, name)
                    continue
                await self._once(report, name, poller)
                continue
            if name not in await self._take_leases([name]):
                self._skip(report, name)
                continue
            # One page can take longer than a lease (a slow Odoo, retries): renew meanwhile.
            renewing = asyncio.create_task(self._keep_lease(name), name=f"cdc lease {name}")
            try:
                await self._once(report, name, poller)
            except LeaseLost:
                log.warning("%s: lost its lease to another syncd; stopped", name, extra={"model": name})
                report.skipped.append(name)
            finally:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)
                with contextlib.suppress(SyncdError):  # otherwise it runs out by itself
                    await self._release_leases([name])
        return report

    async def _once(self, report: OnceReport, name: str, poller: ModelPoller) -> None:
        try:
            report.polls[name] = await poller.poll()
            if await poller.reconcile_due():
                report.reconciles[name] = await poller.reconcile()
        except LeaseLost:
            raise
        except SyncdError as e:
            log.error("%s: %s", name, e, extra={"model": name})
            report.errors[name] = str(e)
            await poller.record_error(e)

    @staticmethod
    def _skip(report: OnceReport, name: str) -> None:
        log.warning("%s is being polled by another syncd right now: skipped", name, extra={"model": name})
        report.skipped.append(name)

    async def _keep_lease(self, name: str) -> None:
        while True:
            await asyncio.sleep(self.settings.cdc.interval_seconds)
            with contextlib.suppress(SyncdError):  # the next mirror transaction tells for sure
                await self._take_leases([name])

    # --------------------------------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event) -> None:
        """Lead and poll a fair share of the models until ``stop`` is set: with R live replicas
        (``syncd.cdc_replicas``) each polls models / R of them (:func:`fair_share`); one holding
        more hands one over per interval, and the models of a replica that died are taken over."""
        try:
            if self.by_lease:
                await self._run_by_lease(stop)
            else:
                await self._run_by_lock(stop)
        finally:
            await self._leave()

    async def _run_by_lock(self, stop: asyncio.Event) -> None:
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

    async def _share(self) -> int | None:
        """How many models this replica should poll (:func:`fair_share`), renewing its own presence
        on the way; None when PostgreSQL did not answer (then nothing changes)."""
        try:
            with db.translate_errors("counting the replicas"):
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(
                        db.queries["cdc_replica_seen"], self.holder, self.presence_seconds
                    )
        except SyncdError:
            return None
        assert row is not None
        return fair_share(len(self.pollers), int(row["replicas"]), int(row["rank"]))

    def _new_share(self, asked: int | None, share: int) -> int:
        """The share to go on with: the one just computed, or the last one when PostgreSQL did not
        answer (a share of 0 — more replicas than models — is a share too)."""
        if asked is None:
            return share
        if asked != share:
            log.info("cdc: this replica's share is %d of %d models now", asked, len(self.pollers))
        return asked

    async def _leave(self) -> None:
        with contextlib.suppress(SyncdError, TimeoutError):
            async with asyncio.timeout(5.0):
                with db.translate_errors("leaving the replicas"):
                    async with self.pool.acquire() as conn:
                        await conn.execute(db.queries["cdc_replica_leave"], self.holder)

    def _handing_over(self, name: str, share: int) -> None:
        self.leading.discard(name)
        with contextlib.suppress(KeyError):
            metrics.CDC_LAG.remove(name)
        log.info(
            "handing %s over to another replica (this one polls %d of %d models now)",
            name, share, len(self.pollers), extra={"model": name},
        )  # fmt: skip

    async def _lead(self, lock_conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        lost = asyncio.Event()
        lock_conn.add_termination_listener(lambda _c: lost.set())
        share = len(self.pollers)
        try:
            while not stop.is_set() and not lost.is_set():
                share = self._new_share(await self._share(), share)
                if len(tasks) > share:
                    # More than a fair share: give one model up per round (the one taken last), so
                    # that replicas starting later get theirs without everybody moving at once.
                    name = list(tasks)[-1]
                    task = tasks.pop(name)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self._handing_over(name, len(tasks))  # before another replica can take it
                    try:
                        with db.translate_errors("releasing the model lock"):
                            await lock_conn.fetchval(db.queries["cdc_leader_unlock"], name)
                    except SyncdError:
                        lost.set()
                        break
                for name in self.pollers:
                    if name in tasks:
                        continue
                    if len(tasks) >= share:
                        break
                    try:
                        got = await self._try_lock(lock_conn, name)
                    except SyncdError:
                        lost.set()
                        break
                    if got:
                        self._started(name)
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

    def _started(self, name: str) -> None:
        log.info("now polling %s on this replica", name, extra={"model": name})
        self._wakes[name].clear()
        self._hinted[name] = set()
        self.leading.add(name)
        self.leadership_changed.set()

    async def _run_by_lease(self, stop: asyncio.Event) -> None:
        """Leadership by lease rows: every interval, one statement takes or renews the leases of
        every model; a model whose lease is no longer returned is stopped at once. When renewals
        fail for as long as a lease lasts (PostgreSQL unreachable), every model is stopped: by then
        another replica may have taken them."""
        interval = self.settings.cdc.interval_seconds
        names = sorted(self.pollers)
        log.info(
            "cdc: leadership by lease (database.pooler = transaction) as %s: %.0f s, renewed every %.1f s",
            self.holder, self.lease_seconds, interval,
        )  # fmt: skip
        tasks: dict[str, asyncio.Task[None]] = {}
        lost: dict[str, asyncio.Event] = {}
        valid_until = 0.0  # monotonic time until which the leases last confirmed are surely ours
        unreachable = False
        took_any = False
        share = len(names)

        def stop_polling(name: str, why: str) -> None:
            lost[name].set()  # the loop stops before its next poll; the task is cancelled below
            tasks[name].cancel()
            self.leading.discard(name)
            log.warning("stopped polling %s on this replica: %s", name, why, extra={"model": name})

        try:
            while not stop.is_set():
                for name in [n for n, t in tasks.items() if t.done()]:
                    # Its loop ended on LeaseLost (a commit found the lease gone): try again below.
                    del tasks[name], lost[name]
                    self.leading.discard(name)
                share = self._new_share(await self._share(), share)
                if len(tasks) > share:
                    # More than a fair share: hand one model over per round (see _lead).
                    name = list(tasks)[-1]
                    task = tasks.pop(name)
                    del lost[name]
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self._handing_over(name, len(tasks))  # before another replica can take it
                    with contextlib.suppress(SyncdError):
                        await self._release_leases([name])
                # Renew what it polls and take whatever is free; what it took beyond its share goes
                # back at once, before it polls it (free models are few: a handed-over one, or
                # those of a replica that died).
                wanted = names if len(tasks) < share else [n for n in names if n in tasks]
                asked = time.monotonic()
                try:
                    held = await self._take_leases(wanted)
                    extra = [n for n in names if n in held and n not in tasks][max(0, share - len(tasks)) :]
                    if extra:
                        await self._release_leases(extra)
                        held.difference_update(extra)
                except SyncdError as e:
                    if not unreachable:
                        log.warning("cdc: cannot renew the models' leases (%s); retrying", e)
                    unreachable = True
                    if tasks and time.monotonic() >= valid_until:
                        for name in list(tasks):
                            stop_polling(name, "its lease could not be renewed in time")
                else:
                    if unreachable:
                        log.info("cdc: PostgreSQL reachable again; renewing the models' leases")
                        unreachable = False
                    # Counted from before the statement was sent: the server's lease ends later.
                    valid_until = asked + self.lease_seconds
                    for name in wanted:
                        if name in held and name not in tasks:
                            took_any = True
                            lost[name] = asyncio.Event()
                            self._started(name)
                            tasks[name] = asyncio.create_task(
                                self._poll_loop(name, stop, lost[name]), name=f"cdc {name}"
                            )
                        elif name not in held and name in tasks:
                            stop_polling(name, "its lease ran out and another replica holds it")
                await wait_any(stop, seconds=interval)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            self.leading.clear()
            if took_any:
                # Clean shutdown: hand the models over now rather than after the leases run out.
                with contextlib.suppress(SyncdError, TimeoutError):
                    async with asyncio.timeout(min(self.lease_seconds, 10.0)):
                        await self._release_leases(names)

    async def _take_leases(self, names: Iterable[str]) -> set[str]:
        """Take or renew the leases of ``names`` (one statement); the models this replica holds now."""
        models = sorted(names)
        # Bounded: a renewal stuck behind a lock or a dead connection must not outlast the lease.
        limit = self.lease_seconds / LEASE_INTERVALS
        try:
            async with asyncio.timeout(limit):
                with db.translate_errors("taking the models' leases"):
                    async with self.pool.acquire() as conn:
                        rows = await conn.fetch(
                            db.queries["cdc_lease_take"], models, self.holder, self.lease_seconds
                        )
        except TimeoutError:
            raise DatabaseUnavailable(f"taking the models' leases: no answer within {limit:.1f} s") from None
        return {r["model"] for r in rows}

    async def _release_leases(self, names: list[str]) -> None:
        with db.translate_errors("releasing the models' leases"):
            async with self.pool.acquire() as conn:
                await conn.execute(db.queries["cdc_lease_release"], names, self.holder)

    async def _leased_by_others(self) -> set[str]:
        with db.translate_errors("reading the models' leases"):
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(db.queries["cdc_lease_list"])
        return {r["model"] for r in rows if r["valid"] and r["holder"] != self.holder}

    def _lease_guard(self, name: str) -> Callable[[db.Connection], Awaitable[None]]:
        async def guard(conn: db.Connection) -> None:
            # Inside the mirror transaction, before it writes: the row lock taken here is held
            # until the commit, so other replicas skip the model until then, and then find the
            # lease renewed.
            until = await conn.fetchval(db.queries["cdc_lease_hold"], name, self.holder, self.lease_seconds)
            if until is None:
                raise LeaseLost(f"{name}: this replica no longer holds the model's lease")

        return guard

    async def _poll_loop(self, name: str, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Poll the model every ``cdc.interval_seconds``, and at once after a wake-up (:meth:`wake`):
        a hinted poll reads the hinted records (or, after too many hints, probes from the cursor);
        the interval polls keep the whole lookback window (late commits)."""
        poller = self.pollers[name]
        cdc = self.settings.cdc
        wake = self._wakes[name]
        failures = 0
        next_reconcile = time.monotonic()  # reconcile once at start, then every reconcile_interval
        next_poll = time.monotonic()
        hinted = False
        while not stop.is_set() and not lost.is_set():
            try:
                ids = self._hinted[name]
                self._hinted[name] = set()
                if hinted:
                    metrics.CDC_POLLS.labels(model=name, trigger="hint").inc()
                    await poller.poll(hinted=ids, window=False)
                else:
                    metrics.CDC_POLLS.labels(model=name, trigger="interval").inc()
                    next_poll = time.monotonic() + cdc.interval_seconds
                    await poller.poll(hinted=ids or ())
                if time.monotonic() >= next_reconcile:
                    await poller.reconcile()
                    next_reconcile = time.monotonic() + cdc.reconcile_interval_seconds
                if failures:
                    log.info("%s: polling works again", name, extra={"model": name})
                failures = 0
            except LeaseLost:
                # Not an error of the model: another replica polls it now. Nothing was committed.
                log.warning(
                    "stopped polling %s on this replica: its lease is held by another replica",
                    name, extra={"model": name},
                )  # fmt: skip
                self.leading.discard(name)
                return
            except Exception as e:
                # Keep the model's loop alive whatever happens; back off, say it once per episode.
                failures += 1
                # attempt failures + 1: the first pause is one to two intervals, not shorter than a poll
                pause = backoff(failures + 1, cdc.interval_seconds, MAX_ERROR_BACKOFF)
                if not isinstance(e, SyncdError):
                    log.exception(
                        "%s: unexpected error (retrying in %.0f s)", name, pause, extra={"model": name}
                    )
                elif failures == 1 or not e.transient:
                    # A transient failure (a 429, a dropped connection) usually heals by itself:
                    # a warning; one that will not go away by waiting is an error.
                    level = logging.WARNING if e.transient else logging.ERROR
                    log.log(level, "%s: %s (retrying in %.0f s)", name, e, pause, extra={"model": name})
                await poller.record_error(e)
                # Hints do not shorten a backoff: the next attempt is a whole poll.
                await wait_any(stop, lost, seconds=pause)
                hinted = False
                continue
            await wait_any(stop, lost, wake, seconds=max(0.0, next_poll - time.monotonic()))
            hinted = wake.is_set() and time.monotonic() < next_poll
            if hinted:  # a burst of hints becomes one poll
                await wait_any(stop, lost, seconds=HINT_DEBOUNCE_SECONDS)
            wake.clear()

    @staticmethod
    async def _try_lock(conn: asyncpg.Connection, name: str) -> bool:
        with db.translate_errors("taking the model lock"):
            return bool(await conn.fetchval(db.queries["cdc_leader_try_lock"], name))
