"""Benchmarks against a real Odoo 19: initial sync, incremental latency and outbox upserts end to end.

Run ``python -m bench.real_odoo`` with the Odoo given by ``--odoo-url``, ``--odoo-db``,
``--odoo-api-key`` (JSON-2) and ``--odoo-login``/``--odoo-password`` (JSON-RPC), or by the
``ODOO19_*`` variables that ``../shared/odoo19/up.sh env`` prints. Everything else starts by itself
(an embedded PostgreSQL for the mirror and the outbox, as :mod:`bench.cdc` does; ``--dsn`` for
another server). syncd runs as the real CLI in a subprocess (:class:`bench.cdc.Syncd`).

It **writes to that Odoo**: it creates ``--partners`` partners marked ``ref = 'bench-<n>'`` (once;
a rerun counts them first and only adds what is missing) and, in the outbox section, partners it
deletes again afterwards. Use an Odoo of its own, not one that other tests mirror.

Every contender runs in each of ``--reps`` rounds, in a rotated order, so that a noisy machine
disturbs them alike; the tables give each round's value and the median.

1. **Initial sync of res.partner** (every partner, ~20k, the fields of :data:`FIELDS`):
   ``syncd --once`` into a fresh database (wall time of the whole process, and its backfill from
   syncd's own log line), against *naive* (a plain ``search_read`` offset loop ordered by id, each
   page COPYed into a table, one after the other) and Odoo's *pages alone* limit: every page fetched,
   nothing written, at page sizes ``--page-sizes``, both with syncd's cursor (write-date order,
   :class:`~syncd.cdc.cursor.Cursor`, exactly as the backfill pages) and with an id keyset (``id > last``, the cheapest order there
   is for a one-off read). Target: the whole ``syncd --once`` ≥ 0.9 × the best pages-alone loop.
2. **Incremental**: ``syncd run`` polling the mirror of 1; ``--changed`` partners changed in one
   ``write`` and the time until all of them are in the mirror, against ``interval + 1 s``.
3. **Outbox upserts end to end**: ``--events`` upserts of res.partner on new keys (creates) drained
   by ``syncd --once``, against *naive* (one ``create``, or ``write`` for a known key, per event) and
   Odoo's *load() limit*: hand-tuned ``load()`` with external ids at batch sizes ``--load-batches``
   and ``--load-concurrency`` calls in flight. Target: syncd ≥ 0.9 × the best load(). And a hot-key
   shape (``--events`` upserts over ``--hot-keys`` keys) against naive.

Numbers go to stdout as Markdown tables, progress to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/real_odoo.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

import asyncpg

from bench.cdc import Changes, IncrementalResult, Postgres, Syncd, backfill_done, incremental, log_time, say
from bench.machine import machine_line
from bench.outbox import enqueue_upserts
from bench.report import markdown_table
from syncd.cdc.cursor import Cursor
from syncd.cdc.poller import ALL_RECORDS
from syncd.cdc.schema import MirrorTable
from syncd.config import CdcSettings, ModelSettings, OdooSettings
from syncd.db import quote_ident
from syncd.odoo import OdooClient
from syncd.outbox import convert, xmlid

MODEL = "res.partner"
TABLE = "res_partner"
MIRROR_SCHEMA = "odoo"
#: The mirrored fields: what an app keeps of its contacts.
FIELDS = ["name", "ref", "email", "phone", "parent_id", "active", "is_company", "category_id", "write_date"]
MARKER = "bench-"
SEED_BATCH = 1_000
CDC = CdcSettings()
#: Targets from the issue.
TARGET_ONCE_VS_PAGES = 0.9
TARGET_OUTBOX_VS_LOAD = 0.9

Protocol = Literal["json2", "jsonrpc"]


# ---------------------------------------------------------------------------------------- the Odoo


@dataclass(frozen=True)
class RealOdoo:
    """Where the real Odoo is and how to log in (``--odoo-*`` or ``ODOO19_*``)."""

    url: str
    database: str
    login: str
    api_key: str | None
    password: str | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RealOdoo:
        return cls(args.odoo_url, args.odoo_db, args.odoo_login, args.odoo_api_key, args.odoo_password)

    def protocols(self) -> list[Protocol]:
        """JSON-2 when there is an API key, JSON-RPC when there is a password."""
        out: list[Protocol] = []
        if self.api_key:
            out.append("json2")
        if self.password:
            out.append("jsonrpc")
        return out

    def settings(self, protocol: Protocol, **overrides: Any) -> OdooSettings:
        secret = {"api_key": self.api_key} if protocol == "json2" else {"password": self.password}
        return OdooSettings.model_validate(
            {"url": self.url, "database": self.database, "username": self.login, "protocol": protocol,
             **secret, **overrides}
        )  # fmt: skip

    def env(self, protocol: Protocol) -> dict[str, str]:
        """The ``SYNCD_ODOO__*`` variables of a syncd subprocess (replacing bench.cdc's fake ones)."""
        env = {
            "SYNCD_ODOO__URL": self.url,
            "SYNCD_ODOO__DATABASE": self.database,
            "SYNCD_ODOO__USERNAME": self.login,
            "SYNCD_ODOO__PROTOCOL": protocol,
        }
        if protocol == "json2":
            env["SYNCD_ODOO__API_KEY"] = self.api_key or ""
        else:
            env["SYNCD_ODOO__API_KEY"] = ""  # bench.cdc.Syncd sets one; JSON-RPC logs in with the password
            env["SYNCD_ODOO__PASSWORD"] = self.password or ""
        return env


def odoo_pid(home: str | None) -> int | None:
    """The Odoo server's pid from ``$ODOO19_HOME/odoo.pid`` (its CPU time is reported), if readable."""
    if not home:
        return None
    try:
        return int((Path(home) / "odoo.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------------------- seeding


async def seed_partners(odoo: OdooClient, wanted: int) -> tuple[int, float]:
    """Make sure ``wanted`` partners marked ``ref = 'bench-<n>'`` exist: count them, create the
    missing ones with ``create`` in batches of :data:`SEED_BATCH`. Returns (created, seconds)."""
    have = await odoo.search_count(MODEL, [("ref", "=like", f"{MARKER}%")], context=ALL_RECORDS)
    if have >= wanted:
        return 0, 0.0
    companies = [
        r["id"] for r in await odoo.search_read(MODEL, [("is_company", "=", True)], ["id"], limit=20)
    ]
    tags = [r["id"] for r in await odoo.search_read("res.partner.category", [], ["id"])]
    t0 = time.perf_counter()
    for start in range(have, wanted, SEED_BATCH):
        vals = []
        for n in range(start, min(start + SEED_BATCH, wanted)):
            company = n % 10 == 0
            vals.append({
                "name": f"Bench {'Company' if company else 'Contact'} {n}",
                "ref": f"{MARKER}{n}",
                "email": f"bench{n}@example.com",
                "phone": f"+1 555 {n:07d}",
                "is_company": company,
                "parent_id": False if company or not companies else companies[n % len(companies)],
                "category_id": [(6, 0, [tags[n % len(tags)]])] if tags and n % 3 == 0 else [],
            })  # fmt: skip
        await odoo.create(MODEL, vals)
        say(f"  seeded {start + len(vals):,} of {wanted:,} partners")
    return wanted - have, time.perf_counter() - t0


# ------------------------------------------------------------------------------- 1. initial sync


async def mirror_table(odoo: OdooClient) -> MirrorTable:
    """The mirror table syncd builds for :data:`FIELDS` (its ``read_fields`` are what it asks for)."""
    fields = await odoo.fields_get(MODEL, attributes=["type", "store", "string", "relation"])
    return MirrorTable.build(MIRROR_SCHEMA, ModelSettings(model=MODEL, fields=FIELDS), fields)


@dataclass
class Pages:
    """One read of every record, page by page."""

    label: str
    page: int
    records: int  # distinct
    rows: int  # fetched, overlaps included
    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


async def pages_by_cursor(odoo: OdooClient, read_fields: Sequence[str], page: int) -> Pages:
    """Every page as syncd's backfill asks for it (:class:`Cursor`: write-date order, a full page's
    last second read again by the next one), nothing written."""
    seen: set[int] = set()
    cursor, rows, calls = Cursor(), 0, 0
    t0 = time.perf_counter()
    while True:
        domain, order = cursor.query()
        got = await odoo.search_read(MODEL, domain, read_fields, limit=page, order=order, context=ALL_RECORDS)
        cursor, done = cursor.advance(got, page)
        rows, calls = rows + len(got), calls + 1
        seen.update(r["id"] for r in got)
        if done:
            break
    return Pages("pages alone, syncd's cursor", page, len(seen), rows, calls, time.perf_counter() - t0)


async def pages_by_id(odoo: OdooClient, read_fields: Sequence[str], page: int) -> Pages:
    """Every page by id keyset (``id > last``, ordered by id), nothing written."""
    last, records, calls = 0, 0, 0
    t0 = time.perf_counter()
    while True:
        got = await odoo.search_read(
            MODEL, [("id", ">", last)], read_fields, limit=page, order="id asc", context=ALL_RECORDS
        )
        records, calls = records + len(got), calls + 1
        if got:
            last = got[-1]["id"]
        if len(got) < page:
            break
    return Pages("pages alone, id keyset", page, records, records, calls, time.perf_counter() - t0)


#: Odoo field type → column type of the naive loop's table.
NAIVE_TYPES = {"many2one": "bigint", "many2many": "bigint[]", "boolean": "boolean", "datetime": "timestamp",
               "integer": "bigint"}  # fmt: skip


async def naive_copy(odoo: OdooClient, dsn: str, fields: dict[str, str], page: int) -> Pages:
    """The naive initial sync: a plain ``search_read`` offset loop ordered by id, each page converted
    in Python and COPYed into a table, one page after the other (``fields``: name → Odoo type)."""
    names = list(fields)
    conn = await asyncpg.connect(dsn)
    try:
        cols = ", ".join(f"{quote_ident(n)} {NAIVE_TYPES.get(t, 'text')}" for n, t in fields.items())
        await conn.execute(
            f"drop table if exists naive_partner; create table naive_partner (id bigint, {cols})"
        )

        def value(kind: str, v: Any) -> Any:
            if v is False and kind != "boolean":
                return None
            if kind == "many2one":
                return v[0]
            if kind == "datetime":
                return datetime.fromisoformat(v)
            return v

        offset, records, calls = 0, 0, 0
        t0 = time.perf_counter()
        while True:
            got = await odoo.search_read(
                MODEL, [], names, offset=offset, limit=page, order="id asc", context=ALL_RECORDS
            )
            rows = [(r["id"], *(value(fields[n], r[n]) for n in names)) for r in got]
            await conn.copy_records_to_table("naive_partner", records=rows, columns=["id", *names])
            offset, records, calls = offset + len(got), records + len(got), calls + 1
            if len(got) < page:
                break
        seconds = time.perf_counter() - t0
    finally:
        await conn.close()
    return Pages("naive: search_read offset loop + COPY", page, records, records, calls, seconds)


@dataclass
class Once:
    """One ``syncd --once`` (the CDC alone) into a fresh database."""

    protocol: Protocol
    wall: float  # the whole process
    startup: float  # process start → "backfill … about" (imports, pool, schema check, fields_get, table)
    backfill: float  # syncd's own log line
    waited: float  # of the backfill, waiting for Odoo's pages
    rows: int  # read by the backfill, overlaps included
    after: float  # backfill done → exit (the reconciliation)
    cpu: float
    records: int  # in the mirror
    dsn: str


async def syncd_once(
    pg: Postgres, odoo: RealOdoo, protocol: Protocol, workdir: Path, name: str, **env: str
) -> Once:
    dsn = await pg.create_database(name)
    syncd = cdc_syncd(dsn, odoo, protocol, workdir, **env)
    await syncd.run("migrate")
    once = await syncd.run("--once")
    done = backfill_done(once.log, MODEL)
    if done is None:
        raise RuntimeError(f"syncd --once did not report a backfill:\n{once.log[-3000:]}")
    rows, backfill, waited = done
    begun = log_time(once.log, f"backfill of {MODEL}: about")
    ended = log_time(once.log, f"backfill of {MODEL} done")
    conn = await asyncpg.connect(dsn)
    try:
        mirrored = int(
            await conn.fetchval(f"select count(*) from {MIRROR_SCHEMA}.{TABLE} where _deleted_at is null")
        )
    finally:
        await conn.close()
    return Once(
        protocol, once.wall, (begun or once.started_at) - once.started_at, backfill, waited, rows,
        once.started_at + once.wall - (ended or once.started_at), once.cpu, mirrored, dsn,
    )  # fmt: skip


def cdc_syncd(dsn: str, odoo: RealOdoo, protocol: Protocol, workdir: Path, **env: str) -> Syncd:
    """The syncd CLI mirroring res.partner's :data:`FIELDS` from the real Odoo (no outbox)."""
    return Syncd(
        dsn, odoo.url, workdir, **odoo.env(protocol),
        SYNCD_CDC__MODELS=json.dumps([{"model": MODEL, "fields": FIELDS}]), **env,
    )  # fmt: skip


@dataclass
class Rounds:
    """Per-rep values of one contender."""

    label: str
    values: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


@dataclass
class InitialSync:
    records: int
    read_fields: list[str]
    once: dict[Protocol, list[Once]] = field(default_factory=dict)
    naive: list[Pages] = field(default_factory=list)
    pages: dict[tuple[str, int], list[Pages]] = field(default_factory=dict)
    last_dsn: str = ""

    def best_pages(self) -> tuple[tuple[str, int], float]:
        """The pages-alone loop with the best median rate."""
        key = max(self.pages, key=lambda k: statistics.median(p.rate for p in self.pages[k]))
        return key, statistics.median(p.rate for p in self.pages[key])


async def initial_sync(
    pg: Postgres, odoo: RealOdoo, workdir: Path, reps: int, page_sizes: Sequence[int], naive_page: int
) -> InitialSync:
    """Every contender once per rep, in an order rotated per rep."""
    async with OdooClient(odoo.settings("json2", timeout_seconds=300)) as client:
        table = await mirror_table(client)
        types = {c.field: c.odoo_type for c in table.columns}
        total = await client.search_count(MODEL, [], context=ALL_RECORDS)
        result = InitialSync(total, table.read_fields)
        contenders: list[tuple[str, Callable[[int], Awaitable[None]]]] = []
        for protocol in odoo.protocols():

            async def once(rep: int, protocol: Protocol = protocol) -> None:
                run = await syncd_once(pg, odoo, protocol, workdir, f"bench_real_{protocol}_{rep}")
                if run.records != total:
                    raise RuntimeError(f"syncd --once mirrored {run.records} of {total} partners")
                result.once.setdefault(protocol, []).append(run)
                result.last_dsn = run.dsn
                say(f"  syncd --once ({protocol}): {run.wall:.2f} s (start {run.startup:.2f}, backfill "
                    f"{run.backfill:.2f}, after {run.after:.2f})")  # fmt: skip

            contenders.append((f"syncd --once {protocol}", once))
        naive_dsn = await pg.create_database("bench_real_naive")

        async def naive(rep: int) -> None:
            run = await naive_copy(client, naive_dsn, types, naive_page)
            result.naive.append(run)
            say(f"  naive: {run.seconds:.2f} s")

        contenders.append(("naive", naive))
        for size in page_sizes:
            for loop in (pages_by_cursor, pages_by_id):

                async def alone(rep: int, loop: Any = loop, size: int = size) -> None:
                    run = await loop(client, table.read_fields, size)
                    result.pages.setdefault((run.label, size), []).append(run)
                    say(
                        f"  {run.label}, page {size}: {run.seconds:.2f} s ({run.rows:,} rows, {run.calls} calls)"
                    )

                contenders.append((f"pages {loop.__name__} {size}", alone))
        for rep in range(reps):
            say(f"initial sync, round {rep + 1} of {reps}")
            shift = rep % len(contenders)
            for _label, run in contenders[shift:] + contenders[:shift]:
                await run(rep)
    return result


# ------------------------------------------------------------------------------------ 3. outbox

#: The upserts' payload, as bench.outbox.enqueue_upserts makes it (its name marks them for the clean-up).
OUTBOX_NAME = "Partner "


async def enqueue_hot(conn: asyncpg.Connection, prefix: str, n: int, keys: int) -> None:
    """``n`` upserts over ``keys`` keys, interleaved (event g goes to key g mod keys), one transaction."""
    await conn.execute(
        """select syncd.enqueue('res.partner', 'upsert', $1 || (g % $3),
                  jsonb_build_object('name', 'Partner ' || g, 'email', 'p' || g || '@example.com',
                                     'is_company', g % 2 = 0))
           from generate_series(1, $2) g""",
        prefix, n, keys,
    )  # fmt: skip
    await conn.execute("analyze syncd.outbox")


def upsert_rows(prefix: str, n: int, keys: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The (key, payload) of the events enqueue_upserts / enqueue_hot make, in order."""
    return [
        (f"{prefix}{g if keys is None else g % keys}",
         {"name": f"Partner {g}", "email": f"p{g}@example.com", "is_company": g % 2 == 0})
        for g in range(1, n + 1)
    ]  # fmt: skip


@dataclass
class Delivery:
    label: str
    events: int
    seconds: float
    calls: int = 0
    wall: float = float("nan")  # syncd --once: the whole process

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def syncd_drain(
    pg: Postgres, odoo: RealOdoo, protocol: Protocol, workdir: Path, name: str,
    fill: Callable[[asyncpg.Connection], Awaitable[None]], label: str, **env: str,
) -> Delivery:  # fmt: skip
    """Events enqueued by ``fill`` into a fresh database, drained by ``syncd --once`` (outbox only).
    ``seconds``: from syncd's Odoo connection to the last event's ``done_at`` (process start, imports
    and PostgreSQL connection aside); ``wall``: the whole process."""
    dsn = await pg.create_database(name)
    syncd = Syncd(
        dsn, odoo.url, workdir, **odoo.env(protocol),
        SYNCD_CDC__ENABLED="false", SYNCD_CDC__MODELS="[]", SYNCD_OUTBOX__ENABLED="true", **env,
    )  # fmt: skip
    await syncd.run("migrate")
    conn = await asyncpg.connect(dsn)
    try:
        await fill(conn)
        events = int(await conn.fetchval("select count(*) from syncd.outbox"))
        once = await syncd.run("--once")
        row = await conn.fetchrow(
            "select count(*) filter (where status = 'done') as done, extract(epoch from max(done_at)) as last "
            "from syncd.outbox"
        )
    finally:
        await conn.close()
    assert row is not None
    if row["done"] != events:
        raise RuntimeError(f"{label}: {row['done']} of {events} events done:\n{once.log[-3000:]}")
    connected = log_time(once.log, "Odoo at ") or once.started_at
    return Delivery(label, events, float(row["last"]) - connected, 0, once.wall)


async def load_limit(
    client: OdooClient, fields: dict[str, dict[str, Any]], rows: list[tuple[str, dict[str, Any]]],
    batch: int, concurrency: int, module: str,
) -> Delivery:  # fmt: skip
    """Hand-tuned ``load()``: the rows syncd would send (same external ids, header and cells), in
    batches of ``batch``, ``concurrency`` calls in flight."""
    names = sorted(rows[0][1])
    header = ["id", *(convert.load_header(n, fields) for n in names)]
    data = [
        [
            xmlid.external_id(module, MODEL, key),
            *(convert.load_cell(MODEL, n, payload[n], fields) for n in names),
        ]
        for key, payload in rows
    ]
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]
    todo = iter(batches)

    async def worker() -> None:
        for chunk in todo:
            result = await client.load(MODEL, header, chunk, context=convert.LOAD_CONTEXT)
            if not result.ok:
                raise RuntimeError(f"load() failed: {result.messages[:2]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Delivery(f"load() limit: batch {batch}, {concurrency} in flight", len(rows),
                    time.perf_counter() - t0, len(batches))  # fmt: skip


async def naive_calls(client: OdooClient, rows: list[tuple[str, dict[str, Any]]], label: str) -> Delivery:
    """The naive consumer: one ``create`` per new key, one ``write`` per known one, one after the other."""
    ids: dict[str, int] = {}
    t0 = time.perf_counter()
    for key, payload in rows:
        if key in ids:
            await client.write(MODEL, [ids[key]], payload)
        else:
            ids[key] = (await client.create(MODEL, [payload]))[0]
    return Delivery(label, len(rows), time.perf_counter() - t0, len(rows))


async def clean_up(client: OdooClient) -> int:
    """Delete the partners the outbox section created (named ``Partner <n>``, email ``p<n>@…``)."""
    ids = await client.search(
        MODEL,
        [("name", "=like", f"{OUTBOX_NAME}%"), ("email", "=like", "p%@example.com")],
        context=ALL_RECORDS,
    )
    for i in range(0, len(ids), 1000):
        await client.unlink(MODEL, ids[i : i + 1000])
    return len(ids)


@dataclass
class OutboxResults:
    events: int
    hot_keys: int
    runs: dict[str, list[Delivery]] = field(default_factory=dict)

    def add(self, d: Delivery) -> None:
        self.runs.setdefault(d.label, []).append(d)
        extra = f" (whole process {d.wall:.2f} s)" if d.wall == d.wall else ""
        say(f"  {d.label}: {d.events} events in {d.seconds:.2f} s = {d.rate:,.0f}/s{extra}")

    def median_rate(self, label: str) -> float:
        return statistics.median(d.rate for d in self.runs[label])


SYNCD_DISTINCT = "syncd --once, distinct keys"
SYNCD_HOT = "syncd --once, hot keys"
NAIVE_DISTINCT = "naive: one create per event"
NAIVE_HOT = "naive: one create/write per event, hot keys"


async def outbox(
    pg: Postgres, odoo: RealOdoo, workdir: Path, reps: int, events: int, naive_events: int, hot_keys: int,
    batches: Sequence[int], concurrencies: Sequence[int], syncd_batches: Sequence[int] = (),
) -> OutboxResults:  # fmt: skip
    """Upserts of res.partner end to end, every contender once per rep in a rotated order; the
    partners each one created are deleted after it (not timed)."""
    result = OutboxResults(events, hot_keys)
    module = "syncd"
    run_id = f"{int(time.time()) % 100000}"
    async with OdooClient(odoo.settings("json2", timeout_seconds=300, max_concurrency=16)) as client:
        fields = await client.fields_get(
            MODEL, attributes=["type", "store", "readonly", "relation", "selection", "required"]
        )
        for rep in range(reps):
            say(f"outbox, round {rep + 1} of {reps}")
            prefix = f"bench{run_id}r{rep}"
            contenders: list[Callable[[], Awaitable[Delivery]]] = []
            for protocol in odoo.protocols():
                p = f"{prefix}{protocol}d"
                contenders.append(partial(
                    syncd_drain, pg, odoo, protocol, workdir, f"bench_ob_{protocol}_{rep}",
                    partial(enqueue_upserts, prefix=p, n=events), f"{SYNCD_DISTINCT} ({protocol})",
                ))  # fmt: skip
            for b in syncd_batches:  # syncd at other batch sizes than its default (outbox.batch_size)
                contenders.append(partial(
                    syncd_drain, pg, odoo, "json2", workdir, f"bench_ob_b{b}_{rep}",
                    partial(enqueue_upserts, prefix=f"{prefix}b{b}", n=events),
                    f"{SYNCD_DISTINCT} (json2, batch_size {b})", SYNCD_OUTBOX__BATCH_SIZE=str(b),
                ))  # fmt: skip
            contenders.append(partial(
                syncd_drain, pg, odoo, "json2", workdir, f"bench_ob_hot_{rep}",
                partial(enqueue_hot, prefix=f"{prefix}h", n=events, keys=hot_keys), SYNCD_HOT,
            ))  # fmt: skip
            contenders.append(
                partial(naive_calls, client, upsert_rows(f"{prefix}n", naive_events), NAIVE_DISTINCT)
            )
            contenders.append(
                partial(naive_calls, client, upsert_rows(f"{prefix}m", naive_events, hot_keys), NAIVE_HOT)
            )
            for b, c in itertools.product(batches, concurrencies):
                rows = upsert_rows(f"{prefix}l{b}x{c}", events)
                contenders.append(partial(load_limit, client, fields, rows, b, c, module))
            shift = rep % len(contenders)
            for run in contenders[shift:] + contenders[:shift]:
                result.add(await run())
                # Each contender finds the partner table as the first one did: Odoo's creates slow
                # down as it grows (by ~40 % over 140,000 partners created in one run).
                t0 = time.perf_counter()
                gone = await clean_up(client)
                say(f"  cleaned up {gone:,} partners in {time.perf_counter() - t0:.1f} s")
    return result


# ------------------------------------------------------------------------------- 2. incremental


async def incremental_runs(
    dsn: str, odoo: RealOdoo, workdir: Path, intervals: Sequence[float], rounds: int, changed: int, seed: int
) -> list[IncrementalResult]:
    """``syncd run`` on the mirror the initial sync left; ``changed`` bench partners get a new email
    in one JSON-2 ``write`` per round."""
    async with OdooClient(odoo.settings("json2")) as client:
        ids = await client.search(MODEL, [("ref", "=like", f"{MARKER}%")], context=ALL_RECORDS)
    changes = Changes(
        odoo.settings("json2"), MODEL, f"{quote_ident(MIRROR_SCHEMA)}.{quote_ident(TABLE)}", ids, changed,
        lambda token, r: {"email": token}, "email",
    )  # fmt: skip
    results = []
    for interval in intervals:
        say(f"incremental: syncd run, interval {interval:g} s ...")
        syncd = cdc_syncd(dsn, odoo, "json2", workdir, SYNCD_CDC__INTERVAL_SECONDS=str(interval))
        results.append(await incremental(dsn, syncd, changes, interval, rounds, seed))
    return results


# ------------------------------------------------------------------------------------------ report


def per_rep(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    return " ".join(fmt.format(v) for v in values)


def n(x: float) -> str:
    return f"{x:,.0f}"


def report_initial(r: InitialSync) -> tuple[list[str], bool]:
    out = [
        f"### 1. Initial sync of res.partner: {r.records:,} records, fields {', '.join(r.read_fields)}",
        "",
    ]
    (best_label, best_page), limit = r.best_pages()
    rows = []
    for protocol, onces in r.once.items():
        walls = [o.wall for o in onces]
        fills = [o.backfill for o in onces]
        rows.append([
            f"syncd --once ({protocol}), whole process", "5000 (backfill_page_size)", per_rep(walls),
            f"{statistics.median(walls):.2f}", n(r.records / statistics.median(walls)),
            f"{r.records / statistics.median(walls) / limit:.2f}",
        ])  # fmt: skip
        rows.append([
            f"syncd --once ({protocol}), its backfill alone (log line)", "5000", per_rep(fills),
            f"{statistics.median(fills):.2f}", n(r.records / statistics.median(fills)),
            f"{r.records / statistics.median(fills) / limit:.2f}",
        ])  # fmt: skip
    secs = [p.seconds for p in r.naive]
    rows.append([r.naive[0].label, str(r.naive[0].page), per_rep(secs), f"{statistics.median(secs):.2f}",
                 n(r.records / statistics.median(secs)), f"{r.records / statistics.median(secs) / limit:.2f}"])  # fmt: skip
    for (label, page), runs in sorted(r.pages.items()):
        secs = [p.seconds for p in runs]
        mark = " **(limit)**" if (label, page) == (best_label, best_page) else ""
        rows.append([f"{label}{mark}", str(page), per_rep(secs), f"{statistics.median(secs):.2f}",
                     n(statistics.median(p.rate for p in runs)),
                     f"{statistics.median(p.rate for p in runs) / limit:.2f}"])  # fmt: skip
    out.append(
        markdown_table(["contender", "page", "seconds per round", "median s", "records/s", "× limit"], rows)
    )
    out.append("")
    cursor_rows = {page: runs[0].rows for (label, page), runs in r.pages.items() if "cursor" in label}
    out.append(
        "Rows fetched by syncd's cursor (overlaps between pages included) for "
        f"{r.records:,} records: "
        + ", ".join(f"page {p}: {n(rows_)}" for p, rows_ in sorted(cursor_rows.items()))
    )
    ok = True
    for protocol, onces in r.once.items():

        def med(key: str, onces: list[Once] = onces) -> float:
            return float(statistics.median(getattr(o, key) for o in onces))

        out.append(
            f"syncd --once ({protocol}), medians: start {med('startup'):.2f} s (process start → first page "
            f"request: interpreter, imports, pool, schema check, fields_get, table, search_count), backfill "
            f"{med('backfill'):.2f} s ({med('waited'):.2f} s of it waiting for Odoo; {n(onces[0].rows)} rows "
            f"read), after {med('after'):.2f} s (reconciliation, exit); CPU {med('cpu'):.2f} s"
        )
        ratio = r.records / med("wall") / limit
        met = ratio >= TARGET_ONCE_VS_PAGES
        ok &= met
        out.append(
            f"- Target ({protocol}): whole `syncd --once` ≥ {TARGET_ONCE_VS_PAGES} × pages alone "
            f"({best_label}, page {best_page}: {n(limit)} records/s): {ratio:.2f} → {'met' if met else 'MISSED'}; "
            f"its backfill alone {r.records / med('backfill') / limit:.2f} ×"
        )
    return out, ok


def report_incremental(
    incs: Sequence[IncrementalResult], changed: int, records: int
) -> tuple[list[str], bool]:
    out = [f"### 2. Incremental: {changed} partners changed in one JSON-2 `write`, among {records:,}", ""]
    rows, ok = [], True
    for inc in incs:
        met = inc.worst <= inc.interval + 1
        ok &= met
        rows.append([f"{inc.interval:g} s", str(len(inc.latencies)), per_rep(inc.latencies),
                     f"{statistics.median(inc.latencies):.2f}", f"{inc.worst:.2f}", f"{inc.interval + 1:g}",
                     "yes" if met else "NO", f"{statistics.median(inc.write_seconds):.2f}"])  # fmt: skip
    out.append(markdown_table(
        ["interval", "rounds", "seconds per round", "median", "worst", "target ≤", "met", "write() s (median)"],
        rows,
    ))  # fmt: skip
    return out, ok


def report_outbox(r: OutboxResults) -> tuple[list[str], bool]:
    out = [f"### 3. Outbox upserts of res.partner end to end: {r.events:,} events on new keys (creates); "
           f"hot keys: {r.events:,} events over {r.hot_keys} keys", ""]  # fmt: skip
    limits = {k: v for k, v in r.runs.items() if k.startswith("load() limit")}
    best = max(limits, key=r.median_rate)
    limit = r.median_rate(best)
    rows = []
    for label, runs in r.runs.items():
        mark = " **(limit)**" if label == best else ""
        walls = [d.wall for d in runs if d.wall == d.wall]
        rows.append([
            f"{label}{mark}", str(runs[0].events), per_rep([d.rate for d in runs], "{:.0f}"),
            n(r.median_rate(label)), f"{r.median_rate(label) / limit:.2f}",
            f"{statistics.median(runs[0].events / w for w in walls):,.0f}" if walls else "-",
        ])  # fmt: skip
    out.append(markdown_table(
        ["contender", "events", "events/s per round", "median events/s", "× limit", "whole process events/s"],
        rows,
    ))  # fmt: skip
    out.append("")
    ok = True
    for label in r.runs:
        if label.startswith(SYNCD_DISTINCT):
            ratio = r.median_rate(label) / limit
            met = ratio >= TARGET_OUTBOX_VS_LOAD
            ok &= met
            out.append(f"- Target: {label} ≥ {TARGET_OUTBOX_VS_LOAD} × the load() limit ({best}: {n(limit)}/s): "
                       f"{ratio:.2f} → {'met' if met else 'MISSED'}")  # fmt: skip
    return out, ok


# -------------------------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> int:
    odoo = RealOdoo.from_args(args)
    if not odoo.protocols():
        raise RuntimeError("no credentials: give --odoo-api-key (JSON-2) and/or --odoo-password (JSON-RPC)")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-real-"))
    say(f"starting PostgreSQL ({'--dsn' if args.dsn else 'embedded'}) ...")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    out: list[str] = []
    try:
        async with OdooClient(odoo.settings(odoo.protocols()[0], timeout_seconds=300)) as client:
            info = await client.version()
            if "json2" in odoo.protocols():
                say(f"seeding: {args.partners:,} partners marked ref={MARKER}<n> ...")
                created, secs = await seed_partners(client, args.partners)
                say(f"seeding: created {created:,} in {secs:.1f} s")
        await pg.create_database("bench_real_probe")  # learns the server version
        out += [machine_line(), f"Odoo {info.server_version} at {odoo.url} (pid {args.odoo_pid or '?'}); "
                f"PostgreSQL {pg.version} ({pg.description}) for the mirror and the outbox", ""]  # fmt: skip
        sections = set(args.sections)
        initial: InitialSync | None = None
        if "cdc" in sections or "incremental" in sections:
            initial = await initial_sync(pg, odoo, workdir, args.reps if "cdc" in sections else 1,
                                         args.page_sizes, args.naive_page)  # fmt: skip
            if "cdc" in sections:
                out += report_initial(initial)[0] + [""]
        if "incremental" in sections and initial is not None and args.rounds > 0:
            incs = await incremental_runs(initial.last_dsn, odoo, workdir, args.interval, args.rounds,
                                          args.changed, args.seed)  # fmt: skip
            out += report_incremental(incs, args.changed, initial.records)[0] + [""]
        if "outbox" in sections:
            ob = await outbox(pg, odoo, workdir, args.reps, args.events, args.naive_events, args.hot_keys,
                              args.load_batches, args.load_concurrency, args.syncd_batches)  # fmt: skip
            out += report_outbox(ob)[0] + [""]
        out.append(f"The whole benchmark took {time.perf_counter() - started:.0f} s.")
        print("\n".join(out), flush=True)
        return 0
    finally:
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)
        shutil.rmtree(workdir, ignore_errors=True)


def add_odoo_arguments(p: argparse.ArgumentParser) -> None:
    """``--odoo-url``, ``--odoo-db``, ``--odoo-login``, ``--odoo-api-key``, ``--odoo-password`` and
    ``--odoo-pid``, each defaulting to its ``ODOO19_*`` variable (:meth:`RealOdoo.from_args` reads them)."""
    env = os.environ.get
    p.add_argument("--odoo-url", default=env("ODOO19_URL"), help="default: $ODOO19_URL")
    p.add_argument("--odoo-db", default=env("ODOO19_DB", "odoo"), help="default: $ODOO19_DB, else odoo")
    p.add_argument(
        "--odoo-login", default=env("ODOO19_LOGIN", "admin"), help="default: $ODOO19_LOGIN, else admin"
    )
    p.add_argument("--odoo-api-key", default=env("ODOO19_API_KEY"), help="JSON-2 (default: $ODOO19_API_KEY)")
    p.add_argument(
        "--odoo-password", default=env("ODOO19_PASSWORD"), help="JSON-RPC (default: $ODOO19_PASSWORD)"
    )
    p.add_argument("--odoo-pid", type=int, default=odoo_pid(env("ODOO19_HOME")),
                   help="the Odoo server's pid, for the report (default: from $ODOO19_HOME/odoo.pid)")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.real_odoo",
        description="Initial sync, incremental latency and outbox upserts against a real Odoo 19.",
    )
    add_odoo_arguments(p)
    p.add_argument("--sections", nargs="+", choices=["cdc", "incremental", "outbox"],
                   default=["cdc", "incremental", "outbox"])  # fmt: skip
    p.add_argument(
        "--partners", type=int, default=20_000, help="bench partners to make sure exist (default 20000)"
    )
    p.add_argument("--reps", type=int, default=5, help="rounds of every contender (default 5)")
    p.add_argument("--page-sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000, 10000])
    p.add_argument("--naive-page", type=int, default=CDC.backfill_page_size)
    p.add_argument("--interval", type=float, nargs="+", default=[1.0, 5.0], metavar="SECONDS")
    p.add_argument("--rounds", type=int, default=5, help="incremental rounds per interval (0: skip)")
    p.add_argument("--changed", type=int, default=100, help="partners changed per incremental round")
    p.add_argument("--events", type=int, default=2_000, help="outbox upserts per contender (default 2000)")
    p.add_argument(
        "--naive-events", type=int, default=200, help="events of the naive one-call-per-event loops"
    )
    p.add_argument("--hot-keys", type=int, default=20, help="keys of the hot-key shape (default 20)")
    p.add_argument("--load-batches", type=int, nargs="+", default=[50, 100, 200, 500])
    p.add_argument("--syncd-batches", type=int, nargs="*", default=[], metavar="N",
                   help="also run syncd with outbox.batch_size N (its default is 100)")  # fmt: skip
    p.add_argument("--load-concurrency", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--dsn", help="an existing PostgreSQL (superuser DSN) instead of an embedded one")
    p.add_argument("--seed", type=int, default=7)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.odoo_url:
        p.error("no Odoo: give --odoo-url or set ODOO19_URL (bash ../shared/odoo19/up.sh env)")
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as e:
        print(f"bench.real_odoo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
