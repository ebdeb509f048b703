"""Fault injection for the fake Odoo, and the record of the calls it received.

``fake.faults`` holds switches that apply to both transports:

- ``latency_seconds``: added to every answer;
- ``fail_next(n, status=503, retry_after=None)``: the next ``n`` calls get that HTTP status before anything
  runs (429 carries ``Retry-After``);
- ``serialization_failure_next(n)``: the next ``n`` calls fail with Odoo's ``SerializationFailure`` (JSON-RPC
  error envelope, JSON-2 HTTP 500), nothing applied;
- ``load_conflict_next(n, message=SERIALIZATION_TEXT, row=0)``: the next ``n`` ``load()`` calls run and
  then answer the way Odoo 19 reports a row it could not save because of a concurrent transaction: no
  error, a normal answer with ``ids: false`` and an in-band message of type ``error`` holding PostgreSQL's
  text for that row (``row`` counts from 0, capped at the last row), the whole batch rolled back. Other
  texts: ``DEADLOCK_TEXT``, ``LOCK_TIMEOUT_TEXT``;
- ``hang_next(n)``: the next ``n`` calls never answer (the client must time out); ``release_hangs()`` or the
  server's shutdown ends them by closing the connection;
- ``drop_next(n)``: the next ``n`` calls see their connection closed without an answer;
- ``late_commit_next(n, delay_seconds=None)``: the next ``n`` *writing* calls are stamped when they start
  but become visible (and answer) only after ``delay_seconds``, or when ``release_late_commits()`` is called
  if no delay was given. That is the "transaction committed after its write_date" case.

Every switch but ``load_conflict_next`` takes ``methods=`` to aim at some method names only (``{"write", "load"}``). Faults are
consumed in the order they were set. ``await faults.wait_held("late_commit")`` (or ``"hang"``, ``"lock"``)
returns once a call is held that way: a test signal, so tests act at the right moment without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: PostgreSQL's texts (``str()`` of the psycopg2 error) that Odoo 19's ``load()`` puts in a row's message.
SERIALIZATION_TEXT = "could not serialize access due to concurrent update\n"
DEADLOCK_TEXT = "deadlock detected\n"
LOCK_TIMEOUT_TEXT = "canceling statement due to lock timeout\n"


@dataclass(frozen=True)
class CallRecord:
    """One RPC call as the fake received it (before any fault or error)."""

    transport: str  # "jsonrpc" or "json2"
    service: str  # "common", "object", "db" (JSON-RPC) or "json2"
    model: str | None
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    at: datetime
    fault: str | None = None


@dataclass
class PendingFault:
    """A fault waiting for its calls."""

    kind: str  # "fail", "serialization", "hang", "drop", "late_commit", "load_conflict"
    remaining: int
    methods: frozenset[str] | None = None
    status: int = 503
    retry_after: float | None = None
    delay_seconds: float | None = None
    #: load_conflict: the row (0-based) that gets the message, and its text
    row: int = 0
    message: str = SERIALIZATION_TEXT

    @property
    def label(self) -> str:
        return f"fail:{self.status}" if self.kind == "fail" else self.kind


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class Faults:
    """Switches that make the fake Odoo misbehave like a real deployment can (see the module docstring)."""

    def __init__(self) -> None:
        self.latency_seconds: float = 0.0
        #: how long a call waits for a row locked by another transaction before SerializationFailure
        self.lock_timeout_seconds: float = 17.0
        self._pending: list[PendingFault] = []
        self._lock = threading.Lock()
        self._waiters: dict[str, list[_Waiter]] = {"hang": [], "late_commit": []}
        self._held: dict[str, int] = {"hang": 0, "late_commit": 0, "lock": 0}
        self._watchers: list[_Waiter] = []

    # ------------------------------------------------------------------ switches

    def _add(self, fault: PendingFault, methods: Collection[str] | None) -> None:
        if fault.remaining < 1:
            return
        fault.methods = frozenset(methods) if methods is not None else None
        with self._lock:
            self._pending.append(fault)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        retry_after: float | None = None,
        methods: Collection[str] | None = None,
    ) -> None:
        self._add(PendingFault("fail", n, status=status, retry_after=retry_after), methods)

    def serialization_failure_next(self, n: int = 1, *, methods: Collection[str] | None = None) -> None:
        self._add(PendingFault("serialization", n), methods)

    def load_conflict_next(self, n: int = 1, *, message: str = SERIALIZATION_TEXT, row: int = 0) -> None:
        self._add(PendingFault("load_conflict", n, row=row, message=message), {"load"})

    def hang_next(self, n: int = 1, *, methods: Collection[str] | None = None) -> None:
        self._add(PendingFault("hang", n), methods)

    def drop_next(self, n: int = 1, *, methods: Collection[str] | None = None) -> None:
        self._add(PendingFault("drop", n), methods)

    def late_commit_next(
        self, n: int = 1, delay_seconds: float | None = None, *, methods: Collection[str] | None = None
    ) -> None:
        self._add(PendingFault("late_commit", n, delay_seconds=delay_seconds), methods)

    def clear(self) -> None:
        """Forget pending faults and latency; release whatever hangs or waits."""
        with self._lock:
            self._pending.clear()
        self.latency_seconds = 0.0
        self.release_hangs()
        self.release_late_commits()

    @property
    def pending(self) -> list[PendingFault]:
        with self._lock:
            return list(self._pending)

    # ------------------------------------------------------------------ used by the server

    def take(self, method: str, *, writes: bool) -> PendingFault | None:
        """Consume and return the first pending fault that applies to this call."""
        with self._lock:
            for fault in self._pending:
                if fault.methods is not None and method not in fault.methods:
                    continue
                if fault.kind == "late_commit" and not writes:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._pending.remove(fault)
                return fault
        return None

    async def wait_released(self, kind: str, seconds: float | None) -> None:
        """Wait until ``release_*`` is called for ``kind`` or ``seconds`` pass (None: no limit)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._lock:
            self._waiters[kind].append(waiter)
        try:
            with self.holding(kind), contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.future, seconds)
        finally:
            with self._lock:
                if waiter in self._waiters[kind]:
                    self._waiters[kind].remove(waiter)

    # ------------------------------------------------------------------ test signals

    @contextlib.contextmanager
    def holding(self, kind: str) -> Iterator[None]:
        """Count a call as held by ``kind`` ("hang", "late_commit", or "lock": waiting for a row lock)."""
        with self._lock:
            self._held[kind] = self._held.get(kind, 0) + 1
            watchers, self._watchers = self._watchers, []
        _wake(watchers)
        try:
            yield
        finally:
            with self._lock:
                self._held[kind] -= 1

    def held(self, kind: str) -> int:
        """How many calls are held right now by ``kind``."""
        with self._lock:
            return self._held.get(kind, 0)

    async def wait_held(self, kind: str, count: int = 1) -> None:
        """Return once ``count`` calls are held by ``kind``: lets a test act while a call is stuck, no sleeping."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._held.get(kind, 0) >= count:
                    return
                watcher = _Waiter(loop, loop.create_future())
                self._watchers.append(watcher)
            await watcher.future

    def _release(self, kind: str) -> int:
        with self._lock:
            waiters, self._waiters[kind] = self._waiters[kind], []
        _wake(waiters)
        return len(waiters)

    def release_hangs(self) -> int:
        """End the calls that hang (their connections are closed); returns how many there were."""
        return self._release("hang")

    def release_late_commits(self) -> int:
        """Commit and answer the late-commit calls that wait without a delay; returns how many."""
        return self._release("late_commit")


def _wake(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
