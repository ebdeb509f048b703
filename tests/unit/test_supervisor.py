"""The supervisor: restarts with backoff, gives up on a crash loop, stops components by phase."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syncd.supervisor import Component, Supervisor

pytestmark = pytest.mark.unit


class Flaky:
    """A component that crashes its first ``crashes`` runs (raising, or returning when
    ``returns``), then works until stopped."""

    def __init__(self, crashes: int, *, returns: bool = False) -> None:
        self.crashes = crashes
        self.returns = returns
        self.runs = 0
        self.working = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            if self.returns:
                return
            raise RuntimeError(f"boom {self.runs}")
        self.working.set()
        await stop.wait()


class Pauses:
    """Records the pauses before restarts instead of waiting them."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, stop: asyncio.Event, seconds: float) -> None:
        self.seconds.append(seconds)


def supervisor(components: list[Component], pauses: Pauses, **kw: Any) -> Supervisor:
    return Supervisor(components, grace_seconds=kw.pop("grace_seconds", 5.0), pause=pauses, **kw)


async def test_a_crashed_component_is_restarted_with_doubling_pauses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky, pauses, restarted = Flaky(crashes=5), Pauses(), []
    sup = supervisor(
        [Component("cdc", flaky.run)], pauses, backoff_initial=1, backoff_max=4, max_restarts=10,
        on_restart=restarted.append, rng=lambda: 1.0,  # the top of each pause's jitter
    )  # fmt: skip
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(flaky.working.wait(), 5)
    sup.shutdown()
    assert await asyncio.wait_for(running, 5) is True
    assert flaky.runs == 6
    assert pauses.seconds == [1, 2, 4, 4, 4]
    assert restarted == ["cdc"] * 5
    lines = [r.getMessage() for r in caplog.records if "restarting it in" in r.getMessage()]
    assert len(lines) == 5 and lines[0].startswith("cdc crashed: RuntimeError('boom 1')")


async def test_the_pauses_before_restarts_are_jittered() -> None:
    """Components that crash together (PostgreSQL restarted under all of them) do not come back
    together: each pause is drawn between half its ceiling and the ceiling."""
    flaky, pauses = Flaky(crashes=4), Pauses()
    sup = supervisor(
        [Component("cdc", flaky.run)], pauses, backoff_initial=1, backoff_max=4, max_restarts=10,
        rng=lambda: 0.0,
    )  # fmt: skip
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(flaky.working.wait(), 5)
    sup.shutdown()
    assert await asyncio.wait_for(running, 5) is True
    assert pauses.seconds == [0.5, 1, 2, 2]


async def test_a_component_that_returns_on_its_own_counts_as_crashed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky, pauses = Flaky(crashes=1, returns=True), Pauses()
    sup = supervisor([Component("outbox", flaky.run)], pauses)
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(flaky.working.wait(), 5)
    sup.shutdown()
    await running
    assert flaky.runs == 2
    assert any("outbox stopped on its own" in r.getMessage() for r in caplog.records)


async def test_it_gives_up_when_a_component_keeps_crashing(caplog: pytest.LogCaptureFixture) -> None:
    crashing, healthy, pauses = Flaky(crashes=1000), Flaky(crashes=0), Pauses()
    sup = supervisor(
        [Component("cdc", crashing.run), Component("outbox", healthy.run)], pauses, max_restarts=3
    )
    assert await asyncio.wait_for(sup.run(), 5) is False
    assert sup.gave_up == "cdc"
    assert crashing.runs == 4  # the first run and 3 restarts
    assert healthy.working.is_set()
    assert any("4 crashes within 600 s: giving up" in r.getMessage() for r in caplog.records)


async def test_crashes_older_than_the_window_are_forgotten() -> None:
    now = [0.0]
    crashing, pauses = Flaky(crashes=6), Pauses()

    async def pause(stop: asyncio.Event, seconds: float) -> None:
        await pauses(stop, seconds)
        now[0] += 400  # each restart comes 400 s after the last crash: never 3 within 600 s

    sup = Supervisor(
        [Component("cdc", crashing.run)], grace_seconds=5, max_restarts=2, window_seconds=600,
        clock=lambda: now[0], pause=pause,
    )  # fmt: skip
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(crashing.working.wait(), 5)
    sup.shutdown()
    assert await running is True
    assert crashing.runs == 7


async def test_shutdown_stops_lower_phases_first_and_cancels_after_the_grace_period() -> None:
    order: list[str] = []
    http_saw_workers_stopped = asyncio.Event()
    started = {name: asyncio.Event() for name in ("worker", "stubborn", "http")}

    async def worker(stop: asyncio.Event) -> None:
        started["worker"].set()
        await stop.wait()
        order.append("worker stopped")

    async def stubborn(stop: asyncio.Event) -> None:
        started["stubborn"].set()
        try:
            await asyncio.Event().wait()  # ignores stop
        except asyncio.CancelledError:
            order.append("stubborn cancelled")
            raise

    async def http(stop: asyncio.Event) -> None:
        started["http"].set()
        await stop.wait()
        if order == ["worker stopped", "stubborn cancelled"]:
            http_saw_workers_stopped.set()
        order.append("http stopped")

    sup = supervisor(
        [Component("http", http, phase=1), Component("worker", worker), Component("stubborn", stubborn)],
        Pauses(), grace_seconds=0.05,
    )  # fmt: skip
    running = asyncio.create_task(sup.run())
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started.values())), 5)
    sup.shutdown()
    assert await asyncio.wait_for(running, 5) is True
    assert order == ["worker stopped", "stubborn cancelled", "http stopped"]
    assert http_saw_workers_stopped.is_set()


async def test_a_component_started_later_is_stopped_too() -> None:
    late = Flaky(crashes=0)
    sup = supervisor([], Pauses())
    running = asyncio.create_task(sup.run())
    sup.start(Component("late", late.run))
    await asyncio.wait_for(late.working.wait(), 5)
    sup.shutdown()
    assert await asyncio.wait_for(running, 5) is True
    assert late.runs == 1
