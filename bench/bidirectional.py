"""Two-sided soak of writable mirror tables (issue 13): an app and an Odoo user edit the same records
at once, for minutes, and at the end nothing is lost, nothing echoes and both sides agree.

Run ``python -m bench.bidirectional`` (5 minutes, 200 records, the fake Odoo); ``--seconds 60`` for a
quick check; ``--odoo-url``/``--odoo-*`` or the ``ODOO19_*`` variables (``../shared/odoo19/up.sh env``)
run it against a real Odoo instead. ``tests/e2e/test_bidirectional_soak.py`` runs a short variant.

What runs:

- PostgreSQL: a throw-away embedded server (``--dsn`` for another one), ``syncd migrate``;
- Odoo: the fake in its own process (:mod:`bench.fake_server`), or the real one, where the soak creates
  ``--records`` partners named ``soak <token> <n>`` and deletes them at the end (``--keep`` keeps them);
- the real daemon, ``syncd run`` (a subprocess), with ``res.partner`` writable (fields :data:`FIELDS`,
  ``conflict = --policy``, hold by default), ``cdc.interval_seconds`` 1;
- the **app** (this process, its own connections): UPDATEs of the mirror table, one to three fields of a
  record at a time, now and then a mass UPDATE of one field over 5–20 records, now and then a value Odoo
  refuses (an empty name: "Contacts require a name"); with ``--resolve`` it also resolves some held
  conflicts (``syncd.outbox_resolve``, app or odoo at random). Every app change is tracked by the outbox
  events its transaction created (``xmin`` = the transaction's id);
- the **Odoo user** (this process, through Odoo's API): writes of one or two random fields of random
  records; and **collisions**: right after a fraction (``--collisions``) of the app's edits it writes the
  same field of the same record, ``0..--collision-delay`` seconds after the app's commit.

How a collision is judged (the read-then-write window): the record is reserved for the collision (no
other edit of either side touches it) until the app's event settled; then the field is read from Odoo:

- the event recorded a conflict on the field → **detected** (with ``hold`` or ``odoo_wins`` Odoo must
  still have the Odoo user's value, else a value was lost: an invariant fails);
- no conflict, Odoo has the Odoo user's value → **after**: its write landed after syncd's (two edits in
  a row, the later one stays: nothing to detect);
- no conflict, Odoo has the app's value → **slipped through**: the Odoo user's write landed between the
  consumer's ``read`` and its ``write`` and was overwritten (the window docs/bidirectional.md describes);
- the event failed → **failed**; anything else is **unexplained** (an invariant fails).

At the end the edits stop, the daemon settles (nothing pending or inflight, no ``syncd.mirror_refresh``
request, the mirror's values and write_dates equal to Odoo's: a CDC poll came after the last settle), and
the invariants are checked: mirror == Odoo for every record and field; every app change done, held or
dead exactly once; no event that no app change created (an echo of syncd's own writes would be one);
each app UPDATE made one event per changed row; each row's sync state is its last event's; no collision
unexplained. Numbers go to stdout as Markdown tables, progress to stderr; exit 0 when every invariant
holds, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/bidirectional.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import asyncpg

from bench.cdc import Postgres, Syncd, say
from bench.fake_server import FakeProcess
from bench.machine import machine_line
from bench.real_odoo import RealOdoo, add_odoo_arguments
from bench.report import markdown_table
from bench.soak import Replica, odoo_value
from syncd import db
from syncd.cdc.poller import ALL_RECORDS
from syncd.config import DatabaseSettings, OdooSettings
from syncd.odoo import OdooClient
from syncd.outbox.conflicts import Policy

ROOT = Path(__file__).resolve().parent.parent
MODEL = "res.partner"
TABLE = 'odoo."res_partner"'
#: The mirrored (and edited) fields and their Odoo types.
FIELDS = {"name": "char", "email": "char", "phone": "char", "function": "char", "active": "boolean"}
TEXT_FIELDS = [f for f, kind in FIELDS.items() if kind == "char"]
#: The outbox events the current transaction created (the trigger's inserts carry its xid).
CREATED_SQL = (
    "select id, odoo_id, payload from syncd.outbox where xmin = pg_current_xact_id()::xid order by id"
)
#: The outbox status of an app change → the sync state its row shows once it is the row's last.
STATE_OF = {"done": "synced", "dead": "failed", "conflict": "conflict"}
SETTLED = ("done", "dead", "conflict")
COLLISION_HEADERS = ["collisions (same field, same record)", "count", "share",
                     "Odoo user's write answered, ms after the app's commit: median (min–max)"]  # fmt: skip


@dataclass
class Options:
    seconds: float = 300.0
    records: int = 200
    seed: int | None = None
    policy: Policy = "hold"
    #: App transactions and Odoo-user writes (besides collisions) per second.
    app_rate: float = 8.0
    odoo_rate: float = 4.0
    #: Share of the app's single-record edits followed by an Odoo write of the same field.
    collisions: float = 0.25
    #: The Odoo user's colliding write goes this many seconds after the app's commit, at most.
    collision_delay: float = 0.02
    #: Share of the app's edits followed at once by another of the same record.
    again: float = 0.1
    #: Share of app transactions that are mass updates, and of edits with a value Odoo refuses.
    mass: float = 0.05
    invalid: float = 0.01
    #: Share of the held conflicts the app resolves every few seconds (policy hold).
    resolve: float = 0.3
    settle_seconds: float = 120.0
    cdc_interval: float = 1.0
    workdir: Path | None = None
    #: Keep the partners created in a real Odoo.
    keep: bool = False

    def resolved(self) -> Options:
        seed = self.seed if self.seed is not None else random.randrange(2**32)
        return Options(**{**self.__dict__, "seed": seed})


@dataclass(frozen=True)
class Target:
    """The Odoo both sides talk to: the Odoo user's client settings and syncd's variables."""

    label: str
    url: str
    client: OdooSettings
    env: dict[str, str] = field(default_factory=dict)
    #: The fake Odoo's process (None: a real Odoo), which counts the calls it got.
    fake: FakeProcess | None = None

    @classmethod
    def of_fake(cls, fake: FakeProcess) -> Target:
        settings = OdooSettings(url=fake.url, api_key="admin", max_concurrency=16)
        return cls("the fake Odoo (own process)", fake.url, settings, fake=fake)

    @classmethod
    def of(cls, odoo: RealOdoo) -> Target:
        protocol = odoo.protocols()[0]
        return cls(f"a real Odoo at {odoo.url} ({protocol})", odoo.url,
                   odoo.settings(protocol, max_concurrency=16), odoo.env(protocol))  # fmt: skip


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    options: Options
    target: str
    numbers: list[tuple[str, str]] = field(default_factory=list)
    collisions: Counter[str] = field(default_factory=Counter)
    #: per kind of collision: ms from the app's commit until the Odoo user's write was answered
    collision_ms: dict[str, list[float]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def render(self) -> str:
        o = self.options
        attempted = sum(self.collisions.values())
        overlapped = self.collisions["detected"] + self.collisions["slipped through"]
        rows = [[k, str(v), f"{v / attempted:.1%}", ms(self.collision_ms.get(k, []))]
                for k, v in self.collisions.most_common()]  # fmt: skip
        rate = f"{self.collisions['slipped through'] / overlapped:.1%}" if overlapped else "—"
        checks = [[c.name, "yes" if c.ok else "NO", c.detail] for c in self.checks]
        lines = [
            machine_line(),
            f"Two-sided soak: {o.seconds:g} s of edits on {o.records} records of {MODEL} against {self.target};"
            f" conflict policy {o.policy}; seed {o.seed}",
            "",
            markdown_table(["", "count"], self.numbers),
            "",
            markdown_table(COLLISION_HEADERS, rows),
            f"slipped through the read-then-write window: {self.collisions['slipped through']} of {overlapped}"
            f" collisions that overlapped syncd's handling ({rate}; detected + slipped)",
            "",
            markdown_table(["invariant", "holds", "detail"], checks, numeric=False),
            "",
            f"RESULT: {'PASS' if self.ok else 'FAIL'}",
        ]
        return "\n".join(lines)


def ms(values: Sequence[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


class Soak:
    """One run: ``await Soak(options, dsn, target).run()`` returns the :class:`Report`."""

    def __init__(self, options: Options, dsn: str, target: Target) -> None:
        self.o = options.resolved()
        self.dsn = dsn
        self.target = target
        self.rng = random.Random(self.o.seed)
        self.token = f"{self.o.seed:08x}"[-8:]
        self.workdir = self.o.workdir or Path(tempfile.mkdtemp(prefix="syncd-bidir-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.report = Report(self.o, target.label)
        self.n = Counter[str]()
        self.seq = itertools.count(1)
        self.ids: list[int] = []
        #: records an actor is changing now, or that a collision holds until its event settled
        self.busy: set[int] = set()
        #: every app change: event id → record id
        self.app_events: dict[int, int] = {}
        #: app transactions whose events were not what their UPDATE changed
        self.event_mismatches: list[str] = []
        self.collision_problems: list[str] = []
        self.collision_tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self.odoo: OdooClient | None = None
        self.daemon: Replica | None = None
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        say(f"[{time.monotonic() - self.t0:6.1f}s] {message}")

    # ------------------------------------------------------------------------------ run

    async def run(self) -> Report:
        self.t0 = time.monotonic()
        try:
            async with OdooClient(self.target.client) as self.odoo:
                await self._setup()
                actors = [asyncio.create_task(self._app(), name="app"),
                          asyncio.create_task(self._odoo_user(), name="odoo user"),
                          asyncio.create_task(self._resolver(), name="resolver")]  # fmt: skip
                try:
                    await self._edit_for(self.o.seconds)
                finally:
                    self.stop.set()
                    await asyncio.gather(*actors)
                self.say(f"edits stopped; waiting for {len(self.collision_tasks)} collisions to settle")
                await asyncio.gather(*self.collision_tasks)
                await self._settle()
                await self._checks()
                assert self.daemon is not None
                code = await self.daemon.terminate(grace=20)
                self.report.checks.append(
                    Check("syncd run exits cleanly on SIGTERM", code == 0, f"exit {code}")
                )
                await self._clean_up()
        except Exception as e:
            self.report.checks.append(Check("the soak ran to the end", False, f"{type(e).__name__}: {e}"))
            self.say(f"soak aborted: {type(e).__name__}: {e}")
        finally:
            self.stop.set()
            for task in self.collision_tasks:
                task.cancel()
            if self.daemon is not None:
                await self.daemon.kill9()
            if self.pool is not None:
                await self.pool.close()
        return self.report

    async def _setup(self) -> None:
        assert self.odoo is not None
        self.ids = await self.odoo.create(MODEL, [
            {"name": f"soak {self.token} {i}", "email": f"s{i}@soak.test", "function": f"role {i}"}
            for i in range(self.o.records)
        ])  # fmt: skip
        self.say(f"{len(self.ids)} partners created in {self.target.label}; logs in {self.workdir}")
        models = [{"model": MODEL, "fields": list(FIELDS), "writable": True, "conflict": self.o.policy}]
        syncd = Syncd(
            self.dsn, self.target.url, self.workdir,
            PYTHONPATH=str(ROOT),
            SYNCD_CDC__MODELS=json.dumps(models),
            SYNCD_CDC__INTERVAL_SECONDS=str(self.o.cdc_interval),
            SYNCD_OUTBOX__ENABLED="true",
            SYNCD_LOG__LEVEL="info",
            **self.target.env,
        )  # fmt: skip
        await syncd.run("migrate")
        self.daemon = Replica("run", syncd.env, self.workdir)
        await self.daemon.start()
        took = await self.daemon.wait_running(60)
        self.say(f"syncd run (pid {self.daemon.pid}) running after {took:.1f} s")
        self.pool = await db.create_pool(self.dsn, DatabaseSettings(pool_min_size=2, pool_max_size=8))
        deadline = time.monotonic() + 120
        while await self._mirrored() < len(self.ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the records did not reach the mirror within 120 s")
            await asyncio.sleep(0.2)
        self.say("every record is in the mirror; editing")

    async def _mirrored(self) -> int:
        try:
            return await self._count(f"select count(*) from {TABLE} where id = any($1::bigint[])", self.ids)
        except asyncpg.UndefinedTableError:  # the CDC creates it
            return 0

    async def _edit_for(self, seconds: float) -> None:
        assert self.daemon is not None
        end = time.monotonic() + seconds
        report = time.monotonic() + 30
        while (now := time.monotonic()) < end:
            if not self.daemon.alive:
                raise RuntimeError(f"syncd run exited:\n{self.daemon.tail()}")
            if now >= report:
                report = now + 30
                self.say(", ".join(f"{k} {v}" for k, v in sorted(self.n.items())))
            await asyncio.sleep(min(1.0, end - now))

    async def _count(self, sql: str, *args: Any) -> int:
        assert self.pool is not None
        return int(await self.pool.fetchval(sql, *args) or 0)

    def _pick(self) -> int | None:
        for _ in range(20):
            rid = self.rng.choice(self.ids)
            if rid not in self.busy:
                return rid
        return None

    def _text(self, who: str, name: str) -> str:
        seq = next(self.seq)
        return {"name": f"{who} {seq}", "email": f"{who}{seq}@soak.test", "phone": f"+1 555 {seq:07d}",
                "function": f"{who} role {seq}"}[name]  # fmt: skip

    # ------------------------------------------------------------------------------ the app

    async def _app(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(self.o.app_rate))
            try:
                if self.rng.random() < self.o.mass:
                    await self._app_mass()
                else:
                    rid = await self._app_single()
                    if rid is not None and self.rng.random() < self.o.again:
                        # At once: the first change is likely still on its way (a chain, or a fold).
                        await self._app_single(rid, collide=False)
                        self.n["app edits right after one of the same record"] += 1
            except asyncpg.DeadlockDetectedError:
                self.n["app transactions rolled back (deadlock)"] += 1

    async def _app_single(self, rid: int | None = None, *, collide: bool | None = None) -> int | None:
        """One UPDATE of one record (picked when None, not one held by another actor); the record, if
        it was changed and is free again."""
        rid = self._pick() if rid is None else rid
        if rid is None or rid in self.busy:
            return None
        collide = self.rng.random() < self.o.collisions if collide is None else collide
        values: dict[str, Any]  # a text gets a new value, None flips active
        if not collide and self.rng.random() < self.o.invalid:
            values = {"name": ""}  # Odoo refuses it: "Contacts require a name"
        else:
            names = self.rng.sample(list(FIELDS), self.rng.choice((1, 1, 1, 2, 3)))
            if collide and not set(names) & set(TEXT_FIELDS):
                names[0] = self.rng.choice(TEXT_FIELDS)
            values = {n: None if n == "active" else self._text("app", n) for n in names}
        texts = [n for n in values if n != "active"]
        sets = ", ".join('"active" = not "active"' if n == "active" else f'"{n}" = nullif(${2 + texts.index(n)}, \'\')'
                         for n in values)  # fmt: skip
        # A collision starts from a settled row, so that its event is judged on its own.
        where = "id = $1" + (" and \"_sync_state\" <> 'pending'" if collide else "")
        self.busy.add(rid)
        held = False
        try:
            events = await self._app_tx(
                f"update {TABLE} set {sets} where {where}", rid, *(values[n] for n in texts)
            )
            if collide and not events:
                self.n["collisions skipped (row pending)"] += 1
                return None
            self.n["app single-record edits"] += 1
            self.n["app edits Odoo refuses"] += values == {"name": ""}
            if len(events) != 1 or events[0]["odoo_id"] != rid or set(events[0]["payload"]) != set(values):
                self.event_mismatches.append(
                    f"UPDATE of {rid} {sorted(values)} made {[dict(e) for e in events]}"
                )
                return None
            if collide:
                name = self.rng.choice(texts)
                task = asyncio.create_task(
                    self._collide(rid, name, values[name], events[0]["id"], time.monotonic())
                )
                self.collision_tasks.add(task)
                held = True
                return None
            return rid
        finally:
            if not held:
                self.busy.discard(rid)

    async def _app_mass(self) -> None:
        free = [i for i in self.ids if i not in self.busy]
        ids = sorted(self.rng.sample(free, min(len(free), self.rng.randint(5, 20))))
        if not ids:
            return
        name = self.rng.choice(["function", "active"])
        value: Any = self._text("mass", name) if name == "function" else self.rng.random() < 0.7
        self.busy.update(ids)
        try:
            events = await self._app_tx(
                f'update {TABLE} set "{name}" = $2 where id = any($1::bigint[])', ids, value
            )
        finally:
            self.busy.difference_update(ids)
        self.n["app mass updates"] += 1
        self.n["app mass-updated rows"] += len(events)
        if not {e["odoo_id"] for e in events} <= set(ids) or any(set(e["payload"]) != {name} for e in events):
            self.event_mismatches.append(f"mass UPDATE of {name} on {ids} made {[dict(e) for e in events]}")
        elif name == "function" and len(events) != len(ids):  # a new text: every row changed
            self.event_mismatches.append(f"mass UPDATE of {len(ids)} rows made {len(events)} events")

    async def _app_tx(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run the app's UPDATE in a transaction of its own; the outbox events it created."""
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql, *args)
            events = await conn.fetch(CREATED_SQL)
        self.n["app transactions"] += 1
        for e in events:
            self.app_events[e["id"]] = e["odoo_id"]
        return events

    async def _resolver(self) -> None:
        """The app resolves a share of the held conflicts every few seconds, its latest change of the
        record only (then the row's state is that of the record's last event)."""
        assert self.pool is not None
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 3.0)
            if self.stop.is_set() or self.o.policy != "hold" or self.o.resolve <= 0:
                continue
            held = await self.pool.fetch(
                "select id, odoo_id from syncd.outbox o where status = 'conflict' and source is not null"
                " and not exists (select from syncd.outbox n where n.model = o.model and n.odoo_id = o.odoo_id"
                " and n.id > o.id)"
            )
            for e in held:
                rid = e["odoo_id"]
                if rid in self.busy or self.rng.random() >= self.o.resolve:
                    continue
                take = self.rng.choice(("app", "odoo"))
                self.busy.add(rid)
                try:
                    status = await self.pool.fetchval(
                        "select syncd.outbox_resolve(o.id, $2) from syncd.outbox o where o.id = $1"
                        " and o.status = 'conflict' and not exists (select from syncd.outbox n"
                        " where n.model = o.model and n.odoo_id = o.odoo_id and n.id > o.id)",
                        e["id"], take,
                    )  # fmt: skip
                finally:
                    self.busy.discard(rid)
                if status is not None:
                    self.n[f"held conflicts resolved: take {take}"] += 1

    # ------------------------------------------------------------------------------ the Odoo user

    async def _odoo_user(self) -> None:
        assert self.odoo is not None
        while not self.stop.is_set():
            await asyncio.sleep(self.rng.expovariate(self.o.odoo_rate))
            rid = self._pick()
            if rid is None:
                continue
            names = self.rng.sample(list(FIELDS), self.rng.choice((1, 1, 2)))
            values = {n: self.rng.random() < 0.8 if n == "active" else self._text("odoo", n) for n in names}
            await self.odoo.write(MODEL, [rid], values)
            self.n["Odoo user writes"] += 1

    async def _collide(self, rid: int, name: str, app_value: str, event_id: int, committed: float) -> None:
        """The Odoo user writes ``name`` of ``rid`` right after the app changed it (event
        ``event_id``); once the event settled, Odoo's value says what happened (module docstring)."""
        assert self.odoo is not None and self.pool is not None
        try:
            await asyncio.sleep(self.rng.uniform(0, self.o.collision_delay))
            value = self._text("odoo", name)
            await self.odoo.write(MODEL, [rid], {name: value})
            answered = time.monotonic() - committed
            deadline = time.monotonic() + 120
            while True:
                row = await self.pool.fetchrow(
                    "select status, conflicts from syncd.outbox where id = $1", event_id
                )
                if row is not None and row["status"] in SETTLED:
                    break
                if time.monotonic() > deadline:
                    self.report.collisions["unexplained"] += 1
                    self.collision_problems.append(f"event {event_id} not settled within 120 s: {row}")
                    return
                await asyncio.sleep(0.1)
            (record,) = await self.odoo.read(MODEL, [rid], [name], context=ALL_RECORDS)
            now = record[name]
            conflicts = row["conflicts"] or {}
            if row["status"] == "dead":
                kind = "failed"
            elif name in conflicts:
                kind = "detected"
                if self.o.policy != "app_wins" and now != value:
                    self.collision_problems.append(
                        f"event {event_id}: conflict on {rid}.{name} recorded, but Odoo has {now!r}, "
                        f"not the Odoo user's {value!r}"
                    )
            elif now == value:
                kind = "Odoo's write landed after syncd's"
            elif now == app_value:
                kind = "slipped through"
            else:
                kind = "unexplained"
                self.collision_problems.append(
                    f"event {event_id} ({row['status']}): {rid}.{name} is {now!r} in Odoo, neither the app's "
                    f"{app_value!r} nor the Odoo user's {value!r}"
                )
            self.report.collisions[kind] += 1
            self.report.collision_ms.setdefault(kind, []).append(answered * 1000)
        finally:
            self.busy.discard(rid)

    # ------------------------------------------------------------------------------ the end

    async def _settle(self) -> None:
        self.say(f"settling (at most {self.o.settle_seconds:g} s)")
        start = time.monotonic()
        while True:
            waiting = await self._not_settled()
            if not waiting:
                break
            if time.monotonic() - start > self.o.settle_seconds:
                self.say(f"NOT settled after {self.o.settle_seconds:g} s: {waiting}")
                break
            await asyncio.sleep(0.5)
        self.settle_seconds = time.monotonic() - start
        self.say(f"settled in {self.settle_seconds:.1f} s" if not waiting else "checking anyway")

    async def _not_settled(self) -> str:
        open_events = await self._count(
            "select count(*) from syncd.outbox where status in ('pending', 'inflight')"
        )
        if open_events:
            return f"{open_events} outbox events pending or inflight"
        refresh = await self._count("select count(*) from syncd.mirror_refresh where model = $1", MODEL)
        if refresh:
            return f"{refresh} mirror refresh requests"
        diff = await self._mirror_problems()
        return f"mirror differs: {diff[0]} (and {len(diff) - 1} more)" if diff else ""

    async def _mirror_problems(self) -> list[str]:
        """Every record: the mirror row's fields and write_date are Odoo's (in mirror shapes)."""
        assert self.odoo is not None and self.pool is not None
        odoo = {
            r["id"]: r
            for r in await self.odoo.read(MODEL, self.ids, [*FIELDS, "write_date"], context=ALL_RECORDS)
        }
        columns = ", ".join(f'"{f}"' for f in FIELDS)
        rows = await self.pool.fetch(
            f"select id, {columns}, _raw ->> 'write_date' as write_date, _deleted_at from {TABLE}"
            " where id = any($1::bigint[])",
            self.ids,
        )
        mirror = {r["id"]: r for r in rows}
        problems = []
        for rid in self.ids:
            rec, row = odoo.get(rid), mirror.get(rid)
            if rec is None or row is None:
                problems.append(f"{rid}: {'not in Odoo' if rec is None else 'not in the mirror'}")
                continue
            if row["write_date"] != rec["write_date"]:
                problems.append(f"{rid}: write_date {row['write_date']} != Odoo's {rec['write_date']}")
            problems += [
                f"{rid}.{name}: mirror {row[name]!r} != Odoo's {odoo_value(rec[name], kind)!r}"
                for name, kind in FIELDS.items()
                if row[name] != odoo_value(rec[name], kind)
            ]
        return problems

    async def _checks(self) -> None:
        assert self.pool is not None and self.daemon is not None
        checks = self.report.checks
        problems = await self._mirror_problems()
        checks.append(Check("mirror == Odoo (every record, every field, write_date)", not problems,
                            f"{len(problems)} differences: {problems[:3]}" if problems else
                            f"{len(self.ids)} records × {len(FIELDS)} fields"))  # fmt: skip

        events = {r["id"]: r for r in await self.pool.fetch(
            "select id, odoo_id, status, source is not null as from_mirror, conflicts from syncd.outbox")}  # fmt: skip
        tracked = self.app_events
        missing = sorted(set(tracked) - set(events))
        status = Counter(events[i]["status"] for i in tracked if i in events)
        unsettled = {s: n for s, n in status.items() if s not in SETTLED}
        ok = not missing and not unsettled and sum(status.values()) == len(tracked)
        checks.append(Check("every app change accounted for exactly once (done, held or dead)", ok,
                            f"{len(tracked)} changes: " + ", ".join(f"{s} {n}" for s, n in sorted(status.items()))
                            + (f"; missing from the outbox {missing[:5]}" if missing else "")))  # fmt: skip
        extra = sorted(set(events) - set(tracked))
        checks.append(Check("no event that no app change created (no echo of syncd's own writes)", not extra,
                            f"{len(extra)} extra events: {[dict(events[i]) for i in extra[:3]]}" if extra else
                            f"{len(events)} events in the outbox, all from the app's UPDATEs"))  # fmt: skip
        checks.append(Check("each app UPDATE made one event per changed row", not self.event_mismatches,
                            "; ".join(self.event_mismatches[:3]) or f"{self.n['app transactions']} transactions"))  # fmt: skip

        last: dict[int, int] = {}
        for eid, rid in tracked.items():
            last[rid] = max(eid, last.get(rid, 0))
        rows = await self.pool.fetch(
            f'select id, "_sync_state", "_sync_event" from {TABLE} where id = any($1::bigint[])', self.ids
        )
        wrong = []
        for r in rows:
            eid = last.get(r["id"], 0)
            want = STATE_OF.get(events[eid]["status"], "pending") if eid in events else "synced"
            if (r["_sync_state"], r["_sync_event"]) != (want, None):
                wrong.append(
                    f"{r['id']}: {r['_sync_state']}/{r['_sync_event']}, its last event {eid} says {want}"
                )
        states = Counter(r["_sync_state"] for r in rows)
        checks.append(Check("each row's sync state is its last change's", not wrong,
                            "; ".join(wrong[:3]) or ", ".join(f"{s} {n}" for s, n in sorted(states.items()))))  # fmt: skip
        checks.append(Check("every collision explained (no Odoo value lost to a detected conflict)",
                            not self.collision_problems, "; ".join(self.collision_problems[:3]) or
                            f"{sum(self.report.collisions.values())} collisions"))  # fmt: skip

        conflicts_recorded = sum(1 for i in tracked if i in events and events[i]["conflicts"])
        log = self.daemon.log()
        levels = {lvl: sum(f" {lvl} " in line for line in log.splitlines()) for lvl in ("WARNING", "ERROR")}
        numbers = [
            ("edits (s)", f"{self.o.seconds:g}"),
            ("records", str(len(self.ids))),
            *((k, str(v)) for k, v in sorted(self.n.items())),
            ("app changes (outbox events)", str(len(tracked))),
            ("… applied (done)", str(status["done"])),
            ("… held (conflict) at the end", str(status["conflict"])),
            ("… failed (dead)", str(status["dead"])),
            ("app changes with a conflict recorded", str(conflicts_recorded)),
            ("events not created by an app change", str(len(extra))),
            ("settle (s)", f"{self.settle_seconds:.1f}"),
            ("syncd log lines WARNING / ERROR", f"{levels['WARNING']} / {levels['ERROR']}"),
        ]
        if self.target.fake is not None:
            calls = await self.target.fake.calls()
            ours = self.n["Odoo user writes"] + sum(self.report.collisions.values())
            numbers.append(("Odoo write calls by syncd (the fake's count minus the Odoo user's)",
                            str(calls[f"{MODEL}.write"] - ours)))  # fmt: skip
        self.report.numbers = numbers

    async def _clean_up(self) -> None:
        if self.target.fake is None and not self.o.keep and self.odoo is not None:
            for i in range(0, len(self.ids), 500):
                await self.odoo.unlink(MODEL, self.ids[i : i + 500])
            self.say(f"deleted the {len(self.ids)} partners from {self.target.url}")


async def bidirectional(options: Options, dsn: str, odoo: RealOdoo | None = None) -> Report:
    """Run the soak on the database ``dsn`` (migrated by the soak), against ``odoo`` or a fake Odoo of
    its own (in its own process)."""
    if odoo is not None:
        return await Soak(options, dsn, Target.of(odoo)).run()
    fake = await FakeProcess.start(0)
    try:
        return await Soak(options, dsn, Target.of_fake(fake)).run()
    finally:
        fake.stop()


async def main_async(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    odoo = RealOdoo.from_args(args) if args.odoo_url else None
    if odoo is not None and not odoo.protocols():
        raise RuntimeError("no credentials: give --odoo-api-key (JSON-2) or --odoo-password (JSON-RPC)")
    pg = await asyncio.to_thread(Postgres.start, args.dsn, False)
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bidir-"))
    try:
        dsn = await pg.create_database("bench_bidirectional")
        options = Options(seconds=args.seconds, records=args.records, seed=args.seed, policy=args.policy,
                          app_rate=args.app_rate, odoo_rate=args.odoo_rate, collisions=args.collisions,
                          collision_delay=args.collision_delay, resolve=args.resolve, workdir=workdir,
                          keep=args.keep)  # fmt: skip
        report = await bidirectional(options, dsn, odoo)
        print(report.render(), flush=True)
        if not report.ok:
            say(f"syncd's log: {workdir}")
        return 0 if report.ok else 1
    finally:
        with contextlib.suppress(Exception):
            await pg.drop_created()
        await asyncio.to_thread(pg.close)
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.bidirectional", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300.0, help="edits on both sides (default 300)")
    p.add_argument("--records", type=int, default=200, help="records both sides edit (default 200)")
    p.add_argument("--seed", type=int, default=None, help="replay a run's random choices")
    p.add_argument(
        "--policy", choices=get_args(Policy), default="hold", help="conflict policy (default hold)"
    )
    p.add_argument("--app-rate", type=float, default=8.0, help="app transactions per second (default 8)")
    p.add_argument(
        "--odoo-rate", type=float, default=4.0, help="Odoo user's own writes per second (default 4)"
    )
    p.add_argument("--collisions", type=float, default=0.25,
                   help="share of the app's edits the Odoo user collides with (default 0.25)")  # fmt: skip
    p.add_argument("--collision-delay", type=float, default=0.02,
                   help="the colliding write goes 0..this many seconds after the app's commit (default 0.02)")  # fmt: skip
    p.add_argument("--resolve", type=float, default=0.3,
                   help="share of held conflicts the app resolves every 3 s (default 0.3)")  # fmt: skip
    p.add_argument("--dsn", help="an existing PostgreSQL (superuser DSN) instead of an embedded one")
    p.add_argument("--keep", action="store_true", help="keep the partners created in a real Odoo")
    p.add_argument("--keep-logs", action="store_true", help="keep syncd's log (its path goes to stderr)")
    add_odoo_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"bench.bidirectional: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
