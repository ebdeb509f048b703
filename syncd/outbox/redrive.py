"""Operator redrive of dead events (``syncd outbox retry``), guarded against setting records back.

A dead event is older than every event of its record that came after it. Once one of those later
events has been applied, retrying the dead one would apply its older values over theirs (issue 11:
a redrive set a partner back to an older name). :func:`retry_dead` therefore leaves such an event
dead and says which later events were applied, unless it is forced. Dead events whose later events
are only pending or dead are retried: the claim applies the retried event before them, in id order.

The check and the retry run in one transaction and the retry names exactly the events that were
checked, so ``--all-dead`` never retries an event that died in between without checking it. This is
the library call behind the CLI, for any other front end (a web console) to share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asyncpg import Record

from syncd import db


@dataclass(frozen=True, slots=True)
class LaterEvent:
    """An event of the same record with a higher id, applied (``done``) or being applied (``inflight``)."""

    id: int
    op: str
    status: str
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class Superseded:
    """A dead event whose record later events have already changed."""

    id: int
    model: str
    key: str | None
    odoo_id: int | None
    later: tuple[LaterEvent, ...]

    @property
    def target(self) -> str:
        """The record as ``syncd outbox list`` shows it: the key, else ``#odoo_id``."""
        parts = [self.key] if self.key is not None else []
        if self.odoo_id is not None:
            parts.append(f"#{self.odoo_id}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class RetryResult:
    """``retried``: made pending again. ``refused``: left dead, later events of their record were
    applied. ``forced``: retried anyway (``force=True``) although later events had been applied —
    their values will be overwritten. Requested ids that were not dead appear in none of them."""

    retried: list[int]
    refused: list[Superseded]
    forced: list[Superseded]


async def later_applied(conn: db.Connection, ids: Sequence[int] | None) -> dict[int, Superseded | None]:
    """Every dead event among ``ids`` (all dead events when ``None``), in id order, with the later
    events of its record that were applied or are being applied: ``None`` when there are none.
    One statement for the whole set (``outbox_retry_later_applied``)."""
    rows = await conn.fetch(db.queries["outbox_retry_later_applied"], None if ids is None else list(ids))
    first: dict[int, Record] = {}
    later: dict[int, list[LaterEvent]] = {}
    for r in rows:
        first.setdefault(r["id"], r)
        events = later.setdefault(r["id"], [])
        if r["later_id"] is not None:
            events.append(LaterEvent(r["later_id"], r["later_op"], r["later_status"], r["later_done_at"]))
    return {
        i: Superseded(i, r["model"], r["key"], r["odoo_id"], tuple(later[i])) if later[i] else None
        for i, r in first.items()
    }


async def retry_dead(conn: db.Connection, ids: Sequence[int] | None, *, force: bool = False) -> RetryResult:
    """Make the dead events among ``ids`` (all dead events when ``None``) pending again with fresh
    attempts, except those whose record later events have already changed (unless ``force``)."""
    async with conn.transaction():
        checked = await later_applied(conn, ids)
        superseded = [o for o in checked.values() if o is not None]
        wanted = list(checked) if force else [i for i, o in checked.items() if o is None]
        rows = await conn.fetch(db.queries["outbox_retry"], wanted) if wanted else []
    retried = sorted(r["id"] for r in rows)
    done = set(retried)
    if force:
        return RetryResult(retried, [], [o for o in superseded if o.id in done])
    return RetryResult(retried, superseded, [])
