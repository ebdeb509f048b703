"""Property tests of the CDC poller: random histories in the fake Odoo always end mirrored exactly.

A history interleaves creates, writes, archives, unarchives and deletes (each call is one Odoo
transaction with one ``write_date``), late commits (``fake.begin()``: stamped when it begins, visible
when it commits, several steps later; or rolled back), clock moves (mostly inside one second,
sometimes jumps) and polls with pages of 3-7 records, so that seconds straddle page boundaries,
crowded seconds are drained by id and late commits land behind the cursor.

* Late commits within the lookback (``test_polls_alone_keep_the_mirror_exact``, lookback 0, 1, 3 or
  10 s): after *every* poll the mirror holds every record Odoo shows exactly as Odoo shows it
  (deletions aside: only reconciliation sees those); at the end reconciliation finds nothing to
  re-read, and one more poll rewrites nothing.
* Late commits far beyond the lookback (``test_reconciliation_catches_what_polls_cannot``): poll +
  ``reconcile()`` still converge to Odoo's state, reconciling in tiny id chunks. One history is left
  out there, a known gap shown by ``test_a_very_late_commit_into_an_already_mirrored_second``.

Hypothesis drives synchronous tests. All examples of a test share one event loop, fake Odoo server,
Odoo client and pool (``harness``); each example gets a new fake Odoo and an empty mirror.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncd.cdc import poller as poller_module
from syncd.cdc.poller import ModelPoller
from syncd.testing import FakeOdoo, FakeTransaction, FieldSpec, ManualClock
from tests.integration.cdc_support import Rig, rig

pytestmark = pytest.mark.integration

MODEL = "x.item"
TABLE = "x_item"
FIELDS = ["name", "active", "qty"]
START = datetime(2026, 11, 22, 10, 0, 0, 250_000)
#: every clock reading (a transaction, a call the fake receives) moves the clock this much
TICK = timedelta(microseconds=100)

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ------------------------------------------------------------------------------------- histories
# Steps are plain tuples (they shrink and print well); ``pick`` values choose among the records or
# transactions that qualify when the step runs (modulo their number).

_pick = st.integers(0, 10_000)
#: clock moves: mostly inside one second (many transactions share a write_date second)
_small = st.sampled_from([0.0, 0.0005, 0.003, 0.05, 0.2, 0.45, 0.7, 0.999, 1.0, 1.3, 2.0])
_late_op = st.sampled_from(["create", "write", "write", "toggle", "unlink"])


def steps(jump: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[Any, ...]]:
    weighted: list[tuple[int, st.SearchStrategy[tuple[Any, ...]]]] = [
        (2, st.tuples(st.just("create"), st.integers(1, 9))),
        (3, st.tuples(st.just("write"), _pick, st.integers(1, 3))),
        (1, st.tuples(st.just("archive"), _pick)),
        (1, st.tuples(st.just("unarchive"), _pick)),
        (1, st.tuples(st.just("unlink"), _pick)),
        # a late transaction begins (stamped now) and does its first change right away
        (3, st.tuples(st.just("begin"), _late_op, _pick)),
        (3, st.tuples(st.just("late"), _pick, _late_op, _pick)),
        (2, st.tuples(st.just("commit"), _pick)),
        (1, st.tuples(st.just("rollback"), _pick)),
        (4, st.tuples(st.just("advance"), _small)),
        (2, st.tuples(st.just("advance"), jump)),
        (4, st.tuples(st.just("poll"))),
        (1, st.tuples(st.just("reconcile"))),
    ]
    # sampled_from picks uniformly among its elements, so repeating a branch weighs it
    choices = [strategy for weight, strategy in weighted for _ in range(weight)]
    return st.sampled_from(range(len(choices))).flatmap(lambda i: choices[i])


def histories(jump: st.SearchStrategy[float]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(steps(jump), min_size=20, max_size=60)


page_sizes = st.integers(3, 7)
#: records created in one call before the history starts: one crowded second for the first poll
initial_records = st.integers(0, 20)


# ----------------------------------------------------------------------------------------- world


@dataclass
class World:
    """The fake Odoo plus what the test needs to know about its open late transactions."""

    fake: FakeOdoo
    clock: ManualClock
    #: late transactions still open, in the order they began
    open: list[FakeTransaction] = field(default_factory=list)
    #: record id → the open transaction that locked it (its writes lock the rows, like PostgreSQL)
    locks: dict[int, FakeTransaction] = field(default_factory=dict)
    #: per open transaction: the records it deleted (still visible to everyone else)
    deleted_by: dict[int, set[int]] = field(default_factory=dict)
    #: ids of every record that was ever deleted
    unlinked: set[int] = field(default_factory=set)
    names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    #: stamps of the late transactions that committed, in commit order
    committed_stamps: list[datetime] = field(default_factory=list)
    #: record id → the write_date seconds of every committed version it ever had
    seconds: dict[int, set[datetime]] = field(default_factory=dict)
    #: when set, late transactions leave alone records that already had a version in their second
    #: (see test_a_very_late_commit_into_an_already_mirrored_second)
    avoid_same_second: bool = False

    def committed(self) -> dict[int, dict[str, Any]]:
        return self.fake.records(MODEL)

    def free(self, *, active: bool | None = None) -> list[int]:
        """Committed records no open transaction holds (optionally only active or archived ones)."""
        return [
            rid
            for rid, row in self.committed().items()
            if rid not in self.locks and (active is None or bool(row["active"]) == active)
        ]

    def visible_to(self, txn: FakeTransaction) -> list[int]:
        """Records ``txn`` may write: committed and free or its own, and its own new ones."""
        own = {rid for rid, holder in self.locks.items() if holder is txn}
        ids = ({rid for rid in self.committed() if rid not in self.locks} | own) - self.deleted_by[id(txn)]
        return sorted(ids)

    def name(self) -> str:
        return f"v{next(self.names)}"

    def end(self, txn: FakeTransaction, *, commit: bool) -> None:
        if commit:
            txn.commit()
            self.unlinked |= self.deleted_by[id(txn)]
            self.committed_stamps.append(txn.stamp)
            self.remember_versions()
        else:
            txn.rollback()
        self.open.remove(txn)
        del self.deleted_by[id(txn)]
        self.locks = {rid: holder for rid, holder in self.locks.items() if holder is not txn}

    def commit_within(self, seconds: int, horizon: float) -> None:
        """Commit every late transaction that would otherwise still be open when the clock, moved
        ``horizon`` seconds on, is more than ``seconds`` whole seconds past the second it began in."""
        later = second_of(self.clock.now + timedelta(seconds=horizon))
        for txn in list(self.open):
            if (later - second_of(txn.stamp)).total_seconds() > seconds:
                self.end(txn, commit=True)

    def remember_versions(self) -> None:
        for rid, row in self.committed().items():
            self.seconds.setdefault(rid, set()).add(second_of(row["write_date"]))

    def apply(self, step: tuple[Any, ...]) -> None:
        """Run one step against the fake Odoo (``poll``/``reconcile`` are the caller's)."""
        self._apply(step)
        self.remember_versions()

    def _apply(self, step: tuple[Any, ...]) -> None:
        fake, kind = self.fake, step[0]
        if kind == "create":
            fake.create(MODEL, [{"name": self.name(), "qty": i} for i in range(step[1])])
        elif kind == "write":
            ids = self.free()
            if ids:
                start = step[1] % len(ids)
                fake.write(MODEL, ids[start : start + step[2]], {"name": self.name()})
        elif kind in ("archive", "unarchive"):
            ids = self.free(active=kind == "unarchive")
            if ids:
                target = [ids[step[1] % len(ids)]]
                (fake.archive if kind == "archive" else fake.unarchive)(MODEL, target)
        elif kind == "unlink":
            ids = self.free()
            if ids:
                target = ids[step[1] % len(ids)]
                fake.unlink(MODEL, [target])
                self.unlinked.add(target)
        elif kind == "begin":
            txn = fake.begin()  # stamped now, invisible until it commits
            self.open.append(txn)
            self.deleted_by[id(txn)] = set()
            self._late(txn, step[1], step[2])
        elif kind == "late" and self.open:
            self._late(self.open[step[1] % len(self.open)], step[2], step[3])
        elif kind in ("commit", "rollback") and self.open:
            self.end(self.open[step[1] % len(self.open)], commit=kind == "commit")
        elif kind == "advance":
            self.clock.advance(step[1])

    def _late(self, txn: FakeTransaction, op: str, pick: int) -> None:
        if op == "create":
            for rid in txn.create(MODEL, [{"name": self.name(), "qty": -1}]):
                self.locks[rid] = txn
            return
        ids = self.visible_to(txn)
        if self.avoid_same_second and op != "unlink":
            ids = [rid for rid in ids if second_of(txn.stamp) not in self.seconds.get(rid, ())]
        if not ids:
            return
        target = ids[pick % len(ids)]
        if op == "write":
            txn.write(MODEL, [target], {"name": self.name()})
        elif op == "toggle":
            (row,) = txn.read(MODEL, [target], ["active"])
            txn.write(MODEL, [target], {"active": not row["active"]})
        else:
            txn.unlink(MODEL, [target])
            self.deleted_by[id(txn)].add(target)
        self.locks[target] = txn


def second_of(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def new_world(initial: int) -> World:
    clock = ManualClock(START, tick=TICK)
    fake = FakeOdoo(clock=clock)
    fake.declare_model(
        MODEL,
        {
            "name": FieldSpec("char"),
            "active": FieldSpec("boolean", default=True),
            "qty": FieldSpec("integer"),
        },
    )
    world = World(fake, clock)
    if initial:
        fake.create(MODEL, [{"name": world.name(), "qty": i} for i in range(initial)])
        world.remember_versions()
    return world


# ---------------------------------------------------------------------------------------- checks


@dataclass
class Harness:
    """One event loop, fake Odoo server, Odoo client and pool for all examples of a test."""

    runner: asyncio.Runner
    rig: Rig

    def run(self, world: World, scenario: Callable[[Rig], Awaitable[None]]) -> None:
        """Run one example against ``world`` on an empty mirror (the table is kept: its shape is
        the same in every example, so the pool's prepared statements stay valid)."""

        async def example() -> None:
            self.rig.serve(world.fake)
            await self.rig.pool.execute("delete from syncd.cdc_state")
            if await self.rig.pool.fetchval("select to_regclass($1)::text", f"odoo.{TABLE}"):
                await self.rig.pool.execute(f"truncate odoo.{TABLE}")
            await scenario(self.rig)

        self.runner.run(example())


@pytest.fixture
def harness(db_dsn: str) -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        context = rig(new_world(0).fake, db_dsn)
        the_rig = runner.run(context.__aenter__())
        try:
            yield Harness(runner, the_rig)
        finally:
            runner.run(context.__aexit__(None, None, None))


async def mirror_rows(r: Rig) -> tuple[dict[int, Any], set[int]]:
    """The live rows ({id: _raw}) and the ids marked deleted."""
    live = await r.mirror(TABLE)
    deleted = set(await r.mirror(TABLE, deleted=True))
    return live, deleted


async def assert_visible_records_mirrored(r: Rig, world: World, when: str) -> None:
    """Every record Odoo shows is in the mirror exactly as Odoo shows it. The mirror may still hold
    records deleted in Odoo (only reconciliation finds those), never anything else."""
    odoo = r.odoo_state(MODEL, FIELDS)
    live, deleted = await mirror_rows(r)
    assert {i: live.get(i) for i in odoo} == odoo, when
    assert set(live) - set(odoo) <= world.unlinked, when
    assert not deleted & set(odoo), when


async def assert_mirror_equals_odoo(r: Rig, world: World) -> None:
    """Live rows are exactly Odoo's records (archived ones included); every other row is a record
    deleted in Odoo and is marked so."""
    odoo = r.odoo_state(MODEL, FIELDS)
    live, deleted = await mirror_rows(r)
    assert live == odoo
    assert deleted <= world.unlinked
    assert not deleted & set(odoo)


async def count_behind(r: Rig, world: World, margin: timedelta) -> int:
    """How many late transactions committed since the last call are stamped more than ``margin``
    before the stored cursor (statistics only: they show the histories reach the interesting cases)."""
    cursor = await r.pool.fetchval("select cursor_write_date from syncd.cdc_state where model = $1", MODEL)
    stamps, world.committed_stamps = world.committed_stamps, []
    return 0 if cursor is None else sum(1 for stamp in stamps if stamp < cursor - margin)


def poller_for(r: Rig, page: int, lookback: float, **cdc: Any) -> ModelPoller:
    return r.poller(MODEL, FIELDS, page_size=page, backfill_page_size=page, lookback_seconds=lookback, **cdc)


# ----------------------------------------------------------------------------------------- tests

#: Lookbacks of the first property. A poll starts ``max(lookback, 1 s)`` before a cursor that is at
#: most one second past the clock of the poll before, so a late transaction that commits at most
#: ``max(lookback, 1) - 1`` whole seconds after the second it began in is always inside the window.
#: The property commits late transactions in time to stay within that (0 and 1: the same second).
lookbacks = st.sampled_from([0, 1, 3, 10])
#: how far a step other than ``advance`` may move the clock (a tick per call the fake receives)
STEP_HORIZON = 0.1


@SETTINGS
@given(history=histories(st.floats(1.5, 25.0)), page=page_sizes, initial=initial_records, lookback=lookbacks)
def test_polls_alone_keep_the_mirror_exact(
    harness: Harness, history: list[tuple[Any, ...]], page: int, initial: int, lookback: int
) -> None:
    world = new_world(initial)

    async def scenario(r: Rig) -> None:
        # Late commits here land in any second, also the one of a version already mirrored: only
        # settle_seconds = lookback_seconds covers those (the default's gap: test_cdc_light.py).
        poller = poller_for(r, page, lookback, settle_seconds=lookback)
        behind = 0  # late commits stamped before the cursor: only the lookback finds them
        for n, step in enumerate(history):
            world.commit_within(max(lookback, 1) - 1, step[1] if step[0] == "advance" else STEP_HORIZON)
            if step[0] == "poll":
                behind += await count_behind(r, world, timedelta(0))
                await poller.poll()
                await assert_visible_records_mirrored(r, world, f"after step {n}")
            elif step[0] == "reconcile":
                await poller.reconcile()
            else:
                world.apply(step)
        for txn in list(world.open):  # all of them still within the window
            world.end(txn, commit=True)
        behind += await count_behind(r, world, timedelta(0))
        event(f"late commits behind the cursor: {min(behind, 3)}")
        await poller.poll()
        await assert_visible_records_mirrored(r, world, "after the final poll")
        result = await poller.reconcile()
        assert result.refreshed == 0, "the polls missed a change that reconciliation found"
        await assert_mirror_equals_odoo(r, world)
        again = await poller.poll()
        assert again.rows_written == 0, "a poll with nothing new rewrote rows"

    harness.run(world, scenario)


@SETTINGS
@given(history=histories(st.floats(3.0, 90.0)), page=page_sizes, initial=initial_records)
def test_reconciliation_catches_what_polls_cannot(
    harness: Harness,
    history: list[tuple[Any, ...]],
    page: int,
    initial: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tiny reconciliation chunks, so that chunk boundaries are crossed too.
    monkeypatch.setattr(poller_module, "RECONCILE_CHUNK", 4)
    monkeypatch.setattr(poller_module, "READ_CHUNK", 3)
    world = new_world(initial)
    world.avoid_same_second = True
    lookback = 2.0  # late commits are routinely older than this

    async def scenario(r: Rig) -> None:
        poller = poller_for(r, page, lookback)
        beyond = refreshed = 0  # late commits stamped before a poll's window; what reconcile re-read
        for step in history:
            if step[0] == "poll":
                beyond += await count_behind(r, world, timedelta(seconds=lookback))
                await poller.poll()
            elif step[0] == "reconcile":
                refreshed += (await poller.reconcile()).refreshed
            else:
                world.apply(step)
        for txn in list(world.open):
            world.end(txn, commit=True)
        beyond += await count_behind(r, world, timedelta(seconds=lookback))
        await poller.poll()
        refreshed += (await poller.reconcile()).refreshed
        event(
            f"late commits beyond the lookback: {min(beyond, 3)}; re-read by reconcile: {min(refreshed, 3)}"
        )
        await assert_mirror_equals_odoo(r, world)
        assert (await poller.poll()).rows_written == 0
        assert (await poller.reconcile()).refreshed == 0

    harness.run(world, scenario)


@pytest.mark.xfail(
    strict=True,
    reason="known gap: reconciliation compares write_date seconds only, so a version committed later "
    "than the lookback into the same second as the mirrored version looks unchanged",
)
async def test_a_very_late_commit_into_an_already_mirrored_second(db_dsn: str) -> None:
    """The one history the second property leaves out (``World.avoid_same_second``): Odoo's
    write_date has whole seconds, so when a record's mirrored version and a later version share a
    second, only a poll whose lookback still covers that second can tell them apart."""
    world = new_world(3)
    async with rig(world.fake, db_dsn) as r:
        poller = poller_for(r, 5, 2.0)
        world.clock.advance(1)
        world.fake.write(MODEL, [1], {"name": "first version"})
        await poller.poll()
        late = world.fake.begin()  # the same second as the mirrored version
        late.write(MODEL, [1], {"name": "committed a minute later"})
        world.clock.advance(60)
        world.fake.write(MODEL, [2], {"name": "moves the cursor"})
        await poller.poll()
        late.commit()
        await poller.poll()
        await poller.reconcile()
        assert (await r.mirror(TABLE))[1]["name"] == "committed a minute later"


async def test_a_drained_second_stays_open_without_lookback(db_dsn: str) -> None:
    """Found by the first property with ``lookback_seconds = 0``: draining a crowded second moved the
    cursor past it for good, so a record stamped later in that same second was never polled."""
    world = new_world(8)  # one call: 8 records in one second, more than a page
    async with rig(world.fake, db_dsn) as r:
        poller = poller_for(r, 3, 0)
        await poller.poll()
        (later,) = world.fake.create(MODEL, [{"name": "the same second, a moment later"}])
        assert second_of(world.fake.records(MODEL)[later]["write_date"]) == second_of(START)
        await poller.poll()
        assert await r.mirror(TABLE) == r.odoo_state(MODEL, FIELDS)
