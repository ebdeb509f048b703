"""Polls that cost Odoo little: a probe of ids and write dates for the lookback window, full reads
only for what changed (and once more for what was read before its second settled), the fields
learned once and kept in ``syncd.cdc_state``, and reconciliation on ``--once`` only when due.

The CDC guarantees themselves are the business of test_cdc.py and test_cdc_property.py, which run
against the same poller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from syncd.cdc.service import CdcService
from syncd.config import Settings
from syncd.errors import SyncdError
from syncd.testing import FakeOdoo, ManualClock
from tests.integration.cdc_support import PARTNER_FIELDS, Rig, rig

START = datetime(2026, 11, 22, 10, 0, 0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START, tick=timedelta(microseconds=10))


@pytest.fixture
async def r(db_dsn: str, clock: ManualClock) -> AsyncIterator[Rig]:
    async with rig(FakeOdoo(demo_data=True, clock=clock), db_dsn) as the_rig:
        yield the_rig


def calls(r: Rig, method: str | None = None) -> list[tuple[str, Any]]:
    """(method, fields or ids) of the calls the fake received since the last ``r.fake.calls.clear()``."""
    out = []
    for c in r.fake.calls:
        if c.model == "res.users" or (method is not None and c.method != method):
            continue
        what = c.kwargs.get("fields") if c.method == "search_read" else c.kwargs.get("ids", c.args[:1])
        out.append((c.method, what))
    return out


async def test_an_unchanged_window_costs_one_probe_and_a_change_one_read(r: Rig, clock: ManualClock) -> None:
    poller = r.poller(lookback_seconds=120)
    await poller.poll()  # backfill
    await poller.poll()  # the first incremental poll of the process reads its window in full
    clock.advance(10)
    await poller.poll()  # what that poll read in its records' own second is read once more
    r.fake.calls.clear()
    result = await poller.poll()
    assert calls(r) == [("search_read", ["write_date"])]
    assert result.rows_read == 0 and result.rows_probed > 0  # the demo records are in the window

    clock.advance(10)
    r.fake.write("res.partner", [7], {"name": "changed"})
    r.fake.calls.clear()
    result = await poller.poll()
    assert [m for m, _ in calls(r)] == ["search_read", "read"]
    assert result.rows_read == 1
    assert (await r.mirror())[7]["name"] == "changed"
    assert await r.mirror() == r.odoo_state("res.partner", PARTNER_FIELDS)


async def test_a_record_read_before_its_second_settled_is_read_again_until_it_has(
    r: Rig, clock: ManualClock
) -> None:
    poller = r.poller()
    await poller.poll()
    await poller.poll()
    clock.advance(10)
    await poller.poll()
    r.fake.write("res.partner", [7], {"name": "young"})
    await poller.poll()  # read in the second it was written in
    clock.advance(0.5)
    r.fake.write("res.partner", [7], {"name": "the same second, later"})
    r.fake.calls.clear()
    await poller.poll()
    assert calls(r, "read") == [("read", [7])], "unsettled: read again although the probe looks equal"
    assert (await r.mirror())[7]["name"] == "the same second, later"
    clock.advance(2.0)  # settle_seconds (1) past the end of its second
    r.fake.calls.clear()
    await poller.poll()
    assert calls(r, "read") == [("read", [7])]
    r.fake.calls.clear()
    await poller.poll()
    assert not calls(r, "read"), "read after it settled: final"
    r.fake.calls.clear()
    await poller.poll(hinted=[], window=False)
    assert not calls(r, "read")


async def test_hinted_records_are_read_in_full_and_deleted_ones_marked(r: Rig, clock: ManualClock) -> None:
    poller = r.poller()
    await poller.poll()
    await poller.poll()
    clock.advance(10)
    (gone,) = r.fake.create("res.partner", [{"name": "short-lived"}])
    clock.advance(10)
    await poller.poll()
    r.fake.unlink("res.partner", [gone])
    r.fake.calls.clear()
    result = await poller.poll(hinted=[7, gone], window=False)
    assert calls(r) == [("read", [7, gone])], "a hinted poll is one read: no probe, no fields"
    assert result.rows_read == 1
    assert gone in await r.mirror(deleted=True)


async def test_the_fields_are_asked_once_and_kept_for_once_runs(r: Rig, clock: ManualClock) -> None:
    poller = r.poller("res.partner", "*")
    await poller.poll()
    await poller.poll()
    assert len(calls(r, "fields_get")) == 1
    r.fake.calls.clear()
    await r.poller("res.partner", "*").poll()
    assert len(calls(r, "fields_get")) == 1, "a daemon's poller asks at its start"
    restarted = r.poller("res.partner", "*")
    restarted.stored_schema_ok = True  # as `syncd --once` does
    r.fake.calls.clear()
    await restarted.poll()
    assert not calls(r, "fields_get")
    await restarted.record_error(SyncdError("Invalid field 'gone' on model 'res.partner'"))
    await restarted.poll()
    assert len(calls(r, "fields_get")) == 1, "a failed poll may mean a field went away: ask again"


async def test_a_stale_stored_schema_is_asked_again(r: Rig) -> None:
    await r.poller().poll()
    r.fake.calls.clear()
    poller = r.poller(schema_refresh_seconds=1e-6)
    poller.stored_schema_ok = True
    await poller.poll()
    assert len(calls(r, "fields_get")) == 1


async def test_once_reconciles_only_when_due(r: Rig, clock: ManualClock) -> None:
    settings = Settings.model_validate(
        {"cdc": {"models": [{"model": "res.partner", "fields": PARTNER_FIELDS}]}, "database": {"dsn": r.dsn}}
    )
    first = await CdcService(settings, r.odoo, r.pool, r.dsn).run_once()
    assert "res.partner" in first.reconciles
    r.fake.calls.clear()
    again = await CdcService(settings, r.odoo, r.pool, r.dsn).run_once()
    assert "res.partner" not in again.reconciles
    assert [m for m, _ in calls(r)] == ["search_read"], "the window (read in full), no fields_get, no ids"
    await r.pool.execute("update syncd.cdc_state set last_reconcile_at = now() - interval '2 hours'")
    due = await CdcService(settings, r.odoo, r.pool, r.dsn).run_once()
    assert "res.partner" in due.reconciles


def late_same_second_history(r: Rig, clock: ManualClock, poller_kw: dict[str, Any]) -> Any:
    """Record 7 mirrored; a transaction that began in the same second, after that version committed,
    writes it and commits 5 s later: its write_date second is the mirrored one's."""

    async def run() -> str:
        poller = r.poller(lookback_seconds=120, **poller_kw)
        await poller.poll()
        await poller.poll()
        clock.advance(10)
        r.fake.write("res.partner", [7], {"name": "first"})
        late = r.fake.begin()
        await poller.poll()
        late.write("res.partner", [7], {"name": "committed 5 s later"})
        clock.advance(5)
        await poller.poll()  # reads "first" again, now settled
        late.commit()
        clock.advance(5)
        await poller.poll()
        return str((await r.mirror())[7]["name"])

    return run()


@pytest.mark.xfail(
    strict=True,
    reason="known gap: with probes, a version committed into the mirrored version's second more than "
    "cdc.settle_seconds after that second ended looks unchanged (cdc.settle_seconds = lookback_seconds "
    "closes it, at the cost of full re-reads of the window)",
)
async def test_a_late_commit_into_a_settled_second_is_not_seen_by_default(r: Rig, clock: ManualClock) -> None:
    assert await late_same_second_history(r, clock, {}) == "committed 5 s later"


async def test_settle_seconds_as_long_as_the_lookback_sees_it(r: Rig, clock: ManualClock) -> None:
    assert await late_same_second_history(r, clock, {"settle_seconds": 120}) == "committed 5 s later"
