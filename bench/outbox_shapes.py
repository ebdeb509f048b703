"""Outbox at any backlog shape (issue 11): claim cost by backlog shape, hot keys into the fake Odoo, pgmq.

Run ``python -m bench.outbox_shapes`` (or ``python bench/outbox_shapes.py``); ``--quick`` for smaller
shapes. PostgreSQL, the migrated template and the machine lines are :mod:`bench.outbox`'s
(``--durable``, ``--dsn``). Only syncd's public consumer API is used (``OutboxConsumer.claim()``,
``record()``, ``drain()``), so that the benchmark measures any claim implementation behind it.

1. **Backlog shapes**, no-op sink, batch 100: each shape in a database of its own (a fresh clone of the
   migrated template), filled by one ``INSERT … SELECT … generate_series`` into ``syncd.outbox``
   (``--fill enqueue``: one ``SELECT syncd.enqueue(…) FROM generate_series``), then ``VACUUM ANALYZE``.
   Drained by one consumer: ``claim()``, every claimed event ``record()``\\ ed as done (the next
   ``claim()`` writes it), until a claim returns nothing and no event is unfinished. Per shape: the
   time of each claim that returned events (median, p95, max, the median of the first 10 and of the
   last 10), the number of such claims and the drain's wall time. Progress counts *events* (finished
   events in the table), never claims: a claim may fold several events of one record into one
   delivered batch and return more or fewer events than the batch size. Each shape stops after
   ``--shape-timeout`` seconds (the claim in flight is cancelled, the outcomes already recorded are
   written) and is then reported as "stopped after N s, M of K events".
2. **Hot keys into the fake Odoo** (which runs in its own process, :mod:`bench.fake_server`): 10 keys ×
   1,000 upserts against 10,000 distinct keys, each drained by ``OutboxConsumer.drain()`` (what
   ``syncd --once`` runs), batch 100; wall time and the ``load()`` calls the fake received (its own
   request log, ``GET /bench/calls``).
3. **pgmq**: events/s of syncd's claim loop (``claim()`` + ``record()``, 100k events on distinct keys)
   against pgmq's consumer loop on the same number of messages (``select * from pgmq.read(q, 30, 100)``
   then ``select pgmq.delete(q, msg_ids)``, the array form, on a held connection), one loop and two
   concurrent loops, interleaved repetitions (pgmq, syncd, pgmq, syncd …); the median of the per-rep
   ratios is the result. pgmq is installed from its SQL-only script, vendored in ``bench/pgmq/``.

Tables go to stdout, progress to stderr. Exit 0 when the run completed (missed targets and shapes that
hit their time limit are reported, not failed); 1 when something broke.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/outbox_shapes.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import logging
import statistics
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import asyncpg

from bench.fake_server import FakeProcess
from bench.outbox import BATCH, Cpu, CpuMeter, Database, machine_lines, say, verdict, wait_idle
from bench.report import markdown_table as table
from syncd import db
from syncd import loop as syncd_loop
from syncd.config import Settings
from syncd.db import Connection
from syncd.errors import SyncdError
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer, Outcome

PGMQ_SQL = Path(__file__).resolve().parent / "pgmq" / "pgmq.sql"
#: The version of the vendored script (bench/pgmq/README.md).
PGMQ_VERSION = "1.13.0"
PGMQ_QUEUE = "bench"
PGMQ_VT_SECONDS = 30
MODEL = "res.partner"

#: Targets from issue 11.
TARGET_CLAIM_FACTOR = 1.5  # every shape's claim, first to last, within this × the 10k-distinct median
TARGET_ONE_KEY_S = 5.0  # 20,000 events on one key drain in under this
TARGET_ONE_KEY_EVENTS = 20_000
TARGET_MIXED_S = 10.0  # 10 keys × 5,000 + 50,000 distinct drain in under this
TARGET_MIXED_EVENTS = 100_000
TARGET_E2E_FACTOR = 2.0  # hot keys into the fake within this × distinct keys
TARGET_E2E_LOADS = 50  # "at most a few dozen load() calls"
TARGET_PGMQ_RATIO = 0.9
#: How many claims make the "first" and "last" medians.
EDGE = 10
PROGRESS_EVERY_S = 5.0

Group = Literal["distinct", "one-key", "half-done", "mixed", "retained"]
GROUPS: tuple[Group, ...] = ("distinct", "one-key", "half-done", "mixed", "retained")


# ---------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """A backlog: ``events`` pending upserts to drain (ids ``done + 1 …``), after ``done`` events of
    the hot key already done (ids ``1 … done``). Of the pending events, ``hot`` go to ``keys`` hot keys
    (round robin, spread evenly among the others by id) and the rest to distinct keys; ``keys`` 0:
    all distinct."""

    group: Group
    events: int
    keys: int = 0
    hot: int = 0
    done: int = 0

    @property
    def label(self) -> str:
        if self.group == "distinct":
            return f"{self.events:,} events, all distinct keys"
        if self.group == "one-key":
            return f"{self.events:,} events on one key"
        if self.group == "half-done":
            return f"{self.events + self.done:,} events on one key, {self.done:,} of them done"
        if self.group == "retained":
            return f"{self.events:,} distinct keys after {self.done:,} retained done events"
        per_key = self.hot // self.keys
        return f"{self.keys} keys × {per_key:,} + {self.events - self.hot:,} distinct"

    def key_sql(self) -> str:
        """The key of pending event ``g`` (1-based) as SQL over ``g`` (literal integers only)."""
        if self.keys == 0:
            return "'k-' || g"
        if self.hot >= self.events:
            return "'hot'" if self.keys == 1 else f"'hot-' || (g % {self.keys})"
        # Event g is hot when floor(g·hot/events) steps up at g: `hot` of the ids, spread evenly among
        # the distinct ones; the n-th hot event goes to key n mod keys.
        n, prev = (f"({g}::bigint * {self.hot} / {self.events})" for g in ("g", "(g - 1)"))
        return f"case when {n} > {prev} then 'hot-' || ({n} % {self.keys}) else 'k-' || g end"


def shapes(quick: bool, groups: Sequence[Group]) -> list[Shape]:
    """The issue's shapes (``--quick``: a tenth or less of each; the 10k baseline kept)."""
    if quick:
        distinct = [10_000, 20_000, 50_000]
        one_key = [100, 200, 500, 2_000]
        half = 2_000
        mixed = (10, 500, 5_000)
        retained = (10_000, 100_000)
    else:
        distinct = [10_000, 100_000, 1_000_000]
        one_key = [500, 1_000, 2_000, 20_000]
        half = 20_000
        mixed = (10, 5_000, 50_000)
        retained = (100_000, 1_000_000)
    out = [Shape("distinct", n) for n in distinct]
    out += [Shape("one-key", n, keys=1, hot=n) for n in one_key]
    out.append(Shape("half-done", half - half // 2, keys=1, hot=half - half // 2, done=half // 2))
    keys, per_key, rest = mixed
    out.append(Shape("mixed", keys * per_key + rest, keys=keys, hot=keys * per_key))
    # done events kept for outbox.retention_days (vacuumed, as autovacuum would have): out of the claim's way?
    out.append(Shape("retained", retained[0], done=retained[1]))
    # The first distinct shape is every other shape's baseline: always run.
    return [s for i, s in enumerate(out) if i == 0 or s.group in groups]


async def fill(conn: Connection, shape: Shape, mode: str = "insert") -> None:
    """The shape's backlog in an empty outbox, analyzed, then a checkpoint. ``mode`` ``insert``: one
    ``INSERT … SELECT`` into ``syncd.outbox``; ``enqueue``: one ``SELECT syncd.enqueue(…)`` per event
    in one statement (the producer API, for a schema that keeps state beside the table). The done events
    (ids before the pending ones: a record's done events precede its pending ones) are inserted."""
    key = shape.key_sql()
    if shape.done:
        await conn.execute(
            f"""insert into syncd.outbox (model, op, key, payload, status, attempts, done_at)
                select $1, 'upsert', {key}, jsonb_build_object('name', 'n' || g), 'done', 1, now()
                from generate_series(1, $2) g""",
            MODEL,
            shape.done,
        )
    payload = f"jsonb_build_object('name', 'n' || (g + {shape.done}))"
    if mode == "enqueue":
        sql = f"select count(syncd.enqueue($1, 'upsert', {key}, {payload})) from generate_series(1, $2) g"
    else:
        sql = f"""insert into syncd.outbox (model, op, key, payload)
                  select $1, 'upsert', {key}, {payload} from generate_series(1, $2) g"""
    await conn.execute(sql, MODEL, shape.events)
    await conn.execute("vacuum analyze syncd.outbox")
    with contextlib.suppress(asyncpg.PostgresError):
        await conn.execute("checkpoint")  # no checkpoint (full-page writes) in the middle of a drain
    left = await unfinished(conn)
    if left != shape.events:
        raise RuntimeError(f"{shape.label}: {left} unfinished events after filling, not {shape.events}")


async def unfinished(conn: Connection | asyncpg.Pool) -> int:
    """Events not finished yet (SPEC's status column: pending or in flight)."""
    return int(
        await conn.fetchval("select count(*) from syncd.outbox where status in ('pending', 'inflight')")
    )


def bench_settings(limit: float, pool_min: int = 1, **top: Any) -> Settings:
    """Batch 100; statements may run longer than a shape's time limit (the limit stops them)."""
    outbox = {"batch_size": BATCH, **top.pop("outbox", {})}
    database = {"command_timeout_seconds": max(60.0, limit + 60.0), "pool_min_size": pool_min}
    return Settings.model_validate({"outbox": outbox, "database": database, **top})


def quantile(xs: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (``nan`` for no values)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Drain:
    """One drain of a backlog by claim() + record()."""

    label: str
    #: events to finish (the pending ones)
    events: int
    #: seconds of each claim that returned events, in order
    claim_s: list[float] = field(default_factory=list)
    #: events those claims returned (a claim that folds events may return fewer than it finishes)
    returned: int = 0
    #: events each of those claims returned
    claim_n: list[int] = field(default_factory=list)
    #: claims that returned nothing while events were still unfinished
    empty: int = 0
    seconds: float = 0.0
    #: events finished, from the table
    finished: int = 0
    #: why the drain stopped early ("" when it drained)
    stopped: str = ""
    cpu: Cpu = field(default_factory=Cpu)

    @property
    def claims(self) -> int:
        return len(self.claim_s)

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0

    def ms(self, what: Literal["median", "p95", "max", "first", "last"]) -> float:
        """Claim milliseconds: the median, p95 or max of all claims, or the median of the first or last
        ``EDGE`` claims."""
        xs = self.claim_s
        if not xs:
            return float("nan")
        if what == "p95":
            return quantile(xs, 0.95) * 1000
        if what == "max":
            return max(xs) * 1000
        part = xs[:EDGE] if what == "first" else xs[-EDGE:] if what == "last" else xs
        return statistics.median(part) * 1000

    def us_per_event(self, what: Literal["all", "first", "last"]) -> float:
        """Claim microseconds per event returned, over all claims or the first or last ``EDGE`` claims: a
        claim that places or folds a hot record's run of events handles more than a batch."""
        pairs = list(zip(self.claim_s, self.claim_n, strict=True))
        if what == "first":
            pairs = pairs[:EDGE]
        elif what == "last":
            pairs = pairs[-EDGE:]
        n = sum(c for _, c in pairs)
        return sum(t for t, _ in pairs) / n * 1e6 if n else float("nan")

    def worst_per_event(self, base_us: float) -> float:
        """The larger of the first-10 and last-10 cost per event, relative to ``base_us``."""
        return max(self.us_per_event("first"), self.us_per_event("last")) / base_us

    def worst(self, base_ms: float) -> float:
        """The largest of the median, first-10 and last-10 claim medians, relative to ``base_ms``."""
        return max(self.ms("median"), self.ms("first"), self.ms("last")) / base_ms


async def claim_loop(
    consumer: OutboxConsumer,
    pool: asyncpg.Pool,
    drain: Drain,
    *,
    until_drained: bool = True,
    progress: Callable[[], None] | None = None,
) -> None:
    """claim(), every claimed event recorded as done (the next claim() writes it), until a claim returns
    nothing: then, with ``until_drained``, until no event is unfinished either (another consumer may
    hold the last ones, or a claim may momentarily find nothing claimable)."""
    while True:
        t0 = time.perf_counter()
        events = await consumer.claim()  # also writes the previous batch's outcomes
        seconds = time.perf_counter() - t0
        if not events:
            if not until_drained or not await unfinished(pool):
                return
            drain.empty += 1
            await asyncio.sleep(0.01)
            continue
        drain.claim_s.append(seconds)
        drain.claim_n.append(len(events))
        drain.returned += len(events)
        consumer.record([Outcome(e, "done") for e in events])
        if progress is not None:
            progress()


def progress_printer(drain: Drain) -> Callable[[], None]:
    started = time.perf_counter()
    last = [started]

    def tick() -> None:
        now = time.perf_counter()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            say(f"    {now - started:.0f} s: {drain.claims:,} claims returned {drain.returned:,} events "
                f"(of {drain.events:,}); last claim {drain.claim_s[-1] * 1000:.1f} ms")  # fmt: skip

    return tick


@contextlib.asynccontextmanager
async def database_of_its_own(database: Database) -> AsyncIterator[str]:
    """A fresh clone of the migrated template, dropped afterwards."""
    assert database.dbs is not None
    dsn = await asyncio.to_thread(database.dbs.clone)
    try:
        yield dsn
    finally:
        await asyncio.to_thread(database.dbs.drop, dsn)


# ----------------------------------------------------------------------------------- 1. shapes


async def drain_shape(database: Database, shape: Shape, limit: float, mode: str) -> Drain:
    async with database_of_its_own(database) as dsn:
        settings = bench_settings(limit)
        pool = await db.create_pool(dsn, settings.database)
        try:
            # No Odoo: claim() and record() never touch it.
            consumer = OutboxConsumer(settings, cast(OdooClient, None), pool, dsn, "bench-shapes")
            # Claims on the empty outbox, not timed: the consumer's connection prepares its statement and
            # loads the catalog, as a running consumer has long done. PostgreSQL plans a prepared
            # statement for its first five executions before it settles on a generic plan (planning
            # the claim costs ~1.5 ms, more than executing it); after six, the ANALYZE of the backlog
            # below makes the first timed claim build a generic plan again, without five custom ones.
            for _ in range(6):
                if await consumer.claim():
                    raise RuntimeError("a claim on an empty outbox returned events")
            t0 = time.perf_counter()
            async with pool.acquire() as conn:
                await fill(conn, shape, mode)
            say(
                f"  {shape.label}: filled in {time.perf_counter() - t0:.1f} s; draining (limit {limit:g} s) ..."
            )
            drain = Drain(shape.label, shape.events)
            async with CpuMeter(dsn, database.local).span() as cpu:
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(limit):
                        await claim_loop(consumer, pool, drain, progress=progress_printer(drain))
                except TimeoutError:
                    drain.stopped = f"stopped after {limit:g} s"
                except SyncdError as e:
                    drain.stopped = f"stopped: claim failed ({e})"
                drain.seconds = time.perf_counter() - t0
            drain.cpu = cpu
            if drain.stopped:  # write the outcomes recorded since the last claim
                with contextlib.suppress(SyncdError, TimeoutError):
                    await asyncio.wait_for(consumer.flush(), 60)
            drain.finished = shape.events - await unfinished(pool)
        finally:
            await pool.close()
    say(
        f"  {shape.label}: {drain.finished:,} of {drain.events:,} events in {drain.seconds:.1f} s, "
        f"{drain.claims:,} claims, median {drain.ms('median'):.2f} ms{'; ' + drain.stopped if drain.stopped else ''}"
    )
    return drain


async def backlog_shapes(database: Database, todo: list[Shape], limit: float, mode: str) -> list[Drain]:
    return [await drain_shape(database, shape, limit, mode) for shape in todo]


def report_shapes(todo: list[Shape], drains: list[Drain], quick: bool, limit: float) -> list[str]:
    base = drains[0]
    base_ms = base.ms("median")
    base_us = base.us_per_event("all")
    rows = []
    missed_claim: list[str] = []
    missed_event: list[str] = []
    for shape, d in zip(todo, drains, strict=True):
        worst = d.worst(base_ms)
        worst_event = d.worst_per_event(base_us)
        if d.stopped or not worst_event <= TARGET_CLAIM_FACTOR:
            missed_event.append(f"{d.label} ({worst_event:.2f}×{', stopped' if d.stopped else ''})")
        if d.stopped or not worst <= TARGET_CLAIM_FACTOR:
            missed_claim.append(f"{d.label} ({worst:.2f}×{', stopped' if d.stopped else ''})")
        note = (
            f"{d.stopped}, {d.finished:,} of {d.events:,} events"
            if d.stopped
            else ("baseline" if d is base else "drained")
        )
        if d.empty:
            note += f"; {d.empty} empty claims before the end"
        if shape.done:
            note += f"; {shape.done:,} done events before them"
        rows.append(
            [
                d.label,
                f"{d.events:,}",
                f"{d.claims:,}",
                f"{d.returned / d.claims:.1f}" if d.claims else "-",
                *(f"{d.ms(w):.2f}" for w in ("median", "p95", "max", "first", "last")),
                f"{d.seconds:.1f}",
                f"{d.rate:,.0f}",
                f"{worst:.2f}×",
                f"{d.us_per_event('first'):.0f} / {d.us_per_event('last'):.0f}",
                f"{worst_event:.2f}×",
                f"{d.cpu.others:.2f}",
                note,
            ]
        )
    out = [
        f"## 1. Backlog shapes: claim() + record(), no-op sink, batch {BATCH}, one consumer"
        f" (time limit {limit:.0f} s per shape)",
        "",
        table(
            [
                "backlog",
                "events",
                "claims",
                "events per claim",
                "claim ms median",
                "p95",
                "max",
                f"first {EDGE}",
                f"last {EDGE}",
                "drain s",
                "events/s",
                "worst vs baseline",
                f"µs per event, first / last {EDGE}",
                "worst per event vs baseline",
                "other load (cores)",
                "note",
            ],
            rows,
        ),
        "",
        f"Claim times are those of the claims that returned events (the last, empty claim is in the drain "
        f"time only); *first {EDGE}* / *last {EDGE}*: the median of the first and last {EDGE} claims; "
        f"*worst vs baseline*: the largest of the median, first-{EDGE} and last-{EDGE} claim times over the "
        f"baseline's median ({base.label}, {base_ms:.2f} ms). *events/s*: events finished (counted in the "
        "table) over the drain time.",
        "",
        "Targets:",
        f"- one claim ≤ {TARGET_CLAIM_FACTOR}× the baseline's median ({base_ms:.2f} ms) from the first to the "
        f"last claim, every shape: "
        + ("met" if not missed_claim else "MISSED for " + "; ".join(missed_claim)),
        f"- the same per event claimed (a claim that places or folds a hot record's run takes up to "
        f"`outbox.fold_max_events` events, not a batch): ≤ {TARGET_CLAIM_FACTOR}× the baseline's "
        f"{base_us:.0f} µs per event in the first and the last {EDGE} claims, every shape: "
        + ("met" if not missed_event else "MISSED for " + "; ".join(missed_event)),
    ]
    scale = "" if not quick else " (scaled to the --quick size)"
    for group, full_events, full_s, what in (
        ("one-key", TARGET_ONE_KEY_EVENTS, TARGET_ONE_KEY_S, f"{TARGET_ONE_KEY_EVENTS:,} events on one key"),
        ("mixed", TARGET_MIXED_EVENTS, TARGET_MIXED_S, "10 keys × 5,000 + 50,000 distinct"),
    ):
        runs = [(s, d) for s, d in zip(todo, drains, strict=True) if s.group == group]
        if not runs:
            continue
        shape, d = max(runs, key=lambda r: r[0].events)
        target = full_s * shape.events / full_events
        ok = not d.stopped and d.seconds < target
        got = f"{d.stopped}, {d.finished:,} of {d.events:,} events" if d.stopped else f"{d.seconds:.2f} s"
        out.append(f"- {what} drain in < {full_s:.0f} s{scale}: {shape.label} in < {target:.2f} s: "
                   f"{got} — {verdict(ok)}")  # fmt: skip
    return out


# ------------------------------------------------------------------------ 2. into the fake Odoo


@dataclass
class E2E:
    label: str
    events: int
    keys: int
    seconds: float
    finished: int
    #: calls the fake received during the drain: load() on the model, and all of them
    loads: int
    calls: int
    stopped: str
    cpu: Cpu

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0


async def enqueue(conn: Connection, prefix: str, events: int, keys: int) -> None:
    """``events`` upserts through the producer API in one statement, on ``keys`` keys in turn (0: each
    its own key); every payload differs."""
    key = f"$1 || (g % {keys})" if keys else "$1 || g"
    await conn.execute(
        f"""select count(syncd.enqueue($3, 'upsert', {key},
                   jsonb_build_object('name', 'Partner ' || g, 'email', 'p' || g || '@example.com')))
            from generate_series(1, $2) g""",
        prefix,
        events,
        MODEL,
    )
    await conn.execute("analyze syncd.outbox")


async def e2e_run(
    database: Database, fake: FakeProcess, label: str, events: int, keys: int, limit: float, run: int
) -> E2E:
    settings = bench_settings(limit, odoo={"url": fake.url, "api_key": "admin", "retries": 0})
    async with database_of_its_own(database) as dsn:
        pool = await db.create_pool(dsn, settings.database)
        try:
            async with OdooClient(settings.odoo) as odoo:
                consumer = OutboxConsumer(settings, odoo, pool, dsn, f"bench-shapes-e2e-{run}")
                async with pool.acquire() as conn:
                    await enqueue(conn, f"warm-{run}-", 1, 0)
                await consumer.drain()  # connections, fields_get (cached): not timed
                async with pool.acquire() as conn:
                    await enqueue(conn, f"e2e-{run}-", events, keys)
                before = await fake.calls()
                stopped = ""
                async with CpuMeter(dsn, database.local, fake.pid).span() as cpu:
                    t0 = time.perf_counter()
                    try:
                        async with asyncio.timeout(limit):
                            report = await consumer.drain()
                        if report.dead or report.retried:
                            stopped = f"{report.dead} dead, {report.retried} retried"
                    except TimeoutError:
                        stopped = f"stopped after {limit:g} s"
                    seconds = time.perf_counter() - t0
                calls = await fake.calls() - before
            finished = events - await unfinished(pool)
        finally:
            await pool.close()
    result = E2E(label, events, keys, seconds, finished, calls[f"{MODEL}.load"], calls.total(), stopped, cpu)
    say(f"  {label}: {finished:,} of {events:,} in {seconds:.2f} s, {result.loads} load() calls"
        f"{'; ' + stopped if stopped else ''}")  # fmt: skip
    return result


async def into_fake(database: Database, fake: FakeProcess, events: int, reps: int, limit: float) -> list[E2E]:
    plan = [(f"{events:,} distinct keys", events, 0), (f"10 keys × {events // 10:,} upserts", events, 10)]
    runs: list[E2E] = []
    for _ in range(reps):  # interleaved
        for label, n, keys in plan:
            runs.append(await e2e_run(database, fake, label, n, keys, limit, len(runs)))
    return runs


def report_e2e(runs: list[E2E], reps: int) -> list[str]:
    by_label: dict[str, list[E2E]] = {}
    for r in runs:
        by_label.setdefault(r.label, []).append(r)
    medians: dict[str, float] = {}
    rows = []
    for label, rs in by_label.items():
        seconds = statistics.median(r.seconds for r in rs)
        medians[label] = seconds
        rows.append(
            [
                label,
                f"{rs[0].events:,}",
                f"{seconds:.2f}",
                " ".join(f"{r.seconds:.2f}" for r in rs),
                f"{statistics.median(r.rate for r in rs):,.0f}",
                f"{statistics.median(r.loads for r in rs):.0f}",
                f"{statistics.median(r.calls for r in rs):.0f}",
                f"{seconds / next(iter(medians.values())):.2f}×",
                f"{statistics.median(r.cpu.others for r in rs):.2f}",
                "; ".join(f"{r.stopped}, {r.finished:,} of {r.events:,} events" for r in rs if r.stopped)
                or "drained",
            ]
        )
    distinct, hot = (by_label[label] for label in by_label)
    ratio = medians[hot[0].label] / medians[distinct[0].label]
    loads = max(r.loads for r in hot)
    ok_time = ratio <= TARGET_E2E_FACTOR and not any(r.stopped for r in hot)
    return [
        f"## 2. Into the fake Odoo: `drain()` (as `syncd --once`), batch {BATCH}, the fake in its own process"
        f" (median of {reps})",
        "",
        table(
            [
                "upserts",
                "events",
                "seconds",
                "each rep",
                "events/s",
                "load() calls",
                "all calls to the fake",
                "vs distinct",
                "other load (cores)",
                "note",
            ],
            rows,
        ),
        "",
        "*load() calls* and *all calls*: counted by the fake (its request log) during the drain.",
        "",
        "Targets:",
        f"- hot keys within {TARGET_E2E_FACTOR:.0f}× the time of distinct keys: {ratio:.2f}× — {verdict(ok_time)}",
        f"- at most a few dozen load() calls (≤ {TARGET_E2E_LOADS}) for the hot keys: {loads} — "
        f"{verdict(loads <= TARGET_E2E_LOADS)}",
    ]


# ------------------------------------------------------------------------------------- 3. pgmq


@dataclass
class Loop:
    """One timed run of a consumer loop (1 or 2 concurrent loops)."""

    who: str
    loops: int
    events: int
    cpu: Cpu

    @property
    def rate(self) -> float:
        return self.events / self.cpu.wall if self.cpu.wall else 0.0


async def install_pgmq(conn: asyncpg.Connection) -> None:
    await conn.execute(PGMQ_SQL.read_text())
    await conn.execute("select pgmq.create($1)", PGMQ_QUEUE)


async def pgmq_run(pool: asyncpg.Pool, conns: list[asyncpg.Connection], meter: CpuMeter, events: int) -> Loop:
    """pgmq's consumer loop: read a batch (which sets its visibility timeout), delete it by ids."""
    async with pool.acquire() as conn:
        await conn.execute("select pgmq.purge_queue($1)", PGMQ_QUEUE)
        await conn.execute(
            """select pgmq.send_batch($1, array(
                   select jsonb_build_object('model', $3::text, 'op', 'upsert', 'key', 'k-' || g,
                                             'payload', jsonb_build_object('name', 'n' || g))
                   from generate_series(1, $2) g))""",
            PGMQ_QUEUE,
            events,
            MODEL,
        )
        await conn.execute(f"vacuum analyze pgmq.q_{PGMQ_QUEUE}")
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("checkpoint")
    # Plain connections (jsonb arrives as text), one per loop, held for the whole section; each message
    # is decoded by the function that decodes syncd's payloads in claim(), so that both loops hand
    # their sink the same Python objects.
    loops = len(conns)
    loads = db.loads_json

    async def loop(conn: asyncpg.Connection) -> int:
        n = 0
        while True:
            rows = await conn.fetch("select * from pgmq.read($1, $2, $3)", PGMQ_QUEUE, PGMQ_VT_SECONDS, BATCH)
            if not rows:
                return n
            for r in rows:
                loads(r["message"])  # what a consumer hands its sink (a no-op here)
            await conn.execute(
                "select pgmq.delete($1, $2::bigint[])", PGMQ_QUEUE, [r["msg_id"] for r in rows]
            )
            n += len(rows)

    async with meter.span() as cpu:
        done = sum(await asyncio.gather(*(loop(c) for c in conns)))
    left = await pool.fetchval(f"select count(*) from pgmq.q_{PGMQ_QUEUE}")
    if done != events or left:
        raise RuntimeError(f"pgmq, {loops} loop(s): {done} messages read for {events}, {left} left")
    return Loop("pgmq", loops, events, cpu)


async def syncd_run(dsn: str, pool: asyncpg.Pool, meter: CpuMeter, settings: Settings, events: int,
                    loops: int) -> Loop:  # fmt: skip
    """syncd's consumer loop: claim() + record(), each loop its own consumer."""
    async with pool.acquire() as conn:
        await conn.execute("truncate syncd.outbox restart identity")
        await fill(conn, Shape("distinct", events))
    consumers = [
        OutboxConsumer(settings, cast(OdooClient, None), pool, dsn, f"bench-pgmq-{i}") for i in range(loops)
    ]
    drain = Drain("syncd", events)
    async with meter.span() as cpu:
        await asyncio.gather(*(claim_loop(c, pool, drain, until_drained=False) for c in consumers))
    left = await unfinished(pool)
    if left:
        raise RuntimeError(f"syncd, {loops} loop(s): {left} of {events} events unfinished after the claims")
    return Loop("syncd", loops, events, cpu)


async def against_pgmq(database: Database, events: int, reps: int) -> list[tuple[Loop, Loop]]:
    settings = bench_settings(600, pool_min=2)
    pairs: list[tuple[Loop, Loop]] = []
    async with database_of_its_own(database) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await install_pgmq(conn)
        finally:
            await conn.close()
        say(f"  pgmq {PGMQ_VERSION} installed from bench/pgmq/pgmq.sql")
        pool = await db.create_pool(dsn, settings.database)
        conns = [await asyncpg.connect(dsn) for _ in range(2)]
        meter = CpuMeter(dsn, database.local)
        try:
            for rep in range(reps):
                for loops in (1, 2):
                    p = await pgmq_run(pool, conns[:loops], meter, events)
                    s = await syncd_run(dsn, pool, meter, settings, events, loops)
                    pairs.append((p, s))
                    say(f"  rep {rep + 1}, {loops} loop(s): pgmq {p.rate:,.0f}, syncd {s.rate:,.0f} events/s "
                        f"({s.rate / p.rate:.2f}×)")  # fmt: skip
        finally:
            for c in conns:
                await c.close()
            await pool.close()
    return pairs


def report_pgmq(pairs: list[tuple[Loop, Loop]], events: int) -> list[str]:
    rows = []
    verdicts = []
    for loops in (1, 2):
        mine = [(p, s) for p, s in pairs if p.loops == loops]
        ratios = [s.rate / p.rate for p, s in mine]
        ratio = statistics.median(ratios)
        verdicts.append(
            f"{loops} loop{'s' if loops > 1 else ''}: {ratio:.2f}× — {verdict(ratio >= TARGET_PGMQ_RATIO)}"
        )

        def med(values: list[float]) -> float:
            return statistics.median(values)

        rows.append(
            [
                str(loops),
                f"{med([p.rate for p, _ in mine]):,.0f}",
                f"{med([s.rate for _, s in mine]):,.0f}",
                f"{ratio:.2f}×",
                " ".join(f"{r:.2f}" for r in ratios),
                f"{med([p.cpu.bench / p.events * 1e6 for p, _ in mine]):.1f} / "
                f"{med([s.cpu.bench / s.events * 1e6 for _, s in mine]):.1f}",
                f"{med([p.cpu.backends / p.events * 1e6 for p, _ in mine]):.1f} / "
                f"{med([s.cpu.backends / s.events * 1e6 for _, s in mine]):.1f}",
                f"{max(x.cpu.others for pair in mine for x in pair):.2f}",
            ]
        )
    reps = len(pairs) // 2
    return [
        f"## 3. syncd's claim loop against pgmq ({events:,} events on distinct keys, batch {BATCH};"
        f" median of {reps} interleaved reps)",
        "",
        table(
            [
                "loops",
                "pgmq events/s",
                "syncd events/s",
                "syncd / pgmq",
                "each rep",
                "client CPU µs/event pgmq / syncd",
                "PostgreSQL CPU µs/event pgmq / syncd",
                "other load (cores, worst)",
            ],
            rows,
        ),
        "",
        "pgmq: `select * from pgmq.read(q, 30, 100)` then `select pgmq.delete(q, msg_ids)` per batch on a held "
        "connection, each message decoded by `syncd.db.loads_json` (as `claim()` decodes syncd's payloads); syncd: "
        "`OutboxConsumer.claim()` + `record()` on syncd's pool, one consumer per loop. *syncd / pgmq*: the "
        "median of the per-rep ratios (each rep runs pgmq, then syncd, back to back).",
        "",
        f"Target: syncd ≥ {TARGET_PGMQ_RATIO}× pgmq with one loop and with two. " + "; ".join(verdicts) + ".",
    ]


# --------------------------------------------------------------------------------------------- main


@dataclass
class Options:
    quick: bool = False
    sections: frozenset[str] = frozenset({"shapes", "e2e", "pgmq"})
    groups: tuple[Group, ...] = GROUPS
    shape_timeout: float = 120.0
    reps: int = 3
    e2e_events: int = 10_000
    pgmq_events: int = 100_000
    fill: str = "insert"
    #: Instead of the issue's shapes (the smoke test's tiny ones); the first is the baseline.
    backlogs: list[Shape] | None = None


async def bench(database: Database, options: Options) -> list[str]:
    await database.describe()
    out = ["# Outbox backlog shapes (issue 11)", "", *machine_lines(database), ""]
    if "shapes" in options.sections:
        todo = options.backlogs or shapes(options.quick, options.groups)
        say(f"1. backlog shapes: {len(todo)} shapes, limit {options.shape_timeout:.0f} s each")
        drains = await backlog_shapes(database, todo, options.shape_timeout, options.fill)
        out += [*report_shapes(todo, drains, options.quick, options.shape_timeout), ""]
    if "e2e" in options.sections:
        fake = await FakeProcess.start(0)
        try:
            say(
                f"2. into the fake Odoo at {fake.url}: {options.e2e_events:,} upserts per run, {options.reps} reps"
            )
            runs = await into_fake(database, fake, options.e2e_events, options.reps, options.shape_timeout)
        finally:
            fake.stop()
        out += [*report_e2e(runs, options.reps), ""]
    if "pgmq" in options.sections:
        say(f"3. against pgmq: {options.pgmq_events:,} events per run, {options.reps} reps")
        pairs = await against_pgmq(database, options.pgmq_events, options.reps)
        out += [*report_pgmq(pairs, options.pgmq_events), ""]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller shapes (10k–50k distinct, 100–2,000 on one key, …), 1,000 upserts into "
                             "the fake, 10,000 events against pgmq, 20 s per shape")  # fmt: skip
    parser.add_argument("--only", choices=["shapes", "e2e", "pgmq"], action="append",
                        help="run only this section (repeatable)")  # fmt: skip
    parser.add_argument("--group", choices=GROUPS, action="append",
                        help="backlog shapes of this group only (repeatable; the 10k-distinct baseline "
                             "always runs)")  # fmt: skip
    parser.add_argument("--shape-timeout", type=float, metavar="SECONDS",
                        help="stop a drain after this long (120; --quick 20)")  # fmt: skip
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of sections 2 and 3 (3)")
    parser.add_argument(
        "--e2e-events", type=int, help="upserts per run into the fake (10,000; --quick 1,000)"
    )
    parser.add_argument(
        "--pgmq-events", type=int, help="events per run against pgmq (100,000; --quick 10,000)"
    )
    parser.add_argument("--fill", choices=["insert", "enqueue"], default="insert",
                        help="fill backlogs by INSERT … SELECT into syncd.outbox (default) or by "
                             "syncd.enqueue() in one statement")  # fmt: skip
    parser.add_argument("--dsn", help="an existing PostgreSQL (superuser: databases are created and dropped)")
    parser.add_argument("--durable", action="store_true", help="embedded PostgreSQL with fsync on")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the machine to be idle (it may be shared)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    options = Options(
        quick=args.quick,
        sections=frozenset(args.only or ["shapes", "e2e", "pgmq"]),
        groups=tuple(args.group or GROUPS),
        shape_timeout=args.shape_timeout or (20.0 if args.quick else 120.0),
        reps=max(1, args.reps),
        e2e_events=args.e2e_events or (1_000 if args.quick else 10_000),
        pgmq_events=args.pgmq_events or (10_000 if args.quick else 100_000),
        fill=args.fill,
    )
    started = time.perf_counter()
    if args.wait_idle > 0:
        syncd_loop.run(wait_idle(args.wait_idle))
    say("starting PostgreSQL and a migrated template ...")
    database = Database.start(args.dsn, args.durable)
    try:
        database.create()
        out = syncd_loop.run(bench(database, options))
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        database.close()
    out.append(f"The whole benchmark took {time.perf_counter() - started:.0f} s.")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
