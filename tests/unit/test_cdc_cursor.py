from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from syncd.cdc.cursor import ORDER_BY_ID, ORDER_BY_WRITE_DATE, Cursor

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 22, 10, 0, 0)


def rows(*pairs: tuple[int, int]) -> list[dict[str, object]]:
    """(id, second offset from T) pairs → rows as search_read returns them."""
    return [
        {"id": i, "write_date": (T + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S")} for i, s in pairs
    ]


def test_first_page_reads_everything_in_write_date_order() -> None:
    assert Cursor().query() == ([], ORDER_BY_WRITE_DATE)


def test_full_page_moves_to_its_last_second_and_reads_the_rest_of_it() -> None:
    cursor, done = Cursor().advance(rows((5, 0), (9, 1), (3, 1)), limit=3)
    assert (cursor, done) == (Cursor(T + timedelta(seconds=1)), False)
    # The records of that second the page held are left out by id (any order inside the second).
    stamp = "2026-11-22 10:00:01"
    assert cursor.query() == (
        ["|", ("write_date", ">", stamp), "&", ("write_date", "=", stamp), ("id", "not in", [3, 9])],
        ORDER_BY_WRITE_DATE,
    )
    # Stored and resumed, it reads the whole second again.
    assert Cursor(cursor.second).query() == ([("write_date", ">=", stamp)], ORDER_BY_WRITE_DATE)


def test_short_page_is_caught_up_and_keeps_the_last_second_open() -> None:
    assert Cursor(T).advance(rows((1, 0), (2, 4)), limit=3) == (Cursor(T + timedelta(seconds=4)), True)
    assert Cursor(T).advance([], limit=3) == (Cursor(T), True)


def test_a_page_inside_one_second_starts_a_drain_by_id_from_zero() -> None:
    # microsecond order, ids going down: the page is not the smallest ids of that second
    cursor, done = Cursor().advance(rows((9, 0), (4, 0), (7, 0)), limit=3)
    assert (cursor, done) == (Cursor(T, 0), False)
    assert cursor.query() == ([("write_date", "=", "2026-11-22 10:00:00"), ("id", ">", 0)], ORDER_BY_ID)
    cursor, done = cursor.advance(rows((1, 0), (2, 0), (3, 0)), limit=3)
    assert cursor == Cursor(T, 3)
    cursor, done = cursor.advance(rows((4, 0)), limit=3)
    assert (cursor, done) == (Cursor(T + timedelta(seconds=1)), False)


def test_rewound_starts_lookback_before_but_resumes_a_drain_as_is() -> None:
    assert Cursor(T).rewound(timedelta(seconds=120)) == Cursor(T - timedelta(seconds=120))
    assert Cursor(T, 42).rewound(timedelta(seconds=120)) == Cursor(T, 42)
    assert Cursor().rewound(timedelta(seconds=120)) == Cursor()


def test_the_stored_cursor_never_moves_back() -> None:
    stored = Cursor(T)
    assert Cursor(T - timedelta(seconds=60)).at_least(stored) == stored
    assert Cursor(T + timedelta(seconds=1)).at_least(stored) == Cursor(T + timedelta(seconds=1))
    assert Cursor(T, 7).at_least(stored) == Cursor(T, 7)
    assert Cursor(T).at_least(Cursor()) == Cursor(T)
