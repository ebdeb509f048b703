"""Readiness: is PostgreSQL reachable, is Odoo reachable, is the schema current.

:class:`Health` holds the latest answer of each check (what ``/readyz`` reports) and logs one line
when a check changes state — "PostgreSQL unreachable …", "PostgreSQL reachable again after 42 s" —
never one per retry; ``when_back`` tells a component when a check recovers (the outbox consumer ends
its pause when Odoo answers again). :class:`HealthMonitor` probes both sides every
``daemon.probe_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from syncd import db, metrics, migrate
from syncd.aio import wait_any
from syncd.odoo import OdooClient

log = logging.getLogger("syncd.health")

#: Check name → how log lines name it.
CHECKS = {"postgres": "PostgreSQL", "odoo": "Odoo", "schema": "the database schema"}
#: Checks that are dependencies (``syncd_dependency_up{dependency}``).
DEPENDENCIES = ("postgres", "odoo")


@dataclass
class Check:
    #: None until first checked.
    ok: bool | None
    detail: str
    since: float


class Health:
    """The latest state of every readiness check, and whether the daemon serves at all."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.checks = {name: Check(None, "not checked yet", clock()) for name in CHECKS}
        #: The workers run (both sides were reached once); False again while shutting down.
        self.serving = False
        self.stopping = False
        self._when_back: dict[str, list[Callable[[], None]]] = {name: [] for name in CHECKS}
        self._publish()

    def when_back(self, name: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` each time check ``name`` goes from not ok to ok (not when it is first
        found ok). Returns the function that stops the calls."""
        callbacks = self._when_back[name]
        callbacks.append(callback)

        def cancel() -> None:
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)

        return cancel

    @property
    def ready(self) -> bool:
        return self.serving and not self.stopping and all(c.ok for c in self.checks.values())

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        """Record a check's result; log when its state changes."""
        old = self.checks[name]
        now = self._clock()
        what = CHECKS[name]
        if old.ok is None:
            if ok:
                log.info("%s ok%s", what, f": {detail}" if detail else "")
            else:
                log.warning("%s not ok: %s", what, detail)
        elif old.ok and not ok:
            log.warning("%s is not ok any more: %s", what, detail)
        elif not old.ok and ok:
            log.info("%s ok again after %.0f s%s", what, now - old.since, f": {detail}" if detail else "")
        if old.ok is ok:
            old.detail = detail or old.detail
        else:
            self.checks[name] = Check(ok, detail, now)
        self._publish()
        if old.ok is False and ok:
            for callback in list(self._when_back[name]):
                try:
                    callback()
                except Exception:
                    log.exception("a callback for %s being ok again failed", what)

    def set_serving(self, serving: bool) -> None:
        self.serving = serving
        self._publish()

    def set_stopping(self) -> None:
        self.stopping = True
        self._publish()

    def report(self) -> dict[str, Any]:
        """The body of ``/readyz``."""
        return {
            "ready": self.ready,
            "serving": self.serving,
            "stopping": self.stopping,
            "checks": {
                name: {"ok": bool(c.ok), "detail": c.detail, "for_seconds": round(self._clock() - c.since, 1)}
                for name, c in self.checks.items()
            },
        }

    def _publish(self) -> None:
        for name in DEPENDENCIES:
            metrics.DEPENDENCY_UP.labels(dependency=name).set(1 if self.checks[name].ok else 0)
        metrics.READY.set(1 if self.ready else 0)


class HealthMonitor:
    """Probes PostgreSQL (and the schema version) and Odoo on an interval; a daemon component."""

    def __init__(
        self, health: Health, pool: asyncpg.Pool, odoo: OdooClient, *, interval: float, timeout: float
    ) -> None:
        self.health = health
        self.pool = pool
        self.odoo = odoo
        self.interval = interval
        self.timeout = timeout

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until ``stop``."""
        while not stop.is_set():
            await self.probe()
            await wait_any(stop, seconds=self.interval)

    async def probe(self) -> None:
        await asyncio.gather(self.probe_postgres(), self.probe_odoo())

    async def probe_postgres(self) -> None:
        async def check() -> None:
            with db.translate_errors("probing PostgreSQL"):
                async with self.pool.acquire() as conn:
                    status = await migrate.check(conn)
            self.health.set("schema", status.current, schema_detail(status))

        await self._probe("postgres", check)

    async def probe_odoo(self) -> None:
        # Any request that succeeded within the interval is as good an answer as a probe.
        await self._probe("odoo", lambda: self.odoo.ping(fresh=self.interval))

    async def _probe(self, name: str, check: Callable[[], Awaitable[None]]) -> None:
        """Run ``check`` within the timeout; record ``name`` as ok, or not ok with why."""
        try:
            async with asyncio.timeout(self.timeout):
                await check()
        except TimeoutError:
            self.health.set(name, False, f"no answer within {self.timeout:.0f} s")
        except Exception as e:
            self.health.set(name, False, str(e) or type(e).__name__)
        else:
            self.health.set(name, True)


def schema_detail(status: migrate.SchemaStatus) -> str:
    if status.current:
        return f"version {status.version}"
    return "; ".join(status.problems())
