"""The fake Odoo's store, domains and value conversions, through its direct (in-process) API.

Each test replays a situation recorded from a real Odoo 19 (``odoo-wire/``, ``odoo-wire/write/SUMMARY.md``)
and asserts the fake answers the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from syncd.testing import FakeOdoo, FakeOdooError, FieldSpec, ManualClock

pytestmark = pytest.mark.unit

SECOND = datetime(2026, 11, 22, 19, 41, 55)

# What the recorded fields_get said (odoo-wire/fields_get_*.json): type, store, readonly, required,
# company_dependent, string, relation.
RECORDED_PARTNER_FIELDS = {
    "name": ("char", True, False, False, False, "Name", None),
    "email": ("char", True, False, False, False, "Email", None),
    "is_company": ("boolean", True, False, False, False, "Is a Company", None),
    "parent_id": ("many2one", True, False, False, False, "Related Company", "res.partner"),
    "child_ids": ("one2many", True, False, False, False, "Contact", "res.partner"),
    "category_id": ("many2many", True, False, False, False, "Tags", "res.partner.category"),
    "active": ("boolean", True, False, False, False, "Active", None),
    "type": ("selection", True, False, False, False, "Address Type", None),
    "company_type": ("selection", False, False, False, False, "Company Type", None),
    "color": ("integer", True, False, False, False, "Color Index", None),
    "comment": ("html", True, False, False, False, "Notes", None),
    "partner_latitude": ("float", True, False, False, False, "Geo Latitude", None),
    "country_id": ("many2one", True, False, False, False, "Country", "res.country"),
    "write_date": ("datetime", True, True, False, False, "Last Updated on", None),
    "create_uid": ("many2one", True, True, False, False, "Created by", "res.users"),
    "credit": ("monetary", False, True, False, False, "Total Receivable", None),
    "credit_limit": ("float", True, False, False, True, "Credit Limit", None),
    "barcode": ("char", True, False, False, True, "Barcode", None),
    "image_128": ("binary", True, True, False, False, "Image 128", None),
    "properties": ("properties", True, False, False, False, "Properties", None),
    "application_statistics": ("json", False, True, False, False, "Stats", None),
    "activity_date_deadline": ("date", False, True, False, False, "Next Activity Deadline", None),
    "sale_warn_msg": ("text", True, False, False, False, "Message for Sales Order", None),
    "display_name": ("char", False, True, False, False, "Display Name", None),
    "autopost_bills": ("selection", True, False, True, False, "Auto-post bills", None),
}
RECORDED_PRODUCT_FIELDS = {
    "name": ("char", False, False, True, False, "Name", None),
    "list_price": ("float", False, False, False, False, "Sales Price", None),
    "lst_price": ("float", False, False, False, False, "Sales\xa0Price", None),
    "standard_price": ("float", True, False, False, True, "Cost", None),
    "uom_id": ("many2one", False, False, True, False, "Unit", "uom.uom"),
    "product_tmpl_id": ("many2one", True, False, True, False, "Product Template", "product.template"),
    "product_properties": ("properties", False, False, False, False, "Properties", None),
    "write_date": ("datetime", True, True, False, False, "Write Date", None),
}
RECORDED_PARTNER_TYPES = {
    "binary", "boolean", "char", "date", "datetime", "float", "html", "integer", "json", "many2many",
    "many2one", "monetary", "one2many", "properties", "selection", "text",
}  # fmt: skip


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(SECOND + timedelta(seconds=10))


@pytest.fixture
def fake(clock: ManualClock) -> FakeOdoo:
    return FakeOdoo(clock=clock)


@pytest.fixture
def demo(clock: ManualClock) -> FakeOdoo:
    return FakeOdoo(demo_data=True, clock=clock)


def error_of(excinfo: pytest.ExceptionInfo[FakeOdooError]) -> tuple[str, str]:
    return excinfo.value.name, excinfo.value.message


def write_at(fake: FakeOdoo, when: datetime, model: str, ids: list[int], vals: dict[str, Any]) -> None:
    with fake.begin(at=when) as txn:
        txn.write(model, ids, vals)


# ------------------------------------------------------------------------------------------ values


def test_read_answers_the_recorded_shapes_of_every_kind_of_value(demo: FakeOdoo) -> None:
    # e.4 / e.5: many2one pairs, x2many id lists, false for empty, [] for properties, 0.0 for a monetary
    fields = ["name", "parent_id", "child_ids", "category_id", "country_id", "image_128", "comment", "properties",
              "credit_limit", "credit", "company_type", "active", "email", "street2", "create_uid", "write_date"]  # fmt: skip
    (admin,) = demo.read("res.partner", [3], fields)
    assert admin == {
        "id": 3, "name": "Mitchell Admin", "parent_id": False, "child_ids": [], "category_id": [],
        "country_id": [233, "United States"], "image_128": False, "comment": False, "properties": [],
        "credit_limit": 0.0, "credit": 0.0, "company_type": "person", "active": True,
        "email": "admin@example.com", "street2": False, "create_uid": [1, "OdooBot"],
        "write_date": admin["write_date"],
    }  # fmt: skip
    assert len(admin["write_date"]) == 19  # "YYYY-MM-DD HH:MM:SS": microseconds truncated on the wire
    azure = demo.read("res.partner", [15], ["child_ids", "category_id", "is_company"])
    assert azure == [{"id": 15, "child_ids": [27, 34, 28], "category_id": [5], "is_company": True}]
    product = demo.read("product.product", [1], ["name", "default_code", "list_price", "categ_id", "uom_id",
                                                  "product_tmpl_id", "type", "product_properties"])  # fmt: skip
    assert product == [{"id": 1, "name": "Restaurant Expenses", "default_code": False, "list_price": 14.0,
                        "categ_id": [2, "Expenses"], "uom_id": [1, "Units"],
                        "product_tmpl_id": [1, "Restaurant Expenses"], "type": "service",
                        "product_properties": []}]  # fmt: skip


def test_read_with_load_none_gives_raw_many2one_ids(fake: FakeOdoo) -> None:
    # e.5
    assert fake.call("res.partner", "read", [3], ["parent_id", "country_id"], load=None) == [
        {"id": 3, "parent_id": False, "country_id": 233}
    ]


def test_datetimes_keep_microseconds_inside_and_lose_them_on_the_wire(
    fake: FakeOdoo, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 11, 22, 19, 42, 28, 982724))
    fake.write("res.partner", [3], {"function": "probe"})
    assert fake.records("res.partner")[3]["write_date"] == datetime(2026, 11, 22, 19, 42, 28, 982724)
    assert fake.read("res.partner", [3], ["write_date"]) == [{"id": 3, "write_date": "2026-11-22 19:42:28"}]


def test_search_read_without_fields_returns_every_field_computed_ones_included(fake: FakeOdoo) -> None:
    (record,) = fake.search_read("res.partner", [("id", "=", 3)])
    assert set(record) == set(fake.fields_get("res.partner"))
    assert record["display_name"] == "Mitchell Admin"


@pytest.mark.parametrize("field", ["date", "__last_update", "no_such_field"])
def test_reading_an_unknown_field_is_the_recorded_value_error(fake: FakeOdoo, field: str) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        fake.read("res.partner", [3], ["write_date", field])
    assert error_of(excinfo) == ("builtins.ValueError", f"Invalid field '{field}' on 'res.partner'")


def test_read_of_a_missing_id_omits_it(fake: FakeOdoo) -> None:
    assert fake.read("res.partner", [999999], ["name"]) == []
    assert [r["id"] for r in fake.read("res.partner", [999999, 3], ["name"])] == [3]


# ------------------------------------------------------------------------------------------ domains


@pytest.mark.parametrize(
    "value", ["2000-01-01 00:00:00", "2000-01-01T00:00:00", "2000-01-01 00:00:00.123456", "2000-01-01"]
)
def test_datetime_domain_values_accept_the_recorded_formats(demo: FakeOdoo, value: str) -> None:
    # a.3b: all forms give the same count
    assert demo.search_count("res.partner", [("write_date", ">", value)]) == 37


def test_datetime_domain_value_with_timezone_is_rejected(fake: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        fake.search_count("res.partner", [("write_date", ">", "2000-01-01 00:00:00+00:00")])
    assert error_of(excinfo) == (
        "builtins.ValueError",
        "expecting only datetimes with no timezone: '2000-01-01 00:00:00+00:00'",
    )


@pytest.fixture
def same_second(fake: FakeOdoo) -> tuple[int, int]:
    """c.3: A=43-like and B=44-like written in the same second, the higher id first."""
    low, high = fake.create("res.partner", [{"name": "keyset A"}, {"name": "keyset B"}])
    write_at(fake, SECOND + timedelta(microseconds=28254), "res.partner", [high], {"ref": "B"})
    write_at(fake, SECOND + timedelta(microseconds=61312), "res.partner", [low], {"ref": "A"})
    return low, high


@pytest.mark.parametrize(
    ("operator", "value", "matches"),
    [
        ("=", "2026-11-22 19:41:55", True),
        (">", "2026-11-22 19:41:55", False),
        (">=", "2026-11-22 19:41:55", True),
        ("<", "2026-11-22 19:41:55", False),
        ("<=", "2026-11-22 19:41:55", True),
        ("!=", "2026-11-22 19:41:55", False),
        ("=", "2026-11-22 19:41:55.061312", True),
        (">", "2026-11-22 19:41:55.061312", False),
        (">=", "2026-11-22 19:41:55.061312", True),
        (">", "2026-11-22 19:41:54", True),
        ("<", "2026-11-22 19:41:56", True),
        ("=", "2026-11-22", False),  # a bare date is its midnight: "=" is that one second...
        ("!=", "2026-11-22", True),
        ("=", "2026-11-22 00:00:00", False),
        (">", "2026-11-22", False),  # ...and the whole day for ">" and "<=" (measured on a real Odoo 19)
        (">=", "2026-11-22", True),
        ("<=", "2026-11-22", True),
        ("<", "2026-11-23", True),
    ],
)
def test_datetime_comparisons_have_whole_second_semantics(
    fake: FakeOdoo, same_second: tuple[int, int], operator: str, value: str, matches: bool
) -> None:
    # c.4: the value loses its microseconds and "=" covers the whole second
    domain = [("id", "in", list(same_second)), ("write_date", operator, value)]
    assert sorted(fake.search("res.partner", domain)) == (sorted(same_second) if matches else [])


def test_ordering_uses_microseconds_so_ids_go_down_within_a_second(
    fake: FakeOdoo, same_second: tuple[int, int]
) -> None:
    low, high = same_second
    found = fake.search("res.partner", [("id", "in", [low, high])], order="write_date asc, id asc")
    assert found == [high, low]  # c.3: ORDER BY write_date, id -> [44, 43]


def keyset_walk(fake: FakeOdoo, page: int, domain: list[Any] | None = None) -> list[int]:
    """The common keyset cursor of odoo-facts.md, as a sync would write it."""
    seen: list[int] = []
    cursor_date, cursor_id = "2000-01-01 00:00:00", 0
    while True:
        keyset = [
            "|",
            ("write_date", ">", cursor_date),
            "&",
            ("write_date", "=", cursor_date),
            ("id", ">", cursor_id),
        ]
        rows = fake.search_read("res.partner", (domain or []) + keyset, ["id", "write_date"], limit=page,
                                order="write_date asc, id asc", context={"active_test": False})  # fmt: skip
        if not rows:
            return seen
        seen += [row["id"] for row in rows]
        cursor_date, cursor_id = rows[-1]["write_date"], rows[-1]["id"]


def test_keyset_cursor_loses_the_record_written_later_in_the_same_second(
    fake: FakeOdoo, same_second: tuple[int, int]
) -> None:
    low, high = same_second
    assert keyset_walk(fake, page=1, domain=[("id", "in", [low, high])]) == [high]  # c.3: A is missed


def test_keyset_cursor_over_demo_data_misses_records_like_real_odoo(demo: FakeOdoo) -> None:
    # c.2: page size 5 over the demo partners skips every record whose microseconds come after a higher id
    everything = set(demo.search("res.partner", [], context={"active_test": False}))
    seen = keyset_walk(demo, page=5)
    assert len(seen) == len(set(seen))
    assert sorted(everything - set(seen)) == [3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 40, 41]


def test_a_cursor_that_drains_each_second_by_id_sees_everything(demo: FakeOdoo) -> None:
    # c2.txt: a correct cursor is possible: finish the current second ordered by id, then move on
    everything = set(demo.search("res.partner", [], context={"active_test": False}))
    ctx = {"active_test": False}
    for page in (1, 5, 7):
        seen: list[int] = []
        second: str | None = None
        last_id = 0
        while True:
            if second is not None:
                rows = demo.search_read("res.partner", [("write_date", "=", second), ("id", ">", last_id)],
                                        ["id", "write_date"], limit=page, order="id asc", context=ctx)  # fmt: skip
                if rows:
                    seen += [r["id"] for r in rows]
                    last_id = rows[-1]["id"]
                    continue
            after: list[Any] = [("write_date", ">", second)] if second else []
            rows = demo.search_read("res.partner", after, ["id", "write_date"], limit=1,
                                    order="write_date asc, id asc", context=ctx)  # fmt: skip
            if not rows:
                break
            second, last_id = rows[0]["write_date"], 0
        assert sorted(seen) == sorted(everything), page


def test_archived_records_are_hidden_unless_asked_for(demo: FakeOdoo) -> None:
    # b.1-b.4
    assert demo.search_read("res.partner", [("id", "in", [41, 40])], ["id", "name", "active"]) == []
    assert demo.search_read("res.partner", [("id", "in", [41, 40])], ["id", "name", "active"],
                            context={"active_test": False}) == [
        {"id": 40, "name": "Chester Reed", "active": False},
        {"id": 41, "name": "Dwayne Newman", "active": False},
    ]  # fmt: skip
    assert demo.search_count("res.partner") == 37
    assert demo.search_count("res.partner", context={"active_test": False}) == 42
    assert demo.search_count("res.partner", [("active", "in", [True, False])]) == 42
    assert demo.read("res.partner", [41], ["id", "active"]) == [{"id": 41, "active": False}]


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ([("name", "=", "Azure Interior")], [15]),
        ([("name", "!=", "Azure Interior"), ("is_company", "=", True), ("id", "<", 10)], [1, 8, 9]),
        ([("name", "like", "Interior")], [15]),
        ([("name", "like", "interior")], []),
        ([("name", "ilike", "interior")], [15]),
        ([("name", "=like", "Azure%")], [15]),
        ([("name", "=ilike", "azure%")], [15]),
        ([("name", "not ilike", "a"), ("id", "<", 8)], [7]),
        ([("name", "not like", "e"), ("id", "<", 10)], [1]),
        ([("id", "in", [27, 28, 999])], [27, 28]),
        ([("id", "not in", list(range(1, 41)))], [42]),
        ([("parent_id", "=", 15)], [27, 28, 34]),
        ([("parent_id", "=", "Azure Interior")], [27, 28, 34]),
        ([("parent_id", "ilike", "azure")], [27, 28, 34]),
        ([("parent_id.name", "=", "Azure Interior")], [27, 28, 34]),
        ([("country_id", "=", 20), ("is_company", "=", True)], [12]),
        ([("category_id", "in", [5])], [15]),
        ([("id", "child_of", 15)], [15, 27, 28, 34]),
        ([("parent_id", "child_of", 14)], [14, 30, 31]),
        (["|", ("id", "=", 3), ("id", "=", 7)], [3, 7]),
        (["!", ("id", ">", 2)], [1]),
        (["&", ("id", ">", 25), ("id", "<", 28)], [26, 27]),
        ([("email", "=", False), ("id", "<", 20)], []),
        ([("parent_id", "=", False), ("id", ">", 38)], [42]),
        ([("color", "=", 0), ("id", "=", 3)], [3]),
    ],
)
def test_domain_operators(demo: FakeOdoo, domain: list[Any], expected: list[int]) -> None:
    assert sorted(demo.search("res.partner", domain)) == expected


def test_unknown_field_and_operator_in_a_domain_are_the_recorded_errors(fake: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        fake.search_read("res.partner", [("no_such_field", "=", 1)], ["id"])
    assert error_of(excinfo) == (
        "builtins.ValueError",
        "Invalid field res.partner.no_such_field in condition ('no_such_field', '=', 1)",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        fake.search_read("res.partner", [("name", "bogus_op", 1)])
    assert error_of(excinfo) == (
        "builtins.ValueError",
        "Invalid operator in condition ('name', 'bogus_op', 1)",
    )


def test_search_offset_limit_order_and_name_search(demo: FakeOdoo) -> None:
    # x.4 and x.5
    assert demo.search("res.partner", [], offset=2, limit=2, order="id desc") == [38, 37]  # 40, 41 archived
    assert demo.call("res.partner", "name_search", "Azure", limit=3) == [
        [15, "Azure Interior"],
        [27, "Azure Interior, Brandon Freeman"],
        [34, "Azure Interior, Colleen Diaz"],
    ]
    assert demo.call("res.partner", "search_count", [("is_company", "=", True)], limit=3) == 3
    names = [r["name"] for r in demo.search_read("res.partner", [("id", "in", [40, 41])], ["name"],
                                                context={"active_test": False})]  # fmt: skip
    assert names == ["Chester Reed", "Dwayne Newman"]  # the default order is complete_name


# ------------------------------------------------------------------------------------------ write_date


def test_one_call_stamps_every_record_with_one_write_date(fake: FakeOdoo, clock: ManualClock) -> None:
    clock.tick = timedelta(microseconds=3)
    ids = fake.create("res.partner", [{"name": f"p{i}"} for i in range(200)])
    stamps = {row["write_date"] for rid, row in fake.records("res.partner").items() if rid in ids}
    assert len(stamps) == 1  # e.2
    assert {row["create_date"] for rid, row in fake.records("res.partner").items() if rid in ids} == stamps


def test_write_date_moves_on_every_write_even_when_nothing_changes(
    fake: FakeOdoo, clock: ManualClock
) -> None:
    before = fake.records("res.partner")[3]["write_date"]
    clock.advance(1)
    fake.write("res.partner", [3], {"name": "Mitchell Admin"})
    after_same = fake.records("res.partner")[3]["write_date"]
    clock.advance(1)
    fake.write("res.partner", [3], {})
    assert before < after_same < fake.records("res.partner")[3]["write_date"]
    assert fake.records("res.partner")[3]["create_date"] == fake.records("res.partner")[3]["create_date"]


def test_a_transaction_is_stamped_at_its_start_and_visible_only_at_commit(
    fake: FakeOdoo, clock: ManualClock
) -> None:
    # e_shell: write_date == transaction start, committed seconds later
    start = clock.now
    txn = fake.begin()
    (rid,) = txn.create("res.partner", [{"name": "late"}])
    clock.advance(30)
    assert fake.search("res.partner", [("id", "=", rid)]) == []
    assert txn.read("res.partner", [rid], ["name"]) == [{"id": rid, "name": "late"}]
    later_cursor = (start + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    txn.commit()
    assert fake.records("res.partner")[rid]["write_date"] == start
    # a reader whose cursor already moved past the stamp does not see it: the CDC hazard
    assert fake.search("res.partner", [("write_date", ">", later_cursor), ("id", "=", rid)]) == []
    assert fake.search("res.partner", [("id", "=", rid)]) == [rid]


def test_begin_at_a_chosen_time_and_rollback(fake: FakeOdoo) -> None:
    with fake.begin(at=SECOND) as txn:
        txn.write("res.partner", [3], {"ref": "kept"})
    assert fake.records("res.partner")[3]["write_date"] == SECOND

    def failing_transaction() -> None:
        with fake.begin() as txn:
            txn.write("res.partner", [3], {"ref": "lost"})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert fake.records("res.partner")[3]["ref"] == "kept"


def test_a_row_locked_by_an_open_transaction_is_a_serialization_failure(fake: FakeOdoo) -> None:
    txn = fake.begin()
    txn.write("res.partner", [3], {"ref": "mine"})
    with pytest.raises(FakeOdooError) as excinfo:
        fake.write("res.partner", [3], {"ref": "theirs"})
    assert error_of(excinfo) == (
        "psycopg2.errors.SerializationFailure",
        "could not serialize access due to concurrent update\n",
    )
    txn.commit()
    fake.write("res.partner", [3], {"ref": "theirs"})
    assert fake.records("res.partner")[3]["ref"] == "theirs"


# ------------------------------------------------------------------------------------------ create / write


def written(fake: FakeOdoo, field: str, value: Any, rid: int = 3) -> Any:
    fake.write("res.partner", [rid], {field: value})
    return fake.read("res.partner", [rid], [field])[0][field]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("country_id", 20, [20, "Belgium"]),
        ("country_id", "20", False),
        ("country_id", 20.0, False),
        ("country_id", True, False),
        ("country_id", 0, False),
        ("is_company", "false", True),
        ("is_company", "0", True),
        ("is_company", 0, False),
        ("is_company", None, False),
        ("color", "42", 42),
        ("color", 4.7, 4),
        ("color", True, 1),
        ("color", None, 0),
        ("partner_latitude", "4.5", 4.5),
        ("partner_latitude", 1.123456789012345, 1.1234568),
        ("partner_latitude", None, 0.0),
        ("type", "invoice", "invoice"),
        ("type", "", False),
        ("lang", "fr_FR", "fr_FR"),
        ("ref", 42, "42"),
        ("ref", True, "True"),
        ("ref", ["a", 1], "['a', 1]"),
        ("ref", "", ""),
        ("ref", None, False),
        ("ref", "  x  ", "  x  "),
        ("comment", "<p onclick='x()'>a<script>alert(1)</script></p>", "<p>a</p>"),
        ("comment", "plain text, no tags", "<p>plain text, no tags</p>"),
        ("company_type", "company", "company"),
        ("display_name", "probe2-X", "Mitchell Admin"),
        ("credit", 10, 0.0),
        ("create_uid", 5, [1, "OdooBot"]),
    ],
)
def test_write_converts_values_like_odoo(fake: FakeOdoo, field: str, value: Any, expected: Any) -> None:
    # SUMMARY.md section 2, including the silent losses
    assert written(fake, field, value) == expected


def test_write_ignores_magic_fields_and_create_stores_an_integral_float_id(
    fake: FakeOdoo, clock: ManualClock
) -> None:
    fake.write("res.partner", [3], {"write_date": "2000-01-01 00:00:00", "id": 1, "name": "Still 3"})
    assert fake.records("res.partner")[3]["write_date"] == clock.now  # the write's own stamp, not the value
    assert fake.read("res.partner", [1], ["name"])[0]["name"] == "YourCompany"
    (rid,) = fake.create("res.partner", [{"name": "float country", "country_id": 20.0, "id": 99999}])
    assert rid != 99999
    assert fake.read("res.partner", [rid], ["country_id"])[0]["country_id"] == [20, "Belgium"]


@pytest.mark.parametrize(
    ("vals", "error"),
    [
        ({"no_such_field": 1}, ("builtins.KeyError", "no_such_field")),
        ({"color": "abc"}, ("builtins.ValueError", "invalid literal for int() with base 10: 'abc'")),
        ({"color": 99999999999}, ("psycopg2.errors.NumericValueOutOfRange", "integer out of range\n")),
        ({"partner_latitude": "abc"}, ("builtins.ValueError", "could not convert string to float: 'abc'")),
        ({"type": "Invoice"}, ("builtins.ValueError", "Wrong value for res.partner.type: 'Invoice'")),
        ({"category_id": "1,2"}, ("builtins.ValueError", "Wrong value for res.partner.category_id: 1,2")),
        ({"category_id": 1}, ("builtins.ValueError", "Wrong value for res.partner.category_id: 1")),
        ({"category_id": [1, [4, 3]]}, ("builtins.TypeError", "unhashable type: 'list'")),
        ({"parent_id": 3}, ("odoo.exceptions.ValidationError", "You cannot create recursive Partner hierarchies.")),
        ({"parent_id": "5483"}, ("builtins.ValueError", "Expected singleton: res.partner('5', '4', '8', '3')")),
        ({"parent_id": [1, "x"]}, ("builtins.ValueError", "Expected singleton: res.partner(1, 'x')")),
        (
            {"parent_id": 999999},
            ("odoo.exceptions.MissingError",
             "Record does not exist or has been deleted.\n(Record: res.partner(999999,), User: 2)"),
        ),
    ],
)  # fmt: skip
def test_write_errors_are_the_recorded_ones(
    fake: FakeOdoo, vals: dict[str, Any], error: tuple[str, str]
) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        fake.write("res.partner", [3], vals)
    assert error_of(excinfo) == error


def test_many2many_values_and_commands(demo: FakeOdoo) -> None:
    (rid,) = demo.create("res.partner", [{"name": "tags", "category_id": [1, 2]}])
    assert written(demo, "category_id", [3], rid) == [3]
    assert written(demo, "category_id", [[6, 0, [1, 2]]], rid) == [2, 1]  # read order is the tags' order
    assert written(demo, "category_id", [[4, 3]], rid) == [3, 2, 1]
    assert written(demo, "category_id", [[4, 4, 0]], rid) == [4, 3, 2, 1]
    assert written(demo, "category_id", [[3, 1]], rid) == [4, 3, 2]
    assert written(demo, "category_id", [], rid) == [4, 3, 2]  # [] does nothing
    assert written(demo, "category_id", [[5]], rid) == []
    demo.write("res.partner", [rid], {"category_id": [1, 2]})
    assert written(demo, "category_id", False, rid) == []
    demo.write("res.partner", [rid], {"category_id": [1, 2]})
    assert written(demo, "category_id", [[6, 0, []]], rid) == []
    new_tag = written(demo, "category_id", [[0, 0, {"name": "fresh"}]], rid)
    assert demo.read("res.partner.category", new_tag, ["name"])[0]["name"] == "fresh"


def test_many2many_with_unknown_ids_fails_like_the_foreign_key(demo: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        demo.write("res.partner", [3], {"category_id": [999999]})
    assert error_of(excinfo) == (
        "odoo.exceptions.ValidationError",
        "The operation cannot be completed: Another model is using the record you are trying to delete.\n\n"
        "The troublemaker is: Unknown\n"
        "Thanks to the following constraint: res_partner_res_partner_category_rel_category_id_fkey\n"
        "How about archiving the record instead?",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        demo.write("res.partner", [3], {"category_id": ["1", "2"]})
    assert error_of(excinfo) == (
        "odoo.exceptions.MissingError",
        "Record does not exist or has been deleted.\n(Record: res.partner.category('1',), User: 2)",
    )


def test_one2many_set_detach_and_empty_list(fake: FakeOdoo) -> None:
    parent, kid1, kid2 = fake.create("res.partner", [{"name": "parent", "is_company": True},
                                                     {"name": "kid1"}, {"name": "kid2"}])  # fmt: skip
    assert written(fake, "child_ids", [kid1, kid2], parent) == [kid1, kid2]
    assert written(fake, "child_ids", [kid1], parent) == [kid1]
    assert fake.read("res.partner", [kid2], ["parent_id"])[0]["parent_id"] is False
    assert written(fake, "child_ids", [[6, 0, [kid1, kid2]]], parent) == [kid1, kid2]
    assert written(fake, "child_ids", [[3, kid2]], parent) == [kid1]
    assert written(fake, "child_ids", [], parent) == [kid1]
    assert fake.read("res.partner", [kid2], ["name"]) != []  # detached, not deleted


def test_create_errors_and_required_fields(demo: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        demo.create("res.partner", [{"name": "x", "no_such_field": 1}])
    assert error_of(excinfo) == ("builtins.ValueError", "Invalid field 'no_such_field' in 'res.partner'")
    with pytest.raises(FakeOdooError) as excinfo:
        demo.create("res.partner", [{"name": None}])
    assert error_of(excinfo) == (
        "odoo.exceptions.ValidationError",
        "The operation cannot be completed: Contacts require a name",
    )
    assert excinfo.value.status == 422
    (blank,) = demo.create("res.partner", [{"name": ""}])  # g.E9: '' passes the CHECK constraint
    assert demo.read("res.partner", [blank], ["name"]) == [{"id": blank, "name": ""}]
    with pytest.raises(FakeOdooError) as excinfo:
        demo.create("sale.order", [{"name": "no customer"}])
    assert error_of(excinfo) == (
        "odoo.exceptions.ValidationError",
        "The operation cannot be completed: Missing required value for the field 'Customer' (partner_id).\n"
        "Model: 'Sales Order' (sale.order)\n- create/update: a mandatory field is not set\n"
        "- delete: another model requires the record being deleted, you can archive it instead\n",
    )
    assert demo.call("res.partner", "create", {"name": "single"}) > 42  # a single dict gives a bare id


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("validity_date", "2026-01-31", "2026-01-31"),
        ("validity_date", "2026-01-31T10:00:00", "2026-01-31"),
        ("validity_date", "", False),
        ("commitment_date", "2026-01-31 10:00:00", "2026-01-31 10:00:00"),
        ("commitment_date", "2026-01-31", "2026-01-31 00:00:00"),
        ("commitment_date", "2026-01-31 10:00", "2026-01-31 10:00:00"),
        ("commitment_date", "2026-07-31 10:00:00", "2026-07-31 10:00:00"),
        ("commitment_date", None, False),
    ],
)
def test_dates_and_datetimes_are_stored_as_given_without_timezone(
    demo: FakeOdoo, field: str, value: Any, expected: Any
) -> None:
    demo.write("sale.order", [1], {field: value})
    assert demo.read("sale.order", [1], [field])[0][field] == expected


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("validity_date", "31/01/2026", ("builtins.ValueError", "time data '31/01/2026' does not match format '%Y-%m-%d'")),
        ("validity_date", "2026-02-30", ("builtins.ValueError", "day is out of range for month")),
        ("validity_date", 20260131, ("builtins.TypeError", "'int' object is not subscriptable")),
        ("commitment_date", "2026-01-31T10:00:00",
         ("builtins.ValueError", "time data '2026-01-31T10:00:00' does not match format '%Y-%m-%d %H:%M:%S'")),
        ("commitment_date", "2026-01-31 10:00:00.123456", ("builtins.ValueError", "unconverted data remains: .123456")),
        ("partner_id", None, ("odoo.exceptions.ValidationError",
                              "The operation cannot be completed: Missing required value for the field 'Customer' "
                              "(partner_id).\nModel: 'Sales Order' (sale.order)\n- create/update: a mandatory field "
                              "is not set\n- delete: another model requires the record being deleted, you can "
                              "archive it instead\n")),
    ],
)  # fmt: skip
def test_date_and_datetime_errors(demo: FakeOdoo, field: str, value: Any, error: tuple[str, str]) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        demo.write("sale.order", [1], {field: value})
    assert error_of(excinfo) == error


def test_inverse_fields_write_through(demo: FakeOdoo) -> None:
    assert written(demo, "company_type", "company") == "company"
    assert demo.read("res.partner", [3], ["is_company"])[0]["is_company"] is True
    demo.write("product.product", [1], {"lst_price": 55.5})
    assert demo.read("product.product", [1], ["list_price", "lst_price"]) == [
        {"id": 1, "list_price": 55.5, "lst_price": 55.5}
    ]


# ------------------------------------------------------------------------------------------ unlink / archive


def test_missing_records_are_missing_errors_and_nothing_is_applied(fake: FakeOdoo) -> None:
    (rid,) = fake.create("res.partner", [{"name": "doomed"}])
    message = "Record does not exist or has been deleted.\n(Record: res.partner(999999,), User: 2)"
    for method, args in (("write", ([999999], {"name": "ghost"})), ("unlink", ([rid, 999999],)),
                         ("action_archive", ([999999],)), ("action_unarchive", ([999999],))):  # fmt: skip
        with pytest.raises(FakeOdooError) as excinfo:
            fake.call("res.partner", method, *args)
        assert error_of(excinfo) == ("odoo.exceptions.MissingError", message)
        assert excinfo.value.status == 404
    assert fake.read("res.partner", [rid], ["name"]) == [{"id": rid, "name": "doomed"}]
    assert fake.unlink("res.partner", []) is True


def test_unlinking_a_referenced_record_is_refused(demo: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        demo.unlink("res.partner", [1])
    assert error_of(excinfo) == (
        "odoo.exceptions.ValidationError",
        "The operation cannot be completed: Another model is using the record you are trying to delete.\n\n"
        "The troublemaker is: 'Companies' (res.company)\nThanks to the following constraint: 'Partner' "
        "(partner_id)\nHow about archiving the record instead?",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        demo.unlink("res.partner", [10])
    assert (
        "'Sales Order' (sale.order)\nThanks to the following constraint: 'Customer'" in excinfo.value.message
    )
    with pytest.raises(FakeOdooError) as excinfo:
        demo.unlink("sale.order", [2])
    assert error_of(excinfo) == (
        "odoo.exceptions.UserError",
        "You can not delete a sent quotation or a confirmed sales order. You must first cancel it.",
    )


def test_unlinking_a_parent_detaches_children_without_touching_them(
    demo: FakeOdoo, clock: ManualClock
) -> None:
    child_before = demo.records("res.partner")[32]
    clock.advance(5)
    demo.unlink("res.partner", [16])
    child_after = demo.records("res.partner")[32]
    assert child_after["parent_id"] is None
    assert child_after["write_date"] == child_before["write_date"]  # a foreign key ON DELETE SET NULL


def test_unlinking_a_tag_removes_it_from_partners(demo: FakeOdoo) -> None:
    demo.unlink("res.partner.category", [5])
    assert demo.read("res.partner", [15], ["category_id"]) == [{"id": 15, "category_id": []}]


def test_archive_and_unarchive(demo: FakeOdoo) -> None:
    assert demo.call("res.partner", "action_archive", [27]) is None
    assert demo.search("res.partner", [("id", "=", 27)]) == []
    demo.unarchive("res.partner", [27])
    assert demo.search("res.partner", [("id", "=", 27)]) == [27]


# ------------------------------------------------------------------------------------------ schema


def test_fields_get_matches_the_recording(fake: FakeOdoo) -> None:
    for model, recorded in (
        ("res.partner", RECORDED_PARTNER_FIELDS),
        ("product.product", RECORDED_PRODUCT_FIELDS),
    ):
        described = fake.fields_get(model, attributes=["type", "store", "readonly", "required",
                                                       "company_dependent", "string", "relation"])  # fmt: skip
        for name, (kind, store, readonly, required, company_dependent, string, relation) in recorded.items():
            expected = {"type": kind, "store": store, "readonly": readonly, "required": required,
                        "company_dependent": company_dependent, "string": string}  # fmt: skip
            if relation:
                expected["relation"] = relation
            assert described[name] == expected, (model, name)
    types = {desc["type"] for desc in fake.fields_get("res.partner", attributes=["type"]).values()}
    assert types == RECORDED_PARTNER_TYPES


def test_fields_get_shapes(fake: FakeOdoo) -> None:
    # g.6 with attributes, d.1 without
    assert fake.fields_get("res.partner", ["name", "write_date"], ["type", "store", "readonly", "required",
                                                                   "relation"]) == {
        "name": {"readonly": False, "required": False, "store": True, "type": "char"},
        "write_date": {"readonly": True, "required": False, "store": True, "type": "datetime"},
    }  # fmt: skip
    full = fake.fields_get("res.partner", ["name", "parent_id"])
    assert full["name"] == {
        "change_default": False, "company_dependent": False, "default_export_compatible": True, "depends": [],
        "exportable": True, "groupable": True, "manual": False, "name": "name", "readonly": False,
        "required": False, "searchable": True, "sortable": True, "store": True, "string": "Name",
        "translate": False, "trim": True, "type": "char",
    }  # fmt: skip
    assert full["parent_id"]["relation"] == "res.partner"
    assert full["parent_id"]["allow_hierachy_operators"] is True
    described = fake.fields_get("res.partner", ["type", "credit"], ["selection", "currency_field"])
    assert described["type"]["selection"][0] == ["contact", "Contact"]
    assert described["credit"] == {"currency_field": "currency_id"}


def test_declare_model_and_add_a_field_later(fake: FakeOdoo) -> None:
    fake.declare_model("x.thing", {"name": FieldSpec("char", string="Name"),
                                   "partner_id": FieldSpec("many2one", relation="res.partner")})  # fmt: skip
    (rid,) = fake.create("x.thing", [{"name": "one", "partner_id": 3}])
    assert fake.read("x.thing", [rid], ["name", "partner_id", "display_name"]) == [
        {"id": rid, "name": "one", "partner_id": [3, "Mitchell Admin"], "display_name": "one"}
    ]
    fake.declare_model("x.thing", {"size": FieldSpec("integer", default=7), "note": FieldSpec("text")})
    assert fake.read("x.thing", [rid], ["size", "note"]) == [{"id": rid, "size": 7, "note": False}]
    assert fake.fields_get("x.thing", ["size"], ["type", "string"]) == {
        "size": {"type": "integer", "string": "Size"}
    }
    assert set(fake.fields_get("x.thing")) >= {
        "id",
        "display_name",
        "create_date",
        "write_date",
        "create_uid",
    }
    with pytest.raises(ValueError, match="not a declared model"):
        fake.declare_model("x.other", {"ref_id": FieldSpec("many2one", relation="x.nowhere")})


def test_external_ids_are_records(demo: FakeOdoo) -> None:
    assert demo.call("ir.model.data", "check_object_reference", "base", "main_partner") == ["res.partner", 1]
    assert demo.call("res.partner", "get_external_id", [15, 3]) == {
        "15": "base.res_partner_15",
        "3": "base.partner_admin",
    }
    rows = demo.search_read("ir.model.data", [("module", "=", "base"), ("name", "=", "be")],
                            ["module", "name", "model", "res_id", "complete_name", "noupdate"])  # fmt: skip
    assert [{k: v for k, v in r.items() if k != "id"} for r in rows] == [
        {"module": "base", "name": "be", "model": "res.country", "res_id": 20, "complete_name": "base.be",
         "noupdate": False}
    ]  # fmt: skip
    with pytest.raises(FakeOdooError) as excinfo:
        demo.call("ir.model.data", "check_object_reference", "base", "nope")
    assert error_of(excinfo) == ("builtins.ValueError", "External ID not found in the system: base.nope")
    demo.unlink("res.partner", [42])
    assert demo.ref("base.res_partner_42") is None


def test_access_rights_of_the_demo_user(fake: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        fake.call("ir.config_parameter", "search_read", [], ["key"], uid=5)
    assert error_of(excinfo) == (
        "odoo.exceptions.AccessError",
        "You are not allowed to access 'System Parameter' (ir.config_parameter) records.\n\n"
        "This operation is allowed for the following groups:\n\t- Role / Administrator\n\n"
        "Contact your administrator to request access if necessary.",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        fake.call("res.users", "create", [{"name": "hacker", "login": "hacker"}], uid=5)
    assert excinfo.value.message.startswith("You are not allowed to create 'User' (res.users) records.")
    assert fake.call("ir.config_parameter", "get_param", "web.base.url") == "http://localhost:8069"


def test_many_records_page_through_a_keyset_cursor(fake: FakeOdoo, clock: ManualClock) -> None:
    # A sanity check of the indexed search path (no timing): 10k records across a few seconds.
    fake.declare_model("x.bulk", {"name": FieldSpec("char"), "qty": FieldSpec("integer")})
    clock.tick = timedelta(microseconds=37)
    for batch in range(10):
        fake.create("x.bulk", [{"name": f"n{batch}-{i}", "qty": i} for i in range(1000)])
        clock.advance(0.4)
    fake.write("x.bulk", list(range(1, 1001, 7)), {"qty": -1})  # moves some to the end
    seen: list[int] = []
    second: str | None = None
    last_id = 0
    while True:
        if second is not None:
            rows = fake.search_read("x.bulk", [("write_date", "=", second), ("id", ">", last_id)], ["id"],
                                    limit=500, order="id asc")  # fmt: skip
            if rows:
                seen += [r["id"] for r in rows]
                last_id = rows[-1]["id"]
                continue
        after: list[Any] = [("write_date", ">", second)] if second else []
        first = fake.search_read("x.bulk", after, ["write_date"], limit=1, order="write_date asc, id asc")
        if not first:
            break
        second, last_id = first[0]["write_date"], 0
    assert sorted(seen) == list(range(1, 10001))
    newest = fake.search_read("x.bulk", [], ["id", "qty"], limit=3, order="write_date desc, id desc")
    assert [row["qty"] for row in newest] == [-1, -1, -1]
    assert fake.search_count("x.bulk", [("qty", "=", -1)]) == 143
