"""The fake Odoo's ``load()`` import against ``odoo-wire/f.txt`` and ``odoo-wire/write/SUMMARY.md`` section 1."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from syncd.testing import FakeOdoo, FakeOdooError, ManualClock

pytestmark = pytest.mark.unit

COUNTRY_VALUES = {
    "name": "Possible Values", "type": "ir.actions.act_window", "target": "new", "view_mode": "list,form",
    "views": [[False, "list"], [False, "form"]], "context": {"create": False}, "help": "See all possible values",
    "res_model": "res.country",
}  # fmt: skip
PARTNER_IDS = {**COUNTRY_VALUES, "res_model": "ir.model.data", "domain": [["model", "=", "res.partner"]]}


@pytest.fixture
def fake() -> FakeOdoo:
    return FakeOdoo(demo_data=True, clock=ManualClock(datetime(2026, 11, 22, 19, 42, 52, 658642)))


def load(fake: FakeOdoo, fields: list[str], *rows: list[Any], context: dict[str, Any] | None = None) -> Any:
    return fake.load("res.partner", fields, list(rows), context=context)


def one(fake: FakeOdoo, field: str, cell: Any, *, xmlid: str = "probe2.cell", **kwargs: Any) -> Any:
    """Load one cell into a record and read the field back (None when the load failed)."""
    result = load(fake, ["id", "name", field], [xmlid, "probe2-cell", cell], **kwargs)
    if result["ids"] is False:
        return result["messages"]
    name = re.split(r"[/:.]", field)[0]
    return fake.read("res.partner", result["ids"], [name])[0][name]


def error(row: int, field: str | None, message: str, **extra: Any) -> dict[str, Any]:
    if field is None:
        return {"rows": {"from": row, "to": row}, "record": row, "type": "error", "message": message, **extra}
    return {"rows": {"from": row, "to": row}, "type": "error", "record": row, "field": field, "message": message,
            **extra}  # fmt: skip


# ------------------------------------------------------------------------------------------ upsert


def test_an_external_id_creates_then_updates_the_same_record(fake: FakeOdoo) -> None:
    # f.1, f.2, f.3
    first = load(fake, ["id", "name", "email"], ["syncd_test.partner_1", "Test One", "a@b.c"])
    assert first["messages"] == [] and first["nextrow"] == 0
    (rid,) = first["ids"]
    second = load(fake, ["id", "name", "email"], ["syncd_test.partner_1", "Test One (renamed)", "a@b.c"])
    assert second == {"ids": [rid], "messages": [], "nextrow": 0}
    assert fake.search_read("res.partner", [("name", "like", "Test One")], ["name"]) == [
        {"id": rid, "name": "Test One (renamed)"}
    ]
    assert fake.call("ir.model.data", "check_object_reference", "syncd_test", "partner_1") == [
        "res.partner",
        rid,
    ]
    assert fake.call("res.partner", "get_external_id", [rid]) == {str(rid): "syncd_test.partner_1"}


def test_one_load_stamps_all_its_rows_with_one_write_date(fake: FakeOdoo) -> None:
    rows = [[f"probe2.many_{i}", f"many {i}"] for i in range(200)]
    result = fake.load("res.partner", ["id", "name"], rows)
    stamps = {fake.records("res.partner")[rid]["write_date"] for rid in result["ids"]}
    assert len(stamps) == 1  # e.2


def test_external_id_naming(fake: FakeOdoo) -> None:
    # f.4 and 1f: no dot -> __import__; split at the first dot; case-sensitive; spaces rejected
    (bare,) = load(fake, ["id", "name"], ["bare_xmlid_1", "Bare"])["ids"]
    assert fake.ref("__import__.bare_xmlid_1") == ("res.partner", bare)
    (dotted,) = load(fake, ["id", "name"], ["probe2.user@example.com", "Dotted"])["ids"]
    imd = fake.search_read(
        "ir.model.data", [("model", "=", "res.partner"), ("res_id", "=", dotted)], ["module", "name"]
    )
    assert [(row["module"], row["name"]) for row in imd] == [("probe2", "user@example.com")]
    (upper,) = load(fake, ["id", "name"], ["probe2.CaseTest", "Upper"])["ids"]
    (lower,) = load(fake, ["id", "name"], ["probe2.casetest", "Lower"])["ids"]
    assert upper != lower
    result = load(fake, ["id", "name"], ["probe2.has space", "Spaced"])
    assert result["ids"] is False
    (message,) = result["messages"]
    assert message["message"].startswith(
        'new row for relation "ir_model_data" violates check constraint "ir_model_data_name_nospaces"'
    )
    assert "field" not in message


def test_a_deleted_record_gets_a_new_one_and_a_dangling_external_id_is_replaced(fake: FakeOdoo) -> None:
    # f.8 and 1e
    (old,) = load(fake, ["id", "name"], ["syncd_test.partner_9", "Nine"])["ids"]
    fake.unlink("res.partner", [old])
    assert fake.ref("syncd_test.partner_9") is None  # the external id went with the record
    (new,) = load(fake, ["id", "name"], ["syncd_test.partner_9", "Nine again"])["ids"]
    assert new != old
    assert fake.ref("syncd_test.partner_9") == ("res.partner", new)


def test_an_archived_record_is_updated_in_place(fake: FakeOdoo) -> None:
    (rid,) = load(fake, ["id", "name"], ["probe2.arch", "archived"])["ids"]
    fake.archive("res.partner", [rid])
    assert load(fake, ["id", "name"], ["probe2.arch", "renamed"])["ids"] == [rid]
    assert fake.read("res.partner", [rid], ["name", "active"]) == [
        {"id": rid, "name": "renamed", "active": False}
    ]
    assert load(fake, ["id", "active"], ["probe2.arch", "1"])["ids"] == [rid]
    assert fake.read("res.partner", [rid], ["active"])[0]["active"] is True
    load(fake, ["id", "active"], ["probe2.arch", ""])  # an empty cell is False: it archives
    assert fake.read("res.partner", [rid], ["active"])[0]["active"] is False


def test_the_dot_id_column_updates_by_database_id(fake: FakeOdoo) -> None:
    (rid,) = load(fake, ["id", "name"], ["probe2.byid", "by id"])["ids"]
    assert load(fake, [".id", "ref"], [str(rid), "by-dbid"])["ids"] == [rid]
    fake.archive("res.partner", [rid])
    assert load(fake, [".id", "ref"], [str(rid), "archived"]) == {
        "ids": False,
        "messages": [
            error(0, ".id", f"Unknown database identifier '{rid}'"),
            error(0, None, "Contacts require a name"),
        ],
        "nextrow": 0,
    }
    assert load(fake, [".id", "ref"], [str(rid), "archived"], context={"active_test": False})["ids"] == [rid]
    assert load(fake, ["id", ".id", "ref"], ["probe2.byid", "999999", "both"])["ids"] == [rid]


def test_partial_rows_touch_only_their_columns(fake: FakeOdoo) -> None:
    fields = ["id", "name", "email", "ref", "color", "is_company", "category_id/.id", "comment"]
    (rid,) = load(
        fake, fields, ["probe2.partial", "partial", "full@example.com", "R1", "5", "1", "1,2", "<p>c</p>"]
    )["ids"]
    load(fake, ["id", "email"], ["probe2.partial", "changed@example.com"])
    load(fake, ["id", "ref"], ["probe2.partial", ""])
    assert fake.read("res.partner", [rid], [*fields[1:6], "category_id", "comment"]) == [
        {"id": rid, "name": "partial", "email": "changed@example.com", "ref": False, "color": 5,
         "is_company": True, "category_id": [2, 1], "comment": "<p>c</p>"}
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ scalar cells


@pytest.mark.parametrize(
    ("field", "cell", "expected"),
    [
        ("is_company", "1", True), ("is_company", "true", True), ("is_company", "YES", True),
        ("is_company", "0", False), ("is_company", "False", False), ("is_company", "no", False),
        ("is_company", "", False), ("is_company", None, False), ("is_company", 0, False),
        ("color", "42", 42), ("color", " 42 ", 42), ("color", "+5", 5), ("color", "1_000", 1000),
        ("color", "", 0), ("color", 4.5, 4), ("color", True, 1),
        ("partner_latitude", "1e3", 1000.0), ("partner_latitude", " 4.5 ", 4.5),
        ("partner_latitude", "1.123456789012345", 1.1234568), ("partner_latitude", "", 0.0),
        ("type", "Delivery", "delivery"), ("type", "CONTACT", "contact"), ("type", "", False),
        ("lang", "English (US)", "en_US"),
        ("ref", 42, "42"), ("ref", True, "True"), ("ref", [1, 2], "[1, 2]"), ("ref", {"a": 1}, "{'a': 1}"),
        ("ref", "  x, \"y\"\n", "  x, \"y\"\n"), ("ref", "", False), ("ref", None, False),
        ("comment", "<script>x()</script>hi", "<p>hi</p>"),
    ],
)  # fmt: skip
def test_cells_are_converted_like_an_import(fake: FakeOdoo, field: str, cell: Any, expected: Any) -> None:
    assert one(fake, field, cell) == expected


@pytest.mark.parametrize(
    ("field", "cell", "message", "extra"),
    [
        ("is_company", "t", "Unknown value 't' for boolean field 'Is a Company'",
         {"moreinfo": "Use '1' for yes and '0' for no", "field_name": "Is a Company"}),
        ("is_company", "on", "Unknown value 'on' for boolean field 'Is a Company'",
         {"moreinfo": "Use '1' for yes and '0' for no", "field_name": "Is a Company"}),
        ("color", "4.5", "'4.5' does not seem to be an integer for field 'Color Index'", {"field_name": "Color Index"}),
        ("color", "0x10", "'0x10' does not seem to be an integer for field 'Color Index'", {"field_name": "Color Index"}),
        ("partner_latitude", "1,5", "'1,5' does not seem to be a number for field 'Geo Latitude'",
         {"field_name": "Geo Latitude"}),
        ("type", "delivery ", "Value 'delivery ' not found in selection field 'Address Type'",
         {"moreinfo": ["Contact", "Invoice", "Delivery", "Other"], "field_name": "Address Type"}),
        ("lang", "fr_FR", "Value 'fr_FR' not found in selection field 'Language'",
         {"moreinfo": ["English (US)"], "field_name": "Language"}),
    ],
)  # fmt: skip
def test_bad_cells_are_row_errors(
    fake: FakeOdoo, field: str, cell: str, message: str, extra: dict[str, Any]
) -> None:
    assert one(fake, field, cell) == [error(0, field, message, **extra)]
    assert fake.search("res.partner", [("name", "=", "probe2-cell")]) == []


@pytest.mark.parametrize(
    ("cell", "message", "extra"),
    [
        ("99999999999", "integer out of range\n", {}),
        ("nan", "Unknown error during import: <class 'ValueError'>: cannot convert float NaN to integer",
         {"moreinfo": "Resolve other errors first"}),
        ("inf", "Unknown error during import: <class 'OverflowError'>: cannot convert float infinity to integer",
         {"moreinfo": "Resolve other errors first"}),
    ],
)  # fmt: skip
def test_database_level_cell_errors_carry_no_field(
    fake: FakeOdoo, cell: str, message: str, extra: Any
) -> None:
    field = "color" if cell.isdigit() else "partner_latitude"
    assert one(fake, field, cell) == [error(0, None, message, **extra)]


@pytest.mark.parametrize(
    ("cell", "name", "message"),
    [
        (True, "builtins.AttributeError", "'bool' object has no attribute 'lower'"),
        (1, "builtins.AttributeError", "'int' object has no attribute 'lower'"),
    ],
)
def test_non_string_cells_where_odoo_calls_string_methods_raise(
    fake: FakeOdoo, cell: Any, name: str, message: str
) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        load(fake, ["id", "name", "is_company"], ["probe2.ns", "ns", cell])
    assert (excinfo.value.name, excinfo.value.message, excinfo.value.status) == (name, message, 500)
    assert fake.ref("probe2.ns") is None


def test_malformed_calls_raise(fake: FakeOdoo) -> None:
    with pytest.raises(FakeOdooError) as excinfo:
        load(fake, ["id", "name", "no_such_field"], ["syncd_test.partner_4", "Four", "x"])
    assert (excinfo.value.name, excinfo.value.message) == (
        "builtins.ValueError",
        "Invalid field name 'no_such_field'",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        load(fake, ["id", "name"], [12345, "int id"])
    assert (excinfo.value.name, excinfo.value.message) == (
        "builtins.TypeError",
        "argument of type 'int' is not iterable",
    )
    with pytest.raises(FakeOdooError) as excinfo:
        fake.load("sale.order", ["id", "validity_date"], [["probe2.so", 20260131]])
    assert excinfo.value.message == "'int' object is not subscriptable"
    with pytest.raises(FakeOdooError) as excinfo:
        load(fake, ["id", "name", "category_id/.id"], ["probe2.ns", "ns", [1, 2]])
    assert excinfo.value.message == "'list' object has no attribute 'split'"


def test_row_shapes(fake: FakeOdoo) -> None:
    (short,) = load(fake, ["id", "name", "ref"], ["probe2.short", "short"])["ids"]
    assert fake.read("res.partner", [short], ["ref"])[0]["ref"] is False
    assert len(load(fake, ["id", "name"], ["probe2.long", "long", "extra"])["ids"]) == 1
    first, second = (load(fake, ["id", "name"], [None, "no id"])["ids"][0] for _ in range(2))
    assert first != second  # no external id: a new record every time
    (keys,) = fake.load("res.partner", ["id", "name"], [{"id": "probe2.dict", "name": "x"}])["ids"]  # type: ignore[list-item]
    assert (
        fake.read("res.partner", [keys], ["name"])[0]["name"] == "name"
    )  # a dict row is iterated by its keys
    assert fake.ref("__import__.id") == ("res.partner", keys)
    assert fake.load("res.partner", ["id", "name"], []) == {"ids": [], "messages": [], "nextrow": 0}


@pytest.mark.parametrize(
    ("cell", "context", "stored"),
    [
        ("2026-01-31 10:00:00", None, datetime(2026, 1, 31, 9, 0)),  # admin's tz: Europe/Brussels (CET)
        ("2026-07-31 10:00:00", None, datetime(2026, 7, 31, 8, 0)),  # CEST
        ("2026-01-31 10:00:00", {"tz": "UTC"}, datetime(2026, 1, 31, 10, 0)),
        ("2026-01-31 10:00:00", {"tz": "America/New_York"}, datetime(2026, 1, 31, 15, 0)),
        ("2026-01-31 10:00:00", {"tz": "Not/AZone"}, datetime(2026, 1, 31, 10, 0)),
        ("2026-01-31", None, datetime(2026, 1, 30, 23, 0)),
        ("2026-01-31 10:00", {"tz": "UTC"}, datetime(2026, 1, 31, 10, 0)),
        ("2026-03-29 02:30:00", None, datetime(2026, 3, 29, 1, 30)),  # DST gap: standard time wins
        ("2026-10-25 02:30:00", None, datetime(2026, 10, 25, 1, 30)),  # DST overlap: standard time wins
    ],
)
def test_datetimes_are_read_in_the_users_timezone(
    fake: FakeOdoo, cell: str, context: dict[str, Any] | None, stored: datetime
) -> None:
    result = fake.load("sale.order", ["id", "partner_id/.id", "commitment_date"], [["probe2.so", "10", cell]],
                       context=context)  # fmt: skip
    (rid,) = result["ids"]
    assert fake.records("sale.order")[rid]["commitment_date"] == stored


@pytest.mark.parametrize(
    ("field", "cell", "stored"),
    [("validity_date", "2026-1-5", "2026-01-05"), ("validity_date", "2026-01-31T10:00:00", "2026-01-31")],
)
def test_dates_take_the_first_ten_characters(fake: FakeOdoo, field: str, cell: str, stored: str) -> None:
    (rid,) = fake.load("sale.order", ["id", "partner_id/.id", field], [["probe2.so", "10", cell]])["ids"]
    assert fake.read("sale.order", [rid], [field])[0][field] == stored


@pytest.mark.parametrize(
    ("field", "cell", "message", "moreinfo"),
    [
        ("validity_date", "31/01/2026", "'31/01/2026' does not seem to be a valid date for field 'Expiration'",
         "Use the format '2012-12-31'"),
        ("validity_date", "2026-02-30", "'2026-02-30' does not seem to be a valid date for field 'Expiration'",
         "Use the format '2012-12-31'"),
        ("commitment_date", "2026-01-31T10:00:00",
         "'2026-01-31T10:00:00' does not seem to be a valid datetime for field 'Delivery Date'",
         "Use the format '2012-12-31 23:59:59'"),
        ("commitment_date", "2026-01-31 10:00:00.123456",
         "'2026-01-31 10:00:00.123456' does not seem to be a valid datetime for field 'Delivery Date'",
         "Use the format '2012-12-31 23:59:59'"),
    ],
)  # fmt: skip
def test_bad_dates_are_row_errors(fake: FakeOdoo, field: str, cell: str, message: str, moreinfo: str) -> None:
    result = fake.load("sale.order", ["id", "partner_id/.id", field], [["probe2.so", "10", cell]])
    label = "Expiration" if field == "validity_date" else "Delivery Date"
    assert result["messages"] == [error(0, field, message, moreinfo=moreinfo, field_name=label)]


# ------------------------------------------------------------------------------------------ relations


def test_many2one_by_database_id_external_id_and_name(fake: FakeOdoo) -> None:
    # f.6 and 1d
    load(fake, ["id", "name", "is_company"], ["probe2.parent_b", "probe2-parent-B", "1"])
    parent_b = fake.ref("probe2.parent_b")
    assert parent_b is not None
    assert one(fake, "parent_id/.id", "15") == [15, "Azure Interior"]
    assert one(fake, "parent_id/id", "probe2.parent_b") == [parent_b[1], "probe2-parent-B"]
    assert one(fake, "parent_id", "Azure Interior") == [15, "Azure Interior"]
    assert one(fake, "parent_id:id", "probe2.parent_b") == [parent_b[1], "probe2-parent-B"]
    assert one(fake, "parent_id.id", "15") == [15, "Azure Interior"]
    for clearing in ("", "0", "false"):
        fake.write("res.partner", [fake.ref("probe2.cell")[1]], {"parent_id": 15})  # type: ignore[index]
        assert one(fake, "parent_id/.id", clearing) is False
    assert one(fake, "country_id", "Belgium") == [20, "Belgium"]
    assert one(fake, "country_id", "BE") == [20, "Belgium"]
    assert one(fake, "country_id/id", "base.fr") == [75, "France"]


@pytest.mark.parametrize(
    ("field", "cell", "expected"),
    [
        ("country_id", "Atlantis", error(0, "country_id", "No matching record found for name 'Atlantis' in field 'Country'",
                                         moreinfo=COUNTRY_VALUES, field_name="Country")),
        ("country_id", "belgium", error(0, "country_id", "No matching record found for name 'belgium' in field 'Country'",
                                        moreinfo=COUNTRY_VALUES, field_name="Country")),
        ("parent_id/.id", "999999", error(0, "parent_id", "No matching record found for database id '999999' in field "
                                          "'Related Company'", moreinfo=PARTNER_IDS, field_name="Related Company")),
        ("parent_id/.id", "abc", error(0, "parent_id", "Invalid database id 'abc' for the field 'Related Company'",
                                       moreinfo=PARTNER_IDS, field_name="Related Company")),
        ("parent_id/id", "probe2.nope", error(0, "parent_id", "No matching record found for external id 'probe2.nope' "
                                              "in field 'Related Company'", moreinfo=PARTNER_IDS,
                                              field_name="Related Company")),
        ("parent_id/id", "base.res_partner_category_0", error(0, "parent_id", "Invalid external ID "
                                                              "base.res_partner_category_0: expected model "
                                                              "'res.partner', found 'res.partner.category'")),
        ("parent_id/name", "x", error(0, "parent_id", "Can not create Many-To-One records indirectly, import the "
                                      "field separately")),
    ],
)  # fmt: skip
def test_bad_references_are_row_errors(
    fake: FakeOdoo, field: str, cell: str, expected: dict[str, Any]
) -> None:
    # f.5 for the country
    assert one(fake, field, cell) == [expected]


def test_ambiguous_reference_columns(fake: FakeOdoo) -> None:
    result = load(
        fake,
        ["id", "name", "parent_id/.id", "parent_id/id"],
        ["probe2.amb", "amb", "15", "base.main_partner"],
    )
    assert result["messages"] == [
        error(0, "parent_id", "Ambiguous specification for field 'Related Company', only provide one of name, "
                              "external id or database id")
    ]  # fmt: skip


def test_archived_targets_resolve_by_id_but_not_by_name(fake: FakeOdoo) -> None:
    assert one(fake, "parent_id/.id", "40") == [40, "Chester Reed"]
    assert one(fake, "parent_id/id", "base.res_partner_40") == [40, "Chester Reed"]
    messages = one(fake, "parent_id", "Chester Reed")
    assert (
        messages[0]["message"]
        == "No matching record found for name 'Chester Reed' in field 'Related Company'"
    )


def test_many2many_cells(fake: FakeOdoo) -> None:
    assert one(fake, "category_id/.id", "1,2") == [2, 1]
    assert one(fake, "category_id/.id", "3") == [3]  # replaces
    assert one(fake, "category_id/.id", "1, 2") == [2, 1]
    assert one(fake, "category_id/.id", "2,2,1") == [2, 1]
    assert one(fake, "category_id/id", "base.res_partner_category_0,base.res_partner_category_2") == [2, 1]
    assert one(fake, "category_id", "Vendor,Prospects") == [2, 1]
    assert one(fake, "category_id/.id", "") == []
    assert one(fake, "category_id/.id", "1,2") == [2, 1]
    assert one(fake, "category_id/.id", "3", context={"update_many2many": True}) == [3, 2, 1]
    assert (
        one(fake, "category_id/.id", "1 2")[0]["message"] == "Invalid database id '1 2' for the field 'Tags'"
    )
    assert one(fake, "category_id/.id", "1,999999")[0]["message"] == (
        "No matching record found for database id '999999' in field 'Tags'"
    )
    spaced = one(fake, "category_id/id", "base.res_partner_category_0, base.res_partner_category_3")
    assert spaced[0]["message"] == (
        "No matching record found for external id ' base.res_partner_category_3' in field 'Tags'"
    )


def test_one2many_cells_only_add(fake: FakeOdoo) -> None:
    assert one(fake, "child_ids/.id", "27", xmlid="probe2.o2m") == [27]
    assert one(fake, "child_ids/.id", "28", xmlid="probe2.o2m") == [27, 28]
    assert one(fake, "child_ids/.id", "", xmlid="probe2.o2m") == []
    assert fake.read("res.partner", [27], ["parent_id"])[0]["parent_id"] is False  # detached, not deleted


# ------------------------------------------------------------------------------------------ batches


def test_a_bad_row_rolls_back_the_whole_batch(fake: FakeOdoo) -> None:
    # f.7 and 1g: the good rows, including updates of existing records, are rolled back too
    load(fake, ["id", "name", "ref"], ["probe2.existing", "existing", "before"])
    result = load(
        fake,
        ["id", "name", "ref", "color"],
        ["probe2.existing", "existing", "after", "1"],
        ["probe2.b2", "b2", "x", "notanint"],
        ["probe2.b3", "b3", "y", "2"],
    )
    assert result == {
        "ids": False,
        "messages": [error(1, "color", "'notanint' does not seem to be an integer for field 'Color Index'",
                           field_name="Color Index")],
        "nextrow": 0,
    }  # fmt: skip
    assert fake.search_read("res.partner", [("name", "=", "existing")], ["ref"])[0]["ref"] == "before"
    assert fake.ref("probe2.b3") is None


def test_every_bad_row_is_reported(fake: FakeOdoo) -> None:
    result = load(
        fake,
        ["id", "name", "parent_id/id", "type"],
        ["probe2.c1", "c1", "", "contact"],
        ["probe2.c2", "c2", "probe2.missing", "contact"],
        ["probe2.c3", "c3", "", "alien"],
        ["probe2.c4", "", "", "contact"],
    )
    assert [(m["rows"]["from"], m.get("field"), m["message"]) for m in result["messages"]] == [
        (
            1,
            "parent_id",
            "No matching record found for external id 'probe2.missing' in field 'Related Company'",
        ),
        (2, "type", "Value 'alien' not found in selection field 'Address Type'"),
        (3, None, "Contacts require a name"),
    ]
    assert result["ids"] is False


def test_errors_are_capped_at_ten(fake: FakeOdoo) -> None:
    result = load(fake, ["id", "name"], *[[f"probe2.many_{i}", ""] for i in range(12)])
    assert [m["type"] for m in result["messages"]] == ["error"] * 10 + ["warning"]
    assert result["messages"][-1] == {
        "type": "warning",
        "message": "Found more than 10 errors and more than one error per 10 records, interrupted to avoid showing "
        "too many errors.",
    }


def test_warnings_alone_keep_the_batch(fake: FakeOdoo) -> None:
    load(fake, ["id", "name"], ["probe2.twin1", "twin"], ["probe2.twin2", "twin"])
    twin2 = fake.ref("probe2.twin2")
    result = load(fake, ["id", "name", "parent_id"], ["probe2.w", "w", "twin"])
    assert result["messages"] == [
        {"rows": {"from": 0, "to": 0}, "type": "warning", "record": 0, "field": "parent_id",
         "message": 'Found multiple matches for value "twin" in field "Related Company" (2 matches)'}
    ]  # fmt: skip
    assert result["ids"] and twin2 is not None
    assert fake.read("res.partner", result["ids"], ["parent_id"])[0]["parent_id"] == [twin2[1], "twin"]


def test_an_external_id_of_another_model_is_reported_twice(fake: FakeOdoo) -> None:
    result = load(
        fake, ["id", "name"], ["probe2.okrow", "ok"], ["base.res_partner_category_0", "wrong model"]
    )
    imd = fake.search("ir.model.data", [("module", "=", "base"), ("name", "=", "res_partner_category_0")])[0]
    message = (
        "For external id base.res_partner_category_0 when trying to create/update a record of model res.partner "
        f"found record of different model res.partner.category ({imd})"
    )
    assert result == {
        "ids": False,
        "messages": [error(0, None, message), error(1, None, message)],
        "nextrow": 0,
    }


def test_the_same_external_id_twice_in_a_batch_ends_with_the_last_row(fake: FakeOdoo) -> None:
    result = load(
        fake, ["id", "name"], ["probe2.dup", "first"], ["probe2.other", "other"], ["probe2.dup", "second"]
    )
    first, other, again = result["ids"]
    assert first == again != other
    assert fake.read("res.partner", [first], ["name"])[0]["name"] == "second"


def test_load_through_a_late_transaction_keeps_its_stamp(fake: FakeOdoo) -> None:
    start = fake.clock()
    with fake.begin(at=start) as txn:
        result = txn.load("res.partner", ["id", "name"], [["probe2.txn", "in txn"]])
        assert fake.ref("probe2.txn") is None
    assert fake.records("res.partner")[result["ids"][0]]["write_date"] == start
    assert start - fake.records("res.partner")[3]["write_date"] < timedelta(seconds=2)
