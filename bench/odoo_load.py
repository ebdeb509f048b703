"""What syncd's CDC costs Odoo (issue 14, "Measure Odoo's side first"): requests and CPU.

Run ``python -m bench.odoo_load`` against a real Odoo 19 **of its own** (``--odoo-*`` or the
``ODOO19_*`` variables of ``up.sh env``, as :mod:`bench.real_odoo`; ``ODOO19_HOME`` also tells where
Odoo's pid file and PostgreSQL cluster are). syncd and the naive poller talk to Odoo through a small
counting reverse proxy (:class:`CountingProxy`, aiohttp, in this process): it counts requests by
model and method, how long Odoo took for them, and the records in ``search_read``/``read`` answers,
split into *full* records (any field beyond ``id``/``write_date``) and *probes* (only those two).
Odoo's CPU is read from ``/proc``: the Odoo server's process tree plus the tree of the PostgreSQL
postmaster Odoo uses (``$ODOO19_HOME/pgdata/postmaster.pid``), live processes with their reaped
children, sampled at the start and the end of each measured window.

Scenarios (``--scenarios``), each run for every configuration (``--configs``) in each of ``--reps``
rounds, in an order rotated per round (the machine is shared and noisy); tables give medians:

- **idle**: :data:`MODELS` (20 models with records, five of them ``fields = "*"``), nothing changes,
  ``--idle-seconds`` (120).
- **steady**: a writer changes ``--rate`` (10) res.partner records a second (one JSON-2 ``write`` of
  the mirrored field :data:`WRITE_FIELD` on a random bench partner, straight to Odoo: not through
  the proxy) for ``--steady-seconds`` (60): also the full records read per change and the latency
  Odoo write (its answer) → row in the mirror (a trigger on the mirror table NOTIFYs, this process
  LISTENs; for the naive poller, when its answer holds the new value).
- **once**: ``syncd --once`` on the already synced mirror, nothing changed (after an unmeasured
  ``--once`` that catches up): wall time, requests, Odoo's CPU.
- **calls**: what one request costs Odoo by itself: ``--calls`` sequential ``res.users.context_get``
  and one-record ``search_read`` probes over JSON-2 (API key, checked per request) and JSON-RPC
  (password, cached by Odoo), and an unauthenticated ``/web/webclient/version_info``.

Configurations: ``none`` (nothing polls: the floor; in *steady* the writer's own cost),
``syncd`` (``syncd run`` at its defaults: interval 5 s), ``syncd-1`` (``cdc.interval_seconds`` 1),
``naive-5`` / ``naive-1`` (the issue's naive poller, in this process: per model, every interval, one
``search_read([('write_date', '>=', last)])`` of every mirrored field, then ``last`` = the newest
write_date seen), ``syncd-rpc`` (``syncd run`` at its defaults over JSON-RPC) and ``webhooks`` (``syncd run`` with ``http.webhook_secret`` and
``http.public_url`` set and the rules of ``syncd odoo webhooks install`` in Odoo, removed again
afterwards; syncd's default interval then). Idle runs come first, then *once*, then *steady*, so that
no idle window re-reads the writer's changes through syncd's lookback. Before idle the harness waits
until nothing mirrored changed for ``cdc.lookback_seconds``, then changes one partner: syncd's
lookback window is anchored at its cursor (the newest write_date it saw), so res.partner's window then
holds that one record instead of whatever was written in the two minutes before (the seeding's
partners, a previous steady run); the other models keep their demo data, which Odoo wrote at install
within seconds and which stays in their windows for ever (the report lists every window). The steady
writer runs for ``--warmup`` seconds (lookback + 5) before the first window, and on through all
configurations, so that syncd's lookback windows are full of its changes, as in a steady state.
Odoo's own time per request comes from its log (``--odoo-log``, werkzeug's request lines: queries,
SQL seconds, the rest), and the connections opened to its PostgreSQL from ``pg_stat_database``
(``--odoo-pg-dsn``).

It **writes to that Odoo**: ``--partners`` bench partners (``ref = 'bench-<n>'``, as
:mod:`bench.real_odoo` seeds them; only what is missing) and, in *steady*, their ``function``.
Tables go to stdout as Markdown, progress to stderr, ``--json PATH`` writes every measurement.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/odoo_load.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Literal
from urllib.parse import unquote, urlsplit

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from bench.cdc import CLK_TCK, Postgres, Syncd, machine_busy, postgres_cpu, say
from bench.machine import machine_line
from bench.real_odoo import MARKER, Protocol, RealOdoo, add_odoo_arguments, seed_partners
from bench.report import markdown_table
from syncd.aio import wait_any
from syncd.cdc.poller import ALL_RECORDS
from syncd.cdc.schema import MirrorTable
from syncd.config import CdcSettings, ModelSettings
from syncd.db import quote_ident
from syncd.odoo import OdooClient

REPO = Path(__file__).resolve().parent.parent
MIRROR_SCHEMA = "odoo"
WRITE_MODEL = "res.partner"
#: The res.partner field the steady writer changes (a plain char, no side effects in Odoo).
WRITE_FIELD = "function"
CHANGE_PREFIX = "load "
LATENCY_CHANNEL = "bench_odoo_load"
#: The steady writer's most writes at once (it keeps its rate while Odoo answers slowly).
WRITES_IN_FLIGHT = 8
CDC = CdcSettings()

#: The mirrored models: 20 real models of an Odoo with base, contacts, product, sale_management and
#: demo data, each with records; five with ``fields = "*"`` (every stored field).
MODELS: list[tuple[str, list[str] | Literal["*"]]] = [
    ("res.partner", ["name", "ref", "email", "phone", "parent_id", "active", "is_company", "category_id",
                     WRITE_FIELD]),
    ("res.users", ["login", "partner_id", "active", "company_id"]),
    ("res.company", ["name", "partner_id", "currency_id", "email", "phone"]),
    ("res.country", ["name", "code", "currency_id", "phone_code"]),
    ("res.currency", ["name", "symbol", "active", "rounding", "decimal_places"]),
    ("res.partner.category", ["name", "color", "parent_id", "active"]),
    ("res.partner.industry", ["name", "full_name", "active"]),
    ("product.template", ["name", "default_code", "list_price", "type", "categ_id", "active", "sale_ok"]),
    ("product.product", ["product_tmpl_id", "default_code", "barcode", "active", "standard_price"]),
    ("product.category", ["name", "parent_id", "complete_name"]),
    ("product.attribute.value", ["name", "attribute_id", "sequence"]),
    ("uom.uom", ["name", "active", "factor", "relative_factor", "relative_uom_id"]),
    ("sale.order", ["name", "partner_id", "state", "date_order", "amount_total", "user_id"]),
    ("sale.order.line", ["order_id", "product_id", "name", "product_uom_qty", "price_unit",
                         "price_subtotal"]),
    ("account.tax", ["name", "amount", "amount_type", "type_tax_use", "active", "company_id"]),
    ("account.account", "*"),
    ("res.lang", "*"),
    ("account.journal", "*"),
    ("account.payment.term", "*"),
    ("crm.team", "*"),
]  # fmt: skip

ConfigKind = Literal["none", "syncd", "naive"]
Scenario = Literal["idle", "steady", "once", "calls"]
#: In this order: idle and once find nothing changed only before the writer of steady ran.
SCENARIOS: tuple[Scenario, ...] = ("idle", "once", "calls", "steady")


@dataclass(frozen=True)
class Config:
    """One way of mirroring (or not) while a scenario runs."""

    key: str
    kind: ConfigKind
    interval: float | None = None  # None: syncd's default
    webhooks: bool = False
    protocol: Protocol | None = None  # None: --protocol

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "nothing polls"
        if self.kind == "naive":
            return f"naive poller {self.interval:g} s"
        if self.webhooks:
            return "syncd run, webhooks" + (
                f", {self.interval:g} s" if self.interval else " (default interval)"
            )
        over = f" over {self.protocol}" if self.protocol else ""
        return f"syncd run {self.interval:g} s{over}" if self.interval else f"syncd run (default: 5 s){over}"

    @property
    def effective_interval(self) -> float:
        return self.interval or CDC.interval_seconds


CONFIGS = {
    c.key: c
    for c in (
        Config("none", "none"),
        Config("syncd", "syncd"),
        Config("syncd-1", "syncd", 1.0),
        Config("naive-5", "naive", 5.0),
        Config("naive-1", "naive", 1.0),
        Config("syncd-rpc", "syncd", protocol="jsonrpc"),
        Config("webhooks", "syncd", webhooks=True),
    )
}
DEFAULT_CONFIGS = ["none", "syncd", "syncd-1", "naive-5", "naive-1"]


# --------------------------------------------------------------------------------- CPU of process trees


def _process_table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, CPU ticks: user + system, its own and its reaped children's)."""
    out: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            data = stat.read_text()
        except OSError:
            continue
        fields = data.rsplit(")", 1)[1].split()  # fields[0] is field 3 of proc(5)
        out[int(stat.parent.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return out


def tree_cpu(roots: Iterable[int | None], table: Mapping[int, tuple[int, int]] | None = None) -> float:
    """CPU seconds of the process trees under ``roots``: every live process's own time plus that of
    its reaped children (a finished PostgreSQL backend is in its postmaster's), none counted twice."""
    table = _process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks, todo, seen = 0, [r for r in roots if r is not None and r in table], set[int]()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ticks += table[pid][1]
        todo += children.get(pid, [])
    return ticks / CLK_TCK


def pid_from_file(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


@dataclass(frozen=True)
class CpuSample:
    at: float  # perf_counter
    odoo: float
    odoo_pg: float
    machine: float
    others: dict[str, float]  # syncd, the mirror's PostgreSQL, this process


@dataclass
class OdooMeter:
    """Samples the CPU seconds of Odoo's server process tree and of its PostgreSQL, the machine's,
    and of the processes the benchmark itself runs (to tell what the rest of the machine did)."""

    odoo_pid: int | None
    odoo_pg_pid: int | None
    mirror_pg_pid: int | None = None

    def sample(self, syncd_pid: int | None = None) -> CpuSample:
        table = _process_table()
        others = {
            "syncd": tree_cpu([syncd_pid], table) if syncd_pid else 0.0,
            "mirror_pg": postgres_cpu(self.mirror_pg_pid) if self.mirror_pg_pid else 0.0,
            "bench": time.process_time(),
        }
        return CpuSample(
            time.perf_counter(), tree_cpu([self.odoo_pid], table), tree_cpu([self.odoo_pg_pid], table),
            machine_busy(), others,
        )  # fmt: skip


@dataclass
class CpuSpan:
    seconds: float
    odoo: float
    odoo_pg: float
    syncd: float
    other: float  # what the rest of the machine used meanwhile (a shared machine disturbs the figures)

    @classmethod
    def between(cls, a: CpuSample, b: CpuSample) -> CpuSpan:
        odoo, pg = b.odoo - a.odoo, b.odoo_pg - a.odoo_pg
        ours = {k: b.others[k] - a.others.get(k, 0.0) for k in b.others}
        other = b.machine - a.machine - odoo - pg - sum(ours.values())
        return cls(b.at - a.at, odoo, pg, ours["syncd"], max(other, 0.0))

    @property
    def total(self) -> float:
        return self.odoo + self.odoo_pg

    def pct(self, cpu: float) -> float:
        """``cpu`` seconds as % of one core over the span."""
        return 100.0 * cpu / self.seconds if self.seconds else float("nan")


# ------------------------------------------------------------------------------------ counting proxy

#: Fields of a probe: a read that asks for nothing beyond these is not a full read of the record.
PROBE_FIELDS = frozenset({"id", "write_date"})
READ_METHODS = frozenset({"search_read", "read", "web_search_read", "web_read"})
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                         "accept-encoding", "content-encoding", "upgrade", "te", "trailer"})  # fmt: skip


@dataclass
class CallStats:
    """Requests of one (model, method) as the proxy saw them."""

    requests: int = 0
    seconds: float = 0.0  # until Odoo's answer was read, as the proxy saw it
    full: int = 0  # records answered with more than id/write_date
    probe: int = 0  # records answered with id/write_date only
    answer_bytes: int = 0

    def minus(self, other: CallStats) -> CallStats:
        return CallStats(
            *(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True))
        )


Key = tuple[str, str]  # (model, method); ("-", "common.login") and the like for non-model calls


def call_of(path: str, body: Any) -> tuple[Key, list[str] | None, bool]:
    """(model, method), the fields asked for (None: all or not a read) and whether the answer is a
    JSON-RPC envelope, from a request's path and parsed body."""
    if path.startswith("/json/2/"):
        model, _, method = path[len("/json/2/") :].partition("/")
        fields = body.get("fields") if isinstance(body, dict) else None
        return (unquote(model), unquote(method)), fields, False
    if path in ("/jsonrpc", "/jsonrpc/") and isinstance(body, dict):
        params = body.get("params") or {}
        service, rpc, args = params.get("service"), params.get("method"), params.get("args") or []
        if service == "object" and rpc in ("execute_kw", "execute") and len(args) >= 5:
            model, method = str(args[3]), str(args[4])
            positional = args[5] if len(args) > 5 and isinstance(args[5], list) else []
            kwargs = args[6] if len(args) > 6 and isinstance(args[6], dict) else {}
            fields = kwargs.get("fields")
            if fields is None and method in ("read", "search_read") and len(positional) > 1:
                fields = positional[1]
            return (model, method), fields, True
        return ("-", f"{service}.{rpc}"), None, True
    return ("-", path), None, False


class CountingProxy:
    """A reverse proxy in front of Odoo that counts what goes through it (:class:`CallStats` by
    (model, method)). Everything is forwarded as it came; only ``Accept-Encoding`` is dropped, so that
    Odoo answers in plain JSON the proxy can count records in."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.stats: dict[Key, CallStats] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=600), connector=aiohttp.TCPConnector(limit=0)
        )
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def snapshot(self) -> dict[Key, CallStats]:
        return {k: dataclasses.replace(v) for k, v in self.stats.items()}

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        data = await request.read()
        try:
            body = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            body = None
        key, fields, envelope = call_of(request.path, body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        t0 = time.perf_counter()
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=data, headers=headers, allow_redirects=False
        ) as upstream:
            answer = await upstream.read()
            status, answer_headers = upstream.status, upstream.headers.copy()
        seconds = time.perf_counter() - t0
        stats = self.stats.setdefault(key, CallStats())
        stats.requests += 1
        stats.seconds += seconds
        stats.answer_bytes += len(answer)
        if key[1] in READ_METHODS and status == 200:
            records = _records(answer, envelope)
            probe = fields is not None and len(fields) > 0 and set(fields) <= PROBE_FIELDS
            if probe:
                stats.probe += records
            else:
                stats.full += records
        out = {k: v for k, v in answer_headers.items() if k.lower() not in HOP_HEADERS}
        return web.Response(body=answer, status=status, headers=out)


def _records(answer: bytes, envelope: bool) -> int:
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return 0
    if envelope:
        parsed = parsed.get("result") if isinstance(parsed, dict) else None
    if isinstance(parsed, dict):  # web_search_read: {"length": n, "records": [...]}
        parsed = parsed.get("records")
    return len(parsed) if isinstance(parsed, list) else 0


def diff(after: Mapping[Key, CallStats], before: Mapping[Key, CallStats]) -> dict[Key, CallStats]:
    out = {k: v.minus(before.get(k, CallStats())) for k, v in after.items()}
    return {k: v for k, v in out.items() if v.requests}


# ------------------------------------------------------------------------------------ Odoo's own log

#: werkzeug's request line as Odoo logs it: ``"POST /json/2/res.partner/search_read HTTP/1.1" 200 -
#: <queries> <SQL seconds> <other seconds>`` (the time from the request's start, the SQL time left out).
_REQUEST_LINE = re.compile(r'"(?:POST|GET) (\S+) HTTP/[\d.]+" (\d+) - (\d+) ([\d.]+) ([\d.]+)')


@dataclass
class LogStats:
    """Requests of one (model, method) as Odoo's log tells them: its own time for them."""

    requests: int = 0
    queries: int = 0
    sql: float = 0.0  # seconds in SQL
    python: float = 0.0  # the rest of the request: Python (JSON, ORM, access checks, the API-key hash)


def log_key(path: str) -> Key:
    """``/json/2/<model>/<method>`` and ``/jsonrpc#<model>.<method>`` → (model, method)."""
    if path.startswith("/json/2/"):
        model, _, method = path[len("/json/2/") :].partition("/")
        return unquote(model), unquote(method.split("?", 1)[0])
    if path.startswith("/jsonrpc#"):
        model, _, method = path[len("/jsonrpc#") :].rpartition(".")
        return model or "-", method
    return "-", path.split("?", 1)[0]


class OdooLog:
    """Reads the request lines Odoo appended to its log file between two offsets."""

    def __init__(self, path: Path | None) -> None:
        self.path = path if path is not None and path.is_file() else None

    def offset(self) -> int:
        return self.path.stat().st_size if self.path else 0

    def between(self, start: int, end: int) -> dict[Key, LogStats]:
        out: dict[Key, LogStats] = {}
        if self.path is None or end <= start:
            return out
        with self.path.open("rb") as f:
            f.seek(start)
            text = f.read(end - start).decode(errors="replace")
        for match in _REQUEST_LINE.finditer(text):
            path, _status, queries, sql, python = match.groups()
            stats = out.setdefault(log_key(path), LogStats())
            stats.requests += 1
            stats.queries += int(queries)
            stats.sql += float(sql)
            stats.python += float(python)
        return out


# ---------------------------------------------------------------------------------- the mirrored models


@dataclass(frozen=True)
class Mirrored:
    """One mirrored model: its configured fields and what syncd (and the naive poller) read."""

    model: str
    fields: list[str] | Literal["*"]
    read_fields: list[str]
    records: int

    def setting(self) -> dict[str, Any]:
        return {"model": self.model, "fields": self.fields}


async def mirrored_models(client: OdooClient) -> list[Mirrored]:
    """:data:`MODELS` as this Odoo has them; a listed field it lacks is left out (and said)."""
    out = []
    for model, wanted in MODELS:
        spec = await client.fields_get(model, attributes=["type", "store", "string", "relation", "readonly"])
        fields: list[str] | Literal["*"] = wanted
        if wanted != "*":
            fields = [f for f in wanted if spec.get(f, {}).get("store")]
            if missing := sorted(set(wanted) - set(fields)):
                say(f"  {model}: no stored field {', '.join(missing)} in this Odoo, left out")
        table = MirrorTable.build(MIRROR_SCHEMA, ModelSettings(model=model, fields=fields), spec)
        records = await client.search_count(model, [], context=ALL_RECORDS)
        out.append(Mirrored(model, fields, table.read_fields, records))
    return out


# ------------------------------------------------------------------------------------- changes and latency


@dataclass
class LatencyBook:
    """The steady writer's changes: when each was written (Odoo's answer) and first seen in the mirror."""

    written: dict[str, tuple[float, int, float]] = field(
        default_factory=dict
    )  # token → (at, record, write s)
    seen: dict[str, float] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by every change seen

    def see(self, token: str) -> None:
        if token.startswith(CHANGE_PREFIX) and token not in self.seen:
            self.seen[token] = time.perf_counter()
            self.arrived.set()

    def between(self, t0: float, t1: float) -> list[str]:
        """The changes written (answered) between ``t0`` and ``t1`` (perf_counter)."""
        return [t for t, (at, _, _) in self.written.items() if t0 <= at < t1]

    def pending(self, tokens: Iterable[str]) -> list[str]:
        """Of ``tokens``, those not seen yet, leaving out those overwritten since (a later change of
        the same record that was seen: a poller reading both at once can only ever show the last)."""
        last_seen: dict[int, float] = {}
        for token in self.seen:
            if token in self.written:
                at, rid, _ = self.written[token]
                last_seen[rid] = max(last_seen.get(rid, 0.0), at)
        return [
            t
            for t in tokens
            if t not in self.seen and not last_seen.get(self.written[t][1], 0.0) > self.written[t][0]
        ]

    def latencies(self, tokens: Iterable[str]) -> list[float]:
        return sorted(max(self.seen[t] - self.written[t][0], 0.0) for t in tokens if t in self.seen)

    def write_seconds(self, tokens: Iterable[str]) -> list[float]:
        return [self.written[t][2] for t in tokens]


class Writer:
    """Changes :data:`WRITE_FIELD` of random bench partners at ``rate`` per second, one ``write`` of
    one record each, straight to Odoo (not through the proxy), until stopped."""

    def __init__(self, client: OdooClient, ids: Sequence[int], rate: float, book: LatencyBook) -> None:
        self.client, self.ids, self.rate, self.book = client, ids, rate, book
        self.rng = random.Random(7)

    async def run(self, stop: asyncio.Event) -> None:
        """Write on schedule (``rate`` a second) with up to :data:`WRITES_IN_FLIGHT` writes at once, so
        that a slow answer from a busy Odoo does not lower the rate."""
        loop = asyncio.get_running_loop()
        t0, k, run = loop.time(), 0, f"{time.time():.0f}"
        slots = asyncio.Semaphore(WRITES_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            await wait_any(stop, seconds=max(0.0, t0 + k / self.rate - loop.time()))
            if stop.is_set():
                break
            await slots.acquire()
            task = asyncio.create_task(self._write(f"{CHANGE_PREFIX}{run} {k}", slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        await asyncio.gather(*tasks)

    async def _write(self, token: str, slots: asyncio.Semaphore) -> None:
        try:
            rid = self.rng.choice(self.ids)
            w0 = time.perf_counter()
            await self.client.write(WRITE_MODEL, [rid], {WRITE_FIELD: token})
            done = time.perf_counter()
            self.book.written[token] = (done, rid, done - w0)
        finally:
            slots.release()


async def install_latency_trigger(conn: asyncpg.Connection) -> None:
    """A trigger on the mirror of res.partner that NOTIFYs every new value of :data:`WRITE_FIELD`."""
    table = f"{quote_ident(MIRROR_SCHEMA)}.{quote_ident(WRITE_MODEL.replace('.', '_'))}"
    col = quote_ident(WRITE_FIELD)
    await conn.execute(f"""
        create or replace function public.bench_odoo_load_notify() returns trigger language plpgsql as $$
        begin
            if new.{col} like '{CHANGE_PREFIX}%'
               and (tg_op = 'INSERT' or new.{col} is distinct from old.{col}) then
                perform pg_notify('{LATENCY_CHANNEL}', new.{col});
            end if;
            return null;
        end $$;
        drop trigger if exists bench_odoo_load_notify on {table};
        create trigger bench_odoo_load_notify after insert or update on {table}
            for each row execute function public.bench_odoo_load_notify();
    """)


# ------------------------------------------------------------------------------------------ naive poller


class NaivePoller:
    """The issue's naive poller: per model, every interval, ``search_read`` of every record with
    ``write_date >= last`` and every mirrored field, then ``last`` = the newest write_date seen. It
    writes nothing anywhere (only Odoo's side is measured); ``on_records`` sees every answer."""

    def __init__(
        self, client: OdooClient, models: Sequence[Mirrored], interval: float,
        on_records: Callable[[str, list[dict[str, Any]]], None],
    ) -> None:  # fmt: skip
        self.client, self.models, self.interval, self.on_records = client, models, interval, on_records

    async def run(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        last: dict[str, str] = {}
        for m in self.models:
            newest = await self.client.search_read(
                m.model, [], ["write_date"], order="write_date desc", limit=1, context=ALL_RECORDS
            )
            last[m.model] = newest[0]["write_date"] if newest else "1970-01-01 00:00:00"
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            for m in self.models:
                rows = await self.client.search_read(
                    m.model, [("write_date", ">=", last[m.model])], m.read_fields, context=ALL_RECORDS
                )
                if rows:
                    last[m.model] = max(r["write_date"] for r in rows)
                    self.on_records(m.model, rows)
            ready.set()
            await wait_any(stop, seconds=max(0.0, started + self.interval - loop.time()))


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One measured window of one scenario and configuration."""

    scenario: Scenario
    config: str
    rep: int
    cpu: CpuSpan
    calls: dict[Key, CallStats]
    odoo_log: dict[Key, LogStats] = field(default_factory=dict)
    changes: int = 0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    write_seconds: list[float] = field(default_factory=list)
    wall: float = float("nan")  # once: the whole syncd --once process
    startup: float = float("nan")  # syncd run: spawn → ready (first poll and reconciliation of every model)
    pg_sessions: float = float("nan")  # connections opened to Odoo's PostgreSQL (pg_stat_database.sessions)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.calls.values())

    def per_minute(self, n: float) -> float:
        return 60.0 * n / self.cpu.seconds

    def full(self, model: str | None = None) -> int:
        return sum(s.full for k, s in self.calls.items() if model is None or k[0] == model)

    def probe(self, model: str | None = None) -> int:
        return sum(s.probe for k, s in self.calls.items() if model is None or k[0] == model)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["cpu"] = dataclasses.asdict(self.cpu)
        for name in ("calls", "odoo_log"):
            stats: Mapping[Key, Any] = getattr(self, name)
            out[name] = [{"model": k[0], "method": k[1], **dataclasses.asdict(v)} for k, v in stats.items()]
        out["cpu"]["total"] = self.cpu.total
        out["odoo_cpu_pct_of_one_core"] = self.cpu.pct(self.cpu.total)
        out["requests_per_minute"] = self.per_minute(self.requests)
        return out


@dataclass
class Context:
    """What every run shares."""

    args: argparse.Namespace
    odoo: RealOdoo  # the real one (the writer, the calls scenario)
    proxied: RealOdoo  # the same through the proxy (syncd, the naive poller)
    protocol: Protocol
    proxy: CountingProxy
    meter: OdooMeter
    log: OdooLog
    odoo_pg: asyncpg.Connection | None
    models: list[Mirrored]
    dsn: str
    workdir: Path
    partner_ids: list[int]
    runs: list[Run] = field(default_factory=list)
    book: LatencyBook = field(default_factory=LatencyBook)

    def syncd(self, config: Config, **env: str) -> Syncd:
        extra = {
            "SYNCD_CDC__MODELS": json.dumps([m.setting() for m in self.models]),
            # the syncd of this checkout, not whichever one is installed
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        if config.interval is not None:
            extra["SYNCD_CDC__INTERVAL_SECONDS"] = f"{config.interval:g}"
        return Syncd(
            self.dsn, self.proxied.url, self.workdir, **self.proxied.env(self.protocol), **extra, **env
        )


async def pg_sessions(conn: asyncpg.Connection | None) -> float:
    """Connections ever opened to Odoo's PostgreSQL (all its databases), when its DSN is known."""
    if conn is None:
        return float("nan")
    return float(await conn.fetchval("select sum(sessions) from pg_stat_database"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_unchanged(client: OdooClient, models: Sequence[Mirrored], seconds: float) -> None:
    """Wait until no mirrored record changed in the last ``seconds`` (syncd's lookback window would
    otherwise re-read them: an idle or once run must find nothing changed)."""
    newest = ""
    for m in models:
        rows = await client.search_read(
            m.model, [], ["write_date"], order="write_date desc", limit=1, context=ALL_RECORDS
        )
        if rows:
            newest = max(newest, rows[0]["write_date"])
    if not newest:
        return
    changed = datetime.fromisoformat(newest).replace(tzinfo=UTC)
    left = (changed + timedelta(seconds=seconds) - datetime.now(UTC)).total_seconds()
    if left > 0:
        say(f"  waiting {left:.0f} s: mirrored records changed at {newest} UTC, within the lookback window")
        await asyncio.sleep(left)


async def lookback_contents(client: OdooClient, models: Sequence[Mirrored]) -> list[list[str]]:
    """Per model: fields, records, those in syncd's lookback window and those in the newest second."""
    rows = []
    for m in models:
        newest = await client.search_read(
            m.model, [], ["write_date"], order="write_date desc", limit=1, context=ALL_RECORDS
        )
        window = second = 0
        if newest:
            last = newest[0]["write_date"]
            since = datetime.fromisoformat(last) - timedelta(seconds=CDC.lookback_seconds)
            window = await client.search_count(
                m.model, [("write_date", ">=", since.strftime("%Y-%m-%d %H:%M:%S"))], context=ALL_RECORDS
            )
            second = await client.search_count(m.model, [("write_date", ">=", last)], context=ALL_RECORDS)
        fields = "*" if m.fields == "*" else str(len(m.fields))
        rows.append(
            [m.model, f"{fields} ({len(m.read_fields)} read)", f"{m.records:,}", f"{window:,}", f"{second:,}"]
        )
    return rows


async def syncd_ready(
    conn: asyncpg.Connection, proc: subprocess.Popen[bytes], since: datetime, models: int
) -> None:
    """Until every model's first poll and start-up reconciliation of this run are done."""
    t0 = time.perf_counter()
    while True:
        done = await conn.fetchval(
            "select count(*) from syncd.cdc_state where last_success_at > $1 and last_reconcile_at > $1",
            since,
        )
        if done >= models:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"syncd run exited ({proc.returncode}) before it was ready")
        if time.perf_counter() - t0 > 300:
            raise RuntimeError("syncd run was not ready after 300 s")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def webhook_rules(ctx: Context, syncd: Syncd) -> Any:
    """The rules of ``syncd odoo webhooks install`` in Odoo for the run, removed afterwards (every
    other configuration must find an Odoo without them)."""
    args = ctx.args
    await syncd.run(*args.webhooks_install.split())
    try:
        yield
    finally:
        try:
            await syncd.run(*args.webhooks_uninstall.split())
        except RuntimeError as e:
            say(f"  WARNING: could not remove the webhook rules: {e}")


def kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()


async def run_window(ctx: Context, scenario: Scenario, config: Config, rep: int) -> Run:
    """One idle or steady window: start the configuration, wait until it is ready, measure, stop it.
    In *steady* the writer (:attr:`Context.book`) is already running."""
    seconds = ctx.args.idle_seconds if scenario == "idle" else ctx.args.steady_seconds
    book = ctx.book
    stop = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    proc: subprocess.Popen[bytes] | None = None
    spawned: tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes], float] | None = None
    syncd: Syncd | None = None
    startup = float("nan")
    conn = await asyncpg.connect(ctx.dsn)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(conn.close)
        if config.kind == "syncd":
            env: dict[str, str] = {}
            if config.webhooks:
                port = free_port()
                env = {"SYNCD_HTTP__LISTEN": f"127.0.0.1:{port}",
                       "SYNCD_HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
                       "SYNCD_HTTP__WEBHOOK_SECRET": ctx.args.webhook_secret}  # fmt: skip
            syncd = ctx.syncd(config, **env)
            if config.webhooks:
                await stack.enter_async_context(webhook_rules(ctx, syncd))
            await conn.add_listener(LATENCY_CHANNEL, lambda *a: book.see(str(a[3])))
            since = await conn.fetchval("select now()")
            t0 = time.perf_counter()
            spawned = syncd.spawn("run")
            proc = spawned[0]
            stack.callback(kill_if_running, proc)  # on an error; a clean stop is below
            await syncd_ready(conn, proc, since, len(ctx.models))
            startup = time.perf_counter() - t0
        elif config.kind == "naive":
            client = OdooClient(ctx.proxied.settings(ctx.protocol))
            stack.push_async_callback(client.close)
            await client.connect()
            assert config.interval is not None

            def seen(model: str, rows: list[dict[str, Any]]) -> None:
                if model == WRITE_MODEL:
                    for r in rows:
                        if isinstance(value := r.get(WRITE_FIELD), str):
                            book.see(value)

            ready = asyncio.Event()
            naive = NaivePoller(client, ctx.models, config.interval, seen)
            background.append(asyncio.create_task(naive.run(stop, ready)))
            stack.callback(background[-1].cancel)  # on an error; a clean stop is below
            await wait_any(ready, seconds=300)
        await asyncio.sleep(ctx.args.settle)  # let start-up work (reconciliation) finish
        syncd_pid = proc.pid if proc else None
        sessions_a = await pg_sessions(ctx.odoo_pg)
        a, calls_a, log_a = ctx.meter.sample(syncd_pid), ctx.proxy.snapshot(), ctx.log.offset()
        await asyncio.sleep(seconds)
        b, calls_b, log_b = ctx.meter.sample(syncd_pid), ctx.proxy.snapshot(), ctx.log.offset()
        sessions_b = await pg_sessions(ctx.odoo_pg)
        tokens = book.between(a.at, b.at) if scenario == "steady" else []
        missing = 0
        if tokens and config.kind != "none":
            deadline = time.perf_counter() + config.effective_interval + ctx.args.grace
            while book.pending(tokens) and (left := deadline - time.perf_counter()) > 0:
                book.arrived.clear()
                await wait_any(book.arrived, seconds=left)
            missing = len(book.pending(tokens))
        stop.set()
        for task in background:
            await task
        if spawned is not None and syncd is not None:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            child, out, err, started_at = spawned
            result = await syncd.wait(child, out, err, started_at, time.perf_counter())
            if result.returncode != 0:
                raise RuntimeError(f"syncd run exited {result.returncode}:\n{result.log[-3000:]}")
    run = Run(scenario, config.key, rep, CpuSpan.between(a, b), diff(calls_b, calls_a),
              ctx.log.between(log_a, log_b), len(tokens),
              book.latencies(tokens) if config.kind != "none" else [], missing, book.write_seconds(tokens),
              startup=startup, pg_sessions=sessions_b - sessions_a)  # fmt: skip
    say(f"  {scenario} {config.key} rep {rep + 1}: {summary(run)}")
    return run


async def run_once(ctx: Context, rep: int) -> Run:
    """``syncd --once`` on the synced mirror with nothing changed (an unmeasured one catches up first)."""
    syncd = ctx.syncd(CONFIGS["syncd"])
    await syncd.run("--once")
    a, calls_a, log_a = ctx.meter.sample(), ctx.proxy.snapshot(), ctx.log.offset()
    result = await syncd.run("--once")
    b, calls_b, log_b = ctx.meter.sample(), ctx.proxy.snapshot(), ctx.log.offset()
    run = Run("once", "syncd", rep, CpuSpan.between(a, b), diff(calls_b, calls_a),
              ctx.log.between(log_a, log_b), wall=result.wall)  # fmt: skip
    run.cpu.syncd = result.cpu
    say(f"  once rep {rep + 1}: {run.wall:.2f} s, {run.requests} requests, Odoo CPU {run.cpu.total:.2f} s")
    return run


CALL_KINDS = ("context_get", "search_read probe", "version_info (no auth)")


async def run_calls(ctx: Context, rep: int) -> list[Run]:
    """What one request costs Odoo: ``--calls`` sequential calls of each kind and protocol, straight to
    Odoo; its CPU over them divided by their number."""
    out = []
    rid = ctx.partner_ids[0]
    async with aiohttp.ClientSession() as http:
        for protocol in ctx.odoo.protocols():
            async with OdooClient(ctx.odoo.settings(protocol)) as client:
                for kind in CALL_KINDS:
                    if kind.startswith("version_info") and protocol != ctx.odoo.protocols()[0]:
                        continue

                    async def one(kind: str = kind, client: OdooClient = client) -> None:
                        if kind == "context_get":
                            await client.call("res.users", "context_get")
                        elif kind == "search_read probe":
                            await client.search_read(WRITE_MODEL, [("id", "=", rid)], ["id", "write_date"])
                        else:
                            async with http.post(ctx.odoo.url + "/web/webclient/version_info", json={}) as r:
                                await r.read()

                    for _ in range(3):  # JSON-RPC: the first call checks the password (uncached, slow)
                        await one()
                    sessions_a = await pg_sessions(ctx.odoo_pg)
                    a, log_a = ctx.meter.sample(), ctx.log.offset()
                    for _ in range(ctx.args.calls):
                        await one()
                    b, log_b = ctx.meter.sample(), ctx.log.offset()
                    await asyncio.sleep(0.5)  # a backend counts its session when it ends
                    sessions = await pg_sessions(ctx.odoo_pg) - sessions_a
                    label = kind if kind.startswith("version_info") else f"{kind} ({protocol})"
                    run = Run("calls", label, rep, CpuSpan.between(a, b), {}, ctx.log.between(log_a, log_b),
                              changes=ctx.args.calls, pg_sessions=sessions)  # fmt: skip
                    out.append(run)
                    say(f"  calls {label}: {1000 * run.cpu.total / ctx.args.calls:.2f} ms Odoo CPU per call, "
                        f"{1000 * run.cpu.seconds / ctx.args.calls:.2f} ms wall")  # fmt: skip
    return out


def summary(run: Run) -> str:
    text = (f"{run.per_minute(run.requests):.0f} req/min, Odoo {run.cpu.pct(run.cpu.odoo):.1f} % + PG "
            f"{run.cpu.pct(run.cpu.odoo_pg):.1f} % of a core (syncd {run.cpu.pct(run.cpu.syncd):.1f} %, "
            f"other {run.cpu.pct(run.cpu.other):.1f} %)")  # fmt: skip
    if run.changes and run.scenario == "steady":
        text += f", {run.changes} changes, {run.full(WRITE_MODEL) / run.changes:.1f} full reads each"
        if run.latencies:
            text += f", latency p50 {pctl(run.latencies, 50):.2f} s p99 {pctl(run.latencies, 99):.2f} s"
        if run.missing:
            text += f", {run.missing} never seen"
    return text


def pctl(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


# -------------------------------------------------------------------------------------------- report


def med(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def fmt(x: float, spec: str = ".1f") -> str:
    return "-" if x != x else format(x, spec)


def naive_for(config: Config) -> str:
    """The naive configuration a configuration is compared with: the same interval, else 5 s."""
    return "naive-1" if config.effective_interval == 1.0 else "naive-5"


def report(ctx: Context, info: list[str]) -> list[str]:
    out = info[:]
    by: dict[tuple[str, str], list[Run]] = {}
    for r in ctx.runs:
        by.setdefault((r.scenario, r.config), []).append(r)

    def m(scenario: str, config: str, f: Callable[[Run], float]) -> float:
        return med(f(r) for r in by.get((scenario, config), []))

    def cpu_pct(r: Run) -> float:
        return r.cpu.pct(r.cpu.total)

    def rpm(r: Run) -> float:
        return r.per_minute(r.requests)

    for scenario in ("idle", "steady"):
        configs = [c for c in CONFIGS if (scenario, c) in by]
        if not configs:
            continue
        seconds = ctx.args.idle_seconds if scenario == "idle" else ctx.args.steady_seconds
        head = (f"### idle: {len(ctx.models)} models, nothing changes, {seconds:g} s per run"
                if scenario == "idle" else
                f"### steady: {ctx.args.rate:g} res.partner writes/s (one record each, straight to Odoo), "
                f"{seconds:g} s per run")  # fmt: skip
        out += [head, ""]
        floor = m(scenario, "none", cpu_pct)
        rows = []
        for c in configs:
            config = CONFIGS[c]
            runs = by[(scenario, c)]
            naive = naive_for(config)
            cpu, req = m(scenario, c, cpu_pct), m(scenario, c, rpm)
            ratio_cpu = (cpu - floor) / (m(scenario, naive, cpu_pct) - floor) if c != "none" else float("nan")
            ratio_req = req / m(scenario, naive, rpm) if c != "none" else float("nan")
            row = [
                config.label, str(len(runs)), fmt(req, ".0f"), " ".join(fmt(cpu_pct(r)) for r in runs),
                fmt(m(scenario, c, lambda r: r.cpu.pct(r.cpu.odoo))),
                fmt(m(scenario, c, lambda r: r.cpu.pct(r.cpu.odoo_pg))), fmt(cpu),
                fmt(cpu - floor) if c != "none" else "-",
                fmt(ratio_cpu, ".2f") if c not in ("none", naive) else "-",
                fmt(ratio_req, ".2f") if c not in ("none", naive) else "-",
                fmt(m(scenario, c, lambda r: r.per_minute(r.pg_sessions)), ".0f"),
                fmt(m(scenario, c, lambda r: r.cpu.pct(r.cpu.syncd))),
                fmt(m(scenario, c, lambda r: r.cpu.pct(r.cpu.other))),
            ]  # fmt: skip
            if scenario == "steady":
                row[3:3] = [
                    fmt(m(scenario, c, lambda r: r.changes / r.cpu.seconds)),
                    fmt(m(scenario, c, lambda r: r.full(WRITE_MODEL) / r.changes if r.changes else float("nan"))),
                    fmt(m(scenario, c, lambda r: r.probe(WRITE_MODEL) / r.changes if r.changes else float("nan"))),
                    fmt(m(scenario, c, lambda r: pctl(r.latencies, 50)), ".2f"),
                    fmt(m(scenario, c, lambda r: pctl(r.latencies, 99)), ".2f"),
                ]  # fmt: skip
            rows.append(row)
        headers = ["configuration", "runs", "req/min", "Odoo+PG % of a core, per run", "Odoo %", "PG %",
                   "Odoo+PG % (median)", "above floor", "CPU × naive", "req × naive", "new PG conn/min",
                   "syncd %", "other %"]  # fmt: skip
        if scenario == "steady":
            headers[3:3] = [
                "writes/s",
                "full reads / change",
                "probe reads / change",
                "latency p50 s",
                "p99 s",
            ]
        out.append(markdown_table(headers, rows))
        out += [
            "",
            "*Odoo+PG %*: CPU of Odoo's process tree and of its PostgreSQL's over the window, % of one core; "
            "*above floor*: minus *nothing polls*; *× naive*: above floor and req/min over the naive "
            "poller's at the same interval (5 s for longer ones); *other*: the rest of the machine meanwhile.",
            "",
            "Requests per minute by method (median) and Odoo's own time per request (its log: Python + SQL ms):",
            "",
        ]
        out.append(method_table(by, scenario, configs))
        out += ["", "By model: requests a minute (Odoo's time for them a minute, from its log):", ""]
        out.append(model_table(by, scenario, configs))
        if scenario == "steady":
            out += ["", "Write → visible in the mirror, per run: " + "; ".join(
                f"{c} rep {r.rep + 1}: {len(r.latencies)} of {r.changes} seen"
                + (f" ({r.missing} never)" if r.missing else "")
                + f", write() {1000 * med(r.write_seconds):.0f} ms"
                for c in configs if c != "none" for r in by[(scenario, c)]
            )]  # fmt: skip
        out.append("")
    if once := [r for r in ctx.runs if r.scenario == "once"]:
        out += ["### once: `syncd --once`, nothing changed, mirror already synced", ""]
        methods = sorted({k[1] for r in once for k in r.calls})
        out.append(markdown_table(
            ["runs", "wall s per run", "median s", "requests", "Odoo+PG CPU s", "syncd CPU s", "by method"],
            [[str(len(once)), " ".join(f"{r.wall:.2f}" for r in once), fmt(med(r.wall for r in once), ".2f"),
              fmt(med(r.requests for r in once), ".0f"), fmt(med(r.cpu.total for r in once), ".2f"),
              fmt(med(r.cpu.syncd for r in once), ".2f"),
              ", ".join(f"{mt} {med(sum(s.requests for k, s in r.calls.items() if k[1] == mt) for r in once):.0f}"
                        for mt in methods)]],
        ))  # fmt: skip
        out.append("")
    if calls := [r for r in ctx.runs if r.scenario == "calls"]:
        out += [
            f"### calls: what one request costs Odoo ({ctx.args.calls} sequential calls each, straight to Odoo)",
            "",
        ]
        labels = list(dict.fromkeys(r.config for r in calls))
        rows = []
        for label in labels:
            rs = [r for r in calls if r.config == label]
            rows.append([
                label, fmt(med(1000 * r.cpu.total / r.changes for r in rs), ".2f"),
                fmt(med(1000 * r.cpu.odoo / r.changes for r in rs), ".2f"),
                fmt(med(1000 * r.cpu.odoo_pg / r.changes for r in rs), ".2f"),
                fmt(med(1000 * sum(s.python for s in r.odoo_log.values()) / r.changes for r in rs), ".2f"),
                fmt(med(1000 * sum(s.sql for s in r.odoo_log.values()) / r.changes for r in rs), ".2f"),
                fmt(med(sum(s.queries for s in r.odoo_log.values()) / r.changes for r in rs), ".1f"),
                fmt(med(r.pg_sessions / r.changes for r in rs), ".2f"),
                fmt(med(1000 * r.cpu.seconds / r.changes for r in rs), ".2f"),
            ])  # fmt: skip
        out.append(markdown_table(
            ["call", "Odoo+PG CPU ms", "Odoo ms", "PG ms", "Odoo's log: Python ms", "SQL ms", "queries",
             "new PG connections", "wall ms"], rows,
        ))  # fmt: skip
        out.append("")
    return out


def method_table(by: Mapping[tuple[str, str], list[Run]], scenario: str, configs: Sequence[str]) -> str:
    """Per method: requests a minute (median) and Odoo's own time per request from its log, Python
    + SQL ms (without the log: the proxy's round trip)."""
    methods = sorted({k[1] for c in configs for r in by[(scenario, c)] for k in r.calls})
    rows = []
    for mt in methods:
        row = [mt]
        for c in configs:
            runs = by[(scenario, c)]
            rpm = med(r.per_minute(sum(s.requests for k, s in r.calls.items() if k[1] == mt)) for r in runs)
            logged = [s for r in runs for k, s in r.odoo_log.items() if k[1] == mt]
            n = sum(s.requests for s in logged)
            if n:
                py, sql = (1000 * sum(s.python for s in logged) / n, 1000 * sum(s.sql for s in logged) / n)
                row.append(f"{rpm:.0f} ({py:.1f} + {sql:.1f} ms)")
                continue
            n = sum(s.requests for r in runs for k, s in r.calls.items() if k[1] == mt)
            secs = sum(s.seconds for r in runs for k, s in r.calls.items() if k[1] == mt)
            row.append(f"{rpm:.0f} ({1000 * secs / n:.0f} ms round trip)" if n else "-")
        rows.append(row)
    return markdown_table(["method", *(CONFIGS[c].label for c in configs)], rows)


def model_table(by: Mapping[tuple[str, str], list[Run]], scenario: str, configs: Sequence[str]) -> str:
    """Per model: requests a minute and the milliseconds a minute Odoo spent on them (its log:
    Python + SQL), medians; the writer's own requests (straight to Odoo) are left out."""
    pollers = [c for c in configs if CONFIGS[c].kind != "none"]
    models = list(dict.fromkeys(k[0] for c in pollers for r in by[(scenario, c)] for k in r.calls))
    rows = []
    for model in models:
        row = [model]
        for c in pollers:
            runs = by[(scenario, c)]
            rpm = med(
                r.per_minute(sum(s.requests for k, s in r.calls.items() if k[0] == model)) for r in runs
            )
            busy = med(
                r.per_minute(
                    sum(s.python + s.sql for k, s in r.odoo_log.items() if k[0] == model and k in r.calls)
                )
                for r in runs
            )
            row.append(f"{rpm:.0f} ({1000 * busy:,.0f} ms)")
        rows.append(row)
    return markdown_table(["model", *(CONFIGS[c].label for c in pollers)], rows)


def odoo_description(home: str | None, version: str) -> str:
    conf: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in (Path(home or "/nonexistent") / "odoo.conf").read_text().splitlines():
            k, sep, v = line.partition("=")
            if sep:
                conf[k.strip()] = v.strip()
    keys = ("workers", "max_cron_threads", "limit_time_real", "limit_time_cpu", "log_level", "proxy_mode")
    settings = ", ".join(f"{k} {conf[k]}" for k in keys if k in conf)
    return f"Odoo {version}" + (f" ({settings})" if settings else "")


# ---------------------------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> int:
    odoo = RealOdoo.from_args(args)
    if not odoo.api_key:
        raise RuntimeError("no API key: the writer and the seeding use JSON-2 (--odoo-api-key)")
    if urlsplit(odoo.url).port == 8069 and not args.allow_default_port:
        raise RuntimeError(f"{odoo.url} looks like the default test Odoo: use a bench instance "
                           "(ODOO19_PORT=8169 ...) or --allow-default-port")  # fmt: skip
    home = os.environ.get("ODOO19_HOME")
    odoo_pid = args.odoo_pid
    pg_pid = args.odoo_pg_pid or (pid_from_file(Path(home) / "pgdata" / "postmaster.pid") if home else None)
    if odoo_pid is None or pg_pid is None:
        raise RuntimeError("cannot find Odoo's pid or its PostgreSQL postmaster: set ODOO19_HOME or "
                           "--odoo-pid and --odoo-pg-pid")  # fmt: skip
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-load-"))
    proxy = CountingProxy(odoo.url)
    await proxy.start()
    say(f"counting proxy at {proxy.url} → {odoo.url}; starting PostgreSQL for the mirror ...")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    odoo_pg: asyncpg.Connection | None = None
    try:
        async with OdooClient(odoo.settings("json2", timeout_seconds=300)) as client:
            info = await client.version()
            say(f"seeding: {args.partners:,} partners marked ref={MARKER}<n> ...")
            created, secs = await seed_partners(client, args.partners)
            if created:
                say(f"seeding: created {created:,} in {secs:.1f} s")
            models = await mirrored_models(client)
            ids = await client.search(WRITE_MODEL, [("ref", "=like", f"{MARKER}%")], context=ALL_RECORDS)
        dsn = await pg.create_database("bench_odoo_load")
        meter = OdooMeter(odoo_pid, pg_pid, pg.postmaster)
        proxied = dataclasses.replace(odoo, url=proxy.url)
        odoo_log = OdooLog(Path(args.odoo_log) if args.odoo_log else None)
        if odoo_log.path is None:
            say("  no Odoo log to read (--odoo-log): Odoo's own time per request is left out")
        if args.odoo_pg_dsn:
            try:
                odoo_pg = await asyncpg.connect(args.odoo_pg_dsn)
            except (OSError, asyncpg.PostgresError) as e:
                say(f"  cannot connect to Odoo's PostgreSQL ({e}): its new connections are not counted")
        ctx = Context(
            args, odoo, proxied, args.protocol, proxy, meter, odoo_log, odoo_pg, models, dsn, workdir, ids
        )
        say(f"initial sync of {len(models)} models ({sum(m.records for m in models):,} records) ...")
        first = ctx.syncd(CONFIGS["syncd"])
        await first.run("migrate")
        once = await first.run("--once")
        conn = await asyncpg.connect(dsn)
        try:
            await install_latency_trigger(conn)
        finally:
            await conn.close()
        info_lines = [
            machine_line(),
            f"{odoo_description(home, info.server_version)} at {odoo.url}, pid {odoo_pid}; its PostgreSQL: "
            f"postmaster pid {pg_pid} ({await odoo_pg_version(args.odoo_pg_dsn)}); CPU = Odoo's process tree + "
            "that PostgreSQL's, as % of one core",
            f"syncd over {args.protocol} through a counting proxy; mirror in PostgreSQL {pg.version} "
            f"({pg.description}); initial sync of the mirror: {once.wall:.1f} s",
            "Models (records): "
            + ", ".join(f"{m.model} ({m.records:,}{', *' if m.fields == '*' else ''})" for m in models),
            "",
        ]
        scenarios = [s for s in SCENARIOS if s in args.scenarios]
        configs = [CONFIGS[c] for c in args.configs]
        steady_configs = [CONFIGS[c] for c in args.steady_configs or args.configs]
        async with OdooClient(odoo.settings("json2")) as client:
            windows: list[list[str]] = []
            for scenario in scenarios:
                if scenario in ("idle", "once") and not windows:
                    await wait_until_unchanged(client, models, CDC.lookback_seconds + 5)
                    # res.partner's newest change alone in its lookback window (the seeding's partners,
                    # written within a minute or two, would otherwise all be in it, for ever)
                    await client.write(WRITE_MODEL, ids[:1], {WRITE_FIELD: "bench odoo_load: quiet since"})
                    windows = await lookback_contents(client, models)
                writer: asyncio.Task[None] | None = None
                stop_writer = asyncio.Event()
                if scenario == "steady":
                    writer = asyncio.create_task(
                        Writer(client, ids, args.rate, ctx.book).run(stop_writer), name="writer"
                    )
                    say(
                        f"steady: the writer runs; {args.warmup:g} s until syncd's lookback window is full of its changes"
                    )
                    await asyncio.sleep(args.warmup)
                for rep in range(args.reps):
                    if scenario == "once":
                        ctx.runs.append(await run_once(ctx, rep))
                        continue
                    if scenario == "calls":
                        ctx.runs += await run_calls(ctx, rep)
                        continue
                    todo = steady_configs if scenario == "steady" else configs
                    shift = rep % len(todo)
                    for config in todo[shift:] + todo[:shift]:
                        ctx.runs.append(await run_window(ctx, scenario, config, rep))
                if writer is not None:
                    stop_writer.set()
                    await writer
        if windows:
            info_lines[-1:-1] = [
                "What a poll re-reads when nothing changes: per model, the records in syncd's lookback "
                f"window ({CDC.lookback_seconds:g} s before its newest write_date) and in its newest "
                "second (the naive poller's `write_date >= last`):",
                "",
                markdown_table(
                    ["model", "fields", "records", "in lookback window", "in newest second"], windows
                ),
                "",
            ]
        out = report(ctx, info_lines)
        out.append(f"The whole benchmark took {time.perf_counter() - started:.0f} s.")
        print("\n".join(out), flush=True)
        if args.json:
            await asyncio.to_thread(Path(args.json).write_text, json.dumps(
                {"info": info_lines, "models": [dataclasses.asdict(m) for m in models],
                 "runs": [r.to_json() for r in ctx.runs]}, indent=1,
            ))  # fmt: skip
        return 0
    finally:
        if odoo_pg is not None:
            await odoo_pg.close()
        await proxy.close()
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)
        shutil.rmtree(workdir, ignore_errors=True)


async def odoo_pg_version(dsn: str | None) -> str:
    if not dsn:
        return "PostgreSQL"
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        return "PostgreSQL"
    try:
        version = await conn.fetchval("show server_version")
        settings = await conn.fetch(
            "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'shared_buffers')"
        )
    finally:
        await conn.close()
    return f"PostgreSQL {version}, " + ", ".join(f"{r['name']} {r['setting']}" for r in settings)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.odoo_load",
        description="What syncd costs Odoo: requests and CPU of Odoo and its PostgreSQL (issue 14).",
    )
    add_odoo_arguments(p)
    env = os.environ.get
    p.add_argument("--odoo-pg-pid", type=int, help="Odoo's PostgreSQL postmaster (default: "
                   "$ODOO19_HOME/pgdata/postmaster.pid)")  # fmt: skip
    p.add_argument(
        "--odoo-pg-dsn", default=env("ODOO19_PG_DSN"), help="for the report (default: $ODOO19_PG_DSN)"
    )
    p.add_argument("--odoo-log", default=env("ODOO19_LOG"), help="Odoo's log file, for its own time per "
                   "request (werkzeug lines at log_level info; default: $ODOO19_LOG)")  # fmt: skip
    p.add_argument("--allow-default-port", action="store_true", help="run against an Odoo on port 8069")
    p.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=DEFAULT_CONFIGS,
                   help=f"default: {' '.join(DEFAULT_CONFIGS)} (webhooks needs `syncd odoo webhooks`)")  # fmt: skip
    p.add_argument("--steady-configs", nargs="+", choices=list(CONFIGS), help="default: --configs")
    p.add_argument("--reps", type=int, default=2, help="rounds of every configuration (default 2)")
    p.add_argument("--idle-seconds", type=float, default=120.0)
    p.add_argument("--steady-seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=10.0, help="steady writes per second (default 10)")
    p.add_argument("--calls", type=int, default=300, help="calls of each kind in the calls scenario")
    p.add_argument("--warmup", type=float, default=CDC.lookback_seconds + 5,
                   help="seconds the steady writer runs before the first window (default: lookback + 5)")  # fmt: skip
    p.add_argument("--settle", type=float, default=2.0, help="seconds between ready and the window")
    p.add_argument("--grace", type=float, default=10.0,
                   help="after a steady window, wait up to interval + this for the last changes")  # fmt: skip
    p.add_argument("--protocol", choices=["json2", "jsonrpc"], default="json2", help="of syncd and naive")
    p.add_argument("--partners", type=int, default=20_000, help="bench partners to make sure exist")
    p.add_argument("--webhook-secret", default="bench-odoo-load-secret-0123456789")
    p.add_argument("--webhooks-install", default="odoo webhooks install", help="syncd arguments")
    p.add_argument("--webhooks-uninstall", default="odoo webhooks remove", help="syncd arguments")
    p.add_argument(
        "--dsn", help="an existing PostgreSQL (superuser DSN) for the mirror instead of an embedded one"
    )
    p.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.odoo_url:
        p.error("no Odoo: give --odoo-url or set ODOO19_URL (bash ../shared/odoo19/up.sh env)")
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as e:
        print(f"bench.odoo_load: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
