"""Speed of the two-way sync (issue 13): writes with a base, an app's mass UPDATE, the mirror trigger.

Run ``python -m bench.bidirectional_speed`` with the Odoo given by ``--odoo-*`` or the ``ODOO19_*``
variables that ``../shared/odoo19/up.sh env`` prints (as :mod:`bench.real_odoo`; JSON-2). PostgreSQL
starts by itself (embedded, durable; ``--dsn`` for another server). The outbox consumer and the CDC
poller run in this process (``OutboxConsumer.drain()``, what ``syncd --once`` runs), with an Odoo
client that counts its requests by method.

It **writes to that Odoo**: it makes sure ``--partners`` bench partners exist (``ref = 'bench-<n>'``,
:func:`bench.real_odoo.seed_partners`) and changes the phone and the ``active`` flag of some of them
(``active`` is set back after each contender). Use an Odoo of its own, not one that other tests mirror.

Every contender runs once in each of ``--reps`` rounds, in an order rotated per round, so that a
noisy machine disturbs them alike; the tables give each round's value and the median.

1. **base**: ``--events`` outbox ``write`` events on existing partners, enqueued with
   ``syncd.enqueue(model, 'write', null, payload, odoo_id, base)`` (the base: Odoo's current values,
   so nothing conflicts) versus the same events without a base, drained by the consumer at each of
   ``--batch-sizes``. Two shapes: *distinct* (every record gets its own phone: one ``write`` per
   event) and *same* (every record gets the same phone: one ``write(ids)`` per batch). Target: the
   base check (one ``read`` per batch, then the comparison) costs at most 15 % of the throughput.
2. **mass**: on a writable mirror table of res.partner (filled by the CDC poller), an app's
   ``UPDATE … SET active = false WHERE id = any(…)`` over ``--mass-rows`` rows, timed from the UPDATE
   to the last event done, with the Odoo calls it took, versus a naive loop of one ``write`` per
   record; against the real Odoo and (``--fake``) the fake Odoo in a child process.
3. **trigger**: rows/s of a ``--trigger-rows``-row UPDATE on a writable mirror table versus the
   same UPDATE on a plain one (and on the writable one as syncd's own write, ``syncd.origin =
   'cdc'``); PostgreSQL alone, the tables made by :class:`~syncd.cdc.schema.MirrorTable`.

Numbers go to stdout as Markdown tables, progress to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/bidirectional_speed.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg

from bench.cdc import Postgres, say
from bench.fake_server import FakeProcess
from bench.machine import machine_line
from bench.real_odoo import FIELDS, MARKER, MODEL, RealOdoo, add_odoo_arguments, seed_partners
from bench.report import markdown_table
from syncd import db, migrate
from syncd.cdc.poller import ALL_RECORDS, ModelPoller
from syncd.cdc.schema import MirrorTable
from syncd.config import DatabaseSettings, ModelSettings, OdooSettings, Settings
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer

#: Targets from the issue (the base check) and from the brief (the trigger: "reasonable").
TARGET_BASE_COST = 0.15
TARGET_TRIGGER_X = 3.0
MIRROR = "odoo"
TABLE = f"{MIRROR}.res_partner"


def per_rep(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    return " ".join(fmt.format(v) for v in values)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Runs:
    """Per-round values of the contenders of one table (label → values, label → notes)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    calls: dict[str, list[Counter[str]]] = field(default_factory=dict)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add(
        self, label: str, value: float, calls: Counter[str] | None = None, extra: float | None = None
    ) -> None:
        self.values.setdefault(label, []).append(value)
        if calls is not None:
            self.calls.setdefault(label, []).append(calls)
        if extra is not None:
            self.extra.setdefault(label, []).append(extra)

    def median(self, label: str) -> float:
        return median(self.values[label])

    def calls_text(self, label: str) -> str:
        """The Odoo requests of the label's first round, by method."""
        got = self.calls.get(label)
        if not got:
            return "-"
        return ", ".join(f"{m} {n}" for m, n in sorted(got[0].items())) + f" (= {sum(got[0].values())})"

    def total_calls(self, label: str) -> int:
        got = self.calls.get(label)
        return sum(got[0].values()) if got else 0


async def rotated(reps: int, contenders: Sequence[Callable[[], Awaitable[None]]], what: str) -> None:
    for rep in range(reps):
        say(f"{what}, round {rep + 1} of {reps}")
        shift = rep % len(contenders)
        for run in [*contenders[shift:], *contenders[:shift]]:
            await run()


# ---------------------------------------------------------------------------------- the Odoo side


class CountingOdoo:
    """An :class:`OdooClient` whose requests are counted by method (``observe``)."""

    def __init__(self, settings: OdooSettings) -> None:
        self.counts: Counter[str] = Counter()
        #: Seconds of the requests by method (summed: requests in flight together overlap).
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.client = OdooClient(settings, observe=self._observe)

    def _observe(self, method: str, seconds: float, error: BaseException | None = None) -> None:
        self.counts[method] += 1
        self.seconds[method] += seconds

    def take(self) -> Counter[str]:
        """The counts since the last take (the seconds start again too)."""
        counts, self.counts, self.seconds = self.counts, Counter(), defaultdict(float)
        return counts


async def bench_partners(client: OdooClient, n: int, skip: int) -> list[int]:
    """``n`` ids of bench partners that are not companies (nothing hangs below them), after the first
    ``skip`` of them (each section its own)."""
    ids = await client.search(
        MODEL, [("ref", "=like", f"{MARKER}%"), ("is_company", "=", False)], order="id", context=ALL_RECORDS
    )
    if len(ids) < skip + n:
        raise RuntimeError(
            f"{len(ids)} bench partners that are not companies: {skip + n} needed (--partners)"
        )
    return sorted(ids)[skip : skip + n]


def consumer_settings(odoo: OdooSettings, *, batch_size: int = 100, writable: bool = False) -> Settings:
    return Settings.model_validate({
        "odoo": odoo.model_dump(),
        "cdc": {"models": [{"model": MODEL, "fields": FIELDS, "writable": writable}]},
        "outbox": {"batch_size": batch_size},
    })  # fmt: skip


@contextlib.asynccontextmanager
async def database(pg: Postgres, name: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A fresh database with syncd's schema, and a pool on it."""
    dsn = await pg.create_database(name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=6))
    try:
        yield dsn, pool
    finally:
        await pool.close()


async def drained(consumer: OutboxConsumer, pool: asyncpg.Pool, expected: int, what: str) -> None:
    """Drain the outbox; every one of ``expected`` events must end done, with no conflict."""
    report = await consumer.drain()
    row = await pool.fetchrow(
        "select count(*) filter (where status = 'done') as done, count(*) filter (where conflicts is not null)"
        " as conflicts, count(*) as n from syncd.outbox"
    )
    assert row is not None
    if (row["done"], row["conflicts"], row["n"]) != (expected, 0, expected):
        raise RuntimeError(f"{what}: {dict(row)} of {expected} events (report {report})")


async def empty_outbox(pool: asyncpg.Pool) -> None:
    await pool.execute("truncate syncd.outbox, syncd.mirror_refresh")


async def settle(pool: asyncpg.Pool, table: str) -> None:
    """After a contender (not timed): the outbox emptied, the table and the outbox vacuumed."""
    await empty_outbox(pool)
    await pool.execute(f"vacuum analyze {table}")
    await pool.execute("vacuum analyze syncd.outbox")


# ------------------------------------------------------------------------------- 1. with a base


@dataclass
class BaseResults:
    events: int
    batch_sizes: list[int]
    runs: Runs = field(default_factory=Runs)


def base_label(shape: str, batch: int, based: bool) -> str:
    return f"{shape} values, batch {batch}, {'with' if based else 'without'} base"


async def base_section(
    pg: Postgres, odoo: RealOdoo, reps: int, events: int, batch_sizes: Sequence[int], skip: int
) -> BaseResults:
    """Writes with a base versus without: each contender enqueues ``events`` writes of the phone of the
    same partners (the base read from Odoo just before, not timed) and drains them."""
    result = BaseResults(events, list(batch_sizes))
    odoo_settings = odoo.settings("json2", timeout_seconds=300)
    counting = CountingOdoo(odoo_settings)
    async with counting.client as client, database(pg, "bench_bidi_base") as (dsn, pool):
        ids = await bench_partners(client, events, skip)
        consumers = {
            b: OutboxConsumer(consumer_settings(odoo_settings, batch_size=b), client, pool, dsn, f"bench-{b}")
            for b in batch_sizes
        }
        serial = iter(range(1_000_000))

        async def run(shape: str, batch: int, based: bool, n: int, record: bool) -> None:
            tag = next(serial)
            current = {r["id"]: r["phone"] or None for r in await client.read(MODEL, ids[:n], ["phone"])}
            rows = [
                (rid, json.dumps({"phone": f"+1 555 {tag} {i}" if shape == "distinct" else f"+1 555 {tag}"}),
                 json.dumps({"phone": current[rid]}) if based else None)
                for i, rid in enumerate(ids[:n])
            ]  # fmt: skip
            await empty_outbox(pool)
            await pool.execute(
                "select syncd.enqueue('res.partner', 'write', null, p::jsonb, i, b::jsonb)"
                " from unnest($1::bigint[], $2::text[], $3::text[]) as u(i, p, b)",
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            )  # fmt: skip
            await pool.execute("analyze syncd.outbox")
            counting.take()
            t0 = time.perf_counter()
            await drained(consumers[batch], pool, n, base_label(shape, batch, based))
            seconds = time.perf_counter() - t0
            # The base check's Odoo cost: its reads' share of all Odoo request time.
            share = counting.seconds["read"] / max(sum(counting.seconds.values()), 1e-9)
            calls = counting.take()
            label = base_label(shape, batch, based)
            if record:
                result.runs.add(label, n / seconds, calls, share)
                say(
                    f"  {label}: {n / seconds:,.0f} events/s ({seconds:.2f} s, {dict(calls)}, reads {share:.1%})"
                )

        contenders = [
            (shape, batch, based)
            for batch in batch_sizes
            for shape in ("distinct", "same")
            for based in (True, False)
        ]
        say("base: warming up (fields_get, Odoo's caches) ...")
        for shape, batch, based in contenders:
            await run(shape, batch, based, min(200, events), False)
        await rotated(reps, [partial(run, *c, events, True) for c in contenders], "base")
    return result


def report_base(r: BaseResults) -> tuple[list[str], bool]:
    out = [
        f"### 1. Outbox writes with a base versus without: {r.events:,} `write` events of res.partner's phone "
        "on existing partners, drained by `OutboxConsumer.drain()` (concurrency 2)",
        "",
    ]
    rows, ok, verdicts = [], True, []
    for batch in r.batch_sizes:
        for shape in ("distinct", "same"):
            with_, without = base_label(shape, batch, True), base_label(shape, batch, False)
            ratio = r.runs.median(with_) / r.runs.median(without)
            # Per round: the two ran one after the other in the same round (paired).
            paired = [w / o for w, o in zip(r.runs.values[with_], r.runs.values[without], strict=True)]
            reads = median(r.runs.extra[with_])
            for label in (with_, without):
                rows.append([
                    label, per_rep(r.runs.values[label], "{:,.0f}"), f"{r.runs.median(label):,.0f}",
                    f"{r.runs.total_calls(label) / r.events:.3f}", r.runs.calls_text(label),
                    f"{ratio:.2f} ({per_rep(paired)})" if label == with_ else "",
                    f"{reads:.1%}" if label == with_ else "",
                ])  # fmt: skip
            met = ratio >= 1 - TARGET_BASE_COST
            ok &= met
            verdicts.append(
                f"- {shape} values, batch {batch}: with a base {ratio:.2f} × the throughput without (medians; "
                f"paired per round: median {median(paired):.2f}); cost {1 - ratio:+.0%}, target ≤ "
                f"{TARGET_BASE_COST:.0%} → {'met' if met else 'MISSED'}; the base check's reads took {reads:.1%} "
                "of the Odoo request time"
            )
    out.append(markdown_table(
        ["contender", "events/s per round", "median events/s", "Odoo calls per event", "Odoo calls (round 1)",
         "with ÷ without (per round)", "reads' share of Odoo time"], rows,
    ))  # fmt: skip
    return [*out, "", *verdicts], ok


# ------------------------------------------------------------------------------- 2. mass update


@dataclass
class MassResults:
    rows: int
    naive_rows: int
    runs: Runs = field(default_factory=Runs)
    targets: list[str] = field(default_factory=list)


async def mass_section(
    pg: Postgres, where: str, settings: OdooSettings, ids_of: Callable[[OdooClient], Awaitable[list[int]]],
    reps: int, naive_rows: int, result: MassResults,
) -> None:  # fmt: skip
    """On a writable mirror of res.partner: the app's UPDATE of ``active`` over the rows of
    ``ids_of``, delivered by the consumer, against one ``write`` per record; the records are set
    active again (in Odoo and, as syncd's own write, in the mirror) after each contender."""
    result.targets.append(where)
    counting = CountingOdoo(settings)
    async with counting.client as client, database(pg, f"bench_bidi_mass_{where.split()[0]}") as (dsn, pool):
        ids = await ids_of(client)
        await client.write(MODEL, ids, {"active": True})
        cfg = consumer_settings(settings, writable=True)
        (model,) = cfg.cdc.models
        say(f"mass ({where}): mirroring res.partner into a writable table ...")
        t0 = time.perf_counter()
        polled = await ModelPoller(model, cfg.cdc, MIRROR, client, pool).poll()
        say(f"  {polled.rows_read:,} partners in {time.perf_counter() - t0:.1f} s")
        consumer = OutboxConsumer(cfg, client, pool, dsn, "bench-mass")

        async def restore() -> None:
            for i in range(0, len(ids), 1000):
                await client.write(MODEL, ids[i : i + 1000], {"active": True})
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("select set_config('syncd.origin', 'cdc', true)")
                await conn.execute(
                    f'update {TABLE} set active = true, "_sync_state" = \'synced\', "_sync_event" = null'
                    " where id = any($1::bigint[])", ids,
                )  # fmt: skip
            await settle(pool, TABLE)

        async def inactive(subset: Sequence[int]) -> int:
            return await client.search_count(MODEL, [("id", "in", list(subset)), ("active", "=", False)],
                                             context=ALL_RECORDS)  # fmt: skip

        async def syncd_update() -> None:
            label = f"{where}: syncd, app UPDATE of {len(ids):,} rows → outbox → Odoo"
            counting.take()
            t0 = time.perf_counter()
            status = await pool.execute(
                f"update {TABLE} set active = false where id = any($1::bigint[])", ids
            )
            updated = time.perf_counter() - t0
            await drained(consumer, pool, len(ids), label)
            seconds = time.perf_counter() - t0
            calls = counting.take()
            if status != f"UPDATE {len(ids)}" or await inactive(ids) != len(ids):
                raise RuntimeError(f"{label}: {status}, {await inactive(ids)} archived in Odoo")
            result.runs.add(label, seconds, calls, updated)
            say(f"  {label}: {seconds:.2f} s (UPDATE {updated:.2f} s), {dict(calls)}")
            await restore()

        async def naive() -> None:
            subset = ids[:naive_rows]
            label = f"{where}: naive, one write per record ({len(subset):,} records)"
            counting.take()
            t0 = time.perf_counter()
            for rid in subset:
                await client.write(MODEL, [rid], {"active": False})
            seconds = time.perf_counter() - t0
            calls = counting.take()
            if await inactive(subset) != len(subset):
                raise RuntimeError(f"{label}: {await inactive(subset)} archived in Odoo")
            result.runs.add(label, seconds * len(ids) / len(subset), calls, seconds)
            say(f"  {label}: {seconds:.2f} s, {dict(calls)}")
            await restore()

        await rotated(reps, [syncd_update, naive], f"mass ({where})")


def report_mass(r: MassResults) -> list[str]:
    out = [
        f"### 2. An app's mass UPDATE on a writable mirror table: `UPDATE odoo.res_partner SET active = false "
        f"WHERE id = any(…)` over {r.rows:,} rows, until every event is done (batch 100, concurrency 2)",
        "",
    ]
    rows = []
    for where in r.targets:
        labels = [label for label in r.runs.values if label.startswith(where + ":")]
        syncd_label = next(label for label in labels if ": syncd" in label)
        for label in labels:
            is_syncd = label == syncd_label
            values = r.runs.values[label]
            extra = r.runs.extra.get(label, [])
            rows.append([
                label, per_rep(values), f"{median(values):.2f}",
                f"{r.rows / median(values):,.0f}",
                f"{median(extra):.2f}" if is_syncd else "-",
                r.runs.calls_text(label),
                f"{r.runs.median(label) / r.runs.median(syncd_label):.1f}" if not is_syncd else "1",
            ])  # fmt: skip
    out.append(markdown_table(
        ["contender", f"seconds for {r.rows:,} rows per round", "median s", "rows/s", "of it the UPDATE (s)",
         "Odoo calls (round 1)", "× syncd's time"], rows,
    ))  # fmt: skip
    if r.naive_rows < r.rows:
        out += ["", f"The naive loop wrote {r.naive_rows:,} records per round; its seconds are scaled to "
                f"{r.rows:,} (× {r.rows / r.naive_rows:g})."]  # fmt: skip
    return out


# ------------------------------------------------------------------------------ 3. the trigger

#: res.partner's fields of bench.real_odoo.FIELDS as fields_get describes them (no Odoo needed).
TRIGGER_FIELDS: dict[str, dict[str, Any]] = {
    name: {"type": kind, "store": True, "readonly": name == "write_date"}
    for name, kind in [("name", "char"), ("ref", "char"), ("email", "char"), ("phone", "char"),
                       ("parent_id", "many2one"), ("active", "boolean"), ("is_company", "boolean"),
                       ("category_id", "many2many"), ("write_date", "datetime")]
}  # fmt: skip


def trigger_tables() -> dict[str, MirrorTable]:
    return {
        kind: MirrorTable.build(
            kind, ModelSettings(model=MODEL, fields=FIELDS, writable=kind == "writable"), TRIGGER_FIELDS
        )
        for kind in ("plain", "writable")
    }


FILL_SQL = """
insert into {table} (id, name, ref, email, phone, parent_id, active, is_company, category_id, write_date, _raw)
select g, 'Bench Contact ' || g, 'bench-' || g, 'bench' || g || '@example.com', '+1 555 ' || lpad(g::text, 7, '0'),
       case when g % 10 <> 0 then 1 + g % 20 end, true, g % 10 = 0,
       case when g % 3 = 0 then array[1 + g % 5]::bigint[] end, now(),
       jsonb_build_object('id', g, 'name', 'Bench Contact ' || g, 'ref', 'bench-' || g,
                          'email', 'bench' || g || '@example.com', 'phone', '+1 555 ' || lpad(g::text, 7, '0'),
                          'active', true, 'is_company', g % 10 = 0, 'write_date', '2025-01-01 00:00:00',
                          'parent_id', case when g % 10 <> 0 then jsonb_build_array(1 + g % 20, 'Company')
                                       else 'false'::jsonb end,
                          'category_id', case when g % 3 = 0 then jsonb_build_array(1 + g % 5)
                                         else '[]'::jsonb end)
from generate_series(1, $1) g
"""


@dataclass
class TriggerResults:
    rows: int
    runs: Runs = field(default_factory=Runs)
    #: µs per single-row UPDATE statement
    singles: Runs = field(default_factory=Runs)


#: Single-row UPDATE statements per round (one transaction).
SINGLES = 1_000
PLAIN = "plain mirror table (not writable)"
WRITABLE = "writable mirror table, an app's UPDATE (→ outbox events)"
OWN = "writable mirror table, syncd's own write (syncd.origin = 'cdc')"


async def trigger_section(pg: Postgres, reps: int, rows: int) -> TriggerResults:
    """The same UPDATE of ``active`` over every row of a plain and a writable mirror table (and the
    writable one as syncd's own write), flipping the flag each round so that every round changes
    every row; the outbox is emptied and the tables vacuumed between contenders (not timed)."""
    result = TriggerResults(rows)
    tables = trigger_tables()
    async with database(pg, "bench_bidi_trigger") as (_dsn, pool):
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("select set_config('syncd.origin', 'cdc', true)")
            for table in tables.values():
                await conn.execute(table.create_sql())
                await conn.execute(table.trigger_sql())
                await conn.execute(FILL_SQL.format(table=table.qualified), rows)
        for table in tables.values():
            await pool.execute(f"vacuum analyze {table.qualified}")
        flips: Counter[str] = Counter()

        async def update(label: str, table: MirrorTable, own: bool) -> None:
            flips[table.qualified] += 1
            value = flips[table.qualified] % 2 == 0  # false first: every row changes every round
            sql = f"update {table.qualified} set active = $1"
            async with pool.acquire() as conn:
                t0 = time.perf_counter()
                async with conn.transaction():
                    if own:
                        await conn.execute("select set_config('syncd.origin', 'cdc', true)")
                    status = await conn.execute(sql, value)
                seconds = time.perf_counter() - t0
            if status != f"UPDATE {rows}":
                raise RuntimeError(f"{label}: {status}")
            events = int(await pool.fetchval("select count(*) from syncd.outbox"))
            if events != (rows if table.writable and not own else 0):
                raise RuntimeError(f"{label}: {events} outbox events")
            result.runs.add(label, rows / seconds, extra=seconds)
            say(f"  {label}: {rows / seconds:,.0f} rows/s ({seconds:.3f} s)")
            await settle(pool, table.qualified)

        async def singles(label: str, table: MirrorTable) -> None:
            # One statement per row, all in one transaction (the commit aside): what a statement costs.
            n = min(rows, SINGLES)
            flips[label] += 1
            sql = (f"do $$ begin for i in 1..{n} loop update {table.qualified} set phone = 'p' || i || "
                   f"'-{flips[label]}' where id = i; end loop; end $$")  # fmt: skip
            async with pool.acquire() as conn:
                t0 = time.perf_counter()
                await conn.execute(sql)
                seconds = time.perf_counter() - t0
            result.singles.add(label, seconds / n * 1e6)
            say(f"  {label}, {n:,} single-row UPDATEs: {seconds / n * 1e6:.0f} µs each")
            await settle(pool, table.qualified)

        contenders = [
            lambda: update(PLAIN, tables["plain"], False),
            lambda: update(WRITABLE, tables["writable"], False),
            lambda: update(OWN, tables["writable"], True),
            lambda: singles(PLAIN, tables["plain"]),
            lambda: singles(WRITABLE, tables["writable"]),
        ]
        await rotated(1, contenders, "trigger: warming up")
        result.runs, result.singles = Runs(), Runs()
        await rotated(reps, contenders, "trigger")
    return result


def report_trigger(r: TriggerResults) -> tuple[list[str], bool]:
    out = [
        f"### 3. The mirror trigger: `UPDATE <mirror> SET active = …` over all {r.rows:,} rows of a mirror "
        f"table of res.partner ({len(FIELDS)} fields), one statement and its commit",
        "",
    ]
    plain = r.runs.median(PLAIN)
    rows = []
    for label in (PLAIN, WRITABLE, OWN):
        values = r.runs.values[label]
        rows.append([
            label, per_rep(values, "{:,.0f}"), f"{median(values):,.0f}",
            f"{median(r.runs.extra[label]) * 1000:.0f}", f"{plain / median(values):.2f}",
            f"{(median(r.runs.extra[label]) - median(r.runs.extra[PLAIN])) / r.rows * 1e6:.0f}",
        ])  # fmt: skip
    out.append(markdown_table(
        ["contender", "rows/s per round", "median rows/s", "median ms", "× plain's time", "µs per row over plain"],
        rows,
    ))  # fmt: skip
    out += ["", f"One row per statement: {min(r.rows, SINGLES):,} `UPDATE … SET phone = … WHERE id = i` in one "
            "transaction (a DO loop), µs per statement:", ""]  # fmt: skip
    out.append(markdown_table(
        ["contender", "µs per round", "median µs"],
        [[label, per_rep(r.singles.values[label], "{:.0f}"), f"{r.singles.median(label):.0f}"]
         for label in (PLAIN, WRITABLE)],
    ))  # fmt: skip
    x = plain / r.runs.median(WRITABLE)
    ok = x <= TARGET_TRIGGER_X
    out += ["", f"- An app's UPDATE on a writable table takes {x:.2f} × the time of a plain one (target ≤ "
            f"{TARGET_TRIGGER_X:g} ×) → {'met' if ok else 'MISSED'}"]  # fmt: skip
    return out, ok


# -------------------------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> int:
    sections = set(args.sections)
    odoo = RealOdoo.from_args(args)
    needs_odoo = bool(sections & {"base", "mass"})
    if needs_odoo and not odoo.api_key:
        raise RuntimeError("the base and mass sections need the real Odoo's API key (--odoo-api-key)")
    started = time.perf_counter()
    say(f"starting PostgreSQL ({'--dsn' if args.dsn else 'embedded'}) ...")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    out: list[str] = []
    ok = True
    try:
        await pg.create_database("bench_bidi_probe")  # learns the server version
        head = [machine_line()]
        if needs_odoo:
            async with OdooClient(odoo.settings("json2", timeout_seconds=300)) as client:
                info = await client.version()
                say(f"seeding: {args.partners:,} partners marked ref={MARKER}<n> ...")
                await seed_partners(client, args.partners)
            head.append(f"Odoo {info.server_version} at {odoo.url} (JSON-2, pid {args.odoo_pid or '?'})")
        head += [f"PostgreSQL {pg.version} ({pg.description})", ""]
        out += head
        if "trigger" in sections:
            lines, met = report_trigger(await trigger_section(pg, args.reps, args.trigger_rows))
            out += [*lines, ""]
            ok &= met
        if "base" in sections:
            base = await base_section(pg, odoo, args.reps, args.events, args.batch_sizes, skip=0)
            lines, met = report_base(base)
            out += [*lines, ""]
            ok &= met
        if "mass" in sections:
            mass = MassResults(args.mass_rows, min(args.naive_rows, args.mass_rows))
            skip = args.events if "base" in sections else 0

            async def real_ids(client: OdooClient) -> list[int]:
                return await bench_partners(client, args.mass_rows, skip)

            await mass_section(pg, "real Odoo", odoo.settings("json2", timeout_seconds=300), real_ids,
                               args.reps, mass.naive_rows, mass)  # fmt: skip
            if args.fake:
                fake = await FakeProcess.start(0)
                try:

                    async def fake_ids(client: OdooClient) -> list[int]:
                        return await client.create(
                            MODEL, [{"name": f"Mass {i}"} for i in range(args.mass_rows)]
                        )

                    fake_settings = OdooSettings.model_validate({"url": fake.url, "api_key": "admin"})
                    await mass_section(
                        pg, "fake Odoo", fake_settings, fake_ids, args.reps, mass.naive_rows, mass
                    )
                finally:
                    fake.stop()
            out += [*report_mass(mass), ""]
        out.append(f"The whole benchmark took {time.perf_counter() - started:.0f} s.")
        print("\n".join(out), flush=True)
        return 0 if ok or not args.check else 3
    finally:
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.bidirectional_speed",
        description="Writes with a base, an app's mass UPDATE and the mirror trigger (issue 13).",
    )
    add_odoo_arguments(p)
    p.add_argument(
        "--sections", nargs="+", choices=["base", "mass", "trigger"], default=["base", "mass", "trigger"]
    )
    p.add_argument(
        "--partners", type=int, default=20_000, help="bench partners to make sure exist (default 20000)"
    )
    p.add_argument("--reps", type=int, default=5, help="rounds of every contender (default 5)")
    p.add_argument(
        "--events", type=int, default=2_000, help="write events per contender of `base` (default 2000)"
    )
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100], help="outbox.batch_size of `base`")
    p.add_argument("--mass-rows", type=int, default=5_000, help="rows of the mass UPDATE (default 5000)")
    p.add_argument("--naive-rows", type=int, default=5_000,
                   help="records of the naive one-write-per-record loop (scaled to --mass-rows)")  # fmt: skip
    p.add_argument("--fake", action=argparse.BooleanOptionalAction, default=True,
                   help="the mass update against the fake Odoo as well (default on)")  # fmt: skip
    p.add_argument(
        "--trigger-rows", type=int, default=10_000, help="rows of the trigger UPDATE (default 10000)"
    )
    p.add_argument("--dsn", help="an existing PostgreSQL (superuser DSN) instead of an embedded one")
    p.add_argument("--check", action="store_true", help="exit 3 when a target is missed")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if set(args.sections) & {"base", "mass"} and not args.odoo_url:
        p.error("no Odoo: give --odoo-url or set ODOO19_URL (bash ../shared/odoo19/up.sh env), "
                "or run --sections trigger alone")  # fmt: skip
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as e:
        print(f"bench.bidirectional_speed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
