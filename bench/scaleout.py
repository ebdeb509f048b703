"""Scale-out: 1, 2 and 3 ``syncd run`` replicas against one fake Odoo (issue 6).

Run ``python -m bench.scaleout`` (full: 20k events, ~3 min) or ``--quick`` (5k events). Per replica
count, from scratch: a fresh database of one embedded PostgreSQL (durable, as ``bench.cdc``;
``syncd migrate`` by the real CLI), a fresh fake Odoo in its own process (``bench.fake_server``:
demo data + 2,000 ``x.bench`` records), ``k`` replicas started at the same moment
(``tests/e2e/helpers.Daemon``: subprocesses, HTTP on port 0) with CDC on six models, interval 1 s.

1. **Leadership**: which replica polls which model, from each log's "now polling X on this replica",
   once every model's backfill is done.
2. **Outbox throughput end to end**: a backlog of ``--events`` upserts of ``res.partner`` on distinct
   keys enqueued through ``syncd.enqueue`` in one transaction; the clock runs from its commit until
   every event is ``done`` (or ``dead``), the database polled every 50 ms. CPU seconds of each replica,
   the fake and PostgreSQL over that span (from ``/proc``), and of everything else on the machine.
3. **Failover** (``k`` ≥ 2): ``kill -9`` of the replica leading the most models; seconds until each
   of its models is being polled by another replica (its "now polling" line appears).

Tables to stdout, progress to stderr. Exit 0 when the run completed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.cdc import Postgres, machine_busy, postgres_cpu, say
from bench.fake_server import FakeProcess
from bench.outbox import proc_cpu
from tests.e2e.helpers import Daemon, clean_env, syncd_async

ROOT = Path(__file__).resolve().parent.parent
#: model → mirrored fields (res.users' name is computed, not stored: its login instead)
MODELS = {
    "res.partner": ["name"],
    "res.partner.category": ["name"],
    "res.country": ["name"],
    "res.currency": ["name"],
    "res.users": ["login"],
    "x.bench": ["name"],
}
BENCH_RECORDS = 2_000
#: ``events`` upserts on distinct keys through the producer API, in one statement (as
#: ``bench.outbox.enqueue_upserts``, whose ANALYZE comes after the commit, when the drain already runs)
ENQUEUE = """
select syncd.enqueue('res.partner', 'upsert', $1 || g,
       jsonb_build_object('name', 'Partner ' || g, 'email', 'p' || g || '@example.com', 'is_company', g % 2 = 0))
from generate_series(1, $2) g"""
CLAIM = re.compile(r"now polling (\S+) on this replica")
EVENT = re.compile(r"now polling (\S+) on this replica|handing (\S+) over to another replica")
BACKFILL_DONE = re.compile(r"backfill of (\S+) done")


@dataclass
class Run:
    replicas: int
    events: int = 0
    seconds: float = float("nan")
    dead: int = 0
    leaders: dict[str, list[str]] = field(default_factory=dict)  # replica → models
    cpu: dict[str, float] = field(default_factory=dict)  # process → CPU s over the drain
    other_cpu: float = 0.0
    killed: str = ""
    takeover: dict[str, tuple[str, float]] = field(default_factory=dict)  # model → (new leader, s)
    load: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def replica_env(dsn: str, url: str, name: str, pooler: str = "none") -> dict[str, str]:
    return clean_env(
        SYNCD_DATABASE__POOLER=pooler,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        SYNCD_DATABASE__DSN=dsn,
        SYNCD_ODOO__URL=url,
        SYNCD_ODOO__API_KEY="admin",
        SYNCD_CDC__MODELS=json.dumps([{"model": m, "fields": f} for m, f in MODELS.items()]),
        SYNCD_CDC__INTERVAL_SECONDS="1",
        SYNCD_DAEMON__INSTANCE_ID=name,
        SYNCD_LOG__LEVEL="info",
    )


def claims(daemon: Daemon) -> list[str]:
    """The models a replica polls now, in the order it took them: its "now polling X" lines minus
    its "handing X over" lines (replicas share the models evenly once they all run)."""
    held: list[str] = []
    for taken, handed in EVENT.findall(daemon.log_path.read_text(errors="replace")):
        if taken and taken not in held:
            held.append(taken)
        elif handed in held:
            held.remove(handed)
    return held


def balanced(daemons: dict[str, Daemon]) -> bool:
    held = [claims(d) for d in daemons.values() if d.alive]
    sizes = [len(h) for h in held]
    every = [m for h in held for m in h]
    return sorted(every) == sorted(MODELS) and max(sizes) - min(sizes) <= 1


async def until(check: object, within: float, what: str) -> float:
    assert callable(check)
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > within:
            raise RuntimeError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.perf_counter() - start


async def drain(
    conn: asyncpg.Connection,
    pg: Postgres,
    fake: FakeProcess,
    daemons: dict[str, Daemon],
    prefix: str,
    events: int,
) -> Run:
    """Enqueue ``events`` upserts in one transaction; seconds from its commit until none is open."""
    run = Run(len(daemons))
    pids = {name: d.pid for name, d in daemons.items()}
    async with conn.transaction():  # committed at the end of the block (not timed)
        await conn.execute(ENQUEUE, prefix, events)
        # Statistics that know about the backlog, committed with it: without them the claim statement
        # runs on a plan for a near-empty table until autovacuum analyzes it (3× the PostgreSQL CPU).
        await conn.execute("analyze syncd.outbox")
    # CPU from the commit on, as the clock: what the drain costs, not the enqueue.
    t0 = time.perf_counter()
    before = {name: proc_cpu(pid) or 0.0 for name, pid in pids.items()}
    fake0, pg0, m0 = proc_cpu(fake.pid) or 0.0, postgres_cpu(pg.postmaster), machine_busy()
    me0 = time.process_time()
    while True:
        left = await conn.fetchval("select count(*) from syncd.outbox where status not in ('done', 'dead')")
        if not left:
            break
        if time.perf_counter() - t0 > 300:
            raise RuntimeError(f"{left} events still open after 300 s")
        await asyncio.sleep(0.05)
    run.seconds = time.perf_counter() - t0
    run.events = events
    run.cpu = {name: (proc_cpu(pid) or 0.0) - before[name] for name, pid in pids.items()}
    run.cpu["fake Odoo"] = (proc_cpu(fake.pid) or 0.0) - fake0
    run.cpu["PostgreSQL"] = postgres_cpu(pg.postmaster) - pg0
    run.cpu["benchmark"] = time.process_time() - me0
    run.other_cpu = max(0.0, machine_busy() - m0 - sum(run.cpu.values()))
    dead = "select count(*) from syncd.outbox where status = 'dead' and key like $1 || '%'"
    run.dead = int(await conn.fetchval(dead, prefix))
    return run


async def one(pg: Postgres, k: int, events: int, workdir: Path, pooler: str, repeat: int) -> Run:
    run = Run(k)
    dsn = await pg.create_database(f"scaleout_{k}")
    fake = await FakeProcess.start(BENCH_RECORDS)
    daemons: dict[str, Daemon] = {}
    try:
        migrated = await syncd_async("migrate", env=replica_env(dsn, fake.url, "migrate"))
        if migrated.code != 0:
            raise RuntimeError(f"syncd migrate failed: {migrated.err[-2000:]}")
        names = [f"r{i + 1}" for i in range(k)]
        for name in names:
            daemons[name] = Daemon(replica_env(dsn, fake.url, name, pooler), workdir / f"{k}-{name}.log")
        await asyncio.gather(*(d.start() for d in daemons.values()))  # at the same moment
        await asyncio.gather(*(d.wait_ready(60) for d in daemons.values()))

        def backfilled() -> bool:
            logs = "".join(d.log_path.read_text(errors="replace") for d in daemons.values())
            return set(BACKFILL_DONE.findall(logs)) >= set(MODELS)

        await until(backfilled, 120, "every model's backfill")
        await until(lambda: balanced(daemons), 60, "the replicas to share the models evenly")
        run.leaders = {name: claims(d) for name, d in daemons.items()}
        say(f"{k} replica(s): leadership {run.leaders}")

        conn = await asyncpg.connect(dsn)
        try:
            for attempt in range(repeat):  # the same replicas, a fresh backlog each time; the fastest counts
                drained = await drain(conn, pg, fake, daemons, f"scale{k}-{attempt}-", events)
                say(
                    f"{k} replica(s): {events:,} events in {drained.seconds:.2f} s = {drained.rate:,.0f} events/s"
                )
                if drained.seconds < run.seconds or run.seconds != run.seconds:
                    run.seconds, run.events, run.cpu, run.other_cpu, run.dead = (
                        drained.seconds, drained.events, drained.cpu, drained.other_cpu, drained.dead,
                    )  # fmt: skip
        finally:
            await conn.close()
        run.load = loadavg()
        say(f"{k} replica(s): best {run.rate:,.0f} events/s; CPU s {run.cpu}")

        if k >= 2:
            run.killed = max(run.leaders, key=lambda n: len(run.leaders[n]))
            orphaned = set(claims(daemons[run.killed]))
            await daemons[run.killed].kill()
            t0 = time.perf_counter()

            def taken() -> bool:
                for name, d in daemons.items():
                    if name == run.killed:
                        continue
                    for model in claims(d):
                        if model in orphaned and model not in run.takeover:
                            run.takeover[model] = (name, time.perf_counter() - t0)
                return set(run.takeover) >= orphaned

            await until(taken, 60, f"the models of {run.killed} to be polled elsewhere")
            say(f"{k} replica(s): kill -9 {run.killed}; takeover {run.takeover}")
        return run
    finally:
        for d in daemons.values():
            with contextlib.suppress(Exception):
                if d.alive:
                    await d.terminate(20)
        fake.stop()


def report(runs: list[Run], pg: Postgres, events: int, pooler: str) -> str:
    base = runs[0].rate if runs else float("nan")
    lines = [
        f"Run: {' '.join(sys.argv[1:]) or '(full)'}; database.pooler {pooler}",
        f"Machine: {os.cpu_count()} cores, shared by the replicas, the fake Odoo and PostgreSQL "
        f"{pg.version} ({pg.description})",
        f"CDC: {len(MODELS)} models ({', '.join(MODELS)}), interval 1 s; outbox: {events:,} res.partner upserts "
        "on distinct keys, enqueued in one transaction, defaults (batch 100)",
        "",
        "| replicas | events/s | × 1 replica | s | CPU s: replicas / fake Odoo / PostgreSQL / benchmark / other | load avg after |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        replicas = " + ".join(f"{v:.1f}" for n, v in r.cpu.items() if n.startswith("r"))
        cpu = f"{replicas} / {r.cpu.get('fake Odoo', 0):.1f} / {r.cpu.get('PostgreSQL', 0):.1f} / {r.cpu.get('benchmark', 0):.1f} / {r.other_cpu:.1f}"
        dead = f" ({r.dead} dead)" if r.dead else ""
        lines.append(
            f"| {r.replicas} | {r.rate:,.0f}{dead} | {r.rate / base:.2f}× | {r.seconds:.2f} | {cpu} | {r.load} |"
        )
    lines += ["", "Leadership after the backfills (who polls which model), and failover after kill -9:"]
    for r in runs:
        spread = "; ".join(f"{n}: {', '.join(m) or '-'}" for n, m in r.leaders.items())
        lines.append(f"  {r.replicas} replica(s): {spread}")
        if r.killed:
            moved = ", ".join(f"{m} → {n} in {s:.2f} s" for m, (n, s) in sorted(r.takeover.items()))
            worst = max(s for _, s in r.takeover.values())
            lines.append(f"    kill -9 {r.killed}: {moved} (all within {worst:.2f} s)")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-scaleout-"))
    say("starting PostgreSQL ...")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    runs: list[Run] = []
    try:
        await pg.create_database("scaleout_probe")  # sets pg.version
        for k in args.replicas:
            say(f"{k} replica(s) ...")
            runs.append(await one(pg, k, args.events, workdir, args.pooler, args.repeat))
        print(report(runs, pg, args.events, args.pooler), flush=True)
        return 0
    finally:
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)
        if args.keep_logs:
            say(f"replica logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events")
    parser.add_argument("--events", type=int, help="outbox backlog per replica count (default 20000)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--dsn", help="an existing PostgreSQL (superuser DSN) instead of an embedded one")
    parser.add_argument(
        "--pooler", choices=["none", "transaction"], default="none",
        help="database.pooler of the replicas: none = CDC leadership by advisory locks (default), "
        "transaction = by leases in syncd.cdc_leases",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=2, help="drains per replica count, fastest counts (default 2)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the replicas' logs")
    args = parser.parse_args(argv)
    args.events = args.events or (5_000 if args.quick else 20_000)
    # SIGTERM like Ctrl-C: the finally blocks stop the replicas, the fake and PostgreSQL.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as e:
        print(f"bench.scaleout: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
