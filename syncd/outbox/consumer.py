"""The outbox consumer: claim events, apply them to Odoo, record the outcome.

A claim is one short statement that leases a batch (``locked_until``, ``locked_by``); no transaction
stays open while Odoo is called. The outcomes of a delivered batch (done, retry, dead) are written by
the consumer's next statement, the one that claims its next batch, so that a busy consumer spends one
statement per batch; when no claim follows at once (nothing to claim, the consumer's own pause, shutdown,
the end of a drain) they are written on their own straight away. Outcomes only touch events this
consumer still holds, so an event whose lease ran out and was claimed by another consumer is left to it.
Wake-up is a LISTEN on ``syncd_outbox`` (one NOTIFY per producer transaction) with polling as the
fallback; behind a transaction-mode pooler set ``outbox.listen = false`` and polling alone delivers.

Delivery: upserts are grouped per model and field set into one ``load()`` with stable external ids,
and rows that ``load()`` reports as bad are split off so the good ones still land; writes go by
``odoo_id``, those of a batch with the same values as one ``write(ids, values)``, and a write with a
base is first checked against Odoo's current values field by field (:mod:`syncd.outbox.conflicts`);
deletes go by key (through the external id) or ``odoo_id`` — already gone counts as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, NamedTuple

import asyncpg

from syncd import db, metrics
from syncd.aio import wait_any
from syncd.backoff import backoff
from syncd.config import Settings
from syncd.errors import (
    DatabaseUnavailable,
    OdooAuthenticationError,
    OdooError,
    OdooMissingError,
    OdooPermanentError,
    OdooTransientError,
    SyncdError,
)
from syncd.odoo import OdooClient, classify_load_message, may_land_later
from syncd.outbox import conflicts, convert, xmlid
from syncd.outbox.policy import RetryStrategy

log = logging.getLogger("syncd.outbox")

#: fields_get answers are reused this long (a field added in Odoo shows up after it).
FIELDS_TTL_SECONDS = 300.0
#: Upper bound of the consumer's own pause after batches that failed transiently as a whole: after
#: n such batches in a row it is drawn between ``poll_interval * 2**(n-2)`` and twice that, but at
#: least one poll interval, up to this.
MAX_CONSUMER_BACKOFF = 30.0
#: Claims run again at once, at most, when one left new events to place and claimed nothing.
DEFERRED_RECLAIMS = 5
#: Seconds between housekeeping rounds (retention, gauges).
HOUSEKEEPING_EVERY = 30.0
#: Seconds between counts of done events for the gauge: that count reads the table with its retained
#: done events (about 0.2 s per million), the other counts read indexes every round.
DONE_COUNT_EVERY = 300.0


class Event(NamedTuple):
    """A claimed event (a tuple: a batch of them is built per claim, cheaply)."""

    id: int
    model: str
    op: Literal["upsert", "write", "delete"]
    key: str | None
    odoo_id: int | None
    payload: dict[str, Any]
    attempts: int
    #: The head event this one is folded into (delivered by the head's call), if any.
    fold_of: int | None = None
    #: The field values the producer last saw (a write checked against Odoo first), if any.
    base: dict[str, Any] | None = None


@dataclass(slots=True)
class Outcome:
    event: Event
    status: Literal["done", "retry", "dead"]
    result_id: int | None = None
    error: str | None = None
    transient: bool = False
    #: Seconds until a retry (set when the outcome is recorded).
    delay: float | None = None
    #: The call got no answer and Odoo may still carry it out (see ``outbox.timeout_fence_seconds``).
    may_land_later: bool = False
    #: A write with a base: the fields whose Odoo value matched neither the base nor the new value.
    conflicts: dict[str, dict[str, Any]] | None = None
    #: Why some of them are held for a decision (the event ends as a held conflict), if any are.
    held: str | None = None


@dataclass
class DrainReport:
    """What ``syncd --once`` did with the outbox."""

    done: int = 0
    dead: int = 0
    retried: int = 0
    dead_ids: list[int] = field(default_factory=list)
    #: Of the done ones: held conflicts (applied but for fields held for ``syncd outbox resolve``).
    held_ids: list[int] = field(default_factory=list)


class OutboxConsumer:
    """The PostgreSQL → Odoo direction of the daemon."""

    def __init__(
        self, settings: Settings, odoo: OdooClient, pool: asyncpg.Pool, dsn: str, instance: str
    ) -> None:
        self.settings = settings
        self.cfg = settings.outbox
        self.odoo = odoo
        self.pool = pool
        self.dsn = dsn
        self.instance = instance
        self.strategy = RetryStrategy.from_settings(self.cfg)
        self.delete_modes = {m.model: m.delete_mode for m in settings.cdc.models}
        self.conflict_policies: dict[str, conflicts.Policy] = {
            m.model: m.conflict for m in settings.cdc.models
        }
        self._fields: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._wake = asyncio.Event()
        self._pause = 0.0
        #: Batches that failed as a whole in a row (the attempt number of the pause).
        self._failed_batches = 0
        #: Set by ``odoo_is_back()``: ends the pause after failed batches at once.
        self._odoo_back = asyncio.Event()
        #: When the batches started failing as a whole (monotonic), for the log line once one lands.
        self._failing_since: float | None = None
        #: Claimed and not yet recorded (delivering, or delivered and waiting to be written).
        self._held: set[int] = set()
        #: Outcomes of delivered events, written by the next statement (see ``claim``).
        self._outcomes: list[Outcome] = []
        self._outcomes_ready = asyncio.Event()
        self._claim_sql = claim_query(self.cfg.batch_size)
        #: The last statement left new events of a record for the next claim to place.
        self._deferred = False
        self._flush_sql = claim_query(0)
        self._listen_failed = False
        #: The last count of done events and when it was taken (see DONE_COUNT_EVERY).
        self._done_count: tuple[float, int] | None = None
        #: Test signal: called with the outcomes that each statement wrote, once it committed.
        self.on_recorded: Callable[[list[Outcome]], None] | None = None

    # ---------------------------------------------------------------------------------- running
    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until ``stop``; in-flight batches finish, claimed-but-unstarted ones are
        given back."""
        listener = await self._listen() if self.cfg.listen else None
        slots = asyncio.Semaphore(self.cfg.concurrency)
        running: set[asyncio.Task[None]] = set()
        housekeeping = asyncio.create_task(self._housekeeping(stop), name="outbox housekeeping")
        claim_failing = False
        try:
            while not stop.is_set():
                if self._pause:
                    await self._pause_writing_outcomes(stop)
                    if stop.is_set():
                        break
                if self.cfg.listen and (listener is None or listener.is_closed()):
                    # (Re)connect the LISTEN connection, e.g. after PostgreSQL restarted; until then
                    # polling carries on alone.
                    listener = await self._listen()
                # A slot frees up when a batch has been delivered, and that batch's outcomes are then
                # waiting: the claim below writes them.
                await slots.acquire()
                self._wake.clear()
                self._outcomes_ready.clear()
                try:
                    events = await self.claim()
                except SyncdError as e:
                    slots.release()
                    # Once per outage (e.g. PostgreSQL restarting), not once per poll.
                    if not claim_failing:
                        log.warning(
                            "outbox: claim failed (%s); retrying every %.1f s",
                            e,
                            self.cfg.poll_interval_seconds,
                        )
                    claim_failing = True
                    await wait_any(stop, seconds=self.cfg.poll_interval_seconds)
                    continue
                if claim_failing:
                    log.info("outbox: claiming works again")
                    claim_failing = False
                if not events:
                    slots.release()
                    # Outcomes of a batch that finished meanwhile must not wait for the next poll:
                    # they are written by a claim at once (which may also lease the next event of
                    # a record whose previous event they finish).
                    if not self._outcomes:
                        await wait_any(
                            stop, self._wake, self._outcomes_ready, seconds=self.cfg.poll_interval_seconds
                        )
                    continue
                task = asyncio.create_task(self._process(events, slots), name="outbox batch")
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            if running:
                await asyncio.wait(running, timeout=self.settings.daemon.shutdown_grace_seconds)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)
            await self._flush_quietly()
            await self._give_back()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    def odoo_is_back(self) -> None:
        """Odoo answers again (the daemon calls this when its health probe sees Odoo come back): a
        pause after failed batches ends at once instead of running its course (up to
        MAX_CONSUMER_BACKOFF)."""
        self._odoo_back.set()
        self._wake.set()  # also when it waits for events between two pauses

    async def _pause_writing_outcomes(self, stop: asyncio.Event) -> None:
        """The consumer's own pause after batches that failed as a whole; outcomes of batches that
        finish meanwhile are written at once, not after it. It ends early when Odoo is back
        (``odoo_is_back``) or a batch delivered meanwhile."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._pause
        while not stop.is_set():
            if self._odoo_back.is_set():
                # Odoo answers: the backoff starts afresh (a batch that fails again pauses briefly)
                self._odoo_back.clear()
                self._pause, self._failed_batches = 0.0, 0
                log.debug("outbox: Odoo answers again; the pause ends")
                return
            self._outcomes_ready.clear()
            await self._flush_quietly()  # outcomes it could not write wait for the next attempt
            left = until - loop.time()
            if left <= 0 or not self._pause:
                return  # the pause is over, or a batch landed meanwhile
            await wait_any(stop, self._outcomes_ready, self._odoo_back, seconds=left)
            if not (self._outcomes_ready.is_set() or self._odoo_back.is_set()):
                return  # the pause is over (or stop): the next claim carries what is left

    async def drain(self) -> DrainReport:
        """``--once``: deliver until nothing is claimable right now (retries scheduled later wait),
        with up to ``outbox.concurrency`` batches in flight as ``run()`` has."""
        report = DrainReport()
        tried: set[int] = set()
        slots = asyncio.Semaphore(self.cfg.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def deliver(events: list[Event]) -> None:
            try:
                for o in await self._deliver_batch(events):
                    if o.status == "done":
                        report.done += 1
                        if o.held is not None:
                            report.held_ids.append(o.event.id)
                    elif o.status == "dead":
                        report.dead += 1
                        report.dead_ids.append(o.event.id)
                    else:
                        report.retried += 1
            finally:
                slots.release()

        try:
            while True:
                # As in run(): a slot frees up when a batch has been delivered, and the claim below
                # writes its outcomes (which may make the records' next events claimable).
                await slots.acquire()
                self._reap(running)
                try:
                    events = await self.claim()
                    # Each event is tried once per run: one that failed and is due again already (a
                    # short backoff) is given back for the next run instead of burning its attempts now.
                    again = [e.id for e in events if e.id in tried]
                    if again:
                        await self._release(again)
                        events = [e for e in events if e.id not in tried]
                except BaseException:
                    slots.release()
                    raise
                if not events:
                    slots.release()
                    if not running:
                        return report
                    # Batches still in flight: their outcomes may free the next events of their records.
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    self._reap(running)
                    continue
                tried.update(e.id for e in events)
                running.add(asyncio.create_task(deliver(events), name="outbox drain batch"))
        finally:
            if running:
                await asyncio.wait(running)
            # Written by the last claim unless it failed (or this was cancelled): then try once more.
            await self._flush_quietly()

    @staticmethod
    def _reap(running: set[asyncio.Task[None]]) -> None:
        """Forget the finished batches of a drain; re-raise the error of one that failed (e.g.
        PostgreSQL went away while its outcomes were written)."""
        for task in [t for t in running if t.done()]:
            running.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _process(self, events: list[Event], slots: asyncio.Semaphore) -> None:
        try:
            await self._deliver_batch(events)
        except Exception:
            log.exception("outbox: a batch failed unexpectedly; its events return when their lease ends")
        finally:
            slots.release()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await db.connect(self.dsn, self.settings.database)
            with db.translate_errors("LISTEN syncd_outbox"):
                await conn.add_listener("syncd_outbox", lambda *_: self._wake.set())
        except SyncdError as e:
            if not self._listen_failed:
                log.warning(
                    "outbox: LISTEN unavailable (%s); polling every %ss", e, self.cfg.poll_interval_seconds
                )
            self._listen_failed = True
            return None
        if self._listen_failed:
            log.info("outbox: LISTEN works again")
        self._listen_failed = False
        self._wake.set()  # events may have arrived while nobody listened
        return conn

    # ------------------------------------------------------------------------------------ claim
    async def claim(self) -> list[Event]:
        """Lease the next batch, in the statement that also records the outcomes waiting to be
        written. Raises SyncdError when PostgreSQL fails; the outcomes then stay queued.

        A claim may leave a record's new events for the next one to place (another consumer was
        placing the record's earlier events, or this statement changed the record's queue); when
        that left it empty-handed it claims again at once, so that an empty claim means that nothing
        is claimable now (``drain()`` stops at one)."""
        events = await self._statement(self._claim_sql)
        for _ in range(DEFERRED_RECLAIMS):
            if events or not self._deferred:
                break
            events = await self._statement(self._claim_sql)
        return events

    async def flush(self) -> None:
        """Record the waiting outcomes now, leasing nothing."""
        if self._outcomes:
            await self._statement(self._flush_sql)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except SyncdError as e:
            log.warning("outbox: could not record the outcomes of %d events (%s); they return when"
                        " their lease ends", len(self._outcomes), e)  # fmt: skip

    async def _statement(self, sql: str) -> list[Event]:
        outcomes, self._outcomes = self._outcomes, []
        done: list[Outcome] = []
        retry: list[Outcome] = []
        dead: list[Outcome] = []
        for o in sorted(outcomes, key=_outcome_event_id):  # ascending ids: see outbox_claim
            (done if o.status == "done" else dead if o.status == "dead" else retry).append(o)
        try:
            # acquire() inside translate_errors: it connects when the pool has no live connection
            # (e.g. PostgreSQL restarted), and a raw driver error would end run() instead of being
            # retried.
            with db.translate_errors("claiming outbox events"):
                async with self.pool.acquire() as conn:
                    rows = await conn.fetch(
                        sql,
                        self.instance,
                        self.cfg.lease_seconds,
                        [o.event.id for o in done],
                        [o.result_id for o in done],
                        [o.event.id for o in retry],
                        [o.delay for o in retry],
                        [_text(o.error) for o in retry],
                        [o.event.id for o in dead],
                        [_text(o.error) for o in dead],
                        self.cfg.max_attempts,
                        self.cfg.fold_max_events - 1,
                        [json.dumps(o.conflicts) if o.conflicts else None for o in done],
                        [_text(o.held) if o.held is not None else None for o in done],
                    )
        except (DatabaseUnavailable, asyncio.CancelledError):
            self._outcomes[:0] = outcomes  # PostgreSQL away, or shutting down: the next statement writes them
            raise
        except BaseException:
            # Not a matter of waiting (e.g. a value PostgreSQL refuses): keeping them would make every
            # later claim fail too.
            if outcomes:
                log.warning("outbox: the outcomes of %d events were not recorded; their events return when"
                            " their lease ends", len(outcomes))  # fmt: skip
            raise
        unseen = rows[-1][10] if rows and rows[-1][0] is None else None
        if unseen:
            # Woken by that statement but queued after its snapshot began: wake them now. Should this
            # fail, housekeeping wakes them (outbox_wake without ids) within HOUSEKEEPING_EVERY.
            try:
                with db.translate_errors("waking outbox events"):
                    async with self.pool.acquire() as conn:
                        await conn.execute(db.queries["outbox_wake"], unseen)
            except SyncdError as e:
                log.warning("outbox: could not wake events %s (%s); housekeeping will", unseen, e)
        loads = db.loads_json  # never raises: JSON Python cannot read kills only its event
        events: list[Event] = []
        done_seconds: Sequence[float] = ()
        reclaimed: list[tuple[int, str]] = []
        self._deferred = False
        for r in rows:
            if r[0] is None:
                done_seconds = r[9] or ()
                self._deferred = bool(r[11])
            else:
                events.append(Event(r[0], r[1], r[2], r[3], r[4], loads(r[5]), r[6], r[7],
                                    loads(r[12]) if r[12] is not None else None))  # fmt: skip
                if r[8] is not None:
                    reclaimed.append((r[0], r[8]))
        events.sort(key=_event_id)
        for event_id, holder in reclaimed:
            log.warning("outbox event %d: taken back from %s, whose lease ran out (it died or hung)",
                        event_id, holder, extra={"event_id": event_id})  # fmt: skip
        self._held.update(e.id for e in events)
        if outcomes:
            self._recorded(outcomes, done, retry, dead, done_seconds)
        return events

    async def _give_back(self) -> None:
        held, self._held = sorted(self._held), set()
        await self._release(held)

    async def _release(self, ids: list[int]) -> None:
        """Give claimed events back at once, without counting the attempt."""
        if not ids:
            return
        self._held.difference_update(ids)
        try:
            async with db.transaction(self.pool, "giving back outbox events") as conn:
                await conn.execute(db.queries["outbox_release"], ids, self.instance)
        except SyncdError as e:
            log.warning("outbox: could not give back %d events (%s); their lease will expire", len(ids), e)

    # ---------------------------------------------------------------------------------- deliver
    async def _deliver_batch(self, events: list[Event]) -> list[Outcome]:
        """Deliver ``events`` and queue their outcomes for the next statement."""
        heartbeat = asyncio.create_task(self._keep_leases([e.id for e in events]), name="outbox lease")
        try:
            outcomes = await self.deliver(events)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        self.record(outcomes)
        failed_transiently = [o for o in outcomes if o.status == "retry"]
        if failed_transiently and len(failed_transiently) == len(outcomes):
            self._failed_batches += 1
            # Jittered so that replicas that failed together do not claim together; at least one
            # poll interval (or the cap, when that is shorter) as before the jitter.
            poll = self.cfg.poll_interval_seconds
            self._pause = max(
                min(poll, MAX_CONSUMER_BACKOFF),
                backoff(self._failed_batches, poll, MAX_CONSUMER_BACKOFF),
            )
            self._odoo_back.clear()  # only Odoo seen back after this failure ends the pause
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            log.warning(
                "outbox: Odoo failed a whole batch (%s); pausing %.1f s",
                failed_transiently[0].error,
                self._pause,
            )
        else:
            self._pause, self._failed_batches = 0.0, 0
            if self._failing_since is not None:
                log.info("outbox: delivery resumed after %.0f s", time.monotonic() - self._failing_since)
                self._failing_since = None
        return outcomes

    async def _keep_leases(self, ids: list[int]) -> None:
        """Extend the lease while a slow batch is being delivered, so that no other consumer takes
        these events over while this one still works on them."""
        while True:
            await asyncio.sleep(self.cfg.lease_seconds / 3)
            try:
                async with db.transaction(self.pool, "extending outbox leases") as conn:
                    await conn.execute(
                        db.queries["outbox_extend_lease"], ids, self.instance, self.cfg.lease_seconds
                    )
            except SyncdError as e:
                log.warning("outbox: could not extend the lease of %d events: %s", len(ids), e)

    async def deliver(self, events: Sequence[Event]) -> list[Outcome]:
        """Apply ``events`` to Odoo; never raises for a failure of Odoo or of an event. Events folded
        into a head (``fold_of``) go in the head's call, with the values merged field by field, and
        end with the head's outcome."""
        heads, folded = fold(events)
        outcomes = await self._deliver(heads)
        if not folded:
            return outcomes
        return [m for o in outcomes for m in (o, *spread(o, folded.get(o.event.id, ())))]

    async def _deliver(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        by_model: dict[str, list[Event]] = defaultdict(list)
        for e in events:
            by_model[e.model].append(e)
        for model, model_events in by_model.items():
            try:
                fields = await self._fields_of(model)
            except OdooError as err:
                outcomes += [_failed(e, err) for e in model_events]
                continue
            upserts = [e for e in model_events if e.op == "upsert"]
            writes = [e for e in model_events if e.op == "write"]
            deletes = [e for e in model_events if e.op == "delete"]
            outcomes += await self._upserts(model, upserts, fields)
            written, deleted = await asyncio.gather(
                self._writes(model, writes, fields), asyncio.gather(*(self._one(e) for e in deletes))
            )
            outcomes += written
            outcomes += deleted
        return outcomes

    async def _fields_of(self, model: str) -> dict[str, dict[str, Any]]:
        cached = self._fields.get(model)
        if cached is not None and time.monotonic() - cached[0] < FIELDS_TTL_SECONDS:
            return cached[1]
        fields = await self.odoo.fields_get(
            model, attributes=["type", "store", "readonly", "relation", "selection", "required", "digits"]
        )
        self._fields[model] = (time.monotonic(), fields)
        return fields

    async def _upserts(self, model: str, events: list[Event], fields: convert.Fields) -> list[Outcome]:
        outcomes: list[Outcome] = []
        groups: dict[tuple[str, ...], list[tuple[Event, list[str]]]] = defaultdict(list)
        for e in events:
            try:
                names = tuple(sorted(e.payload))
                cells = [convert.load_cell(model, n, e.payload[n], fields) for n in names]
            except convert.PayloadError as err:
                outcomes.append(Outcome(e, "dead", error=str(err)))
                continue
            groups[names].append((e, cells))
        for names, rows in groups.items():
            header = ["id", *(convert.load_header(n, fields) for n in names)]
            outcomes += await self._load(model, header, rows)
        return outcomes

    async def _load(
        self, model: str, header: list[str], rows: list[tuple[Event, list[str]]]
    ) -> list[Outcome]:
        """One ``load()``; on in-band row errors the bad rows are split off (by the rows Odoo names,
        else by halving) so that the good rows still land. A row (or the whole load) that failed on a
        conflict with a concurrent transaction is retried later, like the same conflict raised."""
        module = self.cfg.xmlid_module
        data = [[xmlid.external_id(module, model, e.key or ""), *cells] for e, cells in rows]
        try:
            result = await self.odoo.load(model, header, data, context=convert.LOAD_CONTEXT)
        except (OdooTransientError, OdooAuthenticationError) as err:
            return [_failed(e, err) for e, _ in rows]  # not the rows' fault: no splitting
        except OdooPermanentError as err:
            if len(rows) == 1:
                return [_failed(rows[0][0], err)]
            return await self._split(model, header, rows, set())
        if result.ok and result.ids is not None:
            return [Outcome(e, "done", result_id=rid) for (e, _), rid in zip(rows, result.ids, strict=True)]
        bad: set[int] = set()
        conflicts: dict[int, OdooError] = {}
        for message in result.errors:
            error = classify_load_message(message, model=model)
            span = message.get("rows") or {}
            if not (isinstance(span.get("from"), int) and isinstance(span.get("to"), int)):
                if error.transient:  # the load as a whole: not the rows' fault, no splitting
                    return [_failed(e, error) for e, _ in rows]
                continue
            named = range(span["from"], span["to"] + 1)
            if error.transient:
                conflicts.update((i, error) for i in named if 0 <= i < len(rows))
            else:
                bad.update(named)
        conflicts = {i: error for i, error in conflicts.items() if i not in bad}
        if conflicts:
            # Those rows wait for a retry; the others were rolled back with them and go again now.
            rest = [r for i, r in enumerate(rows) if i not in conflicts]
            retried = [_failed(rows[i][0], error) for i, error in sorted(conflicts.items())]
            return retried + (await self._load(model, header, rest) if rest else [])
        if len(rows) == 1:
            return [Outcome(rows[0][0], "dead", error=_load_error(result.errors or result.messages))]
        return await self._split(model, header, rows, bad, result.errors)

    async def _split(
        self,
        model: str,
        header: list[str],
        rows: list[tuple[Event, list[str]]],
        bad: set[int],
        messages: Iterable[dict[str, Any]] = (),
    ) -> list[Outcome]:
        named = [rows[i] for i in sorted(bad) if 0 <= i < len(rows)]
        if named and len(named) < len(rows):
            rest = [r for i, r in enumerate(rows) if i not in bad]
            # The named rows are tried alone: each gets its own error (or lands, if it failed only
            # because of a neighbour).
            outcomes = [o for r in named for o in await self._load(model, header, [r])]
            return outcomes + await self._load(model, header, rest)
        half = len(rows) // 2
        return await self._load(model, header, rows[:half]) + await self._load(model, header, rows[half:])

    async def _writes(self, model: str, events: list[Event], fields: convert.Fields) -> list[Outcome]:
        """Writes by ``odoo_id``. Those with a base are checked against Odoo's current values first
        (one ``read`` for all of them); then the writes of the same values go as one
        ``write(ids, values)`` (an app's mass UPDATE costs a few calls, not one per row)."""
        outcomes: list[Outcome] = []
        valid: list[Event] = []
        for e in events:
            try:
                for n, v in e.payload.items():
                    convert.write_value(e.model, n, v, fields)
            except convert.PayloadError as err:
                outcomes.append(Outcome(e, "dead", error=str(err)))
                continue
            valid.append(e)
        current: dict[int, dict[str, Any]] = {}
        based = [e for e in valid if e.base]
        if based:
            names = sorted({n for e in based for n in e.payload if e.base and n in e.base})
            try:
                rows = await self.odoo.read(model, sorted({e.odoo_id for e in based if e.odoo_id}), names)
            except OdooError as err:
                return outcomes + [_failed(e, err) for e in valid]
            current = {int(r["id"]): r for r in rows}
        policy = self.conflict_policies.get(model, "hold")
        groups: dict[str, tuple[dict[str, Any], list[tuple[Event, conflicts.Check]]]] = {}
        for e in valid:
            assert e.odoo_id is not None
            found = conflicts.check(e.payload, e.base, current.get(e.odoo_id), fields, policy)
            if not found.write:  # replays, held or dropped fields only: nothing to send
                outcomes.append(_written(e, found))
                continue
            vals = {n: convert.write_value(model, n, v, fields) for n, v in found.write.items()}
            same = json.dumps(vals, sort_keys=True, default=str)
            groups.setdefault(same, (vals, []))[1].append((e, found))
        # The groups at once (they write different records): the read above is then as close as it can
        # be to every write (the window in which an edit made in Odoo is overwritten unseen).
        written = await asyncio.gather(
            *(self._write_group(model, vals, members) for vals, members in groups.values())
        )
        return outcomes + [o for group in written for o in group]

    async def _write_group(
        self, model: str, vals: dict[str, Any], members: list[tuple[Event, conflicts.Check]]
    ) -> list[Outcome]:
        """One ``write`` of ``vals`` to the records of ``members``; when Odoo refuses it for a reason
        that may be one record's (a missing id, a constraint), each is written alone."""
        ids = sorted({e.odoo_id for e, _ in members if e.odoo_id is not None})
        try:
            await self.odoo.write(model, ids, vals)
        except (OdooTransientError, OdooAuthenticationError) as err:
            return [_failed(e, err) for e, _ in members]
        except OdooError as err:
            if len(ids) == 1:
                return [_failed(e, err) for e, _ in members]
            by_id: dict[int, list[tuple[Event, conflicts.Check]]] = defaultdict(list)
            for e, found in members:
                by_id[e.odoo_id or 0].append((e, found))
            alone = await asyncio.gather(*(self._write_group(model, vals, group) for group in by_id.values()))
            return [o for outcomes in alone for o in outcomes]
        return [_written(e, found) for e, found in members]

    async def _one(self, e: Event) -> Outcome:
        try:
            return await self._delete(e)
        except OdooError as err:
            return _failed(e, err)

    async def _delete(self, e: Event) -> Outcome:
        target = e.odoo_id
        if e.key is not None:
            ref = await self.odoo.check_object_reference(
                self.cfg.xmlid_module, xmlid.external_name(e.model, e.key)
            )
            if ref is None:
                return Outcome(e, "done")  # never created, or already deleted
            target = ref[1]
        assert target is not None
        try:
            if self.delete_modes.get(e.model) == "archive":
                await self.odoo.call(e.model, "action_archive", ids=[target])
            else:
                await self.odoo.unlink(e.model, [target])
        except OdooMissingError:
            return Outcome(e, "done", result_id=target)  # already gone: deleting it again succeeds
        return Outcome(e, "done", result_id=target)

    # ----------------------------------------------------------------------------------- record
    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Queue outcomes for the consumer's next statement (a claim, or ``flush``). A transient
        failure becomes a retry after the policy's delay (at least ``outbox.timeout_fence_seconds``
        after a call that got no answer), or dead once the attempts are used up."""
        outcomes = list(outcomes)
        heads = {o.event.id: o for o in outcomes if o.event.fold_of is None}
        for o in sorted(outcomes, key=_folded_last):
            head = heads.get(o.event.fold_of) if o.event.fold_of is not None else None
            if head is not None and o.status == "retry":
                # A folded event follows its head's decision, so that the whole fold ends alike and the
                # record's chain stays in order (one of them dead and the others pending would not).
                o.status, o.error, o.delay = head.status, head.error, head.delay
            elif o.status == "retry":
                decision = self.strategy.decide(attempts=o.event.attempts, transient=True)
                if decision.dead:
                    o.status = "dead"
                    o.error = f"gave up after {o.event.attempts} attempts: {o.error}"
                else:
                    o.delay = decision.delay_seconds
                    if o.may_land_later and o.delay < self.cfg.timeout_fence_seconds:
                        # Not before the request that got no answer can no longer land: the retry, and
                        # the record's later events behind it, would otherwise be overwritten by it.
                        o.delay = self.cfg.timeout_fence_seconds
            self._outcomes.append(o)
        self._outcomes_ready.set()

    def _recorded(
        self,
        outcomes: list[Outcome],
        done: list[Outcome],
        retry: list[Outcome],
        dead: list[Outcome],
        done_seconds: Sequence[float],
    ) -> None:
        """After the statement that wrote ``outcomes`` committed: metrics, logs, the test signal."""
        self._held.difference_update(o.event.id for o in outcomes)
        # Of the done events this consumer still held (the others are not counted twice).
        metrics.OUTBOX_DELIVERY_SECONDS.observe_all([max(0.0, s) for s in done_seconds])
        # Metrics once per model and op or kind, not once per event (they cost more than the SQL).
        delivered = Counter((o.event.model, o.event.op) for o in done)
        for (model, op), n in delivered.items():
            metrics.OUTBOX_DELIVERED.labels(model=model, op=op).inc(n)
        found = Counter((o.event.model, self.conflict_policies.get(o.event.model, "hold")) for o in done
                        for _ in o.conflicts or ())  # fmt: skip
        for (model, policy), n in found.items():
            metrics.OUTBOX_CONFLICTS.labels(model=model, policy=policy).inc(n)
        for o in done:
            if o.held is not None:
                log.warning("outbox event %d (write %s id %s): %s", o.event.id, o.event.model, o.event.odoo_id,
                            o.held, extra={"event_id": o.event.id, "model": o.event.model})  # fmt: skip
        if retry or dead:
            failures = Counter((o.event.model, "transient") for o in retry)
            failures.update((o.event.model, "transient" if o.transient else "permanent") for o in dead)
            for (model, kind), n in failures.items():
                metrics.OUTBOX_FAILURES.labels(model=model, kind=kind).inc(n)
        for o in dead:
            log.warning("outbox event %d (%s %s) is dead: %s", o.event.id, o.event.op, o.event.model, o.error,
                        extra={"event_id": o.event.id, "model": o.event.model})  # fmt: skip
        if self.on_recorded is not None:
            self.on_recorded(outcomes)

    # ------------------------------------------------------------------------------ housekeeping
    async def _housekeeping(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.housekeep()
            except SyncdError as e:
                log.warning("outbox housekeeping failed: %s", e)
            await wait_any(stop, seconds=HOUSEKEEPING_EVERY)

    async def housekeep(self) -> int:
        """Delete done events past retention; refresh the outbox gauges. Returns rows deleted."""
        deleted = 0
        with db.translate_errors("outbox housekeeping"):
            async with self.pool.acquire() as conn:
                while True:
                    status = await conn.execute(
                        db.queries["outbox_delete_done"], self.cfg.retention_days * 86400.0, 10_000
                    )
                    n = int(status.rsplit(" ", 1)[-1])
                    deleted += n
                    if n < 10_000:
                        break
                now = time.monotonic()
                fresh = self._done_count is None or now - self._done_count[0] >= DONE_COUNT_EVERY
                counts = await read_counts(conn, done=fresh)
                if fresh:
                    self._done_count = (now, counts["done"])
                elif self._done_count is not None:
                    counts["done"] = self._done_count[1]
                oldest = await conn.fetchval(db.queries["outbox_oldest_pending_age"])
                held = await conn.fetch(db.queries["outbox_conflicts_held"])
                # A safety net, normally idle: events queued behind one that finished without waking
                # them (e.g. finished by a consumer of a version before migration 0007).
                woken = await conn.fetch(db.queries["outbox_wake"], None)
                if woken:
                    log.warning("outbox: woke %d events whose predecessor had finished without waking them",
                                len(woken))  # fmt: skip
        for s, n in counts.items():
            metrics.OUTBOX_EVENTS.labels(status=s).set(n)
        metrics.OUTBOX_OLDEST_PENDING_AGE.set(oldest or 0.0)
        metrics.OUTBOX_OLDEST_CONFLICT_AGE.set(max((r["oldest_seconds"] for r in held), default=0.0))
        return deleted


async def read_counts(conn: db.Connection, *, done: bool = True) -> dict[str, int]:
    """Outbox events per status (every status a key; ``conflict``: held conflicts); ``done=False``
    leaves the done count at 0 (see DONE_COUNT_EVERY)."""
    counts = dict.fromkeys(("pending", "inflight", "done", "dead", "conflict"), 0)
    counts.update({r["status"]: r["n"] for r in await conn.fetch(db.queries["outbox_open_counts"])})
    if done:
        counts["done"] = await conn.fetchval(db.queries["outbox_done_count"])
    return counts


async def discard_events(conn: db.Connection, ids: Sequence[int]) -> list[int]:
    """Delete events (never in-flight ones), cutting them out of their records' chains so that the
    events queued behind them move up; returns the ids deleted."""
    async with conn.transaction():
        rows = await conn.fetch(db.queries["outbox_discard"], list(ids))
        wake = [r["wake"] for r in rows if r["wake"] is not None]
        if wake:
            await conn.execute(db.queries["outbox_wake"], wake)
    return sorted(r["id"] for r in rows)


def fold(events: Iterable[Event]) -> tuple[list[Event], dict[int, list[Event]]]:
    """The events to deliver — heads carrying the merged values of the events folded into them (in id
    order, the last value of each field wins) — and the folded events by head id."""
    folded: dict[int, list[Event]] = defaultdict(list)
    singles: list[Event] = []
    for e in events:
        if e.fold_of is None:
            singles.append(e)
        else:
            folded[e.fold_of].append(e)
    if not folded:
        return singles, {}
    heads: list[Event] = []
    for e in singles:
        members = folded.get(e.id)
        if members:
            members.sort(key=_event_id)
            payload = dict(e.payload)
            for m in members:
                payload.update(m.payload)
            base = conflicts.merged_base([(x.payload, x.base) for x in (e, *members)])
            e = e._replace(payload=payload, base=base)
        heads.append(e)
    # An event whose head is not among ``events`` (not claimed together) is delivered by itself.
    known = {e.id for e in singles}
    for head_id in [h for h in folded if h not in known]:
        heads += folded.pop(head_id)
    return heads, folded


def spread(outcome: Outcome, members: Iterable[Event]) -> list[Outcome]:
    """The outcome of a head's call, for each event folded into it. Conflicts found (and fields
    held) go to the last of them, the record's latest change, which a mirror row waits on; the
    others end done."""
    followers = [
        Outcome(
            m, outcome.status, result_id=outcome.result_id, error=outcome.error, transient=outcome.transient
        )
        for m in members
    ]
    if followers and (outcome.conflicts or outcome.held):
        followers[-1].conflicts, followers[-1].held = outcome.conflicts, outcome.held
        outcome.conflicts = outcome.held = None
    return followers


def _folded_last(o: Outcome) -> bool:
    return o.event.fold_of is not None


def claim_query(batch_size: int) -> str:
    """``outbox_claim`` leasing up to ``batch_size`` events (0: it only records outcomes). The size is
    part of the text so that PostgreSQL can keep one generic plan for it (see queries.sql)."""
    return db.queries["outbox_claim"].replace(":batch_size", str(int(batch_size)))


_event_id = attrgetter("id")
_outcome_event_id = attrgetter("event.id")


def _text(error: str | None) -> str:
    """An error message as PostgreSQL text (which cannot hold NUL)."""
    return (error or "").replace("\x00", "\\x00")


def _failed(e: Event, err: OdooError) -> Outcome:
    # A refused login is not the event's fault (a rotated or revoked API key): like an outage, the
    # event waits with backoff, and a batch refused as a whole pauses the consumer, while /readyz
    # and the alerts say what is wrong. Dead-lettering would turn a credentials mistake into a
    # manual redrive of everything queued meanwhile.
    if err.transient or isinstance(err, OdooAuthenticationError):
        return Outcome(e, "retry", error=str(err), transient=True, may_land_later=may_land_later(err))
    return Outcome(e, "dead", error=str(err))


def _written(e: Event, found: conflicts.Check) -> Outcome:
    """A write that went through (or had nothing left to send), with the conflicts it found."""
    return Outcome(
        e, "done", result_id=e.odoo_id, conflicts=found.conflicts or None, held=found.held_message()
    )


def _load_error(messages: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for m in messages[:3]:
        where = f"field {m['field']!r}: " if m.get("field") else ""
        parts.append(f"{where}{m.get('message', m)}")
    return (
        "Odoo rejected the values: " + "; ".join(parts)
        if parts
        else "Odoo rejected the row without saying why"
    )
