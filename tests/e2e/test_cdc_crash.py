"""``syncd --once`` killed with SIGKILL in the middle of a first sync resumes where it stopped.

A fake Odoo in this process (slowed down by ``faults.latency_seconds``) holds 20,000 records; the
backfill reads them in pages of 500, each page committed together with the cursor that covers it.
The first run is killed once a few pages are in; the second run must finish the job without
re-reading what the first one committed, apart from the lookback window and the cursor's own second.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from syncd.cdc.cursor import odoo_datetime
from syncd.testing import FakeOdoo, FakeOdooServer, FieldSpec, ManualClock
from tests.e2e.helpers import clean_env, syncd_async

pytestmark = pytest.mark.e2e

MODEL = "x.item"
FIELDS = ["name", "qty"]
TOTAL = 20_000
PAGE = 500
LOOKBACK = 5
#: records created by one call (one write_date) early on: a second crowded beyond one page
CROWDED = 600
#: the first run is killed once this many rows are committed
KILL_AFTER = 3_000


def odoo_with_records() -> FakeOdoo:
    """TOTAL records: two per second (one call each), and one crowded second near the start."""
    clock = ManualClock(datetime(2026, 1, 5, 8, 0, 0, 250_000))
    fake = FakeOdoo(clock=clock)
    fake.declare_model(MODEL, {"name": FieldSpec("char"), "qty": FieldSpec("integer")})
    created = 0
    while created < TOTAL:
        size = CROWDED if created == 300 else 2
        fake.create(MODEL, [{"name": f"item {created + i}", "qty": created + i} for i in range(size)])
        created += size
        clock.advance(1)
    return fake


def second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Check ``condition`` every 20 ms (it reads the database, which cannot signal) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_killed_backfill_resumes_without_redoing_committed_pages(db_dsn: str, tmp_path: Path) -> None:
    fake = odoo_with_records()
    records = fake.records(MODEL)
    assert len(records) == TOTAL
    seconds = {rid: second(row["write_date"]) for rid, row in records.items()}
    fake.faults.latency_seconds = 0.1  # every answer: a backfill of 40 pages takes several seconds

    async with FakeOdooServer(fake) as server:
        env = clean_env(
            SYNCD_DATABASE__DSN=db_dsn,
            SYNCD_ODOO__URL=server.url,
            SYNCD_ODOO__API_KEY="admin",
            SYNCD_CDC__MODELS=json.dumps([{"model": MODEL, "fields": FIELDS}]),
            SYNCD_CDC__BACKFILL_PAGE_SIZE=str(PAGE),
            SYNCD_CDC__PAGE_SIZE=str(PAGE),
            SYNCD_CDC__LOOKBACK_SECONDS=str(LOOKBACK),
        )
        db = await asyncpg.connect(db_dsn)
        try:
            # ---- first run: killed with SIGKILL once a few pages are committed
            log_path = tmp_path / "first-run.log"
            with log_path.open("wb") as log:
                first = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "syncd", "--once", env=env, cwd=tmp_path,
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                )  # fmt: skip
            try:

                async def some_pages_committed() -> bool:
                    if first.returncode is not None:
                        output = log_path.read_text(errors="replace")[-3000:]
                        raise AssertionError(f"the first run ended before it was killed:\n{output}")
                    done = await db.fetchval(
                        "select rows_mirrored from syncd.cdc_state where model = $1", MODEL
                    )
                    return bool(done) and done >= KILL_AFTER

                await wait_until(some_pages_committed, within=60, what="the first pages to be committed")
            finally:
                if first.returncode is None:
                    first.kill()
                await first.wait()
            assert first.returncode == -signal.SIGKILL

            state = await db.fetchrow("select * from syncd.cdc_state where model = $1", MODEL)
            committed = {r["id"] for r in await db.fetch('select id from odoo."x_item"')}
            assert state["phase"] == "backfill", "the first run was not killed in the middle of the backfill"
            assert KILL_AFTER <= len(committed) < TOTAL
            # the cursor was committed with the rows it covers: they agree after the crash
            assert state["rows_mirrored"] == len(committed)
            cursor, drain_id = state["cursor_write_date"], state["cursor_id"]
            covered = {
                rid
                for rid, s in seconds.items()
                if s < cursor or (drain_id is not None and s == cursor and rid <= drain_id)
            }
            assert covered <= committed, "the cursor is ahead of the rows committed with it"

            # ---- second run: resumes and finishes
            calls_before = len(fake.calls)
            second_run = await syncd_async("--once", env=env, cwd=tmp_path)
            assert second_run.code == 0, second_run.err
            assert f"{MODEL}: " in second_run.out

            state = await db.fetchrow("select * from syncd.cdc_state where model = $1", MODEL)
            assert state["phase"] == "incremental"
            assert state["rows_mirrored"] == TOTAL
            mirror = {
                r["id"]: json.loads(r["_raw"])
                for r in await db.fetch('select id, _raw from odoo."x_item" where _deleted_at is null')
            }
        finally:
            await db.close()

    odoo = {
        r["id"]: r
        for r in fake.search_read(MODEL, [], [*FIELDS, "write_date"], context={"active_test": False})
    }
    assert mirror == odoo

    # ---- how much the second run read again. Its page reads (not the reconciliation's id/write_date
    # scans) are replayed against the unchanged fake to know which records each one returned.
    pages = [
        c.kwargs
        for c in fake.calls[calls_before:]
        if c.model == MODEL and c.method == "search_read" and c.kwargs.get("fields") != ["write_date"]
    ]
    assert pages, "the second run read no page"
    fetched: list[dict[str, Any]] = []
    for kw in pages:
        fetched += fake.search_read(
            MODEL, kw["domain"], kw["fields"], limit=kw.get("limit"), order=kw.get("order"),
            context=kw.get("context"),
        )  # fmt: skip
    fetched_ids = {r["id"] for r in fetched}
    # Where the second run starts: `lookback` before the committed cursor (or, in the middle of
    # draining a crowded second, right after the last id drained, with no lookback).
    if drain_id is None:
        window_start = cursor - timedelta(seconds=LOOKBACK)
        assert pages[0]["domain"] == [["write_date", ">=", odoo_datetime(window_start)]]
    else:
        window_start = cursor
        assert pages[0]["domain"] == [
            ["write_date", "=", odoo_datetime(cursor)], ["id", ">", drain_id]
        ]  # fmt: skip
    lookback_rows = sum(1 for s in seconds.values() if window_start <= s < cursor)
    cursor_second_rows = sum(1 for s in seconds.values() if s == cursor)
    print(
        f"killed after {len(committed)} of {TOTAL} rows; the second run read {len(fetched)} rows in "
        f"{len(pages)} pages, {len(fetched_ids & committed)} of them committed before the kill "
        f"(lookback window {lookback_rows}, cursor second {cursor_second_rows})"
    )
    # 1. committed records read again: only those of the lookback window and of the cursor's second
    again = fetched_ids & committed
    assert all(seconds[rid] >= window_start for rid in again)
    assert len(again) <= lookback_rows + cursor_second_rows
    # 2. the bound of the issue: what was left, plus one page, plus the lookback window. The slack of
    # one page covers the cursor's second and the records a full page shares with the next one (the
    # last second of each page is read again by design: at most 2 records per second here).
    assert len(fetched) <= (TOTAL - len(committed)) + PAGE + lookback_rows, (
        len(fetched), TOTAL - len(committed), lookback_rows,
    )  # fmt: skip
