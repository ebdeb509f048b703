from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from syncd.cdc.schema import MirrorTable, SchemaProblem, select_fields
from syncd.config import ModelSettings

pytestmark = pytest.mark.unit

FIELDS: dict[str, dict[str, Any]] = {
    "id": {"type": "integer", "store": True},
    "name": {"type": "char", "store": True},
    "note": {"type": "html", "store": True},
    "kind": {"type": "selection", "store": True},
    "qty": {"type": "integer", "store": True},
    "ratio": {"type": "float", "store": True},
    "amount": {"type": "monetary", "store": True},
    "active": {"type": "boolean", "store": True},
    "day": {"type": "date", "store": True},
    "write_date": {"type": "datetime", "store": True},
    "parent_id": {"type": "many2one", "store": True},
    "tag_ids": {"type": "many2many", "store": True},
    "child_ids": {"type": "one2many", "store": True},
    "data": {"type": "json", "store": True},
    "props": {"type": "properties", "store": True},
    "image": {"type": "binary", "store": True},
    "display_name": {"type": "char", "store": False},
    'we"ird': {"type": "char", "store": True},
}


def test_star_selects_stored_non_binary_fields() -> None:
    selected = select_fields(ModelSettings(model="x.y", fields="*"), FIELDS)
    assert "image" not in selected and "display_name" not in selected and "id" not in selected
    assert {"name", "tag_ids", "props", "write_date", 'we"ird'} <= set(selected)


def test_listed_fields_are_checked_with_every_problem_named() -> None:
    model = ModelSettings(model="x.y", fields=["name", "nope", "display_name", "image"])
    with pytest.raises(SchemaProblem) as info:
        select_fields(model, FIELDS)
    assert "'nope' does not exist on x.y" in str(info.value)
    assert "'display_name' of x.y is computed" in str(info.value)
    # binary is allowed when listed explicitly
    assert "image" not in str(info.value)


def test_types_map_to_spec_columns_and_identifiers_are_quoted() -> None:
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields="*"), FIELDS)
    types = {c.field: c.pg_type for c in table.columns}
    assert types["name"] == types["note"] == types["kind"] == "text"
    assert types["qty"] == "bigint" and types["ratio"] == "double precision" and types["amount"] == "numeric"
    assert types["day"] == "date" and types["write_date"] == "timestamptz"
    assert types["parent_id"] == "bigint" and types["tag_ids"] == types["child_ids"] == "bigint[]"
    assert types["data"] == types["props"] == "jsonb"
    ddl = table.create_sql()
    assert 'create table if not exists "odoo"."x_y"' in ddl
    assert '"we""ird" text' in ddl
    assert '"_synced_at" timestamptz not null default now()' in ddl and '"_raw" jsonb not null' in ddl
    assert table.add_columns_sql({"id", "name"})[0].startswith(
        'alter table "odoo"."x_y" add column if not exists'
    )


def test_values_convert_with_false_as_null_except_booleans() -> None:
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields="*"), FIELDS)
    record = {
        "id": 7, "name": False, "note": "<p>x</p>", "kind": False, "qty": 0, "ratio": 1.5, "amount": 12.35,
        "active": False, "day": "2026-01-31", "write_date": "2026-11-22 10:00:01", "parent_id": [3, "Azure"],
        "tag_ids": [1, 2], "child_ids": [], "data": {"a": 1}, "props": False, 'we"ird': "w",
    }  # fmt: skip
    row = dict(zip(table.column_names, table.to_row(record, table.converters()), strict=True))
    assert row["name"] is None and row["kind"] is None and row["props"] is None
    assert row["active"] is False and row["qty"] == 0
    assert row["amount"] == Decimal("12.35") and row["ratio"] == 1.5
    assert row["day"] == date(2026, 1, 31)
    assert row["write_date"] == datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)
    assert row["parent_id"] == 3 and row["tag_ids"] == "{1,2}" and row["child_ids"] == "{}"
    assert row["_raw"] is record


def test_an_unreadable_value_names_the_model_record_and_field() -> None:
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields=["day"]), FIELDS)
    with pytest.raises(SchemaProblem, match=r"x\.y id 7: field 'day' \(date\)"):
        table.to_row({"id": 7, "day": "31/01/2026"}, table.converters())
