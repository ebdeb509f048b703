from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.outbox import convert
from syncd.outbox.consumer import claim_query
from syncd.outbox.policy import RetryStrategy
from syncd.outbox.xmlid import external_id, external_name

pytestmark = pytest.mark.unit

FIELDS: dict[str, dict[str, Any]] = {
    "name": {"type": "char", "store": True},
    "active": {"type": "boolean", "store": True},
    "color": {"type": "integer", "store": True},
    "lat": {"type": "float", "store": True},
    "type": {
        "type": "selection",
        "store": True,
        "selection": [["contact", "Contact"], ["invoice", "Invoice"]],
    },
    "date": {"type": "date", "store": True},
    "when": {"type": "datetime", "store": True},
    "parent_id": {"type": "many2one", "store": True},
    "category_id": {"type": "many2many", "store": True},
    "child_ids": {"type": "one2many", "store": True},
    "display_name": {"type": "char", "store": False},
    "create_date": {"type": "datetime", "store": True, "readonly": True},
}


@given(st.text(min_size=1, max_size=300))
def test_every_key_maps_to_a_valid_stable_external_id(key: str) -> None:
    xid = external_id("syncd", "res.partner", key)
    module, _, name = xid.partition(".")
    assert module == "syncd"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name), xid  # no dot, space or comma after the module
    assert len(xid) < 200
    assert xid == external_id("syncd", "res.partner", key)


def test_plain_keys_stay_readable_and_forms_never_collide() -> None:
    assert external_name("res.partner", "cust-42") == "res_partner__k_cust-42"
    assert external_name("res.partner", "ada@example.com").startswith("res_partner__h_")
    assert external_name("res.partner", "a__b") != external_name("res.partner", "a_b")
    assert external_name("res.partner", "k") != external_name("res.partner_k", "k")


@pytest.mark.parametrize(
    ("name", "value", "cell"),
    [
        ("name", 'Ada, "the" first\n', 'Ada, "the" first\n'),
        ("name", None, ""),
        ("active", True, "1"),
        ("active", False, "0"),
        ("color", 7, "7"),
        ("lat", 1.5, "1.5"),
        ("lat", 2, "2"),
        ("type", "invoice", "invoice"),
        ("date", "2026-01-31", "2026-01-31"),
        ("when", "2026-01-31T10:00:00+01:00", "2026-01-31 09:00:00"),
        ("when", "2026-01-31T10:00:00.123Z", "2026-01-31 10:00:00"),
        ("when", "2026-01-31 10:00:00", "2026-01-31 10:00:00"),
        ("parent_id", 20, "20"),
        ("category_id", [1, 2], "1,2"),
        ("category_id", [], ""),
    ],
)
def test_load_cells_are_strings_odoo_reads_as_meant(name: str, value: Any, cell: str) -> None:
    assert convert.load_cell("res.partner", name, value, FIELDS) == cell


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("nope", 1, "field 'nope' does not exist"),
        ("display_name", "x", "read-only or computed"),
        ("create_date", "2026-01-01", "read-only or computed"),
        ("child_ids", [1], "is a one2many"),
        ("id", 3, "'id' cannot be set"),
        ("active", "false", "(boolean) cannot take 'false': expected true or false"),
        ("color", 4.5, "expected a whole number"),
        ("color", 2**40, "expected a whole number"),
        ("lat", float("nan"), "expected a finite number"),
        ("name", 42, "expected a string"),
        ("type", "delivery", "has no value 'delivery'; allowed: 'contact', 'invoice'"),
        ("date", "31/01/2026", "expected an ISO date"),
        ("when", "yesterday", "expected an ISO 8601 datetime"),
        ("parent_id", "20", "(many2one) cannot take '20'"),
        ("parent_id", True, "(many2one) cannot take True"),
        ("category_id", [1, "2"], "expected a list of positive record ids"),
    ],
)
def test_bad_values_are_permanent_errors_naming_the_field(name: str, value: Any, message: str) -> None:
    with pytest.raises(convert.PayloadError, match=re.escape(message)):
        convert.load_cell("res.partner", name, value, FIELDS)


def test_write_values_use_real_json_types() -> None:
    assert convert.write_value("m", "active", False, FIELDS) is False
    assert convert.write_value("m", "parent_id", 20, FIELDS) == 20
    assert convert.write_value("m", "parent_id", None, FIELDS) is False
    assert convert.write_value("m", "category_id", [3], FIELDS) == [(6, 0, [3])]
    assert convert.write_value("m", "category_id", None, FIELDS) == [(6, 0, [])]
    assert convert.write_value("m", "when", "2026-01-31T10:00:00Z", FIELDS) == "2026-01-31 10:00:00"
    with pytest.raises(convert.PayloadError, match="many2one"):
        convert.write_value("m", "parent_id", "20", FIELDS)


def test_retry_strategy() -> None:
    s = RetryStrategy(max_attempts=4, base_seconds=1, max_seconds=5)
    assert s.decide(attempts=1, transient=False).dead
    assert s.decide(attempts=4, transient=True).dead
    assert not s.decide(attempts=3, transient=True).dead
    assert [s.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]
    assert [s.delay(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_claim_query_fixes_the_batch_size_in_the_text() -> None:
    """A constant LIMIT (not a parameter) lets PostgreSQL keep one generic plan for the claim."""
    assert "limit 100\n" in claim_query(100) and "limit 0\n" in claim_query(0)
    assert ":batch_size" not in claim_query(7) and "$1" in claim_query(7)
