"""The models every fake Odoo starts with, modelled on Odoo 19's (``odoo-wire/fields_get_*.json``).

``res.partner`` and ``product.product`` carry a faithful subset of their recorded fields, with the recorded
``type``/``store``/``readonly``/``required``/``company_dependent``/``string`` and every field type seen
there. Computed fields return what Odoo computes for them where it matters to a sync (``complete_name``,
``display_name``, ``commercial_partner_id``, ``company_type``…) and an empty value otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from zoneinfo import available_timezones

from syncd.testing import errors, orm
from syncd.testing.fields import FieldSpec, ModelSpec
from syncd.testing.store import Transaction, View

F = FieldSpec
PARTNER = "res.partner"
_TYPE_LABELS = {"contact": "Contact", "invoice": "Invoice", "delivery": "Delivery", "other": "Other"}
_TIMEZONES = tuple((name, name) for name in sorted(available_timezones()) if "/" in name or name == "UTC")


def _none(_view: View, _rid: int, _row: Mapping[str, Any]) -> Any:
    return None


def _false(_view: View, _rid: int, _row: Mapping[str, Any]) -> bool:
    return False


def _zero(_view: View, _rid: int, _row: Mapping[str, Any]) -> float:
    return 0.0


# ------------------------------------------------------------------------------------------- partners


def _commercial(view: View, rid: int, row: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
    """The commercial entity: the first company up the parent chain, else the top-most partner."""
    seen = {rid}
    while not row.get("is_company") and row.get("parent_id"):
        parent_id = row["parent_id"]
        parent = view.get(PARTNER, parent_id)
        if parent is None or parent_id in seen:
            break
        seen.add(parent_id)
        rid, row = parent_id, parent
    return rid, row


def _commercial_partner_id(view: View, rid: int, row: Mapping[str, Any]) -> int:
    return _commercial(view, rid, row)[0]


def _commercial_company_name(view: View, rid: int, row: Mapping[str, Any]) -> str | None:
    commercial = _commercial(view, rid, row)[1]
    return commercial.get("name") if commercial.get("is_company") else row.get("company_name")


def _complete_name(view: View, rid: int, row: Mapping[str, Any]) -> str:
    name = row.get("name") or ""
    parent_id = row.get("parent_id")
    if parent_id or row.get("company_name"):
        if not name and row.get("type") in _TYPE_LABELS:
            name = _TYPE_LABELS[row["type"]]
        if not row.get("is_company"):
            parent = view.get(PARTNER, parent_id) if parent_id else None
            company = _commercial_company_name(view, rid, row) or (parent or {}).get("name")
            name = f"{company}, {name}"
    return name.strip()


def _email_normalized(_view: View, _rid: int, row: Mapping[str, Any]) -> str | None:
    email = row.get("email")
    return email.strip().lower() if email and "@" in email else None


def _email_formatted(_view: View, _rid: int, row: Mapping[str, Any]) -> str | None:
    email = row.get("email")
    return f'"{row.get("name") or ""}" <{email}>' if email else None


def _company_type(_view: View, _rid: int, row: Mapping[str, Any]) -> str:
    return "company" if row.get("is_company") else "person"


def _partner_vals_check(vals: Mapping[str, Any]) -> None:
    # res.partner syncs its commercial fields from parent_id, which turns a string or an [id, name] pair
    # into a multi-record "recordset" (recorded: ValueError "Expected singleton: res.partner('5', '4'…)").
    parent = vals.get("parent_id")
    if isinstance(parent, str | list) and parent:
        raise errors.value_error(f"Expected singleton: res.partner{tuple(parent)!r}")
    if isinstance(parent, dict):
        key = next(iter(parent), "")
        raise errors.FakeOdooError(
            "psycopg2.errors.InvalidTextRepresentation", f'invalid input syntax for type integer: "{key}"\n'
        )


def _partner_name_check(_view: View, _model: str, _rid: int, row: Mapping[str, Any]) -> None:
    # The CHECK constraint res_partner_check_name: a contact needs a name ('' passes, NULL does not).
    if row.get("type") == "contact" and row.get("name") is None:
        raise errors.ConstraintViolation("Contacts require a name")


def _partner_recursion_check(view: View, _model: str, rid: int, row: Mapping[str, Any]) -> None:
    seen = {rid}
    parent_id = row.get("parent_id")
    while parent_id:
        if parent_id in seen:
            raise errors.validation_error("You cannot create recursive Partner hierarchies.")
        seen.add(parent_id)
        parent_id = (view.get(PARTNER, parent_id) or {}).get("parent_id")


def res_partner() -> ModelSpec:
    return ModelSpec(
        PARTNER,
        "Contact",
        order="complete_name ASC, id DESC",
        name_search_fields=("complete_name", "email", "ref", "vat", "company_registry"),
        display_name=_complete_name,
        parent_name="parent_id",
        vals_check=_partner_vals_check,
        constraints=[_partner_name_check, _partner_recursion_check],
        fields={
            "name": F("char", string="Name"),
            "complete_name": F("char", string="Complete Name", readonly=True, compute=_complete_name),
            "active": F("boolean", string="Active", default=True),
            "type": F(
                "selection", string="Address Type", selection=list(_TYPE_LABELS.items()), default="contact"
            ),
            "is_company": F("boolean", string="Is a Company", default=False),
            "company_type": F(
                "selection",
                string="Company Type",
                selection=[("person", "Person"), ("company", "Company")],
                store=False,
                compute=_company_type,
                inverse=lambda value: {"is_company": value == "company"},
            ),
            "parent_id": F("many2one", string="Related Company", relation=PARTNER),
            "child_ids": F("one2many", string="Contact", relation=PARTNER, relation_field="parent_id"),
            "commercial_partner_id": F(
                "many2one",
                string="Commercial Entity",
                relation=PARTNER,
                readonly=True,
                compute=_commercial_partner_id,
            ),
            "commercial_company_name": F(
                "char", string="Company Name Entity", readonly=True, compute=_commercial_company_name
            ),
            "company_name": F("char", string="Company Name"),
            "company_registry": F("char", string="Company ID"),
            "category_id": F(
                "many2many",
                string="Tags",
                relation="res.partner.category",
                relation_table="res_partner_res_partner_category_rel",
                column2="category_id",
            ),
            "email": F("char", string="Email"),
            "email_normalized": F(
                "char", string="Normalized Email", readonly=True, compute=_email_normalized
            ),
            "email_formatted": F(
                "char", string="Formatted Email", store=False, readonly=True, compute=_email_formatted
            ),
            "phone": F("char", string="Phone"),
            "website": F("char", string="Website Link"),
            "function": F("char", string="Job Position"),
            "ref": F("char", string="Reference"),
            "vat": F("char", string="Tax ID"),
            "barcode": F("char", string="Barcode", company_dependent=True),
            "street": F("char", string="Street"),
            "street2": F("char", string="Street2"),
            "zip": F("char", string="Zip"),
            "city": F("char", string="City"),
            "country_id": F("many2one", string="Country", relation="res.country"),
            "color": F("integer", string="Color Index", default=0),
            "customer_rank": F("integer", string="Customer Rank", default=0),
            "supplier_rank": F("integer", string="Supplier Rank", default=0),
            "comment": F("html", string="Notes"),
            "sale_warn_msg": F("text", string="Message for Sales Order"),
            "lang": F(
                "selection",
                string="Language",
                selection=[("en_US", "English (US)")],
                dynamic_selection=True,
                default="en_US",
            ),
            "tz": F("selection", string="Timezone", selection=_TIMEZONES, dynamic_selection=True),
            "partner_latitude": F("float", string="Geo Latitude", digits=(10, 7)),
            "partner_longitude": F("float", string="Geo Longitude", digits=(10, 7)),
            "credit_limit": F("float", string="Credit Limit", company_dependent=True),
            "credit": F(
                "monetary",
                string="Total Receivable",
                store=False,
                readonly=True,
                currency_field="currency_id",
                compute=_zero,
            ),
            "days_sales_outstanding": F(
                "float", string="Days Sales Outstanding (DSO)", store=False, readonly=True, compute=_zero
            ),
            "currency_id": F(
                "many2one",
                string="Currency",
                relation="res.currency",
                store=False,
                readonly=True,
                compute=lambda _view, _rid, _row: 1,
            ),
            "company_id": F("many2one", string="Company", relation="res.company"),
            "user_id": F("many2one", string="Salesperson", relation="res.users"),
            "user_ids": F("one2many", string="Users", relation="res.users", relation_field="partner_id"),
            "employee": F("boolean", string="Employee"),
            "partner_share": F("boolean", string="Share Partner", readonly=True, compute=_false),
            "is_public": F("boolean", string="Is Public", store=False, readonly=True, compute=_false),
            "autopost_bills": F(
                "selection",
                string="Auto-post bills",
                required=True,
                default="ask",
                selection=[
                    ("always", "Always"),
                    ("ask", "Ask after 3 validations without edits"),
                    ("never", "Never"),
                ],
            ),
            "image_1920": F("binary", string="Image"),
            "image_128": F(
                "binary",
                string="Image 128",
                readonly=True,
                compute=lambda _view, _rid, row: row.get("image_1920"),
            ),
            "properties": F("properties", string="Properties"),
            "application_statistics": F("json", string="Stats", store=False, readonly=True, compute=_none),
            "activity_date_deadline": F(
                "date", string="Next Activity Deadline", store=False, readonly=True, compute=_none
            ),
            "offline_since": F("datetime", string="Offline since", store=False, readonly=True, compute=_none),
        },
    )


def res_partner_category() -> ModelSpec:
    return ModelSpec(
        "res.partner.category",
        "Partner Tags",
        order="name",
        parent_name="parent_id",
        fields={
            "name": F("char", string="Name", required=True),
            "color": F("integer", string="Color"),
            "parent_id": F(
                "many2one", string="Category", relation="res.partner.category", ondelete="cascade"
            ),
            "active": F("boolean", string="Active", default=True),
        },
    )


# ------------------------------------------------------------------------------------------- base


def res_country() -> ModelSpec:
    return ModelSpec(
        "res.country",
        "Country",
        order="name",
        name_search_fields=("name", "code"),
        fields={
            "name": F("char", string="Country Name", required=True, translate=True),
            "code": F("char", string="Country Code", size=2),
            "currency_id": F("many2one", string="Currency", relation="res.currency"),
            "phone_code": F("integer", string="Country Calling Code"),
        },
    )


def res_currency() -> ModelSpec:
    return ModelSpec(
        "res.currency",
        "Currency",
        order="name",
        fields={
            "name": F("char", string="Currency", required=True, size=3),
            "symbol": F("char", string="Symbol"),
            "active": F("boolean", string="Active", default=True),
        },
    )


def res_company() -> ModelSpec:
    return ModelSpec(
        "res.company",
        "Companies",
        order="name",
        fields={
            "name": F("char", string="Company Name", required=True),
            "partner_id": F("many2one", string="Partner", relation=PARTNER, required=True),
            "currency_id": F(
                "many2one", string="Currency", relation="res.currency", required=True, default=1
            ),
            "active": F("boolean", string="Active", default=True),
        },
    )


def _user_name(view: View, _rid: int, row: Mapping[str, Any]) -> str | None:
    partner = view.get(PARTNER, row["partner_id"]) if row.get("partner_id") else None
    return partner.get("name") if partner else None


def _prepare_user(txn: Transaction, vals: dict[str, Any]) -> dict[str, Any]:
    if not vals.get("partner_id"):
        (vals["partner_id"],) = orm.create(txn, PARTNER, [{"name": vals.get("name") or vals.get("login")}])
    return vals


def res_users() -> ModelSpec:
    return ModelSpec(
        "res.users",
        "User",
        order="login",
        write_group="Access Rights",
        prepare_create=_prepare_user,
        fields={
            "name": F("char", string="Name", store=False, compute=_user_name, inverse=lambda _value: {}),
            "login": F("char", string="Login", required=True),
            "partner_id": F("many2one", string="Related Partner", relation=PARTNER, required=True),
            "active": F("boolean", string="Active", default=True),
            "tz": F("selection", string="Timezone", selection=_TIMEZONES, dynamic_selection=True),
            "share": F("boolean", string="Share User", readonly=True),
        },
    )


def _imd_complete_name(_view: View, _rid: int, row: Mapping[str, Any]) -> str:
    return f"{row.get('module') or ''}.{row.get('name') or ''}"


def _imd_check(_view: View, _model: str, _rid: int, row: Mapping[str, Any]) -> None:
    if " " in (row.get("name") or ""):
        raise errors.validation_error("External IDs cannot contain spaces")


def ir_model_data() -> ModelSpec:
    return ModelSpec(
        "ir.model.data",
        "Model Data",
        order="module, model, name",
        rec_name="complete_name",
        constraints=[_imd_check],
        fields={
            "name": F("char", string="External Identifier", required=True),
            "module": F("char", string="Module", required=True, default=""),
            "model": F("char", string="Model Name", required=True),
            "res_id": F("integer", string="Record ID"),
            "complete_name": F("char", string="Complete ID", store=False, compute=_imd_complete_name),
            "noupdate": F("boolean", string="Non Updatable", default=False),
        },
    )


def ir_config_parameter() -> ModelSpec:
    return ModelSpec(
        "ir.config_parameter",
        "System Parameter",
        order="key",
        rec_name="key",
        access_group="Role / Administrator",
        fields={
            "key": F("char", string="Key", required=True),
            "value": F("text", string="Value", required=True),
        },
    )


# ------------------------------------------------------------------------------------------- products


def _category_complete_name(view: View, _rid: int, row: Mapping[str, Any]) -> str:
    names = [row.get("name") or ""]
    seen: set[int] = set()
    parent_id = row.get("parent_id")
    while parent_id and parent_id not in seen:
        seen.add(parent_id)
        parent = view.get("product.category", parent_id) or {}
        names.append(parent.get("name") or "")
        parent_id = parent.get("parent_id")
    return " / ".join(reversed(names))


def product_category() -> ModelSpec:
    return ModelSpec(
        "product.category",
        "Product Category",
        order="complete_name",
        display_name=_category_complete_name,
        parent_name="parent_id",
        fields={
            "name": F("char", string="Name", required=True),
            "complete_name": F("char", string="Complete Name", compute=_category_complete_name),
            "parent_id": F(
                "many2one", string="Parent Category", relation="product.category", ondelete="cascade"
            ),
        },
    )


def uom_uom() -> ModelSpec:
    return ModelSpec(
        "uom.uom",
        "Product Unit of Measure",
        order="name",
        fields={"name": F("char", string="Unit Name", required=True), "active": F("boolean", default=True)},
    )


def product_tag() -> ModelSpec:
    return ModelSpec(
        "product.tag",
        "Product Tag",
        order="name",
        fields={"name": F("char", string="Name", required=True), "color": F("integer", string="Color")},
    )


def product_template() -> ModelSpec:
    return ModelSpec(
        "product.template",
        "Product",
        order="name, id",
        fields={
            "name": F("char", string="Name", required=True, translate=True),
            "list_price": F("float", string="Sales Price", default=1.0),
            "type": F("selection", string="Product Type", selection=_PRODUCT_TYPES, default="consu"),
            "categ_id": F("many2one", string="Product Category", relation="product.category", default=1),
            "uom_id": F("many2one", string="Unit", relation="uom.uom", default=1),
            "active": F("boolean", string="Active", default=True),
        },
    )


_PRODUCT_TYPES = [("consu", "Goods"), ("service", "Service"), ("combo", "Combo")]


def _product_display_name(view: View, _rid: int, row: Mapping[str, Any]) -> str:
    name = row.get("name") or ""
    return f"[{row['default_code']}] {name}" if row.get("default_code") else name


def _prepare_product(txn: Transaction, vals: dict[str, Any]) -> dict[str, Any]:
    if not vals.get("product_tmpl_id"):
        template = {"name": vals.get("name") or "", "list_price": vals.get("list_price") or 0.0}
        (vals["product_tmpl_id"],) = orm.create(txn, "product.template", [template])
    return vals


def product_product() -> ModelSpec:
    spec = ModelSpec(
        "product.product",
        "Product Variant",
        order="is_favorite desc, default_code, name, id",
        name_search_fields=("default_code", "name", "barcode"),
        display_name=_product_display_name,
        prepare_create=_prepare_product,
        fields={
            "name": F("char", string="Name", store=False, required=True, translate=True, related="product_tmpl_id.name"),
            "default_code": F("char", string="Internal Reference"),
            "code": F("char", string="Reference", store=False, readonly=True, compute=lambda _v, _r, row: row.get("default_code")),
            "barcode": F("char", string="Barcode"),
            "active": F("boolean", string="Active", default=True),
            "product_tmpl_id": F(
                "many2one", string="Product Template", relation="product.template", required=True, ondelete="cascade"
            ),
            "type": F("selection", string="Product Type", store=False, required=True, selection=_PRODUCT_TYPES, default="consu", related="product_tmpl_id.type"),
            "categ_id": F("many2one", string="Product Category", relation="product.category", store=False, default=1, related="product_tmpl_id.categ_id"),
            "uom_id": F("many2one", string="Unit", relation="uom.uom", store=False, required=True, default=1, related="product_tmpl_id.uom_id"),
            "list_price": F("float", string="Sales Price", store=False, digits=None, default=1.0, related="product_tmpl_id.list_price"),
            "lst_price": F(
                "float",
                string="Sales\xa0Price",
                store=False,
                compute=lambda _view, _rid, row: row.get("list_price") or 0.0,
                inverse=lambda value: {"list_price": value},
            ),
            "standard_price": F("float", string="Cost", company_dependent=True, default=0.0),
            "volume": F("float", string="Volume", digits=(16, 2)),
            "weight": F("float", string="Weight", digits=(16, 2)),
            "sales_count": F("float", string="Sold", store=False, readonly=True, digits=(16, 2), compute=_zero),
            "sale_ok": F("boolean", string="Sales", store=False, default=True, related="product_tmpl_id.sale_ok"),
            "purchase_ok": F("boolean", string="Purchase", store=False, default=True, related="product_tmpl_id.purchase_ok"),
            "is_favorite": F("boolean", string="Favorite", default=False),
            "color": F("integer", string="Color Index", store=False, related="product_tmpl_id.color"),
            "description": F("html", string="Description", store=False, translate=True, related="product_tmpl_id.description"),
            "description_sale": F("text", string="Sales Description", store=False, translate=True, related="product_tmpl_id.description_sale"),
            "additional_product_tag_ids": F("many2many", string="Variant Tags", relation="product.tag"),
            "image_variant_1920": F("binary", string="Variant Image"),
            "image_1920": F("binary", string="Image", store=False),
            "image_128": F("binary", string="Image 128", store=False, readonly=True,
                           compute=lambda _view, _rid, row: row.get("image_variant_1920") or row.get("image_1920")),
            "product_properties": F("properties", string="Properties", store=False, related="product_tmpl_id.product_properties"),
            "activity_date_deadline": F("date", string="Next Activity Deadline", store=False, readonly=True,
                                        compute=_none),
        },
    )  # fmt: skip
    spec.fields["write_date"] = dataclasses.replace(spec.fields["write_date"], string="Write Date")
    return spec


# ------------------------------------------------------------------------------------------- sales


def _prepare_order(txn: Transaction, vals: dict[str, Any]) -> dict[str, Any]:
    vals.setdefault("date_order", txn.stamp.replace(microsecond=0))
    if not vals.get("name") or vals["name"] == "New":
        count = sum(1 for _ in txn.iter_rows("sale.order"))
        vals["name"] = f"S{count + 1:05d}"
    return vals


def _order_unlink_check(_view: View, _model: str, _rid: int, row: Mapping[str, Any]) -> None:
    if row.get("state") in ("sent", "sale"):
        raise errors.user_error(
            "You can not delete a sent quotation or a confirmed sales order. You must first cancel it."
        )


def sale_order() -> ModelSpec:
    return ModelSpec(
        "sale.order",
        "Sales Order",
        order="date_order desc, id desc",
        prepare_create=_prepare_order,
        unlink_check=_order_unlink_check,
        fields={
            "name": F("char", string="Order Reference", required=True, default="New"),
            "partner_id": F("many2one", string="Customer", relation=PARTNER, required=True),
            "date_order": F("datetime", string="Order Date", required=True),
            "validity_date": F("date", string="Expiration"),
            "commitment_date": F("datetime", string="Delivery Date"),
            "state": F(
                "selection",
                string="Status",
                default="draft",
                selection=[("draft", "Quotation"), ("sent", "Quotation Sent"), ("sale", "Sales Order"), ("cancel", "Cancelled")],
            ),
            "amount_total": F("monetary", string="Total", readonly=True, currency_field="currency_id"),
            "currency_id": F("many2one", string="Currency", relation="res.currency", default=1),
            "user_id": F("many2one", string="Salesperson", relation="res.users"),
            "note": F("html", string="Terms and conditions"),
        },
    )  # fmt: skip


def builtin_models() -> list[ModelSpec]:
    return [
        res_currency(),
        res_country(),
        res_partner_category(),
        res_partner(),
        res_company(),
        res_users(),
        ir_model_data(),
        ir_config_parameter(),
        uom_uom(),
        product_category(),
        product_tag(),
        product_template(),
        product_product(),
        sale_order(),
    ]
