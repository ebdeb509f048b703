"""syncd against peers on the same machine in the same run (issue 6).

Run ``.venv-peers/bin/python -m bench.peers`` (full, ~5 min) or ``--quick`` (~1.5 min); the venv
comes from ``bench/peers/setup.sh``. One throw-away embedded PostgreSQL (durable: fsync and
synchronous_commit on, as ``bench.cdc``; ``--dsn`` for another server), one database per contender.

1. **Outbox claim/complete loop**, no-op work, ``--events`` pending events each:
   *syncd*: ``OutboxConsumer.claim()`` + ``record(done)`` exactly as ``bench.outbox`` measures it
   (its ``ClaimBench``: the table reset before every run, one and two loops);
   *raw*: ``bench.outbox``'s one-statement ``FOR UPDATE SKIP LOCKED`` claim+complete loop;
   *procrastinate*: ``batch_defer_async`` of N jobs of a no-op async task (not timed), then its
   worker (``run_worker_async(wait=False, concurrency=…)``) until the queue is empty (timed); every
   job must end ``succeeded``.
2. **Mirror write path**, the ``--records`` records of ``x.bench`` exactly as the fake Odoo returns
   them (``bench.cdc.fetch_all`` against ``bench.fake_server`` in its own process; not timed), merged
   into an empty table, pages of 5000 (the backfill page):
   *syncd*: ``bench.cdc.WritePath.syncd`` (``upsert_page``, what ``ModelPoller._write_page`` does),
   and ``bench.cdc``'s *raw COPY + upsert* limit for reference;
   *dlt*: a resource with ``primary_key="id"``, ``write_disposition="merge"``, postgres destination;
   extract, normalize and load timed separately; the records are flattened as an ETL script would
   (Odoo's ``false`` → NULL, many2one → id; many2many stays a list → a json column, nesting 0);
   *pandas*: the ``../shared/seeds`` style: per page ``pd.DataFrame(records)``, the same flattening
   (many2many as JSON text), ``to_sql`` into a staging table (``if_exists="replace"``,
   ``method="multi"``), then ``INSERT … SELECT … ON CONFLICT (id) DO UPDATE`` into the target.
   Every method must leave the same rows: count and an md5 over ``id:name:quantity`` in id order.

Tables to stdout, progress to stderr; exit 0 when the run completed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cdc import (
    BACKFILL_PAGE,
    Postgres,
    WritePath,
    fetch_all,
    machine_busy,
    postgres_cpu,
    say,
)
from bench.fake_server import FakeProcess
from bench.outbox import ClaimBench, CpuMeter
from bench.report import markdown_table
from syncd import db, migrate
from syncd.cdc.schema import MirrorTable
from syncd.config import DatabaseSettings, Settings

NOT_INSTALLED = "not installed"
DIGEST_SQL = (
    "select count(*), md5(coalesce(string_agg(id::text || ':' || coalesce(name, '') || ':' "
    "|| coalesce(quantity::bigint::text, ''), '|' order by id), '')) from {table}"
)


# ----------------------------------------------------------------------------------------- timing
@dataclass
class Span:
    """Wall seconds and CPU seconds of this process, of PostgreSQL, and of everything else."""

    wall: float = 0.0
    py: float = 0.0
    pg: float = 0.0
    machine: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.py - self.pg)


@contextlib.contextmanager
def span(postmaster: int | None) -> Iterator[Span]:
    s = Span()
    pg0, m0, c0, w0 = postgres_cpu(postmaster), machine_busy(), time.process_time(), time.perf_counter()
    yield s
    s.wall = time.perf_counter() - w0
    s.py = time.process_time() - c0
    s.pg = postgres_cpu(postmaster) - pg0
    s.machine = machine_busy() - m0


@dataclass
class Row:
    section: str
    method: str
    items: int
    seconds: float  # nan: not run
    note: str = ""
    py_cpu: float = float("nan")
    pg_cpu: float = float("nan")
    other_cpu: float = float("nan")
    digest: str = ""
    reference: bool = False  # not a peer: a limit printed for context

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds and self.seconds == self.seconds else float("nan")


@dataclass
class Results:
    outbox: list[Row] = field(default_factory=list)
    write: list[Row] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ------------------------------------------------------------------------------------ 1. outbox
async def migrated_database(pg: Postgres, name: str) -> str:
    dsn = await pg.create_database(name)
    conn = await db.connect(dsn, DatabaseSettings())
    try:
        await migrate.apply(conn, migrate.load_migrations())
    finally:
        await conn.close()
    return dsn


async def outbox_syncd_and_raw(pg: Postgres, events: int, rounds: int) -> list[Row]:
    """syncd's consumer loop and the raw loop, through ``bench.outbox.ClaimBench`` (best of ``rounds``)."""
    dsn = await migrated_database(pg, "peers_outbox")
    pool = await db.create_pool(dsn, Settings.model_validate({}).database)
    rows: list[Row] = []
    try:
        bench = ClaimBench(dsn, pool, CpuMeter(dsn, pg.local), events)
        for loops in (1, 2):
            best: dict[str, Any] = {}
            for _ in range(rounds):  # interleaved: a noisy neighbour hurts both alike
                for label, loop in (("raw", bench.raw), ("syncd", bench.syncd)):
                    run = await bench.measure(label, loops, loop)
                    if label not in best or run.rate > best[label].rate:
                        best[label] = run
            for label, method in (
                ("syncd", f"syncd: OutboxConsumer.claim() + record(done), {loops} loop(s)"),
                ("raw", f"raw: one-statement FOR UPDATE SKIP LOCKED claim+complete, {loops} loop(s)"),
            ):
                run = best[label]
                rows.append(
                    Row(
                        "outbox", method, run.events, run.cpu.wall, f"best of {rounds}", run.cpu.bench,
                        run.cpu.backends, max(0.0, run.cpu.machine - run.cpu.bench - run.cpu.backends),
                    )
                )  # fmt: skip
    finally:
        await pool.close()
    return rows


async def outbox_procrastinate(pg: Postgres, events: int, concurrency: int, rounds: int) -> Row:
    method = f"procrastinate{{version}}: worker, no-op task, concurrency {concurrency}"
    try:
        import procrastinate
    except ImportError:
        return Row("outbox", method.format(version=""), events, float("nan"), NOT_INSTALLED)
    from importlib.metadata import version

    method = method.format(version=" " + version("procrastinate"))
    dsn = await pg.create_database(f"peers_procrastinate_{concurrency}")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    best: Row | None = None
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for _ in range(rounds):
            async with pg_conn(dsn) as conn:
                await conn.execute("truncate procrastinate_jobs cascade")
            for start in range(0, events, 5000):
                await noop.batch_defer_async(*([{}] * min(5000, events - start)))
            async with pg_conn(dsn) as conn:
                await conn.execute("vacuum analyze procrastinate_jobs")
                with contextlib.suppress(Exception):
                    await conn.execute("checkpoint")
            # The whole server's CPU (its job table churns: autovacuum, WAL writer), not only the backends.
            with span(pg.postmaster) as cpu:
                await app.run_worker_async(
                    queues=["bench"], concurrency=concurrency, wait=False, install_signal_handlers=False,
                    listen_notify=False,
                )  # fmt: skip
            async with pg_conn(dsn) as conn:
                done = await conn.fetchval(
                    "select count(*) from procrastinate_jobs where status = 'succeeded'"
                )
            if done != events:
                raise RuntimeError(f"procrastinate: {done} of {events} jobs succeeded")
            say(f"  {method}: {events / cpu.wall:,.0f} events/s")
            row = Row(
                "outbox", method, events, cpu.wall, f"best of {rounds}; defer not timed; pg: whole server",
                cpu.py, cpu.pg, cpu.others,
            )  # fmt: skip
            if best is None or row.seconds < best.seconds:
                best = row
    assert best is not None
    return best


@contextlib.asynccontextmanager
async def pg_conn(dsn: str) -> AsyncIterator[Any]:
    conn = await db.connect(dsn, DatabaseSettings())
    try:
        yield conn
    finally:
        await conn.close()


# ------------------------------------------------------------------------------- 2. write path
def flattener(table: MirrorTable, *, m2m_json: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What an ETL script does to a ``search_read`` record: ``false`` → None (except booleans),
    many2one ``[id, name]`` → id, many2many ids kept as a list (or JSON text for pandas)."""
    kinds = {c.field: c.odoo_type for c in table.columns}
    m2o = [f for f, t in kinds.items() if t == "many2one"]
    x2m = [f for f, t in kinds.items() if t in ("many2many", "one2many")]
    nullable = [f for f, t in kinds.items() if t not in ("boolean", "many2one", "many2many", "one2many")]

    def flatten(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for f in nullable:
            if out.get(f) is False:
                out[f] = None
        for f in m2o:
            v = out.get(f)
            out[f] = v[0] if v else None
        for f in x2m:
            v = out.get(f) or []
            out[f] = json.dumps(v) if m2m_json else v
        return out

    return flatten


async def digest(dsn: str, table: str) -> str:
    async with pg_conn(dsn) as conn:
        row = await conn.fetchrow(DIGEST_SQL.format(table=table))
    return f"{row[0]}:{row[1]}"


async def write_syncd(
    pg: Postgres, table: MirrorTable, records: list[dict[str, Any]], rounds: int
) -> list[Row]:
    dsn = await pg.create_database("peers_write_syncd")
    conn = await db.connect(dsn, DatabaseSettings())
    rows: list[Row] = []
    try:
        await conn.execute(table.create_sql())
        wp = WritePath(conn, table, pg)
        await wp.syncd(records[:20_000], BACKFILL_PAGE)  # warm-up
        for label, run, ref in (
            ("syncd: upsert_page (as ModelPoller._write_page)", wp.syncd, False),
            ("raw COPY to temp table + INSERT … ON CONFLICT (bench.cdc's limit)", wp.raw_copy_upsert, True),
        ):
            best = None
            for _ in range(rounds):
                res = await run(records, BACKFILL_PAGE)
                if best is None or res.seconds < best.seconds:
                    best = res
            assert best is not None
            rows.append(
                Row(
                    "write", label, len(records), best.seconds, f"best of {rounds}; pages of {BACKFILL_PAGE}",
                    best.client_cpu, best.server_cpu, best.other_cpu,
                    await digest(dsn, table.qualified), reference=ref,
                )
            )  # fmt: skip
            say(f"  {label}: {rows[-1].rate:,.0f} rows/s")
    finally:
        await conn.close()
    return rows


def sqlalchemy_url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def write_dlt(
    pg: Postgres, dsn: str, table: MirrorTable, records: list[dict[str, Any]], workdir: Path
) -> list[Row]:
    try:
        import dlt
        from dlt.destinations import postgres
    except ImportError:
        return [Row("write", "dlt (merge)", len(records), float("nan"), NOT_INSTALLED)]
    from importlib.metadata import version

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    if "@" in dsn and ":" not in dsn.split("://", 1)[1].split("@", 1)[0]:
        # dlt insists on a password; the embedded server trusts loopback and ignores this one.
        dsn = dsn.replace("@", ":unused@", 1)
    flatten = flattener(table, m2m_json=False)

    @dlt.resource(
        name="x_bench", primary_key="id", write_disposition="merge", max_table_nesting=0
    )  # fmt: skip
    def x_bench() -> Iterator[dict[str, Any]]:
        for record in records:
            yield flatten(record)

    pipeline = dlt.pipeline(
        pipeline_name="peers_dlt", destination=postgres(credentials=dsn), dataset_name="dlt_bench",
        pipelines_dir=str(workdir / "dlt"),
    )  # fmt: skip
    parts: list[tuple[str, Span]] = []
    for step, call in (
        ("extract", lambda: pipeline.extract(x_bench())),
        ("normalize", pipeline.normalize),
        ("load", pipeline.load),
    ):
        with span(pg.postmaster) as s:
            call()
        parts.append((step, s))
        say(f"  dlt {step}: {s.wall:.1f} s")
    total = Span(
        sum(s.wall for _, s in parts), sum(s.py for _, s in parts), sum(s.pg for _, s in parts),
        sum(s.machine for _, s in parts),
    )  # fmt: skip
    split = " / ".join(f"{name} {s.wall:.1f}" for name, s in parts)
    return [
        Row(
            "write", f"dlt {version('dlt')}: merge, primary_key id (extract + normalize + load)", len(records),
            total.wall, f"s: {split}", total.py, total.pg, total.others,
        ),
        Row(
            "write", f"dlt {version('dlt')}: load step alone", len(records), parts[2][1].wall,
            "staging table + delete/insert merge", parts[2][1].py, parts[2][1].pg, parts[2][1].others,
        ),
    ]  # fmt: skip


def write_pandas(pg: Postgres, dsn: str, table: MirrorTable, records: list[dict[str, Any]]) -> Row:
    method = "pandas{}: to_sql staging (multi) + INSERT … ON CONFLICT, the seeds' script"
    try:
        import pandas as pd
        import sqlalchemy as sa
    except ImportError:
        return Row("write", method.format(""), len(records), float("nan"), NOT_INSTALLED)
    flatten = flattener(table, m2m_json=True)
    engine = sa.create_engine(sqlalchemy_url(dsn, "psycopg2"))
    target, stage = "pandas_x_bench", "pandas_x_bench_stage"
    # The target table exists before the run (as in the seeds' pipeline): types as pandas infers them.
    first = pd.DataFrame([flatten(r) for r in records[:BACKFILL_PAGE]])
    first.head(0).to_sql(target, engine, if_exists="replace", index=False)
    columns = list(first.columns)
    with engine.begin() as c:
        c.execute(sa.text(f'alter table {target} add primary key ("id")'))
    names = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != "id")
    upsert = sa.text(
        f"insert into {target} ({names}) select {names} from {stage} on conflict (id) do update set {updates}"
    )
    with span(pg.postmaster) as s:
        for start in range(0, len(records), BACKFILL_PAGE):
            df = pd.DataFrame([flatten(r) for r in records[start : start + BACKFILL_PAGE]])
            df.to_sql(stage, engine, if_exists="replace", index=False, method="multi", chunksize=1000)
            with engine.begin() as c:
                c.execute(upsert)
    engine.dispose()
    say(f"  pandas: {len(records) / s.wall:,.0f} rows/s")
    return Row(
        "write", method.format(" " + pd.__version__), len(records), s.wall, f"pages of {BACKFILL_PAGE}, chunks of 1000",
        s.py, s.pg, s.others,
    )  # fmt: skip


async def write_path(pg: Postgres, records_n: int, rounds: int, workdir: Path) -> list[Row]:
    say(f"write path: building {records_n:,} x.bench records in the fake Odoo (own process) ...")
    fake = await FakeProcess.start(records_n)
    try:
        fetched = await fetch_all(fake.url, fake.pid, keep=True)
    finally:
        fake.stop()
    records = fetched.kept
    table = MirrorTable("bench", fetched.table.model, fetched.table.columns)
    gc.collect()
    gc.freeze()  # the records stay alive: keep them out of full collections (as bench.cdc does)
    try:
        rows = await write_syncd(pg, table, records, rounds)
        dsn = await pg.create_database("peers_write_dlt")
        say("write path: dlt ...")
        rows += await asyncio.to_thread(write_dlt, pg, dsn, table, records, workdir)
        if rows[-1].note != NOT_INSTALLED:
            d = await digest(dsn, "dlt_bench.x_bench")
            for r in rows[-2:]:
                r.digest = d
        dsn = await pg.create_database("peers_write_pandas")
        say("write path: pandas ...")
        row = await asyncio.to_thread(write_pandas, pg, dsn, table, records)
        if row.note != NOT_INSTALLED:
            row.digest = await digest(dsn, "pandas_x_bench")
        rows.append(row)
    finally:
        gc.unfreeze()
    reference = rows[0].digest
    for r in rows:
        if r.digest and r.digest != reference:
            raise RuntimeError(f"{r.method}: other rows than syncd ({r.digest} vs {reference})")
    return rows


# ------------------------------------------------------------------------------------- report
def num(x: float, fmt: str = ",.0f") -> str:
    return "-" if x != x else format(x, fmt)


def section(rows: list[Row], unit: str, syncd_rate: float) -> str:
    out = []
    for r in rows:
        ratio = syncd_rate / r.rate if r.rate == r.rate and r.rate else float("nan")
        per = 1e6 / r.items
        out.append([
            r.method, num(r.seconds, ".2f"), num(r.rate), num(ratio, ".2f") + ("" if ratio != ratio else "×"),
            f"{num(r.py_cpu * per)} / {num(r.pg_cpu * per)}", num(r.other_cpu, ".1f"),
            r.note + (f" [{r.digest[:14]}]" if r.digest else ""),
        ])  # fmt: skip
    headers = ["method", "s", f"{unit}/s", "syncd ×", "CPU µs/item py / pg", "other CPU s", "note"]
    return markdown_table(headers, out)


def report(res: Results, pg: Postgres, args: argparse.Namespace) -> str:
    lines = [
        f"Run: {' '.join(sys.argv[1:]) or '(full)'}",
        f"Machine: {os.cpu_count()} cores; Python {platform.python_version()}; PostgreSQL {pg.version} ({pg.description})",
        f"Load average before / after: {res.load_before} / {res.load_after} (shared machine: other helpers' runs)",
        "",
    ]
    if res.outbox:
        s1 = next(r for r in res.outbox if r.method.startswith("syncd") and "1 loop" in r.method)
        s2 = next((r for r in res.outbox if r.method.startswith("syncd") and "2 loop" in r.method), s1)
        jobs = min(args.events, args.procrastinate_events)
        lines.append(
            f"1. Outbox claim/complete, no-op work, {args.events:,} events (procrastinate: {jobs:,} jobs). "
            "syncd × = syncd's events/s / the row's (≥ 1: syncd leads); one loop vs syncd with one loop, "
            "then two loops / concurrency 2 vs syncd with two loops"
        )
        ones = [r for r in res.outbox if "1 loop" in r.method or "concurrency 1" in r.method]
        more = [r for r in res.outbox if r not in ones]
        lines += [section(ones, "events", s1.rate), section(more, "events", s2.rate), ""]
    if res.write:
        s = res.write[0]
        lines.append(
            f"2. Mirror write path, {s.items:,} x.bench records as the fake returns them, merged into an empty "
            "table. syncd × = syncd's rows/s / the row's; same rows: [count:md5 of id:name:quantity]"
        )
        lines += [section(res.write, "rows", s.rate), ""]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-peers-"))
    say("starting PostgreSQL ...")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    res = Results(load_before=loadavg())
    try:
        await pg.create_database("peers_probe")  # sets pg.version
        if "outbox" in args.sections:
            say(f"outbox: {args.events:,} events ...")
            res.outbox = await outbox_syncd_and_raw(pg, args.events, args.rounds)
            n = min(args.events, args.procrastinate_events)
            say(f"outbox: procrastinate, {n:,} jobs ...")
            for concurrency in (1, 2):
                res.outbox.append(await outbox_procrastinate(pg, n, concurrency, 1))
        if "write" in args.sections:
            res.write = await write_path(pg, args.records, args.rounds, workdir)
        res.load_after = loadavg()
        print(report(res, pg, args), flush=True)
        return 0
    finally:
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k events, 20k records, one round")
    parser.add_argument("--events", type=int, help="outbox events per run (default 20000; quick 5000)")
    parser.add_argument("--records", type=int, help="x.bench records (default 100000; quick 20000)")
    parser.add_argument("--procrastinate-events", type=int, default=5_000,
                        help="jobs for procrastinate (default 5000: it runs ~150/s here; one round)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="runs per method, best counts (default 2; quick 1)")
    parser.add_argument(
        "--only", dest="sections", nargs="+", choices=["outbox", "write"], default=["outbox", "write"]
    )
    parser.add_argument("--dsn", help="an existing PostgreSQL (superuser DSN) instead of an embedded one")
    args = parser.parse_args(argv)
    args.events = args.events or (5_000 if args.quick else 20_000)
    args.records = args.records or (20_000 if args.quick else 100_000)
    args.rounds = args.rounds or (1 if args.quick else 2)
    # SIGTERM like Ctrl-C: the finally blocks stop the replicas, the fake and PostgreSQL.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as e:
        print(f"bench.peers: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
