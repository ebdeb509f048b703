"""The CDC poller of one model: read changes since the cursor, upsert them, commit the cursor with them.

A poll walks pages from the cursor (minus ``cdc.lookback_seconds``) until a page comes back short.
Each page is written in one transaction together with the cursor that covers it, so after a crash
the mirror and the cursor agree and the next run resumes at the last committed page. While a page
is being written, the next one is already being fetched from Odoo.

A first sync (backfill) reads pages of whole records. After it, a page is a *probe*: ids and
``write_date`` only. Records the mirror lacks, or holds with another ``write_date``, are then read
in full; the rest of the lookback window costs Odoo one small answer. Odoo's ``write_date`` has
whole seconds, so a version committed into the same second as the one mirrored looks unchanged: a
record read while its second could still receive such a commit (within ``cdc.settle_seconds`` after
that second, :meth:`ModelPoller._settle`) is read once more when that has passed. The first poll after start
reads the whole window in full (what was still unsettled is not remembered across restarts).

The model's fields are asked from Odoo (``fields_get``) at a daemon's start, every
``cdc.schema_refresh_seconds`` and after a failed poll (a field that Odoo no longer has), not at every
poll; ``syncd --once`` takes them from ``syncd.cdc_state.odoo_fields`` (what Odoo said last) unless
that is older than ``cdc.schema_refresh_seconds``.

A page goes to PostgreSQL as one JSON text, and PostgreSQL converts the values
(:meth:`~syncd.cdc.schema.MirrorTable.upsert_sql`): Python parses Odoo's answer once (the cursor
needs write_date and id) and re-serializes it with orjson, and converts nothing per value. When
PostgreSQL rejects a value, the Python converters find which record and field it was.

Deletions leave no trace a cursor can see; :meth:`ModelPoller.reconcile` compares ids (and the
``write_date`` Odoo reports) between Odoo and the mirror, marks what is gone and re-reads what
differs — which also catches a late commit older than the lookback window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from syncd import db, metrics
from syncd.cdc.cursor import Cursor, odoo_datetime, parse_second
from syncd.cdc.schema import MirrorTable, SchemaProblem, page_json
from syncd.config import CdcSettings, ModelSettings
from syncd.errors import DatabaseError
from syncd.odoo import OdooClient

log = logging.getLogger("syncd.cdc")

ALL_RECORDS = {"active_test": False}
#: Ids compared per reconciliation step.
RECONCILE_CHUNK = 10_000
#: Ids per ``read`` call when re-reading records that differ.
READ_CHUNK = 500
#: Seconds between two backfill progress lines.
PROGRESS_EVERY = 5.0
#: What ``fields_get`` is asked for (and what ``syncd.cdc_state.odoo_fields`` keeps).
FIELD_ATTRIBUTES = ["type", "store", "string", "relation", "readonly", "related"]
#: What a probe page asks for (``id`` comes anyway).
PROBE_FIELDS = ["write_date"]


async def upsert_page(conn: db.Connection, upsert_sql: str, records: Sequence[Mapping[str, Any]]) -> int:
    """Upsert a page of records as Odoo returned them with
    :meth:`~syncd.cdc.schema.MirrorTable.upsert_sql` (their JSON text is its one parameter); the
    number of rows written."""
    if not records:
        return 0
    status = await conn.execute(upsert_sql, page_json(records))
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class PollResult:
    model: str
    #: Records read in full.
    rows_read: int = 0
    rows_written: int = 0
    pages: int = 0
    #: Records whose id and write_date a probe page returned.
    rows_probed: int = 0


@dataclass
class ReconcileResult:
    model: str
    checked: int = 0
    marked_deleted: int = 0
    refreshed: int = 0


class ModelPoller:
    """Mirrors one Odoo model into its mirror table. Not safe to run twice at once for one model:
    :class:`~syncd.cdc.service.CdcService` makes sure only one replica polls a model."""

    def __init__(
        self,
        model: ModelSettings,
        cdc: CdcSettings,
        mirror_schema: str,
        odoo: OdooClient,
        pool: asyncpg.Pool,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.cdc = cdc
        self.mirror_schema = mirror_schema
        self.odoo = odoo
        self.pool = pool
        self.dry_run = dry_run
        #: Seconds, advancing as Odoo's clock does (when records settle: :meth:`_settle`); tests
        #: with a fake Odoo on a manual clock pass that clock.
        self.clock = clock
        self.table: MirrorTable | None = None
        self._upsert_sql = ""
        #: Whether the fields stored in syncd.cdc_state may stand in for asking Odoo at the first poll
        #: (``syncd --once`` from cron: it starts often); a daemon asks at its start.
        self.stored_schema_ok = False
        #: When the fields were last learned from Odoo (monotonic); None: ask at the next poll.
        self._schema_checked: float | None = None
        #: Records read while their write_date second could still receive another commit: every
        #: interval poll reads them in full again until a read finds them settled (:meth:`_settle`).
        self._unsettled: set[int] = set()
        #: A lower bound of Odoo's clock (a write_date second) and when it held (self.clock()).
        self._odoo_floor: tuple[datetime, float] | None = None
        #: The first incremental poll of this process reads its whole window in full.
        self._window_read = False
        self.caught_up_at: float | None = None
        #: Awaited inside every mirror transaction before it writes; raising rolls it back.
        #: CdcService checks there that this replica still holds the model's lease.
        self.guard: Callable[[db.Connection], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        return self.model.model

    # ------------------------------------------------------------------------------------ schema
    async def prepare(self, *, refresh: bool = False) -> MirrorTable:
        """Learn the model's fields (from ``syncd.cdc_state`` when stored and not due for a refresh,
        else from Odoo's ``fields_get``), create the mirror table or add missing columns."""
        use_stored = self.stored_schema_ok and not refresh and not self.dry_run
        state = await self._stored_schema() if use_stored else None
        fields = state["odoo_fields"] if state is not None else None
        if fields is None:
            fields = await self.odoo.fields_get(self.name, attributes=FIELD_ATTRIBUTES)
            if not self.dry_run:
                async with db.transaction(self.pool, "cdc state") as conn:
                    await conn.execute(db.queries["cdc_state_ensure"], self.name)
                    await conn.execute(db.queries["cdc_state_fields"], self.name, fields)
        elif state is not None and (
            time.time() - state["odoo_fields_at"].timestamp() >= self.cdc.schema_refresh_seconds
        ):
            return await self.prepare(refresh=True)
        if "write_date" not in fields:
            raise SchemaProblem(f"{self.name} has no write_date field: it cannot be mirrored incrementally")
        table = MirrorTable.build(self.mirror_schema, self.model, fields)
        if table != self.table:
            if not self.dry_run:
                await self._ensure_table(table)
            if self.table is not None:  # a column more: rows in the window get it at the next poll
                self._window_read = False
            self.table = table
            self._upsert_sql = table.upsert_sql()
        self._schema_checked = time.monotonic()
        return table

    async def _stored_schema(self) -> Mapping[str, Any] | None:
        """The stored fields_get answer and when it was taken; None when none is stored."""
        with db.translate_errors("cdc state"):
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(db.queries["cdc_state_fields_get"], self.name)
        return dict(row) if row is not None and row["odoo_fields"] is not None else None

    def _schema_due(self) -> bool:
        checked = self._schema_checked
        return (
            self.table is None
            or checked is None
            or (time.monotonic() - checked >= self.cdc.schema_refresh_seconds)
        )

    async def _ensure_table(self, table: MirrorTable) -> None:
        async with db.transaction(self.pool, f"mirror table of {self.name}") as conn:
            # Pollers of several models (or replicas) start at once on a fresh database: without
            # this, two `create schema if not exists` race and one fails on pg_namespace's index.
            await conn.execute(db.queries["cdc_mirror_ddl_lock"])
            existing = {
                r["column_name"]
                for r in await conn.fetch(db.queries["cdc_mirror_columns"], table.schema, table.name)
            }
            if not existing:
                await conn.execute(table.create_sql())
                log.info("created mirror table %s%s", table.qualified, " (writable)" if table.writable else "",
                         extra={"model": self.name})  # fmt: skip
            for statement in table.add_columns_sql(existing) if existing else ():
                await conn.execute(statement)
                log.info("mirror table %s: %s", table.qualified, statement, extra={"model": self.name})
            await conn.execute(table.trigger_sql())

    # -------------------------------------------------------------------------------------- poll
    async def poll(self, *, hinted: Collection[int] | None = (), window: bool = True) -> PollResult:
        """Read every change since the cursor, page by page, until caught up.

        ``hinted``: records a webhook said changed, read in full whatever their write_date.
        ``window=False`` is a hinted poll: it only reads the hinted records (one ``read``; the cursor
        stays for the interval polls, which keep the lookback window for late commits), or, with
        ``hinted=None`` (too many hints to read by id), probes from one second before the cursor.
        Before the process's first interval poll it is a whole poll."""
        if self._schema_due():
            await self.prepare(refresh=self.table is not None)
        table = self.table
        assert table is not None
        if not window and hinted and self._window_read:
            return await self._poll_hinted(table, sorted(set(hinted)))
        hinted = hinted or ()
        started = time.time()
        state = await self._load_state()
        stored = Cursor(state["cursor_write_date"], state["cursor_id"])
        backfill = state["phase"] == "backfill"
        limit = self.cdc.backfill_page_size if backfill else self.cdc.page_size
        lookback = self.cdc.lookback_seconds if window or not self._window_read else 0.0
        cursor = stored.rewound(timedelta(seconds=lookback))
        result = PollResult(self.name)
        progress = _Progress(self, stored) if backfill else None
        if progress is not None:
            await progress.start()
        # The first incremental poll of this process reads its window in full (see the module).
        full = backfill or not self._window_read
        extra = set(hinted) | (self._unsettled if window else set())
        fields = table.read_fields if full else PROBE_FIELDS

        fetch = asyncio.ensure_future(self._fetch(cursor, limit, fields))
        try:
            while True:
                asked = time.monotonic()
                page = await fetch
                waited = time.monotonic() - asked  # for Odoo: nothing else to do meanwhile
                cursor, done = cursor.advance(page, limit)
                if not done:  # fetch the next page while this one is written
                    fetch = asyncio.ensure_future(self._fetch(cursor, limit, fields))
                gone: list[int] = []
                if full:
                    records = page
                else:
                    result.rows_probed += len(page)
                    records, gone = await self._read_changed(table, page, extra)
                stored = cursor.at_least(stored)
                written = await self._write_page(
                    table, records, stored, "incremental" if done else state["phase"], gone
                )
                result.rows_read += len(records)
                result.rows_written += written
                result.pages += 1
                if not backfill:
                    self._settle(records, page)
                if progress is not None:
                    progress.page(len(records), waited)
                if done:
                    break
        except BaseException:
            fetch.cancel()
            raise
        if progress is not None:
            progress.finish()
        if extra:  # hinted or due for a second read, and not in this poll's pages
            read, written = await self._read_again(table, sorted(extra))
            result.rows_read += read
            result.rows_written += written
        if table.writable:
            result.rows_written += await self._refresh_requested(table)
        self._window_read = self._window_read or not backfill
        await self._succeeded(started)
        return result

    async def _poll_hinted(self, table: MirrorTable, ids: list[int]) -> PollResult:
        result = PollResult(self.name)
        result.rows_read, result.rows_written = await self._read_again(table, ids)
        if table.writable:
            result.rows_written += await self._refresh_requested(table)
        return result

    async def _read_changed(
        self, table: MirrorTable, page: Sequence[Mapping[str, Any]], extra: set[int]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """The records of a probe page to read in full: those the mirror lacks or holds with another
        write_date, and those of ``extra`` (which this removes from it). Also the ids Odoo no
        longer has by the time they are read."""
        ids = [int(r["id"]) for r in page]
        mirrored = await self._mirrored_write_dates(table, ids)
        wanted = [
            i for i, r in zip(ids, page, strict=True) if i in extra or mirrored.get(i) != r["write_date"]
        ]
        extra.difference_update(ids)
        records: list[dict[str, Any]] = []
        for start in range(0, len(wanted), READ_CHUNK):
            chunk = wanted[start : start + READ_CHUNK]
            records += await self.odoo.read(self.name, chunk, table.read_fields, context=ALL_RECORDS)
        found = {int(r["id"]) for r in records}
        gone = [i for i in wanted if i not in found]
        self._unsettled.difference_update(gone)
        return records, gone

    async def _mirrored_write_dates(self, table: MirrorTable, ids: list[int]) -> dict[int, str]:
        if not ids or (self.dry_run and not await self._table_exists(table)):
            return {}
        with db.translate_errors(f"mirror of {self.name}"):
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(table.write_dates_sql(), ids)
        return {r["id"]: r["write_date"] for r in rows}

    async def _read_again(self, table: MirrorTable, ids: list[int]) -> tuple[int, int]:
        """Read ``ids`` in full and write what changed (no cursor moves); mark those Odoo no longer
        has as deleted. Records read and rows written."""
        read = written = 0
        for start in range(0, len(ids), READ_CHUNK):
            chunk = ids[start : start + READ_CHUNK]
            rows = await self.odoo.read(self.name, chunk, table.read_fields, context=ALL_RECORDS)
            found = {int(r["id"]) for r in rows}
            gone = [i for i in chunk if i not in found]
            self._unsettled.difference_update(gone)
            read += len(rows)
            self._settle(rows, rows)
            if self.dry_run:
                continue
            with self._naming_rejected_values(table, rows):
                async with self._mirroring() as conn:
                    n = await upsert_page(conn, self._upsert_sql, rows)
                    if gone:
                        n += int((await conn.execute(table.mark_deleted_sql(), gone)).rsplit(" ", 1)[-1])
                    await conn.execute(db.queries["cdc_state_add_rows"], self.name, n)
            metrics.CDC_RECORDS.labels(model=self.name).inc(n)
            written += n
        return read, written

    def _settle(self, records: Sequence[Mapping[str, Any]], page: Sequence[Mapping[str, Any]]) -> None:
        """Remember which records just read may still be superseded unseen, and forget the rest.

        A version committed later into the same second as the one read looks unchanged to a probe.
        It comes from a transaction that started in that second: once Odoo's clock is
        ``cdc.settle_seconds`` past the end of the second, a read shows the last of those that take
        less than that. Odoo's clock is at least the newest write_date seen, and advances as this
        poller's does (:meth:`_odoo_now`): no clock of Odoo's needs to agree with ours."""
        if not page:
            return
        odoo_now = self._odoo_now(max(parse_second(r["write_date"]) for r in (*page, *records)), self.clock())
        horizon = timedelta(seconds=1.0 + self.cdc.settle_seconds)
        for r in records:
            if parse_second(r["write_date"]) + horizon > odoo_now:
                self._unsettled.add(int(r["id"]))
            else:
                self._unsettled.discard(int(r["id"]))

    def _odoo_now(self, seen: datetime, now: float) -> datetime:
        """A lower bound of Odoo's clock at ``now`` (this poller's clock): the newest write_date
        ever seen, moved on by the time passed here since."""
        if self._odoo_floor is not None:
            floor, at = self._odoo_floor
            seen = max(seen, floor + timedelta(seconds=now - at))
        self._odoo_floor = (seen, now)
        return seen

    async def _refresh_requested(self, table: MirrorTable) -> int:
        """Read again the records whose app change settled (``syncd.mirror_refresh``: applied, refused,
        held or discarded), so that their rows end equal to Odoo's; a record Odoo no longer has is
        marked deleted. A request is removed only once its read is in the mirror."""
        if self.dry_run:
            return 0
        written = 0
        while True:
            with db.translate_errors(f"refresh requests of {self.name}"):
                async with self.pool.acquire() as conn:
                    requests = await conn.fetch(db.queries["mirror_refresh_requested"], self.name, READ_CHUNK)
            if not requests:
                return written
            ids = [r["odoo_id"] for r in requests]
            rows = await self.odoo.read(self.name, ids, table.read_fields, context=ALL_RECORDS)
            gone = sorted(set(ids) - {int(r["id"]) for r in rows})
            self._settle(rows, rows)
            with self._naming_rejected_values(table, rows):
                async with self._mirroring() as conn:
                    n = await upsert_page(conn, self._upsert_sql, rows) if rows else 0
                    if gone:
                        n += int((await conn.execute(table.mark_deleted_sql(), gone)).rsplit(" ", 1)[-1])
                    await conn.execute(db.queries["mirror_refresh_done"], self.name, ids,
                                       [r["requested_at"] for r in requests])  # fmt: skip
            metrics.CDC_RECORDS.labels(model=self.name).inc(n)
            written += n
            if len(requests) < READ_CHUNK:
                return written

    async def _fetch(self, cursor: Cursor, limit: int, fields: list[str]) -> list[dict[str, Any]]:
        domain, order = cursor.query()
        return await self.odoo.search_read(
            self.name, domain, fields, limit=limit, order=order, context=ALL_RECORDS
        )

    async def _write_page(
        self,
        table: MirrorTable,
        records: list[dict[str, Any]],
        cursor: Cursor,
        phase: str,
        gone: Sequence[int] = (),
    ) -> int:
        if self.dry_run:
            return 0
        with self._naming_rejected_values(table, records):
            async with self._mirroring() as conn:
                # The page is serialized only now (upsert_page), after the round trips that opened
                # the transaction, in which the next page's request went out: Odoo does not wait.
                written = await upsert_page(conn, self._upsert_sql, records)
                if gone:  # probed, then gone before it was read
                    written += int(
                        (await conn.execute(table.mark_deleted_sql(), list(gone))).rsplit(" ", 1)[-1]
                    )
                await conn.execute(
                    db.queries["cdc_state_advance"], self.name, cursor.second, cursor.drain_id, phase, written
                )
        metrics.CDC_RECORDS.labels(model=self.name).inc(written)
        return written

    @contextlib.contextmanager
    def _naming_rejected_values(
        self, table: MirrorTable, records: Sequence[Mapping[str, Any]]
    ) -> Iterator[None]:
        """When PostgreSQL rejects a value of ``records`` (SQLSTATE class 22, data exception: a date
        that is no date, a number out of range), raise a SchemaProblem that names the model, record
        and field, found by the Python converters."""
        try:
            yield
        except DatabaseError as e:
            if not str(getattr(e.__cause__, "sqlstate", "") or "").startswith("22"):
                raise
            table.check_values(records)  # raises naming the record and field, if it can tell
            ids = [r.get("id") for r in records]
            raise SchemaProblem(
                f"{self.name}: PostgreSQL rejected a value of one of the records with ids "
                f"{ids[0]}…{ids[-1]} (the Python converters could not tell which): {e}"
            ) from e

    @contextlib.asynccontextmanager
    async def _mirroring(self) -> AsyncIterator[db.Connection]:
        """A transaction that writes the mirror, marked as syncd's own (``syncd.origin = 'cdc'``) so
        that users' triggers on mirror tables can tell it apart and not enqueue it back to Odoo."""
        async with db.transaction(self.pool, f"mirroring {self.name}") as conn:
            await conn.execute(db.queries["cdc_mark_origin"])
            if self.guard is not None:
                await self.guard(conn)
            yield conn

    async def _load_state(self) -> Mapping[str, Any]:
        with db.translate_errors("cdc state"):  # acquire() inside: it may have to reconnect
            async with self.pool.acquire() as conn:
                state = await conn.fetchrow(db.queries["cdc_state_get"], self.name)
        if state is None:  # only in a dry run, where prepare() creates nothing
            return {"cursor_write_date": None, "cursor_id": None, "phase": "backfill"}
        return dict(state)

    async def _succeeded(self, started: float) -> None:
        if not self.dry_run:
            async with db.transaction(self.pool, "cdc state") as conn:
                await conn.execute(db.queries["cdc_state_success"], self.name)
        metrics.CDC_LAST_SUCCESS.labels(model=self.name).set(time.time())
        if self.caught_up_at is None:
            metrics.CDC_LAG.labels(model=self.name).set_function(self.lag_seconds)
        # Everything committed before this poll started has been read (up to the lookback margin).
        self.caught_up_at = started

    def lag_seconds(self) -> float:
        """Seconds since the start of the last poll that caught up (0 before the first one)."""
        return 0.0 if self.caught_up_at is None else max(0.0, time.time() - self.caught_up_at)

    async def record_error(self, error: BaseException) -> None:
        """Remember the failure in ``syncd.cdc_state`` (shown by ``syncd status``) and count it.
        The next poll asks Odoo for the fields again: the failure may be a field Odoo no longer has."""
        metrics.CDC_ERRORS.labels(model=self.name).inc()
        self._schema_checked = None
        if self.dry_run:
            return
        try:
            async with db.transaction(self.pool, "cdc state") as conn:
                await conn.execute(db.queries["cdc_state_error"], self.name, str(error)[:2000])
        except DatabaseError:
            log.warning("could not record the error of %s in syncd.cdc_state", self.name)

    # --------------------------------------------------------------------------------- reconcile
    async def reconcile(self) -> ReconcileResult:
        """Compare ids and write dates of Odoo and the mirror, chunk by chunk of ids: mark deleted
        records, re-read records that are missing or differ (a late commit, a revived record)."""
        if self.table is None:
            await self.prepare()
        table = self.table
        assert table is not None
        result = ReconcileResult(self.name)
        if self.dry_run and not await self._table_exists(table):
            return result  # nothing mirrored yet, and a dry run creates nothing
        low = 0
        while True:
            odoo_rows = await self.odoo.search_read(
                self.name, [("id", ">", low)], ["write_date"], limit=RECONCILE_CHUNK, order="id asc",
                context=ALL_RECORDS,
            )  # fmt: skip
            full = len(odoo_rows) == RECONCILE_CHUNK
            high = int(odoo_rows[-1]["id"]) if full else 2**63 - 1
            odoo_dates = {int(r["id"]): r["write_date"] for r in odoo_rows}
            with db.translate_errors(f"reconciling {self.name}"):
                async with self.pool.acquire() as conn:
                    mirror = {
                        r["id"]: r["write_date"] for r in await conn.fetch(table.live_ids_sql(), low, high)
                    }
            gone = sorted(set(mirror) - set(odoo_dates))
            stale = sorted(i for i, wd in odoo_dates.items() if mirror.get(i) != wd)
            result.checked += len(odoo_dates)
            result.marked_deleted += await self._mark_deleted(table, gone)
            result.refreshed += await self._refresh(table, stale)
            if not full:
                break
            low = high
        if not self.dry_run:
            async with db.transaction(self.pool, "cdc state") as conn:
                await conn.execute(db.queries["cdc_state_reconciled"], self.name)
                await conn.execute(db.queries["cdc_state_add_rows"], self.name, result.marked_deleted)
        if result.marked_deleted or result.refreshed:
            log.info(
                "reconciled %s: %d records checked, %d marked deleted, %d re-read",
                self.name, result.checked, result.marked_deleted, result.refreshed, extra={"model": self.name},
            )  # fmt: skip
        return result

    async def reconcile_due(self) -> bool:
        """Whether ``cdc.reconcile_interval_seconds`` have passed since the model's last
        reconciliation (by any process; never reconciled: due)."""
        last = (await self._load_state()).get("last_reconcile_at")
        return last is None or time.time() - last.timestamp() >= self.cdc.reconcile_interval_seconds

    async def _table_exists(self, table: MirrorTable) -> bool:
        with db.translate_errors("mirror table"):
            async with self.pool.acquire() as conn:
                return bool(await conn.fetch(db.queries["cdc_mirror_columns"], table.schema, table.name))

    async def _mark_deleted(self, table: MirrorTable, ids: list[int]) -> int:
        if not ids or self.dry_run:
            return 0
        async with self._mirroring() as conn:
            status = await conn.execute(table.mark_deleted_sql(), ids)
        count = int(status.rsplit(" ", 1)[-1])
        metrics.CDC_RECORDS.labels(model=self.name).inc(count)
        return count

    async def _refresh(self, table: MirrorTable, ids: list[int]) -> int:
        written = 0
        for start in range(0, len(ids), READ_CHUNK):
            rows = await self.odoo.read(self.name, ids[start : start + READ_CHUNK], table.read_fields)
            self._settle(rows, rows)
            if self.dry_run or not rows:
                continue
            with self._naming_rejected_values(table, rows):
                async with self._mirroring() as conn:
                    n = await upsert_page(conn, self._upsert_sql, rows)
                    await conn.execute(db.queries["cdc_state_add_rows"], self.name, n)
            metrics.CDC_RECORDS.labels(model=self.name).inc(n)
            written += n
        return written


class _Progress:
    """Backfill progress lines: rows done, rate, and an estimate of what is left; at the end, how long
    the poller waited for Odoo's pages (answer and decoding): most of the time when Odoo, not syncd or
    PostgreSQL, sets the pace."""

    def __init__(self, poller: ModelPoller, cursor: Cursor) -> None:
        self.poller = poller
        self.cursor = cursor
        self.total: int | None = None
        self.done = 0
        self.waited = 0.0
        self.started = time.monotonic()
        self.last_line = self.started

    async def start(self) -> None:
        domain: list[Any] = (
            [] if self.cursor.second is None else [("write_date", ">=", odoo_datetime(self.cursor.second))]
        )
        self.total = await self.poller.odoo.search_count(self.poller.name, domain, context=ALL_RECORDS)
        resumed = " (resuming)" if self.cursor.second is not None else ""
        log.info("backfill of %s%s: about %d records to read", self.poller.name, resumed, self.total,
                 extra={"model": self.poller.name})  # fmt: skip

    def page(self, rows: int, waited: float) -> None:
        self.done += rows
        self.waited += waited
        now = time.monotonic()
        if now - self.last_line >= PROGRESS_EVERY:
            self.last_line = now
            rate = self.done / max(now - self.started, 1e-9)
            left = max((self.total or 0) - self.done, 0)
            log.info(
                "backfill of %s: %d of ~%d records, %.0f records/s, ~%.0f s left",
                self.poller.name, self.done, self.total or 0, rate, left / rate if rate else 0.0,
                extra={"model": self.poller.name},
            )  # fmt: skip

    def finish(self) -> None:
        elapsed = time.monotonic() - self.started
        log.info("backfill of %s done: %d records in %.1f s, %.1f s of it waiting for Odoo",
                 self.poller.name, self.done, elapsed, self.waited, extra={"model": self.poller.name})  # fmt: skip
