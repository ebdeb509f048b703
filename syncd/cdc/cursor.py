"""The CDC cursor: which page to read next, and where the cursor stands after it. Pure.

Facts it is designed against (``odoo-facts.md``, "Searching"):

* Datetime domains compare **whole seconds** (``>= X`` means from the start of X's second) while
  ``order="write_date asc, id asc"`` sorts on the **microsecond** column. Rows of one second can
  therefore come back with ids going down, and the usual keyset ``(write_date, id) > (X, last_id)``
  skips records.
* ``write_date`` is the transaction's start: every row of one call shares one timestamp, and a long
  transaction commits rows whose ``write_date`` is already in the past.

So the cursor is a **second**, not a (timestamp, id) pair. ``second = S`` means "every second before
S has been read". A page is ``write_date >= S`` in write-date order; when it is full, every second
before the page's last second is complete (the order is consistent with seconds), so S moves to that
last second and the next page reads the rest of it: that second's records the page already holds are
left out of the next page by id (:attr:`Cursor.seen`, in memory only), which is exact in any order
inside the second. Without that, the overlap was a whole second per page: 20 % more rows on a
backfill of records created in batches of 1,000 (one ``create`` stamps its rows alike). When one second holds more
rows than a page (a bulk import stamps them all alike), that second is *drained* by id
(``write_date = S and id > drain_id``, ordered by id), which is a total order inside one second.
Late commits are caught by starting every poll ``lookback`` seconds (at least one) before the cursor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ONE_SECOND = timedelta(seconds=1)
ORDER_BY_WRITE_DATE = "write_date asc, id asc"
ORDER_BY_ID = "id asc"


def odoo_datetime(value: datetime) -> str:
    """A naive UTC datetime in the format Odoo's domains accept."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def parse_second(value: str) -> datetime:
    """Odoo's ``"YYYY-MM-DD HH:MM:SS"`` as a naive datetime (it has no microseconds)."""
    return datetime.fromisoformat(value).replace(microsecond=0)


@dataclass(frozen=True)
class Cursor:
    """``second``: every record written before this second has been read (None: nothing yet).
    ``drain_id``: inside ``second``, records with ids up to this one have been read (None: not
    draining). ``seen``: records of ``second`` the previous page of this poll held, left out of the
    next one; not stored (a resumed poll reads the whole second again) and not compared."""

    second: datetime | None = None
    drain_id: int | None = None
    seen: frozenset[int] = field(default=frozenset(), compare=False)

    def query(self) -> tuple[list[Any], str]:
        """The ``search_read`` domain and order of the next page."""
        if self.second is None:
            return [], ORDER_BY_WRITE_DATE
        stamp = odoo_datetime(self.second)
        if self.drain_id is not None:
            return [("write_date", "=", stamp), ("id", ">", self.drain_id)], ORDER_BY_ID
        if self.seen:
            # Later seconds, or this one without what the last page held. ('>' and '=' compare whole
            # seconds: '>' is from the next second on.) By id, so a record of this second that was
            # written again meanwhile (now in a later second) is still read.
            rest = ("id", "not in", sorted(self.seen))
            return [
                "|",
                ("write_date", ">", stamp),
                "&",
                ("write_date", "=", stamp),
                rest,
            ], ORDER_BY_WRITE_DATE
        return [("write_date", ">=", stamp)], ORDER_BY_WRITE_DATE

    def rewound(self, lookback: timedelta) -> Cursor:
        """Where a poll starts: ``lookback`` before the cursor, to catch late commits, and never less
        than one second: a drained second leaves the cursor on the next one, yet while it is the
        newest second more rows may still be stamped with it. A drain in progress is resumed as it is."""
        if self.second is None or self.drain_id is not None:
            return self
        return Cursor(self.second - max(lookback, ONE_SECOND))

    def advance(self, rows: Sequence[Mapping[str, Any]], limit: int) -> tuple[Cursor, bool]:
        """The cursor after reading ``rows`` (a page of at most ``limit``), and whether the poll is done."""
        if self.drain_id is not None:
            assert self.second is not None
            if len(rows) < limit:  # the crowded second is done; go on after it
                return Cursor(self.second + ONE_SECOND), False
            return Cursor(self.second, int(rows[-1]["id"])), False
        if not rows:
            return self, True
        last = parse_second(rows[-1]["write_date"])
        if len(rows) < limit:
            # Caught up. The last second stays open: more rows may still be stamped with it.
            return Cursor(last), True
        if parse_second(rows[0]["write_date"]) == last:
            # A whole page inside one second: drain that second by id, from the start, because
            # this page came in microsecond order, not id order.
            return Cursor(last, 0), False
        seen = frozenset(int(r["id"]) for r in rows if parse_second(r["write_date"]) == last)
        return Cursor(last, seen=seen), False

    def at_least(self, other: Cursor) -> Cursor:
        """The cursor to persist: never behind ``other`` (the stored one), since every poll starts
        ``lookback`` before the stored cursor anyway."""
        if other.second is None or (self.second is not None and self.second >= other.second):
            return self
        return other
