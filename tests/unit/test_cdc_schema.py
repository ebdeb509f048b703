from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from syncd.cdc.schema import MirrorTable, SchemaProblem, page_json, select_fields
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


def test_read_fields_come_in_jsonb_key_order() -> None:
    """Odoo answers with the keys in the order asked for; PostgreSQL then finds them sorted."""
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields="*"), FIELDS)
    fields = table.read_fields
    assert sorted(fields) == sorted({c.field for c in table.columns} | {"write_date"})
    keys = [k.encode() for k in ["id", *fields]]
    assert keys == sorted(keys, key=lambda k: (len(k), k))


def test_the_upsert_takes_the_page_as_one_json_parameter_and_rewrites_only_what_changed() -> None:
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields=["name", "qty"]), FIELDS)
    sql = table.upsert_sql()
    assert "$1" in sql and "$2" not in sql
    assert "from jsonb_array_elements($1::text::jsonb) as r" in sql
    assert 'select o."_raw" from "odoo"."x_y" as o' in sql  # unchanged records are left out first
    assert sql.endswith('where (m."_raw" is distinct from excluded."_raw" or m."_deleted_at" is not null)')
    assert '"_deleted_at" = null' in sql  # an upsert revives a record marked deleted


def test_page_json_is_compact_and_falls_back_for_what_orjson_refuses() -> None:
    page = [{"id": 1, "name": "é 漢字", "ratio": 0.1, "tag_ids": [1, 2]}]
    assert page_json(page) == '[{"id":1,"name":"é 漢字","ratio":0.1,"tag_ids":[1,2]}]'
    huge = [{"id": 1, "qty": 2**70, "name": "é"}]  # beyond 64 bits: orjson refuses it
    assert json.loads(page_json(huge)) == huge


def test_integers_beyond_bigint_are_unreadable_like_postgresql_says() -> None:
    table = MirrorTable.build(
        "odoo", ModelSettings(model="x.y", fields=["qty", "parent_id", "tag_ids"]), FIELDS
    )
    ok = {"id": 1, "qty": 2**63 - 1, "parent_id": [-(2**63), "x"], "tag_ids": [2**63 - 1]}
    table.check_values([ok])
    for field, value in [("qty", 2**63), ("parent_id", [2**63, "x"]), ("tag_ids", [1, -(2**63) - 1])]:
        with pytest.raises(SchemaProblem, match=rf"x\.y id 2: field '{field}' .*out of range for bigint"):
            table.check_values([ok, {**ok, "id": 2, field: value}])


def test_a_missing_key_reads_as_null_for_every_type() -> None:
    table = MirrorTable.build("odoo", ModelSettings(model="x.y", fields="*"), FIELDS)
    row = table.to_row({"id": 3}, table.converters())
    assert row[0] == 3 and set(row[1:-1]) == {None}


def test_non_finite_floats_which_json_cannot_hold_become_null() -> None:
    # Odoo's JSON never holds them; Python's json would write NaN, which PostgreSQL's jsonb refuses
    assert page_json([{"id": 1, "ratio": float("nan"), "other": float("inf")}]) == (
        '[{"id":1,"ratio":null,"other":null}]'
    )


def test_a_writable_table_has_a_row_and_a_statement_trigger_and_a_plain_one_drops_them() -> None:
    fields = {"name": {"type": "char", "store": True}, "write_date": {"type": "datetime", "store": True,
              "readonly": True}}  # fmt: skip
    writable = MirrorTable.build(
        "odoo", ModelSettings(model="res.partner", fields=["name"], writable=True), fields
    )
    sql = writable.trigger_sql()
    assert writable.changed_function == 'syncd."mirror_changed odoo.res_partner"'
    assert "for each row execute function syncd.mirror_change('res.partner'" in sql
    assert "referencing old table as syncd_old new table as syncd_new" in sql
    assert "insert into syncd.outbox" in writable.changed_function_sql()
    plain = MirrorTable.build("odoo", ModelSettings(model="res.partner", fields=["name"]), fields)
    assert plain.trigger_sql().count("drop ") == 3
    long = MirrorTable.build("a_rather_long_schema_name", ModelSettings(model="account.analytic.distribution.model",
                             fields=["name"], writable=True), fields)  # fmt: skip
    name = long.changed_function.removeprefix("syncd.").strip('"')
    assert len(name.encode()) <= 63 and name.startswith("mirror_changed a_rather_long_schema_name.")


def test_a_related_field_is_refused_naming_the_model_to_mirror() -> None:
    # product.product as a real Odoo 19 describes it (fields_get with "related" and "relation")
    fields = {
        "name": {"type": "char", "store": False, "related": "product_tmpl_id.name"},
        "categ_id": {"type": "many2one", "store": False, "related": "product_tmpl_id.categ_id"},
        "product_tmpl_id": {"type": "many2one", "store": True, "relation": "product.template"},
        "far": {"type": "char", "store": False, "related": "product_tmpl_id.categ_id.name"},
    }
    with pytest.raises(SchemaProblem) as info:
        select_fields(ModelSettings(model="product.product", fields=["name", "far"]), fields)
    message = str(info.value)
    assert (
        "field 'name' of product.product is not stored: it is related to product_tmpl_id.name, and a "
        "change there does not move product.product's write_date, so the column would go stale; "
        "mirror product.template (field 'name') instead and join on product_tmpl_id"
    ) in message
    assert "'far' of product.product is not stored: it is related to product_tmpl_id.categ_id.name" in message
    assert "mirror the model that stores it instead (through product_tmpl_id, a product.template)" in message
