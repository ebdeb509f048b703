"""Mirror-table layout (SPEC §3), derived from Odoo's ``fields_get``. Pure: no I/O here.

A :class:`MirrorTable` knows its columns and turns one record as Odoo returns it into one row of
Python values ready for COPY. Identifiers that come from Odoo are always quoted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from syncd.config import ModelSettings
from syncd.db import quote_ident
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

#: Fields Odoo always has that syncd reads even when not listed (the cursor needs write_date).
ALWAYS_READ = ("write_date",)


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
            problems.append(f"field {name!r} of {model.model} is computed, not stored: it cannot be mirrored")
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


@dataclass(frozen=True)
class MirrorTable:
    """One model's mirror table: ``<schema>.<model with . → _>``."""

    schema: str
    model: str
    columns: tuple[Column, ...]

    @classmethod
    def build(cls, schema: str, model: ModelSettings, fields: Mapping[str, Mapping[str, Any]]) -> MirrorTable:
        names = select_fields(model, fields)
        return cls(
            schema,
            model.model,
            tuple(Column(n, fields[n]["type"], PG_TYPES[fields[n]["type"]]) for n in names),
        )

    @property
    def name(self) -> str:
        return self.model.replace(".", "_")

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def read_fields(self) -> list[str]:
        """What to ask ``search_read`` for: the columns plus what the cursor needs."""
        out = [c.field for c in self.columns]
        out += [f for f in ALWAYS_READ if f not in out]
        return out

    @property
    def column_names(self) -> list[str]:
        """Columns written by an upsert, in COPY order."""
        return ["id", *(c.field for c in self.columns), "_raw"]

    def create_sql(self) -> str:
        cols = ['"id" bigint primary key']
        cols += [f"{c.ident} {c.pg_type}" for c in self.columns]
        cols += [f"{quote_ident(n)} {t}" for n, t in SYSTEM_COLUMNS]
        body = ",\n    ".join(cols)
        return (
            f"create schema if not exists {quote_ident(self.schema)};\n"
            f"create table if not exists {self.qualified} (\n    {body}\n)"
        )

    def add_columns_sql(self, existing: set[str]) -> list[str]:
        """``alter table … add column`` for every column the table lacks. Nothing is ever dropped."""
        return [
            f"alter table {self.qualified} add column if not exists {c.ident} {c.pg_type}"
            for c in self.columns
            if c.field not in existing
        ]

    def upsert_sql(self) -> str:
        """One set-based upsert from per-column arrays (``unnest``): no temp tables, no DDL per batch,
        and it works through a transaction-mode pooler.

        A row is rewritten only when what Odoo returned differs (``_raw``) or it was marked deleted:
        re-reading an overlap window costs no row versions.
        """
        params, select = [], []
        for i, (_name, pg_type) in enumerate(self._typed_columns(), start=1):
            if pg_type.endswith("[]"):  # x2many ids arrive as array literals; unnest would flatten 2-D arrays
                params.append(f"${i}::text[]")
                select.append(f"u.c{i}::{pg_type}")
            else:
                params.append(f"${i}::{pg_type}[]")
                select.append(f"u.c{i}")
        names = [quote_ident(n) for n, _ in self._typed_columns()]
        aliases = ", ".join(f"c{i}" for i in range(1, len(names) + 1))
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        return (
            f"insert into {self.qualified} as m ({', '.join(names)})\n"
            f"select {', '.join(select)} from unnest({', '.join(params)}) as u({aliases})\n"
            f'on conflict ("id") do update set {updates}, "_synced_at" = now(), "_deleted_at" = null\n'
            f'where m."_raw" is distinct from excluded."_raw" or m."_deleted_at" is not null'
        )

    def _typed_columns(self) -> list[tuple[str, str]]:
        return [("id", "bigint"), *((c.field, c.pg_type) for c in self.columns), ("_raw", "jsonb")]

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

    def converters(self) -> list[Callable[[Any], Any]]:
        return [CONVERTERS.get(c.odoo_type, _identity) for c in self.columns]

    def to_row(
        self, record: Mapping[str, Any], converters: Sequence[Callable[[Any], Any]]
    ) -> tuple[Any, ...]:
        """One Odoo record → one tuple in :attr:`column_names` order."""
        values = [record["id"]]
        for column, convert in zip(self.columns, converters, strict=True):
            try:
                values.append(convert(record.get(column.field, False)))
            except (ValueError, TypeError, binascii.Error) as e:
                raise SchemaProblem(
                    f"{self.model} id {record['id']}: field {column.field!r} ({column.odoo_type}) "
                    f"has a value syncd cannot read: {record.get(column.field)!r:.80}: {e}"
                ) from e
        values.append(record)
        return tuple(values)


# --------------------------------------------------------------------------------- value conversion
# Odoo says `false` for an empty value of every type but boolean; that is NULL in the mirror.


def _identity(v: Any) -> Any:
    return None if v is False else v


def _text(v: Any) -> str | None:
    return None if v is False or v is None else str(v)


def _integer(v: Any) -> int | None:
    return None if v is None or (v is False) else int(v)


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
    return int(v[0]) if isinstance(v, list | tuple) else int(v)


def _x2many(v: Any) -> str | None:
    """An id list as a PostgreSQL array literal (see :meth:`MirrorTable.upsert_sql`)."""
    if v is False or v is None:
        return None
    return "{" + ",".join(str(int(i)) for i in v) + "}"


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
