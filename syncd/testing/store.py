"""The in-memory database of the fake Odoo: tables, transactions and row locks.

Like PostgreSQL under Odoo, every change happens in a :class:`Transaction`. A transaction is stamped when it
begins (``write_date`` of everything it writes is that stamp, as Odoo uses the transaction's ``now()``), its
changes live in a private overlay that nobody else sees, and :meth:`Transaction.commit` publishes them at
once. Readers outside a transaction see the committed rows only (:class:`CommittedView`). A row written by
an open transaction is locked: another transaction writing it gets :class:`~syncd.testing.errors.RowLocked`
(the HTTP layer waits and retries, like Odoo retrying a serialization failure; the direct API reports
``SerializationFailure`` at once).

One ``threading.RLock`` serialises every operation, so the store can be used from the event loop and from
other threads (a test driving the fake directly while the server answers).
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

from syncd.testing.errors import RowLocked
from syncd.testing.fields import ModelSpec

Row = dict[str, Any]

#: above this many changed rows a commit drops the sorted indexes instead of patching them
_INDEX_PATCH_LIMIT = 256


class View(Protocol):
    """Read access to rows, either the committed state or a transaction's own view of it."""

    @property
    def store(self) -> Store: ...

    @property
    def uid(self) -> int: ...

    def get(self, model: str, rid: int) -> Row | None: ...

    def iter_rows(self, model: str) -> Iterator[tuple[int, Row]]: ...

    def xmlid_lookup(self, module: str, name: str) -> int | None: ...


#: The lock key of an external id (module, name): ir_model_data's unique index.
XMLID_LOCK = "ir.model.data#xmlid"


class Table:
    """The committed rows of one model, with lazily built sorted indexes on ``(write_date, id)`` and ``id``."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.rows: dict[int, Row] = {}
        self.next_id = 1
        self._by_write_date: list[tuple[datetime, int]] | None = None
        self._by_id: list[int] | None = None

    def by_write_date(self) -> list[tuple[datetime, int]]:
        if self._by_write_date is None:
            self._by_write_date = sorted((row["write_date"], rid) for rid, row in self.rows.items())
        return self._by_write_date

    def by_id(self) -> list[int]:
        if self._by_id is None:
            self._by_id = sorted(self.rows)
        return self._by_id

    def apply(self, changes: dict[int, Row | None]) -> None:
        patch = len(changes) <= _INDEX_PATCH_LIMIT
        if not patch:
            self._by_write_date = self._by_id = None
        for rid, new in changes.items():
            old = self.rows.get(rid)
            if patch:
                self._patch_indexes(rid, old, new)
            if new is None:
                self.rows.pop(rid, None)
            else:
                self.rows[rid] = new

    def _patch_indexes(self, rid: int, old: Row | None, new: Row | None) -> None:
        wd_index, id_index = self._by_write_date, self._by_id
        if wd_index is not None:
            if old is not None:
                key = (old["write_date"], rid)
                pos = bisect_left(wd_index, key)
                if pos < len(wd_index) and wd_index[pos] == key:
                    del wd_index[pos]
            if new is not None:
                insort(wd_index, (new["write_date"], rid))
        if id_index is not None:
            if old is None and new is not None:
                insort(id_index, rid)
            elif old is not None and new is None:
                pos = bisect_left(id_index, rid)
                if pos < len(id_index) and id_index[pos] == rid:
                    del id_index[pos]


class Store:
    """All tables, the row locks of open transactions and the external-id index."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.specs: dict[str, ModelSpec] = {}
        self.tables: dict[str, Table] = {}
        self.lock = threading.RLock()
        self.row_locks: dict[tuple[str, int | tuple[str, str]], Transaction] = {}
        self.xmlids: dict[tuple[str, str], int] = {}
        #: users with every access right (the others get AccessError on admin-only models)
        self.admin_uids: set[int] = {1, 2}
        #: Called with each transaction about to commit (its changes not yet applied); what it returns
        #: is kept as the transaction's ``after_commit`` (the fake's webhook posts).
        self.on_commit: Callable[[Transaction], list[Any]] | None = None
        self._txn_numbers = itertools.count(1)

    def declare(self, spec: ModelSpec) -> None:
        with self.lock:
            self.specs[spec.name] = spec
            self.tables.setdefault(spec.name, Table(spec)).spec = spec

    def spec(self, model: str) -> ModelSpec:
        return self.specs[model]

    def begin(
        self, *, uid: int = 2, at: datetime | None = None, context: dict[str, Any] | None = None
    ) -> Transaction:
        with self.lock:
            stamp = at if at is not None else self.clock()
            return Transaction(self, stamp, uid, dict(context or {}), next(self._txn_numbers))

    def view(self, uid: int = 2) -> CommittedView:
        return CommittedView(self, uid)

    def open_transactions(self) -> set[Transaction]:
        with self.lock:
            return set(self.row_locks.values())


class CommittedView:
    """What a reader outside any transaction sees: the committed rows."""

    def __init__(self, store: Store, uid: int) -> None:
        self._store = store
        self._uid = uid

    @property
    def store(self) -> Store:
        return self._store

    @property
    def uid(self) -> int:
        return self._uid

    def get(self, model: str, rid: int) -> Row | None:
        return self._store.tables[model].rows.get(rid)

    def iter_rows(self, model: str) -> Iterator[tuple[int, Row]]:
        return iter(self._store.tables[model].rows.items())

    def xmlid_lookup(self, module: str, name: str) -> int | None:
        return self._store.xmlids.get((module, name))


class Transaction:
    """An open set of changes, stamped at its start and invisible to others until :meth:`commit`."""

    def __init__(self, store: Store, stamp: datetime, uid: int, context: dict[str, Any], number: int) -> None:
        self._store = store
        self.stamp = stamp
        self._uid = uid
        self.context = context
        self.number = number
        self.state = "open"
        #: set by an operation whose answer stands but whose changes must not be kept (a failed ``load``)
        self.rollback_only = False
        self.changes: dict[str, dict[int, Row | None]] = {}
        self.xmlid_changes: dict[tuple[str, str], int | None] = {}
        self._locked: set[tuple[str, int | tuple[str, str]]] = set()
        self._callbacks: list[Callable[[], None]] = []
        #: What the store's ``on_commit`` hook left to do once this transaction committed.
        self.after_commit: list[Any] = []

    def __repr__(self) -> str:
        return f"<Transaction #{self.number} {self.state} at {self.stamp.isoformat()}>"

    @property
    def store(self) -> Store:
        return self._store

    @property
    def uid(self) -> int:
        return self._uid

    # ------------------------------------------------------------------ reading (own changes first)

    def get(self, model: str, rid: int) -> Row | None:
        own = self.changes.get(model)
        if own is not None and rid in own:
            return own[rid]
        return self._store.tables[model].rows.get(rid)

    def iter_rows(self, model: str) -> Iterator[tuple[int, Row]]:
        own = self.changes.get(model) or {}
        for rid, row in self._store.tables[model].rows.items():
            if rid not in own:
                yield rid, row
        for rid, new in own.items():
            if new is not None:
                yield rid, new

    def xmlid_lookup(self, module: str, name: str) -> int | None:
        key = (module, name)
        if key in self.xmlid_changes:
            return self.xmlid_changes[key]
        return self._store.xmlids.get(key)

    # ------------------------------------------------------------------ writing

    def _check_open(self) -> None:
        if self.state != "open":
            raise RuntimeError(f"transaction is {self.state}")

    def _lock(self, model: str, rid: int | tuple[str, str]) -> None:
        key = (model, rid)
        holder = self._store.row_locks.get(key)
        if holder is not None and holder is not self:
            raise RowLocked(holder)
        self._store.row_locks[key] = self
        self._locked.add(key)

    def new_id(self, model: str) -> int:
        # Like a PostgreSQL sequence: an id handed out is never given again, even on rollback.
        table = self._store.tables[model]
        rid = table.next_id
        table.next_id += 1
        return rid

    def insert(self, model: str, rid: int, row: Row) -> None:
        self._check_open()
        self._lock(model, rid)
        self.changes.setdefault(model, {})[rid] = row

    def writable(self, model: str, rid: int) -> Row:
        """This transaction's own copy of a row, locking it (the row must exist)."""
        self._check_open()
        own = self.changes.setdefault(model, {})
        if rid in own:
            row = own[rid]
            if row is None:
                raise KeyError(rid)
            return row
        committed = self._store.tables[model].rows[rid]
        self._lock(model, rid)
        row = {key: list(value) if isinstance(value, list) else value for key, value in committed.items()}
        own[rid] = row
        return row

    def delete(self, model: str, rid: int) -> None:
        self._check_open()
        self._lock(model, rid)
        self.changes.setdefault(model, {})[rid] = None

    def set_xmlid(self, module: str, name: str, imd_id: int | None) -> None:
        # ir_model_data's unique (module, name) index: a second transaction creating the same external
        # id waits for the first (Odoo then retries it as a serialization failure and finds the record)
        self._check_open()
        self._lock(XMLID_LOCK, (module, name))
        self.xmlid_changes[(module, name)] = imd_id

    # ------------------------------------------------------------------ ending

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from whichever thread ends the transaction) once it commits or rolls back."""
        with self._store.lock:
            if self.state == "open":
                self._callbacks.append(callback)
                return
        callback()

    def commit(self) -> None:
        with self._store.lock:
            self._check_open()
            if self._store.on_commit is not None:
                self.after_commit = self._store.on_commit(self)
            for model, changes in self.changes.items():
                self._store.tables[model].apply(changes)
            for key, imd_id in self.xmlid_changes.items():
                if imd_id is None:
                    self._store.xmlids.pop(key, None)
                else:
                    self._store.xmlids[key] = imd_id
            self._finish("committed")

    def finish(self) -> None:
        """Commit, unless an operation marked the transaction ``rollback_only``."""
        if self.rollback_only:
            self.rollback()
        else:
            self.commit()

    def rollback(self) -> None:
        with self._store.lock:
            if self.state != "open":
                return
            self._finish("rolled back")

    def _finish(self, state: str) -> None:
        self.state = state
        for key in self._locked:
            if self._store.row_locks.get(key) is self:
                del self._store.row_locks[key]
        self._locked.clear()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
