"""Field-by-field conflict detection of writes with a base (syncd.outbox.conflicts): pure."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.outbox.conflicts import check, comparable, merged_base

pytestmark = pytest.mark.unit

FIELDS: dict[str, dict[str, Any]] = {
    "name": {"type": "char"},
    "active": {"type": "boolean"},
    "parent_id": {"type": "many2one"},
    "category_id": {"type": "many2many"},
    "date": {"type": "date"},
    "when": {"type": "datetime"},
    "price": {"type": "float", "digits": [16, 2]},
    "ratio": {"type": "float"},
    "count": {"type": "integer"},
}


@pytest.mark.parametrize(
    ("field", "odoo", "mirror"),
    [
        ("parent_id", [7, "Acme"], 7),  # many2one: [id, name] from read, the id in the mirror
        ("parent_id", False, None),
        ("category_id", [3, 1, 2], [1, 2, 3]),  # x2many: the set, in any order
        ("category_id", [], None),
        ("date", "2026-03-29", "2026-03-29"),
        ("when", "2026-03-29 01:30:00", "2026-03-29T03:30:00+02:00"),  # the same instant
        ("when", "2026-03-29 01:30:00", "2026-03-29T01:30:00.4+00:00"),  # Odoo keeps whole seconds
        ("price", 10.0, 10.004),  # at the field's digits
        ("ratio", 0.1 + 0.2, 0.3),
        ("count", 0, None),  # Odoo reads an empty integer as 0
        ("name", False, None),
        ("active", False, None),
    ],
)
def test_what_odoo_reads_and_what_the_mirror_holds_compare_equal(field: str, odoo: Any, mirror: Any) -> None:
    assert comparable(FIELDS[field], odoo) == comparable(FIELDS[field], mirror)


@pytest.mark.parametrize(
    ("field", "odoo", "mirror"),
    [("parent_id", [7, "Acme"], 8), ("category_id", [1, 2], [1, 2, 3]), ("when", "2026-03-29 01:30:00",
     "2026-03-29T01:30:00+02:00"), ("price", 10.0, 10.01), ("name", "Acme", "acme"), ("active", True, False)],
)  # fmt: skip
def test_different_values_compare_different(field: str, odoo: Any, mirror: Any) -> None:
    assert comparable(FIELDS[field], odoo) != comparable(FIELDS[field], mirror)


def test_each_field_is_written_skipped_or_in_conflict() -> None:
    payload = {"name": "New", "active": False, "parent_id": 9, "count": 3}
    base = {"name": "Old", "active": True, "parent_id": 7}
    current = {"name": "Old", "active": False, "parent_id": [8, "Other"], "count": 1}
    held = check(payload, base, current, FIELDS, "hold")
    assert held.write == {"name": "New", "count": 3}  # still the base; count had no base
    assert held.replays == ["active"]  # Odoo has the new value already
    assert held.conflicts == {"parent_id": {"base": 7, "app": 9, "odoo": 8}}
    assert held.held == ["parent_id"]
    assert "parent_id" in (held.held_message() or "")
    odoo_wins = check(payload, base, current, FIELDS, "odoo_wins")
    assert odoo_wins.write == {"name": "New", "count": 3} and not odoo_wins.held and odoo_wins.conflicts
    app_wins = check(payload, base, current, FIELDS, "app_wins")
    assert app_wins.write == {"name": "New", "count": 3, "parent_id": 9} and app_wins.held_message() is None


def test_without_a_base_or_a_record_everything_is_written() -> None:
    assert check({"name": "x"}, None, {"name": "y"}, FIELDS, "hold").write == {"name": "x"}
    assert check({"name": "x"}, {"name": "z"}, None, FIELDS, "hold").write == {"name": "x"}


def test_folded_changes_compare_with_the_first_base_of_each_field() -> None:
    merged = merged_base(
        [({"name": "B"}, {"name": "A"}), ({"name": "C", "email": "e"}, {"name": "B", "email": None})]
    )
    assert merged == {"name": "A", "email": None}
    assert merged_base([({"name": "B"}, None), ({"name": "C"}, {"name": "B"})]) == {}  # the first had none
    assert merged_base([({"name": "B"}, None)]) is None


def test_html_compares_its_text_not_the_markup_odoo_adds() -> None:
    spec = {"type": "html"}
    assert comparable(spec, "<p>Call  me &amp; you</p>") == comparable(spec, "Call me & you")
    assert comparable(spec, "<p></p>") == comparable(spec, None)
    assert comparable(spec, "<p>a</p>") != comparable(spec, "<p>b</p>")
