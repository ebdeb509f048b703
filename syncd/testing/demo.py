"""The records a fake Odoo starts with: Odoo's base data, and optionally a small demo database.

Base data (always): the company, its partner, OdooBot, the admin ("Mitchell Admin", uid 2), the demo user
(uid 5), a dozen countries with Odoo's ids (Belgium 20, France 75, United States 233…), USD and EUR, the
unit of measure and product category Odoo creates, and their external ids.

Demo data (``demo_data=True``) resembles Odoo's demo database: companies with contacts (Azure Interior 15
with Brandon Freeman 27, Nicole Ford 28, Colleen Diaz 34…), individuals, two archived partners (40, 41),
partner tags, products and a few sales orders. Partners end up with ids 1–42, 37 of them active, as in the
recorded server.

Everything is stamped within one whole second just before the fake was created, by several transactions
whose microseconds do not follow the ids (companies are updated after their contacts were created), like a
real module installation. That is what makes the naive keyset cursor lose records on this data, exactly as
``odoo-wire/c.txt`` shows on the real demo database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from syncd.testing import orm
from syncd.testing.store import Store, Transaction

ROOT_UID = 1
COUNTRIES = [
    (10, "AR", "Argentina", "ar"), (12, "AT", "Austria", "at"), (13, "AU", "Australia", "au"),
    (20, "BE", "Belgium", "be"), (21, "BF", "Burkina Faso", "bf"), (31, "BR", "Brazil", "br"),
    (38, "CA", "Canada", "ca"), (43, "CH", "Switzerland", "ch"), (57, "DE", "Germany", "de"),
    (68, "ES", "Spain", "es"), (75, "FR", "France", "fr"), (104, "IN", "India", "in"),
    (109, "IT", "Italy", "it"), (165, "NL", "Netherlands", "nl"), (231, "GB", "United Kingdom", "uk"),
    (233, "US", "United States", "us"),
]  # fmt: skip

CATEGORIES = [
    (1, "Vendor", "res_partner_category_0"), (2, "Prospects", "res_partner_category_2"),
    (3, "Employees", "res_partner_category_3"), (4, "Consulting Services", "res_partner_category_4"),
    (5, "Services", "res_partner_category_5"), (6, "Office Supplies", "res_partner_category_6"),
    (7, "Desk Manufacturers", "res_partner_category_7"), (8, "Partner", "res_partner_category_8"),
]  # fmt: skip

#: id, name, city, country id, category ids (ids 8–16 are companies; 7 is an individual)
COMPANIES = [
    (8, "Wood Corner", "Turlock", 233, [1]), (9, "Deco Addict", "Pleasant Hill", 233, [2]),
    (10, "Gemini Furniture", "Fairfield", 233, [8]), (11, "Ready Mat", "Tracy", 233, [7]),
    (12, "Bright Stores", "Brussels", 20, [6]), (13, "Pipe Works", "Lyon", 75, [1, 6]),
    (14, "The Jackson Group", "Ogden", 233, [4]), (15, "Azure Interior", "Fremont", 233, [5]),
    (16, "Lumber Inc", "Stockton", 233, [1, 7]),
]  # fmt: skip

#: id, name, company id, job position
CONTACTS = [
    (17, "Addison Olson", 9, "Chief Executive Officer"), (18, "Douglas Fletcher", 9, "Functional Consultant"),
    (19, "Floyd Steward", 9, "Analyst"), (20, "Edwin Hansen", 10, "Marketing Manager"),
    (21, "Jesse Brown", 10, "Senior Consultant"), (22, "Oscar Morgan", 10, "Order Clerk"),
    (23, "Soham Palmer", 10, "Director"), (24, "Billy Fox", 11, "Production Supervisor"),
    (25, "Edith Sanchez", 11, "Store Manager"), (26, "Julie Richards", 11, "Financial Manager"),
    (27, "Brandon Freeman", 15, "Creative Director"), (28, "Nicole Ford", 15, "Director"),
    (29, "Kim Snyder", 11, "Sales Manager"), (30, "Gordon Owens", 14, "Sales Manager"),
    (31, "Toni Rhodes", 14, "Managing Partner"), (32, "Lorraine Douglas", 16, "Functional Consultant"),
    (33, "Ron Gibson", 8, "Technical Director"), (34, "Colleen Diaz", 15, "Business Executive"),
    (35, "Willie Burke", 8, "Service Manager"), (36, "Theodore Gardner", 12, "Store Manager"),
    (37, "Sandra Neal", 13, "Purchaser"), (38, "Travis Mendoza", 13, "Engineer"),
    (39, "Jeff Lawson", 16, "Accountant"),
]  # fmt: skip

INDIVIDUALS = [(40, "Chester Reed", 233), (41, "Dwayne Newman", 233), (42, "Tom Ruiz", 20)]

PRODUCTS = [
    # id, name, default code, type, list price, cost, category
    (1, "Restaurant Expenses", None, "service", 14.0, 8.0, 2),
    (2, "Office Chair", "FURN_7777", "consu", 70.0, 55.0, 3),
    (3, "Desk Combination", "FURN_7800", "consu", 450.0, 300.0, 3),
    (4, "Large Cabinet", "E-COM07", "consu", 320.0, 800.0, 3),
    (5, "Corner Desk Right Sit", "E-COM06", "consu", 147.0, 600.0, 3),
    (6, "Drawer Black", "FURN_8900", "consu", 25.0, 20.0, 3),
    (7, "Customizable Desk", "FURN_0096", "consu", 750.0, 500.0, 3),
    (8, "Virtual Home Staging", None, "service", 38.25, 25.5, 3),
]


def _email(name: str) -> str:
    first, _, last = name.lower().partition(" ")
    return f"{first}.{last}@example.com"


def _at(txn: Transaction, model: str, rid: int, vals: dict[str, Any], xmlid: str | None = None) -> int:
    """Create a record with a chosen id (ids must be given in increasing order per model)."""
    table = txn.store.tables[model]
    if table.next_id > rid:
        raise RuntimeError(f"{model} id {rid} is already taken")
    table.next_id = rid
    (created,) = orm.create(txn, model, [vals])
    if xmlid:
        module, name = xmlid.split(".", 1)
        orm.create(
            txn, "ir.model.data", [{"module": module, "name": name, "model": model, "res_id": created}]
        )
    return created


def _in_transaction(store: Store, at: datetime, work: Callable[[Transaction], None]) -> None:
    txn = store.begin(uid=ROOT_UID, at=at)
    try:
        work(txn)
    except BaseException:
        txn.rollback()
        raise
    txn.commit()


def install(store: Store, *, demo_data: bool) -> None:
    """Create base (and demo) records, all within the whole second before the store's clock."""
    second = store.clock().replace(microsecond=0) - timedelta(seconds=1)
    _in_transaction(store, second + timedelta(microseconds=51_384), _base)
    if demo_data:
        _in_transaction(store, second + timedelta(microseconds=208_112), _demo_companies)
        _in_transaction(store, second + timedelta(microseconds=301_907), _demo_admin_profile)
        _in_transaction(store, second + timedelta(microseconds=417_220), _demo_contacts)
        _in_transaction(store, second + timedelta(microseconds=606_031), _demo_company_updates)
        _in_transaction(store, second + timedelta(microseconds=702_455), _demo_archive)


def _base(txn: Transaction) -> None:
    _at(txn, "res.currency", 1, {"name": "USD", "symbol": "$"}, "base.USD")
    _at(txn, "res.currency", 125, {"name": "EUR", "symbol": "€"}, "base.EUR")
    for rid, code, name, xml in COUNTRIES:
        currency = 125 if code in ("AT", "BE", "DE", "ES", "FR", "IT", "NL") else 1
        _at(txn, "res.country", rid, {"name": name, "code": code, "currency_id": currency}, f"base.{xml}")
    _at(txn, "res.partner", 1, {"name": "YourCompany", "is_company": True, "email": "info@yourcompany.com",
                                "city": "Tracy", "country_id": 233, "website": "http://www.example.com"},
        "base.main_partner")  # fmt: skip
    _at(
        txn,
        "res.partner",
        2,
        {"name": "OdooBot", "email": "odoobot@example.com", "active": False},
        "base.partner_root",
    )
    _at(txn, "res.partner", 3, {"name": "Mitchell Admin", "email": "admin@example.com", "phone": "+1 555-555-5555",
                                "country_id": 233, "tz": "Europe/Brussels"}, "base.partner_admin")  # fmt: skip
    _at(txn, "res.partner", 4, {"name": "Public user", "active": False}, "base.public_partner")
    _at(
        txn,
        "res.partner",
        5,
        {"name": "Portal User Template", "active": False},
        "base.template_portal_user_id_res_partner",
    )
    _at(txn, "res.partner", 6, {"name": "Marc Demo", "email": "mark.brown23@example.com", "country_id": 233,
                                "tz": "Europe/Brussels"}, "base.partner_demo")  # fmt: skip
    _at(
        txn, "res.company", 1, {"name": "YourCompany", "partner_id": 1, "currency_id": 1}, "base.main_company"
    )
    for rid, login, partner, active, xml in (
        (1, "__system__", 2, False, "base.user_root"),
        (2, "admin", 3, True, "base.user_admin"),
        (3, "public", 4, False, "base.public_user"),
        (4, "portaltemplate", 5, False, "base.template_portal_user_id"),
        (5, "demo", 6, True, "base.user_demo"),
    ):
        vals = {
            "login": login,
            "partner_id": partner,
            "active": active,
            "tz": "Europe/Brussels" if active else None,
        }
        _at(txn, "res.users", rid, vals, xml)
    _at(txn, "uom.uom", 1, {"name": "Units"}, "uom.product_uom_unit")
    _at(txn, "product.category", 1, {"name": "All"}, "product.product_category_all")
    _at(txn, "ir.config_parameter", 1, {"key": "web.base.url", "value": "http://localhost:8069"})
    _at(
        txn,
        "ir.config_parameter",
        2,
        {"key": "database.uuid", "value": "5d3c0f1e-fake-odoo-0000-000000000000"},
    )


def _demo_companies(txn: Transaction) -> None:
    for rid, name, xml in CATEGORIES:
        _at(txn, "res.partner.category", rid, {"name": name}, f"base.{xml}")
    _at(txn, "res.partner", 7, {"name": "Joel Willis", "email": "joel.willis63@example.com", "city": "Albany",
                                "country_id": 233}, "base.partner_demo_portal")  # fmt: skip
    for rid, name, city, country, _categories in COMPANIES:
        vals = {"name": name, "is_company": True, "city": city, "country_id": country,
                "email": f"info@{name.lower().replace(' ', '')}.example.com"}  # fmt: skip
        _at(txn, "res.partner", rid, vals, f"base.res_partner_{rid}")
    _at(txn, "product.category", 2, {"name": "Expenses"}, "product.cat_expense")
    _at(txn, "product.category", 3, {"name": "Saleable", "parent_id": 1}, "product.product_category_1")


def _demo_admin_profile(txn: Transaction) -> None:
    orm.write(txn, "res.partner", [3], {"street": "215 Vine St", "city": "Scranton", "zip": "18503"})


def _demo_contacts(txn: Transaction) -> None:
    for rid, name, company, function in CONTACTS:
        vals = {"name": name, "parent_id": company, "function": function, "email": _email(name)}
        _at(txn, "res.partner", rid, vals, f"base.res_partner_address_{rid}")
    for rid, name, country in INDIVIDUALS:
        _at(txn, "res.partner", rid, {"name": name, "email": _email(name), "country_id": country},
            f"base.res_partner_{rid}")  # fmt: skip
    for rid, name, code, kind, price, cost, category in PRODUCTS:
        vals = {"name": name, "default_code": code, "type": kind, "list_price": price, "standard_price": cost,
                "categ_id": category}  # fmt: skip
        _at(txn, "product.product", rid, vals, f"product.product_product_{rid}")


def _demo_company_updates(txn: Transaction) -> None:
    # Like a module's post-install step: the companies are written again after their contacts exist.
    for rid, _name, _city, _country, categories in COMPANIES:
        orm.write(txn, "res.partner", [rid], {"category_id": [(6, 0, categories)], "customer_rank": 1})
    for rid, partner, state in ((1, 10, "draft"), (2, 15, "sale"), (3, 9, "sent"), (4, 14, "cancel")):
        _at(txn, "sale.order", rid, {"partner_id": partner, "state": state, "amount_total": 100.0 * rid})


def _demo_archive(txn: Transaction) -> None:
    orm.write(txn, "res.partner", [40, 41], {"active": False})
