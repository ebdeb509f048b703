"""Keeps the daemon's components running: restarts one that crashes, stops them in order.

A component is a coroutine function ``run(stop)`` that works until its ``stop`` event is set and then
returns. One that returns or raises before that has crashed: it is restarted after a pause that
doubles from ``backoff_initial`` up to ``backoff_max``, its lower half random
(:func:`syncd.backoff.backoff`), and starts over once the component has run for a whole
``window_seconds``. A component that crashes more than ``max_restarts`` times within
``window_seconds`` is beyond help here: the supervisor gives up, stops everything, and reports it,
so that the process exits non-zero and systemd or Kubernetes restart it from scratch.

Shutdown goes by phase, lowest first: the workers (phase 0: CDC, outbox) are asked to stop and given
``grace_seconds`` to finish or give back what they hold; only then do the plumbing components
(phase 1: health probes, HTTP) stop, so that /readyz and /metrics answer until the very end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from syncd.aio import wait_any
from syncd.backoff import backoff

log = logging.getLogger("syncd.supervisor")

RunFn = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class Component:
    """One supervised part of the daemon."""

    name: str
    run: RunFn
    #: Shutdown order: lower phases stop first.
    phase: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    crashes: deque[float] = field(default_factory=deque, repr=False)


class Supervisor:
    """Runs components until :meth:`shutdown` (or a component crashes too often)."""

    def __init__(
        self,
        components: list[Component],
        *,
        grace_seconds: float,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        max_restarts: int = 5,
        window_seconds: float = 600.0,
        on_restart: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[asyncio.Event, float], Awaitable[None]] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.components = components
        self.grace_seconds = grace_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self.on_restart = on_restart
        self.clock = clock
        #: The jitter of the pauses (tests pass a fixed one).
        self.rng = rng
        #: How the pause before a restart is waited (cut short by the component's stop event).
        self.pause = pause or (lambda stop, seconds: wait_any(stop, seconds=seconds))
        #: Set when the supervisor should stop everything (a signal, or giving up).
        self.stopping = asyncio.Event()
        #: The name of the component that crashed too often, when the supervisor gave up.
        self.gave_up: str | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, component: Component) -> None:
        """Start one more component (the workers join once both sides are reachable)."""
        if self.stopping.is_set():
            return
        if component not in self.components:
            self.components.append(component)
        self._tasks[component.name] = asyncio.create_task(self._keep(component), name=component.name)

    def shutdown(self) -> None:
        self.stopping.set()

    async def run(self) -> bool:
        """Until :meth:`shutdown`, then stop every component in phase order.

        Returns True after an ordinary shutdown, False when it gave up on a crashing component."""
        for c in self.components:
            if c.name not in self._tasks:
                self.start(c)
        try:
            await self.stopping.wait()
        finally:
            await self._stop_all()
        return self.gave_up is None

    async def _stop_all(self) -> None:
        for phase in sorted({c.phase for c in self.components}):
            members = [c for c in self.components if c.phase == phase and c.name in self._tasks]
            for c in members:
                c.stop.set()
            running = [self._tasks[c.name] for c in members]
            if not running:
                continue
            # Workers get the grace period; whatever is still running afterwards is cancelled
            # (its leases expire or were given back; a CDC page rolls back with its cursor).
            _, late = await asyncio.wait(running, timeout=self.grace_seconds)
            for task in late:
                log.warning("%s did not stop within %.0f s: cancelled", task.get_name(), self.grace_seconds)
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _keep(self, c: Component) -> None:
        in_a_row = 0  # crashes since it last ran a whole window: the attempt number of the pause
        while not c.stop.is_set():
            started = self.clock()
            error: BaseException | None = None
            try:
                await c.run(c.stop)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = e
            if c.stop.is_set():
                if error is not None:
                    log.warning("%s failed while stopping: %r", c.name, error)
                return
            now = self.clock()
            c.crashes.append(now)
            while c.crashes and c.crashes[0] < now - self.window_seconds:
                c.crashes.popleft()
            if self.on_restart is not None:
                self.on_restart(c.name)
            if now - started >= self.window_seconds:
                in_a_row = 0  # it had been healthy for a long time
            in_a_row += 1
            what = f"crashed: {error!r}" if error is not None else "stopped on its own"
            if len(c.crashes) > self.max_restarts:
                log.error(
                    "%s %s; that is %d crashes within %.0f s: giving up, syncd stops",
                    c.name, what, len(c.crashes), self.window_seconds, exc_info=error,
                )  # fmt: skip
                self.gave_up = c.name
                self.stopping.set()
                return
            delay = backoff(in_a_row, self.backoff_initial, self.backoff_max, rng=self.rng)
            log.error("%s %s; restarting it in %.1f s", c.name, what, delay, exc_info=error)
            await self.pause(c.stop, delay)
