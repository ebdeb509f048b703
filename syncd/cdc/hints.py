"""Webhook hints: "record 43 of res.partner changed", passed to the replica that polls the model.

A hint never writes data: it only makes the model's poll come at once (:meth:`CdcService.wake`),
and polling stays the source of truth, so a hint that is lost costs latency, never a change.

- **local**: this replica polls the model; its loop wakes.
- **forwarded**: another replica may poll it. Hints are gathered for ``FORWARD_BATCH_SECONDS`` and
  sent as one ``NOTIFY syncd_cdc_hint`` per model per batch (a flood of hints becomes a few
  NOTIFYs, not one each); every replica LISTENs and wakes the models it polls.
- **dropped**: behind a transaction-mode pooler there is no LISTEN, and before the router runs there
  is no connection: the model's next interval poll finds the change.

When hints arrive is recorded in ``syncd.cdc_state.last_hint_at``, at most once a second per model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from syncd import db, metrics
from syncd.aio import wait_any
from syncd.config import Settings
from syncd.errors import SyncdError

log = logging.getLogger("syncd.cdc.hints")

CHANNEL = "syncd_cdc_hint"
#: How long forwarded hints are gathered before one NOTIFY per model carries them all.
FORWARD_BATCH_SECONDS = 0.02
#: Record ids per forwarded NOTIFY: 500 ids of at most 10 digits and the model's name stay far below
#: PostgreSQL's 8000-byte payload limit. Beyond it the leader's hinted poll reads what its probe
#: finds, and the interval poll the rest.
MAX_FORWARDED_IDS = 500
#: How often ``last_hint_at`` is written (per replica; one statement for every hinted model).
RECORD_EVERY_SECONDS = 1.0
#: Pause between attempts to open the LISTEN connection while PostgreSQL does not answer.
RELISTEN_SECONDS = 5.0
#: A NOTIFY or a ``last_hint_at`` write that takes longer is given up (the hints are dropped).
STATEMENT_TIMEOUT_SECONDS = 5.0


class Waker(Protocol):
    """What the router needs of the CDC service (:class:`syncd.cdc.service.CdcService`)."""

    def wake(self, model: str, ids: Iterable[int] = ()) -> bool: ...


class HintRouter:
    """Routes webhook hints (:meth:`hint`) to the replica that polls their model; :meth:`run` is the
    daemon component that forwards, listens and records.

    ``service`` is the CDC service running in this process right now (the daemon sets it on every
    start of its CDC component; None in an outbox-only process or while CDC restarts).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The models hints are accepted for: the configured ones.
        self.models = frozenset(m.model for m in settings.cdc.models)
        self.service: Waker | None = None
        #: NOTIFY reaches the other replicas only where LISTEN works (not behind a transaction pooler).
        self.forwarding = settings.database.session_state
        #: Only a process that polls models has anything to wake on other replicas' hints.
        self.listening = self.forwarding and settings.cdc.enabled and bool(self.models)
        self._running = False
        #: Per model: hints waiting for the next NOTIFY, and their record ids (at most MAX_FORWARDED_IDS).
        self._pending_hints: dict[str, int] = {}
        self._pending_ids: dict[str, set[int]] = {}
        self._pending = asyncio.Event()
        #: Per model: when its latest hint not yet written to cdc_state arrived (unix time).
        self._seen: dict[str, float] = {}
        self._failing = False
        for model in self.models:
            # Every series from the start at 0, so that rate()/increase() see the first hint too.
            for route in metrics.WEBHOOK_ROUTES:
                metrics.WEBHOOK_HINTS.labels(model=model, route=route)

    def hint(self, model: str, record_id: int) -> str:
        """Take one hint (``model`` must be one of :attr:`models`); returns its route: ``local``,
        ``forwarded`` (queued for the next NOTIFY, counted once it went out) or ``dropped``. Never
        blocks: the webhook answers Odoo at once."""
        self._seen[model] = time.time()
        service = self.service
        if service is not None and service.wake(model, (record_id,)):
            route = "local"
        elif self.forwarding and self._running:
            self._pending_hints[model] = self._pending_hints.get(model, 0) + 1
            ids = self._pending_ids.setdefault(model, set())
            if len(ids) < MAX_FORWARDED_IDS:
                ids.add(record_id)
            self._pending.set()
            return "forwarded"
        else:
            route = "dropped"
        metrics.WEBHOOK_HINTS.labels(model=model, route=route).inc()
        return route

    # ------------------------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event, pool: asyncpg.Pool, dsn: str) -> None:
        """Until ``stop``: send queued hints by NOTIFY in batches, wake the models polled here on
        the NOTIFYs of every replica (a dedicated LISTEN connection, opened again when it drops),
        and write ``last_hint_at`` once a second."""
        listener: asyncpg.Connection | None = None
        listen_failed = False
        next_listen = 0.0
        next_record = time.monotonic() + RECORD_EVERY_SECONDS
        self._running = True
        try:
            while not stop.is_set():
                now = time.monotonic()
                if self.listening and (listener is None or listener.is_closed()) and now >= next_listen:
                    listener, listen_failed = await self._listen(dsn, listen_failed)
                    next_listen = now + RELISTEN_SECONDS
                until = next_record
                if self.listening and listener is None:
                    until = min(until, next_listen)
                await wait_any(stop, self._pending, seconds=max(0.0, until - time.monotonic()))
                if self._pending.is_set():
                    # Hints keep coming in a burst: those of the next few ms go in the same NOTIFY.
                    await wait_any(stop, seconds=FORWARD_BATCH_SECONDS)
                    self._pending.clear()
                    await self._forward(pool)
                if time.monotonic() >= next_record:
                    next_record = time.monotonic() + RECORD_EVERY_SECONDS
                    await self._record(pool)
        finally:
            self._running = False
            self._drop_pending()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _listen(self, dsn: str, failed_before: bool) -> tuple[asyncpg.Connection | None, bool]:
        """The LISTEN connection, or None (said once per outage); and whether this attempt failed."""
        conn: asyncpg.Connection | None = None
        try:
            conn = await db.connect(dsn, self.settings.database)
            with db.translate_errors(f"LISTEN {CHANNEL}"):
                await conn.add_listener(CHANNEL, self._on_notify)
        except SyncdError as e:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            if not failed_before:
                log.warning(
                    "webhook hints: LISTEN unavailable (%s); hints from other replicas wait for the "
                    "next poll until it works again",
                    e,
                )
            return None, True
        if failed_before:
            log.info("webhook hints: LISTEN works again")
        return conn, False

    def _on_notify(self, _conn: db.Connection, _pid: int, _channel: str, payload: object) -> None:
        # Called by asyncpg for every NOTIFY on the channel, this replica's own included: models
        # polled elsewhere are ignored (their leader got the same notification).
        try:
            hint = json.loads(payload if isinstance(payload, str) else "")
            model, ids = hint["model"], [i for i in hint["ids"] if isinstance(i, int)]
        except (ValueError, TypeError, KeyError):
            log.debug("webhook hints: ignored a NOTIFY %s that is not a hint", CHANNEL)
            return
        service = self.service
        if service is not None and isinstance(model, str) and model in self.models:
            service.wake(model, ids)

    async def _forward(self, pool: asyncpg.Pool) -> None:
        counts, ids = self._pending_hints, self._pending_ids
        self._pending_hints, self._pending_ids = {}, {}
        if not counts:
            return
        payloads = [
            json.dumps({"model": model, "ids": sorted(ids.get(model, ()))}, separators=(",", ":"))
            for model in counts
        ]
        route = "forwarded"
        try:
            async with asyncio.timeout(STATEMENT_TIMEOUT_SECONDS):
                with db.translate_errors(f"NOTIFY {CHANNEL}"):
                    await pool.execute(db.queries["cdc_hint_notify"], payloads)
        except (SyncdError, TimeoutError) as e:
            route = "dropped"
            if not self._failing:
                log.warning("webhook hints: cannot pass hints on (%s); the next polls find the changes", e)
            self._failing = True
        else:
            if self._failing:
                log.info("webhook hints: passing hints on works again")
            self._failing = False
        for model, n in counts.items():
            metrics.WEBHOOK_HINTS.labels(model=model, route=route).inc(n)

    async def _record(self, pool: asyncpg.Pool) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        models = list(seen)
        at = [datetime.fromtimestamp(seen[m], UTC) for m in models]
        # Only a timestamp for `syncd odoo webhooks status`: a failure is not worth a log line of
        # its own (NOTIFY and the CDC report PostgreSQL outages).
        with contextlib.suppress(SyncdError, TimeoutError):
            async with asyncio.timeout(STATEMENT_TIMEOUT_SECONDS):
                with db.translate_errors("recording when hints arrived"):
                    await pool.execute(db.queries["cdc_state_hinted"], models, at)

    def _drop_pending(self) -> None:
        for model, n in self._pending_hints.items():
            metrics.WEBHOOK_HINTS.labels(model=model, route="dropped").inc(n)
        self._pending_hints, self._pending_ids = {}, {}
        self._pending.clear()
