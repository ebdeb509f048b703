"""``db.loads_json`` reads short texts with orjson and the rest with json: both paths must give the
same value, of the same type, for anything PostgreSQL's json/jsonb can print."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import db

pytestmark = pytest.mark.unit


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
)


@settings(max_examples=300)
@given(values, st.booleans())
def test_both_readers_agree(value: Any, spaced: bool) -> None:
    # PostgreSQL prints jsonb with ", " and ": ", json without reformatting: both layouts.
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": ") if spaced else (",", ":"))
    assert same(db.loads_json(text), json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        "[123456789012345678901234567890]",  # beyond 64 bits: orjson would read a float
        "[-9223372036854775809]",
        "[18446744073709551616]",
        "[0.10000000000000000000000001]",
        "[" + "1" * 400 + "]",  # numeric 1e400 as PostgreSQL prints it
        '{"a": -0, "b": -0.0, "c": 1E2, "d": 5e-324}',
    ],
)
def test_numbers_keep_their_value_and_type(text: str) -> None:
    assert same(db.loads_json(text), json.loads(text))


def test_deep_nesting_is_marked_not_read() -> None:
    """Too deep for Python's json: the marker, whichever reader would have been tried first."""
    for depth in (300, 5000):
        text = "[" * depth + "]" * depth
        got = db.loads_json(text)
        if depth < 900:
            assert same(got, json.loads(text))
        else:
            assert isinstance(got, dict) and db.UNREADABLE_JSON in got
