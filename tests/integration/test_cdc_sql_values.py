"""The page upsert converts values in SQL (``MirrorTable.upsert_sql``); the Python converters
(``MirrorTable.to_row``) implement the same mapping and name a value PostgreSQL rejects.

These tests hold the two to each other type by type, on the values Odoo sends and on tricky ones
(``false`` for every type, empty lists, unicode, the ends of bigint, 1e308, datetimes at second
boundaries, monetary digits, JSON values), and check the error path, the cost of re-reading an
unchanged page and that everything works without prepared statements (transaction-mode poolers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from syncd import db
from syncd.cdc.poller import ModelPoller
from syncd.cdc.schema import PG_TYPES, Column, MirrorTable, SchemaProblem, page_json
from syncd.config import CdcSettings, DatabaseSettings, ModelSettings

pytestmark = pytest.mark.integration

TEXT = [
    False, None, "", "plain", "false", "unicode: é ü ß 漢字 🎉", 'quote " and \\ backslash',
    "line\nbreak\ttab", "  spaces  ", "<p>html &amp; <b>bold</b><br/></p>", "x" * 5000, 42,
]  # fmt: skip
INTEGERS = [False, None, 0, 1, -1, 42, 2**31, 2**63 - 1, -(2**63)]
FLOATS = [
    False, None, 0, 0.0, -0.0, 1.5, 0.1, 0.1 + 0.2, 1 / 3, 1e308, -1e308, 5e-324, 2.2250738585072014e-308,
    123456789.123456789, 1e16, 7, 2**63 - 1,
]  # fmt: skip
MONETARY = [
    False, None, 0, 0.0, 12.35, 0.1, 0.1 + 0.2, 1234567.89, 99999999999999.99, -5.5, 1e20, 1e-7, 12, 12.0,
    2**70,
]  # fmt: skip
DATETIMES = [
    False, None, "2026-11-22 10:00:01", "2026-12-31 23:59:59", "2027-01-01 00:00:00", "2024-02-29 23:59:59",
    "1970-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59", "2026-11-22 10:00:01.123456",
    "2026-11-22T10:00:01", "2026-11-22",
]  # fmt: skip
JSON_VALUES = [
    False, None, True, 0, "string", [], {}, {"a": 1}, [1, "two", None, True, False],
    {"nested": {"é": [1.5, False, {"deep": None}]}}, {"big": 2**63 - 1, "small": 1e-300},
]  # fmt: skip

#: Odoo field type → the values a record may hold for it.
VALUES: dict[str, list[Any]] = {
    "char": TEXT,
    "text": TEXT,
    "html": TEXT,
    "selection": [False, None, "draft", "done", "false"],
    "reference": [False, None, "res.partner,5", "sale.order,123456"],
    "integer": INTEGERS,
    "many2one_reference": INTEGERS,
    "float": FLOATS,
    "monetary": MONETARY,
    "boolean": [True, False, None],
    "date": [False, None, "2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31", "2026-01-31 10:00:00", ""],
    "datetime": [*DATETIMES, ""],
    "many2one": [False, None, [3, "Azure Interior"], [2**63 - 1, "max"], [7, ""], 7, []],
    "one2many": [False, None, [], [1], [3, 1, 2], [2**63 - 1, -(2**63)], list(range(1, 500))],
    "many2many": [False, None, [], [5, 9], [1]],
    "json": JSON_VALUES,
    "properties": [
        False,
        None,
        [],
        {},
        [
            {"name": "p1", "type": "char", "string": "Colour", "value": "ocre"},
            {"name": "p2", "type": "integer", "string": "Size", "value": False},
        ],
    ],
    "binary": [False, None, "", "aGVsbG8=", "AAEC/w=="],
}


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection with syncd's codecs and no prepared statements kept (as behind a pooler)."""
    c = await db.connect(db_dsn, DatabaseSettings(statement_cache_size=0))
    try:
        yield c
    finally:
        await c.close()


def one_column_table(odoo_type: str) -> MirrorTable:
    return MirrorTable("odoo", "x.values", (Column("value", odoo_type, PG_TYPES[odoo_type]),))


def normalized(odoo_type: str, value: Any) -> Any:
    """What the Python converters produce, as asyncpg reads it back (x2many: a literal → a list)."""
    if odoo_type in ("one2many", "many2many") and value is not None:
        return [int(i) for i in value.strip("{}").split(",") if i]
    return value


async def upsert(conn: asyncpg.Connection, table: MirrorTable, records: Sequence[dict[str, Any]]) -> int:
    status = await conn.execute(table.upsert_sql(), page_json(records))
    return int(status.rsplit(" ", 1)[-1])


def test_every_odoo_type_has_values_here() -> None:
    assert set(VALUES) == set(PG_TYPES)


@pytest.mark.parametrize("odoo_type", sorted(VALUES))
async def test_sql_reads_every_value_as_the_python_converters_do(
    conn: asyncpg.Connection, odoo_type: str
) -> None:
    table = one_column_table(odoo_type)
    await conn.execute(table.create_sql())
    records = [{"id": i, "value": v} for i, v in enumerate(VALUES[odoo_type], start=1)]
    records.append({"id": len(records) + 1})  # a missing key reads as null, like JSON null
    assert await upsert(conn, table, records) == len(records)

    rows = {r["id"]: r for r in await conn.fetch('select id, value, _raw from odoo."x_values"')}
    converters = table.converters()
    for record in records:
        row = rows[record["id"]]
        expected = normalized(odoo_type, table.to_row(record, converters)[1])
        assert row["value"] == expected, f"{odoo_type} {record.get('value', '<missing>')!r}"
        assert type(row["value"]) is type(expected), f"{odoo_type} {record.get('value', '<missing>')!r}"
        assert same_json(row["_raw"], record)  # the record as Odoo returned it


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: jsonb keeps a number's value, not whether it was written as a float
    (1e308 comes back as the integer 10**308)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is not bool and type(b) is not bool and float(a) == float(b)
    return type(a) is type(b) and a == b


async def test_false_is_null_for_every_type_but_boolean(conn: asyncpg.Connection) -> None:
    fields = {f"f_{t}": {"type": t, "store": True} for t in PG_TYPES}
    table = MirrorTable.build("odoo", ModelSettings(model="x.values", fields=sorted(fields)), fields)
    await conn.execute(table.create_sql())
    await upsert(conn, table, [{"id": 1, **dict.fromkeys(fields, False)}])
    row = await conn.fetchrow('select * from odoo."x_values"')
    assert {k: v for k, v in row.items() if k.startswith("f_") and v is not None} == {"f_boolean": False}


async def test_monetary_keeps_the_digits_odoo_sent(conn: asyncpg.Connection) -> None:
    table = one_column_table("monetary")
    await conn.execute(table.create_sql())
    amounts = ["12.35", "0.1", "1234567.89", "99999999999999.99", "0.30000000000000004"]
    # the page's JSON text as Odoo would send it: numbers, not strings
    body = "[" + ",".join(f'{{"id":{i},"value":{a}}}' for i, a in enumerate(amounts, start=1)) + "]"
    await conn.execute(table.upsert_sql(), body)
    got = [str(v) for v in await conn.fetchval('select array_agg(value order by id) from odoo."x_values"')]
    assert got == amounts


async def test_datetimes_are_utc_whatever_the_session_time_zone(conn: asyncpg.Connection) -> None:
    table = one_column_table("datetime")
    await conn.execute(table.create_sql())
    await conn.execute("set timezone = 'Asia/Kolkata'")
    await upsert(conn, table, [{"id": 1, "value": "2026-12-31 23:59:59"}])
    assert await conn.fetchval('select value from odoo."x_values"') == datetime(
        2026, 12, 31, 23, 59, 59, tzinfo=UTC
    )
    assert await conn.fetchval('select value::text from odoo."x_values"') == "2027-01-01 05:29:59+05:30"


# ------------------------------------------------------------------------------ unchanged pages


async def test_an_unchanged_page_writes_nothing_and_locks_nothing(conn: asyncpg.Connection) -> None:
    fields = {"name": {"type": "char", "store": True}, "qty": {"type": "integer", "store": True}}
    table = MirrorTable.build("odoo", ModelSettings(model="x.values", fields="*"), fields)
    await conn.execute(table.create_sql())
    page = [{"id": i, "name": f"record {i}", "qty": i} for i in range(1, 101)]
    assert await upsert(conn, table, page) == 100
    versions = 'select id, xmin::text, xmax::text from odoo."x_values" order by id'
    before = await conn.fetch(versions)

    assert await upsert(conn, table, page) == 0
    after = await conn.fetch(versions)
    assert after == before  # no new row versions, and no row locks (xmax stays 0)
    assert {r["xmax"] for r in after} == {"0"}

    page[4] = {**page[4], "qty": -5}  # one record changed in Odoo
    await conn.execute('update odoo."x_values" set _deleted_at = now() where id = 9')  # one marked deleted
    assert await upsert(conn, table, page) == 2
    rows = {r["id"]: r for r in await conn.fetch('select id, qty, _deleted_at from odoo."x_values"')}
    assert rows[5]["qty"] == -5
    assert rows[9]["_deleted_at"] is None  # an upsert revives
    assert await upsert(conn, table, page) == 0


async def test_the_unchanged_check_is_an_index_probe_in_a_generic_plan(conn: asyncpg.Connection) -> None:
    """A cached statement's generic plan is made without knowing the page: the check of unchanged
    records must not turn into a scan of the whole mirror table."""
    table = one_column_table("char")
    await conn.execute(table.create_sql())
    await conn.execute("set plan_cache_mode = force_generic_plan")
    await conn.execute(f"prepare page_upsert(text) as {table.upsert_sql()}")
    plan = "\n".join(r[0] for r in await conn.fetch("explain execute page_upsert('[]')"))
    assert "Index Scan using x_values_pkey on x_values o" in plan
    assert "Seq Scan" not in plan


# --------------------------------------------------------------------------------------- errors


class StubOdoo:
    """Just enough of OdooClient for one backfill of ``x.values`` from fixed records."""

    def __init__(self, fields: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> None:
        self.fields = {**fields, "write_date": {"type": "datetime", "store": True}}
        self.records = records

    async def fields_get(self, model: str, **_: Any) -> dict[str, dict[str, Any]]:
        return self.fields

    async def search_count(self, model: str, domain: list[Any], **_: Any) -> int:
        return len(self.records)

    async def search_read(
        self, model: str, domain: list[Any], fields: list[str], **_: Any
    ) -> list[dict[str, Any]]:
        return [] if domain else [{k: r[k] for k in ["id", *fields] if k in r} for r in self.records]


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(
        db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2, statement_cache_size=0)
    )
    try:
        yield p
    finally:
        await p.close()


def poller(pool: asyncpg.Pool, odoo: StubOdoo) -> ModelPoller:
    model = ModelSettings(model="x.values", fields=[f for f in odoo.fields if f != "write_date"])
    return ModelPoller(model, CdcSettings(), "odoo", odoo, pool)  # type: ignore[arg-type]


def stamped(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": i, "write_date": f"2026-11-22 10:00:0{i}", **v} for i, v in enumerate(values, start=1)]


async def test_a_poll_through_a_pool_without_prepared_statements(pool: asyncpg.Pool) -> None:
    odoo = StubOdoo(
        {"day": {"type": "date", "store": True}}, stamped([{"day": "2026-01-31"}, {"day": False}])
    )
    result = await poller(pool, odoo).poll()
    assert (result.rows_read, result.rows_written) == (2, 2)
    assert await pool.fetchval("select count(*) from pg_prepared_statements") == 0
    assert (await poller(pool, odoo).poll()).rows_written == 0


@pytest.mark.parametrize(
    ("odoo_type", "bad", "message"),
    [
        (
            "date",
            "31/01/2026",
            r"x\.values id 2: field 'value' \(date\) has a value syncd cannot read: '31/01/2026'",
        ),
        ("datetime", "2026-11-22 25:00:00", r"x\.values id 2: field 'value' \(datetime\)"),
        ("integer", 2**64, r"x\.values id 2: field 'value' \(integer\) .*out of range for bigint"),
        ("many2one", [2**63, "too far"], r"x\.values id 2: field 'value' \(many2one\)"),
        ("many2many", [1, 2**70], r"x\.values id 2: field 'value' \(many2many\)"),
    ],
)
async def test_a_value_postgresql_rejects_is_named_by_model_record_and_field(
    pool: asyncpg.Pool, odoo_type: str, bad: Any, message: str
) -> None:
    odoo = StubOdoo(
        {"value": {"type": odoo_type, "store": True}}, stamped([{"value": False}, {"value": bad}])
    )
    with pytest.raises(SchemaProblem, match=message):
        await poller(pool, odoo).poll()
    # nothing of the page was written, and the cursor did not move
    assert await pool.fetchval('select count(*) from odoo."x_values"') == 0
    assert await pool.fetchval("select cursor_write_date from syncd.cdc_state") is None


async def test_a_rejected_value_the_converters_accept_still_names_the_model_and_records(
    pool: asyncpg.Pool,
) -> None:
    # PostgreSQL text cannot hold NUL; Odoo (on PostgreSQL) cannot send one, and to_row does not check
    odoo = StubOdoo({"name": {"type": "char", "store": True}}, stamped([{"name": "a"}, {"name": "b\x00c"}]))
    with pytest.raises(SchemaProblem, match=r"(?s)x\.values: PostgreSQL rejected a value of one of the records "
                                            r"with ids 1…2 .*SQLSTATE 22P05"):  # fmt: skip
        await poller(pool, odoo).poll()
