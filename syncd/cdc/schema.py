"""Mirror-table layout (SPEC §3), derived from Odoo's ``fields_get``. Pure: no I/O here.

A :class:`MirrorTable` knows its columns and builds the one statement that upserts a whole page: the
page goes to PostgreSQL as JSON text, exactly as Odoo returned it, and the statement converts every
value to its column's type (:data:`SQL_VALUES`), so that Python touches no value on the way. The
Python converters (:data:`CONVERTERS`, :meth:`MirrorTable.to_row`) implement the same mapping; they
name the model, record and field of a value PostgreSQL rejected (:meth:`MirrorTable.check_values`).
Identifiers that come from Odoo are always quoted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from syncd.config import ModelSettings
from syncd.db import quote_ident, quote_literal
from syncd.errors import SyncdError

#: Odoo field type → PostgreSQL column type.
PG_TYPES: dict[str, str] = {
    "char": "text",
    "text": "text",
    "html": "text",
    "selection": "text",
    "reference": "text",
    "integer": "bigint",
    "many2one_reference": "bigint",
    "float": "double precision",
    "monetary": "numeric",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
    "many2one": "bigint",
    "one2many": "bigint[]",
    "many2many": "bigint[]",
    "json": "jsonb",
    "properties": "jsonb",
    "binary": "bytea",
}

#: The system columns every mirror table has, after the field columns.
SYSTEM_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_synced_at", "timestamptz not null default now()"),
    ("_deleted_at", "timestamptz"),
    ("_raw", "jsonb not null"),
)

#: The sync state of every row of a writable mirror table (``writable = true``), after the system
#: columns: synced / pending / failed / conflict, the error of the last change, the event it waits on.
SYNC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_sync_state", "text not null default 'synced'"),
    ("_sync_error", "text"),
    ("_sync_event", "bigint"),
)

#: Fields Odoo always has that syncd reads even when not listed (the cursor needs write_date).
ALWAYS_READ = ("write_date",)

#: Fields Odoo sets by itself on every write.
ODOO_MANAGED = ("write_date", "create_date", "write_uid", "create_uid")

#: The row trigger of a writable mirror table (syncd.mirror_change, migration 0008).
MIRROR_TRIGGER = "syncd_mirror_change"
#: Its statement trigger (a function of the table's own in schema syncd, see MirrorTable.trigger_sql).
MIRROR_STATEMENT_TRIGGER = "syncd_mirror_changed"


class SchemaProblem(SyncdError, ValueError):
    """A configured field cannot be mirrored: it does not exist, is not stored, or has no mapping;
    or a value cannot be read as its field's type."""


@dataclass(frozen=True)
class Column:
    field: str
    odoo_type: str
    pg_type: str

    @property
    def ident(self) -> str:
        return quote_ident(self.field)


def select_fields(model: ModelSettings, fields: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The fields mirrored for ``model``: listed ones, or every stored non-binary one for ``"*"``.

    Raises SchemaProblem naming the model and every offending field.
    """
    if model.fields == "*":
        return sorted(
            name
            for name, spec in fields.items()
            if name != "id"
            and not name.startswith("_")
            and spec.get("store")
            and spec.get("type") in PG_TYPES
            and spec.get("type") != "binary"
        )
    problems = []
    for name in model.fields:
        spec = fields.get(name)
        if spec is None:
            problems.append(f"field {name!r} does not exist on {model.model}")
        elif not spec.get("store", False):
            problems.append(_not_stored(model.model, name, spec, fields))
        elif spec.get("type") not in PG_TYPES:
            problems.append(
                f"field {name!r} of {model.model} has type {spec.get('type')!r}, which is not mirrored"
            )
        elif name.startswith("_"):
            problems.append(
                f"field {name!r} of {model.model}: names starting with '_' are syncd's own columns"
            )
    if problems:
        raise SchemaProblem("; ".join(problems))
    return [f for f in model.fields if f != "id"]


def _not_stored(
    model: str, name: str, spec: Mapping[str, Any], fields: Mapping[str, Mapping[str, Any]]
) -> str:
    """Why a non-stored field cannot be mirrored; for a related one (fields_get's ``related``, e.g.
    product.product's ``name`` = ``product_tmpl_id.name``), which model to mirror instead."""
    related = spec.get("related")
    if not isinstance(related, str) or "." not in related:
        return f"field {name!r} of {model} is computed, not stored: it cannot be mirrored"
    hop, _, rest = related.partition(".")
    target = fields.get(hop, {}).get("relation")
    why = (
        f"field {name!r} of {model} is not stored: it is related to {related}, and a change there does "
        f"not move {model}'s write_date, so the column would go stale; "
    )
    if target and "." not in rest:
        return why + f"mirror {target} (field {rest!r}) instead and join on {hop}"
    through = f"{hop}, a {target}" if target else hop
    return why + f"mirror the model that stores it instead (through {through})"


def unwritable_reason(name: str, spec: Mapping[str, Any]) -> str | None:
    """Why an app may not change the mirror column of field ``name`` (None: it may)."""
    if name in ODOO_MANAGED:
        return "Odoo sets it on every write"
    if spec.get("readonly"):
        return "the field is read-only in Odoo"
    if spec.get("type") == "one2many":
        return "a one2many: change the child records (their many2one) instead"
    if spec.get("type") == "binary":
        return "a binary field: write it with syncd.enqueue"
    return None


@dataclass(frozen=True)
class MirrorTable:
    """One model's mirror table: ``<schema>.<model with . → _>``. A writable one (``writable = true``)
    also has the sync columns (:data:`SYNC_COLUMNS`) and the trigger that turns an app's changes into
    outbox events; ``locked`` names the columns an app may not change, each with why."""

    schema: str
    model: str
    columns: tuple[Column, ...]
    writable: bool = False
    locked: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, schema: str, model: ModelSettings, fields: Mapping[str, Mapping[str, Any]]) -> MirrorTable:
        names = select_fields(model, fields)
        locked: list[tuple[str, str]] = []
        if model.writable:
            locked.append(("id", "it is the Odoo record's id"))
            locked += [(n, "syncd's own column") for n, _ in (*SYSTEM_COLUMNS, *SYNC_COLUMNS)]
            locked += [(n, why) for n in names if (why := unwritable_reason(n, fields[n])) is not None]
        return cls(
            schema,
            model.model,
            tuple(Column(n, fields[n]["type"], PG_TYPES[fields[n]["type"]]) for n in names),
            model.writable,
            tuple(locked),
        )

    @property
    def name(self) -> str:
        return self.model.replace(".", "_")

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def read_fields(self) -> list[str]:
        """What to ask ``search_read`` for: the columns plus what the cursor needs.

        In jsonb's key order (shorter names first, then bytewise): Odoo answers each record with
        ``id`` and then the fields in the order asked for, and PostgreSQL, which sorts the keys of
        every object it parses into jsonb, then finds them sorted already — about a third of the
        cost of parsing a page.
        """
        out = [c.field for c in self.columns]
        out += [f for f in ALWAYS_READ if f not in out]
        return sorted(out, key=_jsonb_key_order)

    @property
    def column_names(self) -> list[str]:
        """Columns written by an upsert, in COPY order."""
        return ["id", *(c.field for c in self.columns), "_raw"]

    @property
    def system_columns(self) -> tuple[tuple[str, str], ...]:
        return (*SYSTEM_COLUMNS, *SYNC_COLUMNS) if self.writable else SYSTEM_COLUMNS

    def create_sql(self) -> str:
        cols = ['"id" bigint primary key']
        cols += [f"{c.ident} {c.pg_type}" for c in self.columns]
        cols += [f"{quote_ident(n)} {t}" for n, t in self.system_columns]
        body = ",\n    ".join(cols)
        return (
            f"create schema if not exists {quote_ident(self.schema)};\n"
            f"create table if not exists {self.qualified} (\n    {body}\n)"
        )

    def add_columns_sql(self, existing: set[str]) -> list[str]:
        """``alter table … add column`` for every column the table lacks. Nothing is ever dropped."""
        added = [
            f"alter table {self.qualified} add column if not exists {c.ident} {c.pg_type}"
            for c in self.columns
            if c.field not in existing
        ]
        added += [
            f"alter table {self.qualified} add column if not exists {quote_ident(n)} {t}"
            for n, t in self.system_columns
            if n not in existing
        ]
        return added

    def trigger_sql(self) -> str:
        """The triggers that make the table writable (they name the columns an app may not change, so
        they are created again whenever the columns change), or their removal when the table is not
        writable.

        The row trigger (``syncd.mirror_change``) marks each row an app changed as pending, with the
        id of its event to come; the statement trigger, a function of this table's own because it
        names the field columns, then compares the statement's old and new rows and inserts all the
        events with one INSERT (an event per row by the row trigger cost ~80 µs per row, a mass UPDATE
        ~40 × a plain one: bench/README.md, issue 13)."""
        trigger = f"{quote_ident(MIRROR_TRIGGER)} on {self.qualified}"
        statement = f"{quote_ident(MIRROR_STATEMENT_TRIGGER)} on {self.qualified}"
        if not self.writable:
            return (
                f"drop trigger if exists {trigger};\n"
                f"drop trigger if exists {statement};\n"
                f"drop function if exists {self.changed_function}()"
            )
        locked = json.dumps(dict(self.locked), separators=(",", ":"), sort_keys=True)
        return (
            f"{self.changed_function_sql()};\n"
            f"create or replace trigger {quote_ident(MIRROR_TRIGGER)}\n"
            f"before insert or update or delete on {self.qualified}\n"
            f"for each row execute function syncd.mirror_change({quote_literal(self.model)}, {quote_literal(locked)});\n"
            f"create or replace trigger {quote_ident(MIRROR_STATEMENT_TRIGGER)}\n"
            f"after update on {self.qualified} referencing old table as syncd_old new table as syncd_new\n"
            f"for each statement execute function {self.changed_function}()"
        )

    @property
    def changed_function(self) -> str:
        """The statement trigger's function: ``syncd."mirror_changed <schema>.<table>"`` (hashed when
        that is longer than an identifier may be)."""
        name = f"mirror_changed {self.schema}.{self.name}"
        if len(name.encode()) > 63:
            digest = hashlib.sha256(name.encode()).hexdigest()[:10]
            name = name.encode()[:52].decode(errors="ignore") + " " + digest
        return f"syncd.{quote_ident(name)}"

    def changed_function_sql(self) -> str:
        """The statement trigger's function: the events of an app's UPDATE, one per row that the row
        trigger marked with a new event id, each with the changed field columns (payload) and their
        old values (base), in one INSERT; a change of a locked field column fails the statement."""
        locked = dict(self.locked)
        values = ",\n                ".join(
            f"({quote_literal(c.field)}, to_jsonb(n.{c.ident}), to_jsonb(o.{c.ident}), "
            f"n.{c.ident} is distinct from o.{c.ident}, {'true' if c.field in locked else 'false'})"
            for c in self.columns
        )
        why = json.dumps({c.field: locked[c.field] for c in self.columns if c.field in locked},
                         separators=(",", ":"), sort_keys=True)  # fmt: skip
        return (
            f"create or replace function {self.changed_function}() returns trigger\n"
            # syncd's rights, as the row trigger: an app needs only UPDATE/DELETE on the mirror table
            f"language plpgsql security definer set search_path = ''\n"
            # One plan per session: planning the INSERT anew (what PostgreSQL chooses by itself) costs
            # more than the rest of a one-row UPDATE's trigger work (~150 µs). A plan made for a
            # one-row statement must stay good for ten thousand: hash joins, never a nested loop.
            f"set plan_cache_mode = force_generic_plan\n"
            f"set enable_nestloop = off\n"
            f"as $syncd$\n"
            f"begin\n"
            f"    if current_setting('syncd.origin', true) = 'cdc' then\n"
            f"        return null;\n"
            f"    end if;\n"
            f"    insert into syncd.outbox (id, model, op, odoo_id, payload, base, source) overriding system value\n"
            f"    select n.\"_sync_event\", {quote_literal(self.model)}, 'write', n.id, d.payload, d.base, tg_relid::regclass\n"
            f"    from syncd_new as n join syncd_old as o on o.id = n.id\n"
            f"    cross join lateral (\n"
            f"        select jsonb_object_agg(v.k, v.nv) as payload, jsonb_object_agg(v.k, v.ov) as base,\n"
            f"               min(v.k) filter (where v.locked) as refused\n"
            f"        from (values\n                {values}\n"
            f"        ) as v(k, nv, ov, changed, locked)\n"
            f"        where v.changed\n"
            f"    ) as d\n"
            f'    where n."_sync_event" is distinct from o."_sync_event"\n'
            f"      and case when d.refused is null then true\n"
            f"               else syncd.mirror_refused(tg_table_name, d.refused, {quote_literal(why)}::jsonb ->> d.refused) end\n"
            f'    order by n."_sync_event";\n'
            f"    if found then\n"
            f"        perform pg_notify('syncd_outbox', '');\n"
            f"    end if;\n"
            f"    return null;\n"
            f"end;\n"
            f"$syncd$"
        )

    def upsert_sql(self) -> str:
        """One statement that upserts a whole page, given as the JSON text of Odoo's list of records
        (``$1``): PostgreSQL parses it, converts each value to its column's type (:data:`SQL_VALUES`)
        and keeps each record as ``_raw``. One unnamed statement with one parameter: no temp tables,
        no DDL per page, and it works through a transaction-mode pooler.

        Unchanged records cost neither a write nor a row lock: a record whose ``_raw`` is already in
        the mirror (and not marked deleted) is left out before its values are even converted — the
        lookback window re-reads such records at every poll. That check is a correlated subquery on
        purpose: it stays one primary-key probe per record whatever size the planner believes the
        table has (as ``not exists`` it could become a hash anti-join over the whole table in a
        cached generic plan). The ``on conflict`` guard stays as well: a row is rewritten only when
        what Odoo returned differs or it was marked deleted (an upsert revives it).
        """
        names = [quote_ident(n) for n in self.column_names]
        values = ["(r->>'id')::bigint", *(self.value_sql(c) for c in self.columns), "r"]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        return (
            f"insert into {self.qualified} as m ({', '.join(names)})\n"
            f"select {', '.join(values)}\n"
            f"from jsonb_array_elements($1::text::jsonb) as r\n"
            f'where (select o."_raw" from {self.qualified} as o\n'
            f'       where o."id" = (r->>\'id\')::bigint and o."_deleted_at" is null) is distinct from r\n'
            f'on conflict ("id") do update set {updates}, "_synced_at" = now(), "_deleted_at" = null\n'
            f'where (m."_raw" is distinct from excluded."_raw" or m."_deleted_at" is not null)'
            # A writable row whose app change is on its way to Odoo keeps the app's values: the change's
            # outcome asks for the record again (syncd.mirror_refresh), and that read brings Odoo's.
            + (" and m.\"_sync_state\" <> 'pending'" if self.writable else "")
        )

    @staticmethod
    def value_sql(column: Column) -> str:
        """The SQL expression that reads ``column`` from the record ``r`` (a jsonb object)."""
        key = "'" + column.field.replace("'", "''") + "'"
        return SQL_VALUES[column.odoo_type].format(v=f"(r->{key})", t=f"(r->>{key})")

    def mark_deleted_sql(self) -> str:
        return (
            f'update {self.qualified} set "_deleted_at" = now(), "_synced_at" = now()'
            f' where "id" = any($1::bigint[]) and "_deleted_at" is null'
        )

    def live_ids_sql(self) -> str:
        """Ids (and the write_date Odoo gave) of rows not marked deleted, in an id range."""
        return (
            f'select "id", "_raw"->>\'write_date\' as write_date from {self.qualified}'
            f' where "_deleted_at" is null and "id" > $1 and "id" <= $2 order by "id"'
        )

    def write_dates_sql(self) -> str:
        """The write_date Odoo gave (as Odoo wrote it) of the rows with ids ``$1`` not marked deleted:
        what a probe page is compared with."""
        return (
            f'select "id", "_raw"->>\'write_date\' as write_date from {self.qualified}'
            f' where "id" = any($1::bigint[]) and "_deleted_at" is null'
        )

    def converters(self) -> list[Callable[[Any], Any]]:
        return [CONVERTERS.get(c.odoo_type, _identity) for c in self.columns]

    def to_row(
        self, record: Mapping[str, Any], converters: Sequence[Callable[[Any], Any]]
    ) -> tuple[Any, ...]:
        """One Odoo record → one tuple in :attr:`column_names` order (a missing key reads as null)."""
        values = [record["id"]]
        for column, convert in zip(self.columns, converters, strict=True):
            try:
                values.append(convert(record.get(column.field)))
            except (ValueError, TypeError, binascii.Error) as e:
                raise SchemaProblem(
                    f"{self.model} id {record['id']}: field {column.field!r} ({column.odoo_type}) "
                    f"has a value syncd cannot read: {record.get(column.field)!r:.80}: {e}"
                ) from e
        values.append(record)
        return tuple(values)

    def check_values(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Read every value of ``records`` with the Python converters; raise SchemaProblem naming the
        model, record id and field of the first one syncd cannot read. Used after PostgreSQL rejected
        a page, to tell which value it was."""
        converters = self.converters()
        for record in records:
            self.to_row(record, converters)


def page_json(records: Sequence[Mapping[str, Any]]) -> str:
    """The JSON text of a page of records (what :meth:`MirrorTable.upsert_sql` takes as ``$1``).

    orjson writes it in about a microsecond per record. What orjson refuses (an integer beyond 64
    bits, a lone surrogate) goes through :mod:`json` instead, ASCII-escaped, so that PostgreSQL sees
    it and either takes it (a big number in a numeric column) or rejects it with a value error, which
    :meth:`MirrorTable.check_values` then names. Non-finite floats, which JSON cannot express and Odoo
    does not send, become null.
    """
    try:
        return orjson.dumps(records).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(records, separators=(",", ":"))


def _jsonb_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


# --------------------------------------------------------------------------------- value conversion
# Odoo says `false` for an empty value of every type but boolean; that is NULL in the mirror. JSON null
# (and a missing key) is NULL too. The SQL expressions below and the Python converters after them read
# every value Odoo sends the same way (tests/integration/test_cdc_sql_values.py holds them to it).
# ``{v}`` is the value as jsonb (``r->'field'``), ``{t}`` as text (``r->>'field'``: a string unquoted,
# false as 'false'). Text columns compare the jsonb (``{v} <> 'false'``), so that a *string* "false"
# stays a string; numbers, dates and datetimes compare the text, one key lookup less per value
# (about a tenth of the page's cost), so there a string "false", which Odoo never sends and which is
# no number or date, reads as NULL where the Python converters would call it unreadable.

_SQL_TEXT = "case when {v} <> 'false' then {t} end"
_SQL_BIGINT = "nullif({t}, 'false')::bigint"
_SQL_JSON = "nullif(nullif({v}, 'false'), 'null')"

#: Odoo field type → the SQL expression that reads its value from a record ``r`` (see above).
SQL_VALUES: dict[str, str] = {
    "char": _SQL_TEXT,
    "text": _SQL_TEXT,
    "html": _SQL_TEXT,
    "selection": _SQL_TEXT,
    "reference": _SQL_TEXT,
    "integer": _SQL_BIGINT,
    "many2one_reference": _SQL_BIGINT,
    "float": "nullif({t}, 'false')::double precision",
    "monetary": "nullif({t}, 'false')::numeric",  # the digits Odoo sent, exactly
    "boolean": "{t}::boolean",
    "date": "nullif(nullif(left({t}, 10), 'false'), '')::date",
    # Odoo's "YYYY-MM-DD HH:MM:SS" is UTC; `at time zone` makes it so whatever the session's TimeZone.
    "datetime": "nullif(nullif({t}, 'false'), '')::timestamp at time zone 'UTC'",
    # [id, display name], or a bare id (read with load=None)
    "many2one": "case jsonb_typeof({v}) when 'array' then ({v}->>0)::bigint when 'boolean' then null "
    "else {t}::bigint end",
    # [1, 2, 3] → '{1, 2, 3}' → bigint[]: no subquery per row
    "one2many": "case when jsonb_typeof({v}) = 'array' then translate({v}::text, '[]', '{{}}')::bigint[] end",
    "many2many": "case when jsonb_typeof({v}) = 'array' then translate({v}::text, '[]', '{{}}')::bigint[] end",
    "json": _SQL_JSON,
    "properties": _SQL_JSON,
    "binary": "case when {v} <> 'false' then decode(nullif({t}, ''), 'base64') end",
}

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def _bigint(v: Any) -> int:
    i = int(v)
    if not BIGINT_MIN <= i <= BIGINT_MAX:
        raise ValueError("out of range for bigint")
    return i


def _identity(v: Any) -> Any:
    return None if v is False else v


def _text(v: Any) -> str | None:
    return None if v is False or v is None else str(v)


def _integer(v: Any) -> int | None:
    return None if v is None or (v is False) else _bigint(v)


def _float(v: Any) -> float | None:
    return None if v is None or v is False else float(v)


def _numeric(v: Any) -> Decimal | None:
    return None if v is None or v is False else Decimal(str(v))


def _boolean(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _date(v: Any) -> date | None:
    return None if not v else date.fromisoformat(v[:10])


def _datetime(v: Any) -> datetime | None:
    if not v:
        return None
    return datetime.fromisoformat(v).replace(tzinfo=UTC)


def _many2one(v: Any) -> int | None:
    if not v:
        return None
    return _bigint(v[0]) if isinstance(v, list | tuple) else _bigint(v)


def _x2many(v: Any) -> str | None:
    """An id list as a PostgreSQL array literal (``{1,2,3}``)."""
    if v is False or v is None:
        return None
    return "{" + ",".join(str(_bigint(i)) for i in v) + "}"


def _binary(v: Any) -> bytes | None:
    return None if not v else base64.b64decode(v, validate=False)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "char": _text,
    "text": _text,
    "html": _text,
    "selection": _text,
    "reference": _text,
    "integer": _integer,
    "many2one_reference": _integer,
    "float": _float,
    "monetary": _numeric,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "many2one": _many2one,
    "one2many": _x2many,
    "many2many": _x2many,
    "json": _identity,
    "properties": _identity,
    "binary": _binary,
}


def parse_odoo_datetime(value: str) -> datetime:
    """Odoo's ``"YYYY-MM-DD HH:MM:SS"`` (naive UTC) as a naive datetime."""
    return datetime.fromisoformat(value)
