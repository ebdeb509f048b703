"""Bad input through the real outbox consumer (issue 6): whatever a producer enqueues ends ``done``
or ``dead`` with a readable error, nothing crashes the consumer and nothing is executed.

``test_fuzzed_batches_settle_as_the_oracle_says`` (hypothesis) enqueues batches of events for
``x.fuzz``, a model of the fake Odoo with a field of every type the outbox handles: keys of every
shape (unicode, whitespace, RTL and emoji, SQL, 10 000 characters) and payloads that mix good values
with bad ones (wrong JSON types, numbers out of range or beyond a double, dates that are not dates,
unknown selection values, unknown and read-only fields with quotes and SQL in their names, deep
nesting, JSON that Python cannot read). Every generated value knows whether it is good and, if not,
what the error must say; an oracle replays the events in id order. One ``drain()`` of a real
consumer (the fake Odoo over HTTP, the real PostgreSQL, ``max_attempts = 1`` so that nothing waits
for a retry) must leave:

* every event ``done`` or ``dead`` as the oracle says; a dead one with a short readable error that
  names a bad field and its problem (or the model, or the payload); no transient failure at all;
* the fake Odoo holding exactly what the done events wrote and nothing else;
* only the expected Odoo methods called, the sentinel table and the database's relations untouched.

The tests after it pin each bug the fuzzer found (payloads Python cannot decode poisoned every claim;
datetimes at the ends of the calendar, integers beyond a double and deep JSON crashed a batch;
huge names and values made huge errors) and the limits of what can be enqueued at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from syncd import db
from syncd.config import DatabaseSettings, Settings
from syncd.odoo import OdooClient
from syncd.outbox.consumer import OutboxConsumer, Outcome
from syncd.outbox.xmlid import external_id
from syncd.testing import FakeOdoo, FakeOdooServer, FieldSpec
from syncd.testing.values import INT_MAX, INT_MIN, float_round, sanitize_html

pytestmark = pytest.mark.integration

MODEL = "x.fuzz"
UNKNOWN_MODEL = "x.fuzz.missing"
SELECTION = (("draft", "Draft"), ("done", "Done"), ("a b", "With a space"), ("ünï", "Ünï"))
FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec("char"),
    "note": FieldSpec("text"),
    "body": FieldSpec("html"),
    "qty": FieldSpec("integer"),
    "ratio": FieldSpec("float"),
    "amount": FieldSpec("monetary"),
    "flag": FieldSpec("boolean"),
    "day": FieldSpec("date"),
    "at": FieldSpec("datetime"),
    "state": FieldSpec("selection", selection=SELECTION),
    "partner_id": FieldSpec("many2one", relation="res.partner"),
    "tag_ids": FieldSpec("many2many", relation="res.partner.category"),
    "data": FieldSpec("json"),
    "total": FieldSpec("float", readonly=True),
}
WRITABLE = [name for name in FIELDS if name != "total"]
#: x.fuzz records created before the events (ids 1-3 in a fresh fake); write and delete target them.
EXISTING = (1, 2, 3)
MISSING_ID = 999_999
#: demo partners and partner tags that many2one/many2many values point at
PARTNER_IDS = (1, 2, 3)
TAG_IDS = (1, 2, 3)
#: the Odoo methods the consumer may call; anything else would be something a payload made it do
ALLOWED_METHODS = {"fields_get", "load", "write", "unlink", "check_object_reference", "version"}
#: a dead event's error is at most this long, whatever the size of the payload
MAX_ERROR = 600

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI; failures still shrink
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# -------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Raw:
    """JSON text that Python's ``json`` would not write: ``1e309``, 3000 levels of nesting, huge integers."""

    text: str


@dataclass(frozen=True)
class Val:
    """A generated field value: good (``problem`` None; ``stored`` is what Odoo then holds), or bad
    with a fragment that the dead event's error must contain."""

    json: Any
    problem: str | None = None
    #: the problem is found by Odoo's load(), not by syncd's own checks
    odoo: bool = False
    #: the whole payload cannot be decoded by Python (the event dies for its payload)
    unreadable: bool = False
    stored: Any = None


def deep(levels: int) -> Raw:
    return Raw("[" * levels + "]" * levels)


def dump(value: Any) -> str:
    """JSON text of a value that may contain :class:`Raw` parts."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Val):
        return dump(value.json)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{dump(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
TEXT = st.text(CHARS, max_size=30)
NASTY = [
    'name"; drop table fuzz_sentinel; --',
    "'); drop table fuzz_sentinel; --",
    "__proto__",
    "constructor",
    "%s %(x)s {0} $1 \\N",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "\u202egnp.exe",
    "مرحبا بالعالم",
    "😀👍🏽‍🔥",
    " \t\n ",
    "\u200b",
    "a,b",
    "a.b",
    "a b",
    "__",
    "k__h_x",
    "null",
    "\\",
    "'",
    '"',
]
strings = st.one_of(TEXT, st.sampled_from(NASTY))

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)

_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


def _utc_second(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0)


def _datetime_text(value: datetime, sep: str) -> str:
    return value.isoformat(sep=sep)


_naive = st.datetimes()
_aware = st.datetimes(min_value=datetime(2, 1, 2), max_value=datetime(9998, 12, 30), timezones=_offsets)


def good(kind: str) -> st.SearchStrategy[Val]:
    """Values Odoo must take, with what it then stores."""
    strategy: st.SearchStrategy[Val]
    if kind in ("char", "text"):
        strategy = strings.map(lambda s: Val(s, stored=s))
    elif kind == "html":
        strategy = strings.map(lambda s: Val(s, stored=sanitize_html(s)))
    elif kind == "integer":
        strategy = st.integers(INT_MIN, INT_MAX).map(lambda i: Val(i, stored=i))
    elif kind == "float":
        strategy = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Val(f, stored=f))
    elif kind == "monetary":
        strategy = st.floats(-1e9, 1e9).map(lambda f: Val(f, stored=float_round(f, 2)))
    elif kind == "boolean":
        strategy = st.booleans().map(lambda b: Val(b, stored=b))
    elif kind == "date":
        strategy = st.one_of(
            st.dates().map(lambda d: Val(d.isoformat(), stored=d)),
            st.datetimes().map(lambda d: Val(d.isoformat(), stored=d.date())),  # the date part counts
        )
    elif kind == "datetime":
        strategy = st.builds(
            lambda d, sep: Val(_datetime_text(d, sep), stored=_utc_second(d)),
            _naive | _aware,
            st.sampled_from(["T", " "]),
        )
    elif kind == "selection":
        strategy = st.sampled_from([v for v, _ in SELECTION]).map(lambda s: Val(s, stored=s))
    elif kind == "many2one":
        strategy = st.sampled_from(PARTNER_IDS).map(lambda i: Val(i, stored=i))
    elif kind == "many2many":
        strategy = st.lists(st.sampled_from(TAG_IDS), max_size=4).map(
            lambda ids: Val(ids, stored=sorted(set(ids)))
        )
    elif kind == "json":
        strategy = JSON.map(lambda v: Val(v, stored=v))
    else:
        raise AssertionError(kind)
    return st.one_of(st.just(Val(None, stored=None)), strategy)


WRONG = "cannot take"
_not_text: list[Any] = [1, 1.5, True, [], ["a"], {"a": 1}, deep(40)]
BAD: dict[str, list[Any]] = {
    "char": _not_text,
    "text": _not_text,
    "html": _not_text,
    "integer": [1.5, 2.0, "1", True, [1], 2**31, INT_MIN - 1, 2**63, -(2**63) - 1, Raw("1e309"),
                Raw("-1" + "0" * 400), deep(300)],
    "float": ["1.5", "NaN", "Infinity", True, [1.0], {"x": 1}, Raw("1e309"), Raw("-1e400"), Raw("2e308")],
    "monetary": ["1.5", False, Raw("1e309"), Raw("-1e400")],
    "boolean": ["true", 1, 0, "yes", [True], deep(300)],
    "date": ["yesterday", "2026-02-30", "", 20260131, "31/01/2026", "2026-13-01", [2026, 1, 31]],
    "datetime": ["soon", "2026-01-31T25:00:00", 1_700_000_000, "", "0001-01-01T00:00:00+01:00",
                 "9999-12-31T23:59:59-01:00", "2026-01-31T10:00:00+25:00"],
    "selection": [("nope", "has no value"), ("Draft", "has no value"), ("DRAFT", "has no value"),
                  ("", "has no value"), (1, WRONG), (["draft"], WRONG), (True, WRONG)],
    "many2one": ["1", 0, -1, 1.0, True, [1], {"id": 1}, 2**31, Raw("9" * 30), -(2**63)],
    "many2many": [1, "1", [0], [-1], ["1"], [[1]], [1.0], [True], {"a": 1}, [None], [2**31], deep(40)],
}  # fmt: skip


def bad(kind: str, op: str) -> st.SearchStrategy[Val]:
    """Values syncd must refuse (or, for upserts, Odoo's load() rejects), with what the error says."""
    options: list[st.SearchStrategy[Val]] = []
    if kind == "json":
        if op == "upsert":  # load() cannot set a json field: the event says to use op 'write'
            options.append(JSON.map(lambda v: Val(v, problem="use op 'write'")))
        else:
            options.append(st.just(Val(deep(300), problem="nested deeper than")))
            options.append(
                st.just(Val([[[[[[[[[[[[[[[[{"x": deep(120)}]]]]]]]]]]]]]]]], problem="nested deeper"))
            )
    else:
        for item in BAD[kind]:
            value, problem = item if isinstance(item, tuple) else (item, WRONG)
            options.append(st.just(Val(value, problem=problem)))
    if op == "upsert" and kind == "many2one":
        options.append(st.just(Val(MISSING_ID, problem="No matching record", odoo=True)))
    if op == "upsert" and kind == "many2many":
        options.append(st.just(Val([1, MISSING_ID], problem="No matching record", odoo=True)))
    return st.one_of(options)


#: payloads whose JSON PostgreSQL keeps but Python's json cannot read
UNREADABLE = st.sampled_from([deep(3000), Raw("1" * 5000), Raw("-" + "9" * 4400)]).map(
    lambda raw: Val(raw, problem="payload", unreadable=True)
)
_UNKNOWN_NAMES = [
    "NAME",
    " name",
    "name ",
    "name/.id",
    "partner_id/id",
    "partner_id.id",
    ".id",
    "",
    "Name",
    "naïve",
]
_READ_ONLY = {"total": "read-only", "display_name": "read-only", "create_date": "read-only",
              "write_date": "read-only", "create_uid": "read-only", "id": "'id' cannot be set"}  # fmt: skip
#: every name the fake's x.fuzz has (magic fields included): unknown names must be none of them
_KNOWN_NAMES = set(FakeOdoo().declare_model(MODEL, FIELDS).fields)
unknown_names = st.one_of(st.sampled_from(_UNKNOWN_NAMES + NASTY), TEXT).filter(
    lambda n: n not in _KNOWN_NAMES
)


@st.composite
def payloads(draw: st.DrawFn, op: str) -> dict[str, Val]:
    clean = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(WRITABLE), min_size=1, max_size=4, unique=True))
    payload = {}
    for name in names:
        kind = FIELDS[name].type
        if kind == "json" and op == "upsert":  # never good: load() cannot set json fields
            if clean:
                continue
            is_bad = True
        else:
            is_bad = not clean and draw(st.integers(0, 9)) < 3
        payload[name] = draw(bad(kind, op) if is_bad else good(kind))
    if not clean:
        extra = draw(st.integers(0, 19))
        if extra < 3:
            payload[draw(unknown_names)] = Val(draw(JSON), problem="does not exist")
        elif extra < 5:
            name = draw(st.sampled_from(sorted(_READ_ONLY)))
            payload[name] = Val(draw(JSON), problem=_READ_ONLY[name])
        elif extra < 6:
            payload[draw(st.sampled_from(WRITABLE))] = draw(UNREADABLE)
    if not payload:
        payload["name"] = draw(good("char"))
    return payload


# -------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    model: str
    op: str
    key: str | None = None
    odoo_id: int | None = None
    payload: Mapping[str, Val] | None = None

    def payload_text(self) -> str | None:
        return None if self.payload is None else dump(dict(self.payload))


keys = st.one_of(
    TEXT.filter(bool),
    st.sampled_from(NASTY),
    st.uuids().map(str),
    st.from_regex(r"[A-Za-z0-9_-]{1,120}", fullmatch=True),
    st.sampled_from(["k" * 120, "k" * 121, "x" * 10_000, "🔑" * 200]),
)
ids = st.sampled_from([*EXISTING, MISSING_ID])


@st.composite
def batches(draw: st.DrawFn) -> list[Ev]:
    pool = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    key = st.sampled_from(pool)
    one = st.one_of(
        st.builds(Ev, st.just(MODEL), st.just("upsert"), key, st.none(), payloads("upsert")),
        st.builds(Ev, st.just(MODEL), st.just("upsert"), key, st.none(), payloads("upsert")),
        st.builds(Ev, st.just(MODEL), st.just("upsert"), key, st.none(), payloads("upsert")),
        st.builds(Ev, st.just(MODEL), st.just("write"), st.none(), ids, payloads("write")),
        st.builds(Ev, st.just(MODEL), st.just("delete"), key),
        st.builds(Ev, st.just(MODEL), st.just("delete"), st.none(), ids),
        st.builds(Ev, st.just(UNKNOWN_MODEL), st.just("upsert"), key, st.none(), payloads("upsert")),
    )
    return draw(st.lists(one, min_size=1, max_size=10))


# -------------------------------------------------------------------------------------- oracle


@dataclass
class Expected:
    status: str
    #: (field name or None, fragment): a dead event's error contains one of them
    problems: list[tuple[str | None, str]] = field(default_factory=list)


def oracle(events: list[Ev]) -> tuple[list[Expected], dict[tuple[str, Any], dict[str, Any]]]:
    """Each event's expected outcome, and the records of x.fuzz at the end: ``("id", n)`` for the
    pre-existing ones, ``("key", k)`` for the ones upserts created, each with the values written."""
    records: dict[tuple[str, Any], dict[str, Any]] = {("id", i): {"name": f"existing {i}"} for i in EXISTING}
    out: list[Expected] = []
    for e in events:
        payload = dict(e.payload or {})
        if e.model != MODEL:
            out.append(Expected("dead", [(None, e.model)]))
            continue
        if any(v.unreadable for v in payload.values()):
            out.append(Expected("dead", [(None, "payload")]))
            continue
        ours = [(n, v.problem) for n, v in payload.items() if v.problem and not v.odoo]
        theirs = [(n, v.problem) for n, v in payload.items() if v.problem and v.odoo]
        if ours or theirs:
            out.append(Expected("dead", ours or theirs))
            continue
        values = {n: v.stored for n, v in payload.items()}
        if e.op == "upsert":
            records.setdefault(("key", e.key), {}).update(values)
            out.append(Expected("done"))
        elif e.op == "write":
            target = records.get(("id", e.odoo_id))
            if target is None:
                out.append(Expected("dead", [(None, "does not exist")]))
            else:
                target.update(values)
                out.append(Expected("done"))
        else:
            records.pop(("key", e.key) if e.key is not None else ("id", e.odoo_id), None)
            out.append(Expected("done"))
    return out, records


def _number(value: Any) -> Any:
    """JSON numbers compare as numbers: jsonb keeps ``4.773395641646795e+16`` as the decimal it
    writes, which Python reads back as the integer 47733956416467950 (the same double)."""
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**1023:
        return float(value)
    return value


def norm(value: Any) -> Any:
    """Odoo's empty values (False, 0, "", []) and None are all "empty"; x2many ids compare sorted;
    numbers as doubles."""
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        value = sorted(value)
    return _number(value) if value else None


def shown(name: str) -> str:
    """How an error names a field: its repr, cut after 20 characters (long names are shortened)."""
    return repr(name)[:20]


def assert_readable(error: str | None, what: str) -> None:
    assert error and error.strip(), f"{what}: dead without an error"
    assert len(error) <= MAX_ERROR, f"{what}: a {len(error)}-character error: {error[:200]}..."
    for junk in ("Traceback", "object at 0x", "<class '", 'File "', "RecursionError", "OverflowError"):
        assert junk not in error, f"{what}: {error!r}"


# ------------------------------------------------------------------------------------- harness


def new_fake() -> FakeOdoo:
    fake = FakeOdoo(demo_data=True)
    fake.declare_model(MODEL, FIELDS)
    assert fake.create(MODEL, [{"name": f"existing {i}"} for i in EXISTING]) == list(EXISTING)
    assert set(PARTNER_IDS) <= set(fake.records("res.partner"))
    assert set(TAG_IDS) <= set(fake.records("res.partner.category"))
    return fake


@dataclass
class Env:
    server: FakeOdooServer
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    settings: Settings

    @property
    def fake(self) -> FakeOdoo:
        return self.server.fake

    def consumer(self, name: str = "fuzz", **outbox: Any) -> OutboxConsumer:
        # one attempt: a transient failure (there should be none) ends dead instead of waiting
        # and no folding: the oracle judges each event by its own payload (folds: test_outbox_fold.py)
        update = {"max_attempts": 1, "fold_max_events": 1, **outbox}
        settings = self.settings.model_copy(update={"outbox": self.settings.outbox.model_copy(update=update)})
        return OutboxConsumer(settings, self.odoo, self.pool, self.dsn, name)

    async def enqueue(self, e: Ev) -> int:
        sql = "select syncd.enqueue($1, $2, $3, $4::text::jsonb, $5)"
        return int(await self.pool.fetchval(sql, e.model, e.op, e.key, e.payload_text(), e.odoo_id))

    async def rows(self) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch("select id, status, last_error, result_id from syncd.outbox order by id")
        )

    async def relations(self) -> list[str]:
        return [
            r[0]
            for r in await self.pool.fetch(
                "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                " where n.nspname in ('public', 'syncd', 'odoo') order by 1"
            )
        ]


@asynccontextmanager
async def fuzz_env(dsn: str) -> AsyncIterator[Env]:
    async with FakeOdooServer(new_fake()) as server:
        settings = Settings.model_validate(
            {"odoo": {"url": server.url, "api_key": "admin", "retries": 0}, "outbox": {"poll_interval_seconds": 0.05}}
        )  # fmt: skip
        pool = await db.create_pool(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=4))
        try:
            await pool.execute(
                "create table public.fuzz_sentinel (n int); insert into public.fuzz_sentinel values (1)"
            )
            async with OdooClient(settings.odoo) as client:
                yield Env(server, client, pool, dsn, settings)
        finally:
            await pool.close()


@pytest.fixture
async def env(db_dsn: str) -> AsyncIterator[Env]:
    async with fuzz_env(db_dsn) as e:
        yield e


@dataclass
class Harness:
    """One event loop, fake Odoo server, client and pool for every example; a fresh fake per example."""

    runner: asyncio.Runner
    env: Env
    relations: list[str]


@pytest.fixture
def harness(db_dsn: str) -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        context = fuzz_env(db_dsn)
        the_env = runner.run(context.__aenter__())
        try:
            yield Harness(runner, the_env, runner.run(the_env.relations()))
        finally:
            runner.run(context.__aexit__(None, None, None))


async def settle(env: Env, events: list[Ev], **outbox: Any) -> tuple[list[asyncpg.Record], list[Outcome]]:
    """Enqueue ``events`` into an empty outbox and drain it once; the rows and the outcomes."""
    await env.pool.execute("truncate syncd.outbox")
    for e in events:
        await env.enqueue(e)
    env.fake.calls.clear()
    consumer = env.consumer(**outbox)
    outcomes: list[Outcome] = []
    consumer.on_recorded = outcomes.extend
    await consumer.drain()
    return await env.rows(), outcomes


# ------------------------------------------------------------------------------------ the fuzz


@SETTINGS
@given(events=batches(), batch_size=st.sampled_from([1, 3, 50]))
def test_fuzzed_batches_settle_as_the_oracle_says(
    harness: Harness, events: list[Ev], batch_size: int
) -> None:
    env = harness.env

    async def example() -> None:
        env.server.fake = fake = new_fake()
        partners, tags = fake.records("res.partner"), fake.records("res.partner.category")
        rows, outcomes = await settle(env, events, batch_size=batch_size)
        expected, records = oracle(events)
        assert len(rows) == len(events)

        # every event settled as the oracle says, dead ones with a readable error naming the problem
        for e, row, want in zip(events, rows, expected, strict=True):
            what = f"event {row['id']} ({e.op} {e.key!r:.40} {e.payload_text()!r:.200})"
            assert row["status"] == want.status, f"{what}: {row['status']}, {row['last_error']!r:.300}"
            event(f"{e.op} {want.status}")
            if want.status == "done":
                assert row["last_error"] is None
                continue
            error = row["last_error"]
            assert_readable(error, what)
            assert any(frag in error and (n is None or shown(n) in error) for n, frag in want.problems), (
                f"{what}: {error!r} names none of {want.problems}"
            )
        assert not [o for o in outcomes if o.transient], "a transient failure against a local fake Odoo"

        # the fake holds exactly what the done events wrote
        live = fake.records(MODEL)
        expected_ids: dict[int, dict[str, Any]] = {}
        for (kind, ident), values in records.items():
            if kind == "id":
                rid = ident
            else:
                ref = fake.ref(external_id("syncd", MODEL, ident))
                assert ref is not None and ref[0] == MODEL, f"no record for key {ident!r:.60}"
                rid = ref[1]
            assert rid not in expected_ids, f"two keys share record {rid}"
            expected_ids[rid] = values
        assert set(live) == set(expected_ids)
        for rid, values in expected_ids.items():
            for name, value in values.items():
                assert norm(live[rid][name]) == norm(value), f"record {rid}.{name}"
        last_upsert = {
            e.key: row
            for e, row in zip(events, rows, strict=True)
            if e.op == "upsert" and row["status"] == "done"
        }
        for (kind, ident), _ in records.items():
            if kind == "key":
                assert last_upsert[ident]["result_id"] == fake.ref(external_id("syncd", MODEL, ident))[1]  # type: ignore[index]
        assert fake.records("res.partner") == partners
        assert fake.records("res.partner.category") == tags

        # nothing was executed: only the expected methods, the sentinel and every relation still there
        methods = {c.method for c in fake.calls}
        assert methods <= ALLOWED_METHODS, methods - ALLOWED_METHODS
        if not any(e.op == "write" for e in events):
            assert "write" not in methods
        if not any(e.op == "delete" for e in events):
            assert not methods & {"unlink", "check_object_reference"}
        assert await env.pool.fetchval("select count(*) from public.fuzz_sentinel") == 1
        assert await env.relations() == harness.relations

    harness.runner.run(example())


# ---------------------------------------------------------------------------- what it found


def payload(**values: Any) -> dict[str, Val]:
    return {name: v if isinstance(v, Val) else Val(v) for name, v in values.items()}


async def test_a_payload_python_cannot_read_dies_alone(env: Env) -> None:
    """PostgreSQL keeps JSON nested 3000 deep and integers of 5000 digits; Python's json cannot read
    them, and the decoding error failed every claim that included such an event, forever."""
    events = [
        Ev(MODEL, "upsert", "before", payload=payload(name="before")),
        Ev(MODEL, "upsert", "deep", payload=payload(data=deep(3000))),
        Ev(MODEL, "upsert", "digits", payload=payload(qty=Raw("1" * 5000))),
        Ev(MODEL, "write", odoo_id=1, payload=payload(ratio=Raw("-" + "9" * 4400))),
        Ev(MODEL, "delete", "deep-delete", payload=payload(x=deep(3000))),
        Ev(MODEL, "upsert", "after", payload=payload(name="after")),
    ]
    rows, _ = await settle(env, events, batch_size=50)
    # a delete does not read its payload
    assert [r["status"] for r in rows] == ["done", "dead", "dead", "dead", "done", "done"]
    assert "nests too deeply" in rows[1]["last_error"]
    assert "more than 4300 digits" in rows[2]["last_error"]
    assert "more than 4300 digits" in rows[3]["last_error"]
    for r in rows[1:4]:
        assert_readable(r["last_error"], f"event {r['id']}")
        assert r["last_error"].startswith(f"{MODEL}: the payload cannot be read: it ")
    assert {v["name"] for v in env.fake.records(MODEL).values()} >= {"before", "after"}


async def test_the_daemon_loop_survives_poison_and_delivers_around_it(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The same poison through ``run()``: the loop keeps going and nothing is logged as unexpected."""
    await env.pool.execute("truncate syncd.outbox")
    poison = [
        Ev(MODEL, "upsert", "deep", payload=payload(data=deep(3000))),
        Ev(MODEL, "upsert", "digits", payload=payload(qty=Raw("1" * 5000))),
        Ev(MODEL, "upsert", "old", payload=payload(at="0001-01-01T00:00:00+01:00")),
        Ev(MODEL, "upsert", "huge", payload=payload(ratio=Raw("1e309"))),
        Ev(MODEL, "write", odoo_id=2, payload=payload(data=deep(900))),
    ]
    good = [Ev(MODEL, "upsert", f"good-{i}", payload=payload(name=f"good {i}")) for i in range(5)]
    consumer = env.consumer(batch_size=3, max_attempts=3)
    settled: asyncio.Queue[list[Outcome]] = asyncio.Queue()
    consumer.on_recorded = settled.put_nowait
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        for e in [*poison, *good]:
            await env.enqueue(e)
        seen: list[Outcome] = []
        while len({o.event.id for o in seen if o.status != "retry"}) < len(poison) + len(good):
            seen += await asyncio.wait_for(settled.get(), timeout=20)
            assert not task.done(), task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert task.exception() is None
    rows = await env.rows()
    assert [r["status"] for r in rows] == ["dead"] * len(poison) + ["done"] * len(good)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0001-01-01T00:00:00+01:00", "field 'at' (datetime) cannot take '0001-01-01T00:00:00+01:00'"),
        ("9999-12-31T23:59:59-01:00", "field 'at' (datetime) cannot take '9999-12-31T23:59:59-01:00'"),
    ],
)
async def test_datetimes_beyond_the_calendar_in_utc_are_refused(env: Env, value: str, fragment: str) -> None:
    """``astimezone`` raised OverflowError out of the conversion and failed the whole batch."""
    events = [
        Ev(MODEL, "upsert", "k", payload=payload(at=value)),
        Ev(MODEL, "write", odoo_id=1, payload=payload(at=value)),
        Ev(MODEL, "upsert", "ok", payload=payload(name="ok")),
    ]
    rows, _ = await settle(env, events, batch_size=50)
    assert [r["status"] for r in rows] == ["dead", "dead", "done"]
    assert fragment in rows[0]["last_error"] and fragment in rows[1]["last_error"]
    assert "UTC" in rows[0]["last_error"]


async def test_datetimes_before_year_1000_keep_four_digit_years(env: Env) -> None:
    """``strftime('%Y')`` writes year 1 as ``1``, which Odoo cannot parse back."""
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "upsert", "k", payload=payload(at="0001-01-01T00:00:00", day="0099-12-31")),
            Ev(MODEL, "write", odoo_id=1, payload=payload(at="0999-06-30 12:00:00Z")),
        ],
    )
    assert [r["status"] for r in rows] == ["done", "done"], [r["last_error"] for r in rows]
    records = env.fake.records(MODEL)
    assert records[rows[0]["result_id"]]["at"] == datetime(1, 1, 1)
    assert records[rows[0]["result_id"]]["day"] == date(99, 12, 31)
    assert records[1]["at"] == datetime(999, 6, 30, 12)


@pytest.mark.parametrize("raw", ["1e309", "-1e400", "2e308"])
async def test_numbers_beyond_a_double_are_refused_for_float_fields(env: Env, raw: str) -> None:
    """jsonb reads ``1e309`` back as an integer of 310 digits: it passed as "a finite number" and
    Odoo's ``float()`` turned it into infinity."""
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "upsert", "k", payload=payload(ratio=Raw(raw))),
            Ev(MODEL, "upsert", "m", payload=payload(amount=Raw(raw))),
            Ev(MODEL, "write", odoo_id=1, payload=payload(ratio=Raw(raw))),
            Ev(MODEL, "upsert", "fits", payload=payload(ratio=Raw("1.7976931348623157e308"))),
        ],
    )
    assert [r["status"] for r in rows] == ["dead", "dead", "dead", "done"]
    for r, name in zip(rows, ["ratio", "amount", "ratio"], strict=False):
        assert f"field '{name}'" in r["last_error"] and "expected a finite number" in r["last_error"]
        assert_readable(r["last_error"], f"event {r['id']}")
    assert env.fake.records(MODEL)[rows[3]["result_id"]]["ratio"] == 1.7976931348623157e308


async def test_json_values_must_be_plain_json_of_sane_depth(env: Env) -> None:
    """A json field takes any JSON, but nesting deep enough to break a recursive encoder (here or in
    Odoo) is refused with the field named, instead of failing the batch with a RecursionError."""
    ok: Any = {"a": [1, 2.5, None, {"b": "ü"}], "n": 2**70}
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "write", odoo_id=1, payload=payload(data=ok)),
            Ev(MODEL, "write", odoo_id=2, payload=payload(data=deep(200))),
            Ev(MODEL, "write", odoo_id=3, payload=payload(data=deep(600))),
            Ev(MODEL, "write", odoo_id=3, payload=payload(data=Raw('{"x":' * 150 + "1" + "}" * 150))),
        ],
    )
    assert [r["status"] for r in rows] == ["done", "dead", "dead", "dead"]
    assert env.fake.records(MODEL)[1]["data"] == ok
    for r in rows[1:]:
        assert "field 'data' (json) is nested deeper than" in r["last_error"]
        assert_readable(r["last_error"], f"event {r['id']}")


# aiohttp advises (ResourceWarning, ignored outside tests) against sending a body over 1 MiB as bytes
@pytest.mark.filterwarnings("ignore:Sending a large body directly with raw bytes:ResourceWarning")
async def test_huge_names_and_values_make_short_errors(env: Env) -> None:
    """A megabyte of text is delivered intact; a megabyte of field name or selection value used to
    be copied whole into last_error (and the log)."""
    mega = "é" * 1_000_000
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "upsert", "big-text", payload=payload(name=mega, note=mega)),
            Ev(MODEL, "upsert", "big-name", payload={mega: Val(1)}),
            Ev(MODEL, "upsert", "big-selection", payload=payload(state=mega)),
            Ev(MODEL, "upsert", "big-list", payload=payload(tag_ids=list(range(1, 100_000)))),
            Ev(MODEL, "write", odoo_id=1, payload=payload(day=mega)),
        ],
    )
    assert [r["status"] for r in rows] == ["done", "dead", "dead", "dead", "dead"], [
        str(r["last_error"])[:300] for r in rows
    ]
    stored = env.fake.records(MODEL)[rows[0]["result_id"]]
    assert stored["name"] == stored["note"] == mega
    for r, fragment in zip(
        rows[1:], ["does not exist", "has no value", "No matching record", "cannot take"], strict=True
    ):
        assert_readable(r["last_error"], f"event {r['id']}")
        assert fragment in r["last_error"]
    assert "'éééé" in rows[1]["last_error"]


async def test_ids_beyond_odoos_integer_are_refused(env: Env) -> None:
    """Odoo's ids are PostgreSQL integers: 2^31 and above cannot name a record."""
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "upsert", "k", payload=payload(partner_id=2**31)),
            Ev(MODEL, "write", odoo_id=1, payload=payload(partner_id=2**63 - 1)),
            Ev(MODEL, "write", odoo_id=2, payload=payload(tag_ids=[1, 2**40])),
        ],
    )
    assert [r["status"] for r in rows] == ["dead", "dead", "dead"]
    assert "field 'partner_id' (many2one) cannot take 2147483648" in rows[0]["last_error"]
    assert "field 'tag_ids' (many2many) cannot take [1, 1099511627776]" in rows[2]["last_error"]


# ------------------------------------------------------------------------- enqueue's limits


@pytest.mark.parametrize(
    ("key", "payload_text", "sqlstate"),
    [
        ("nul\x00key", '{"name": "x"}', "22021"),  # text cannot hold NUL: the parameter is refused
        ("k", '{"name": "nul \\u0000 inside"}', "22P05"),  # jsonb refuses \u0000 in strings ...
        ("k", '{"na\\u0000me": "x"}', "22P05"),  # ... and in keys
    ],
)
async def test_nul_never_reaches_the_outbox(env: Env, key: str, payload_text: str, sqlstate: str) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL, so ``syncd.enqueue`` never sees one: the
    producer's statement fails with PostgreSQL's own data error (class 22) saying so, its transaction
    is aborted (nothing half-enqueued) and the consumer has nothing to trip over."""
    async with env.pool.acquire() as conn:
        producer = conn.transaction()
        await producer.start()
        await conn.fetchval("select syncd.enqueue('x.fuzz', 'upsert', 'first', '{\"name\": \"1\"}')")
        with pytest.raises(asyncpg.DataError) as info:
            await conn.fetchval(
                "select syncd.enqueue('x.fuzz', 'upsert', $1, $2::text::jsonb)", key, payload_text
            )
        with pytest.raises(asyncpg.InFailedSQLTransactionError):  # the producer cannot carry on
            await conn.fetchval("select 1")
        await producer.rollback()
    assert info.value.sqlstate == sqlstate
    assert "0x00" in str(info.value) or "\\u0000" in (info.value.detail or "")
    assert await env.pool.fetchval("select count(*) from syncd.outbox") == 0


async def test_keys_and_payloads_enqueue_up_to_postgresqls_limits(env: Env) -> None:
    """A 10 000-character key that compresses is fine (its external id is hashed); a key whose
    index entry exceeds PostgreSQL's btree limit (about 2700 bytes after compression) and nesting
    beyond PostgreSQL's stack are refused at enqueue, atomically, with PostgreSQL's program-limit
    error (class 54)."""
    long_key = "customer/" * 1200
    rows, _ = await settle(env, [Ev(MODEL, "upsert", long_key, payload=payload(name="long key"))])
    assert rows[0]["status"] == "done"
    xid = external_id("syncd", MODEL, long_key)
    assert "__h_" in xid and len(xid) < 80
    assert env.fake.ref(xid) == (MODEL, rows[0]["result_id"])

    incompressible = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1000))  # 3000 bytes of CJK
    too_deep = Ev(MODEL, "upsert", "k", payload=payload(data=deep(50_000)))
    for e in [Ev(MODEL, "upsert", incompressible, payload=payload(name="x")), too_deep]:
        with pytest.raises(asyncpg.ProgramLimitExceededError):
            await env.enqueue(e)
    assert await env.pool.fetchval("select count(*) from syncd.outbox") == 1


@pytest.mark.parametrize(
    "model",
    [
        "x.fuzz'); drop table fuzz_sentinel; --",
        'x.fuzz"; select pg_sleep(10); --',
        "X.Fuzz",
        "x fuzz",
        "x.fuzz\n",
        "",
    ],
)
async def test_model_names_that_are_not_odoo_names_are_refused_at_enqueue(env: Env, model: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="is not an Odoo model name"):
        await env.enqueue(Ev(model, "upsert", "k", payload=payload(name="x")))
    assert await env.pool.fetchval("select count(*) from public.fuzz_sentinel") == 1


async def test_injection_in_keys_names_and_values_is_data(env: Env) -> None:
    """SQL and JSON look-alikes travel as data: stored verbatim or refused by name, never run."""
    evil = "'); drop table public.fuzz_sentinel; select ('"
    rows, _ = await settle(
        env,
        [
            Ev(MODEL, "upsert", evil, payload=payload(name=evil, note='"}], "x": {"$where": "1"}')),
            Ev(MODEL, "upsert", "k2", payload={'name"; drop table public.fuzz_sentinel; --': Val("x")}),
            Ev(MODEL, "upsert", "k3", payload={"__proto__": Val({"admin": True}), "name": Val("p")}),
            Ev(MODEL, "upsert", "k4", payload=payload(state="draft'); drop table x; --")),
        ],
    )
    assert [r["status"] for r in rows] == ["done", "dead", "dead", "dead"]
    stored = env.fake.records(MODEL)[rows[0]["result_id"]]
    assert stored["name"] == evil and stored["note"] == '"}], "x": {"$where": "1"}'
    assert "field 'name\"; drop table" in rows[1]["last_error"]
    assert "field '__proto__' does not exist" in rows[2]["last_error"]
    assert await env.pool.fetchval("select count(*) from public.fuzz_sentinel") == 1
    assert {c.method for c in env.fake.calls} <= ALLOWED_METHODS
