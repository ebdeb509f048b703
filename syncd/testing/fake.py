"""``FakeOdoo``: the in-memory Odoo 19 behind the fake server, also usable directly from tests.

The direct API (``create``, ``write``, ``search_read``…) has the same semantics as the RPC methods: each call
is one transaction sharing one ``write_date``, errors are :class:`~syncd.testing.errors.FakeOdooError` with
Odoo's names and messages. ``begin()`` opens a transaction that stays invisible until committed, stamped at
its start: the "long transaction commits rows whose write_date is already in the past" case.

The answers are checked against a real Odoo 19 by ``tests/integration/test_fake_vs_real.py`` (datetime
domains, the order inside one second, ``load()`` messages and errors, missing ids, the error shapes of
both transports), and syncd's end-to-end scenarios run on both (``tests/e2e/test_odoo_scenarios.py``).
What the fake still does differently, on purpose, and why that is safe for the tests built on it:

* **Speed and concurrency.** One process, one lock, microseconds per call; a real Odoo takes 10–50 ms
  per call and runs calls side by side. Timings are measured against the real server (``bench/``),
  never against the fake. A row held by a :meth:`begin` transaction fails a writer at once with
  Odoo's serialization failure, where Odoo first retries for up to ~17 s; the error is the same.
* **The unknown-database error** names PostgreSQL port 5432 (the fake has no PostgreSQL); only the
  error's name and class matter to syncd.
* **Not modelled**: creating fields through ``ir.model.fields`` (declare them with
  :meth:`FakeOdoo.declare_model`; ``ir.model.fields`` only describes them), workflow methods such as
  ``sale.order.action_confirm``, and the access rules of users other than admin-like ones. Scenarios
  that need them run against the real Odoo only (``real_odoo``).
* **Webhooks** of automation rules (:mod:`syncd.testing.automation`) post once per record and
  transaction; a real Odoo re-runs a rule on its internal writes (see that module).
* **Fault injection** (``faults``: 5xx, hangs, dropped connections, late commits, in-band ``load()``
  conflicts) exists only here; a real Odoo is never made to fail on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from syncd.testing import automation, builtin, demo, errors, loader, methods, orm
from syncd.testing.faults import CallRecord, Faults
from syncd.testing.fields import FieldSpec, ModelSpec
from syncd.testing.methods import Invocation, Method
from syncd.testing.store import Store, Transaction

T = TypeVar("T")
ADMIN_UID = 2


def utcnow() -> datetime:
    """The default clock: naive UTC with microseconds, like PostgreSQL's ``now()`` in Odoo."""
    return datetime.now(UTC).replace(tzinfo=None)


class ManualClock:
    """A clock for :class:`FakeOdoo` that moves only when told to (and by ``tick`` on every reading).

    ``clock.now`` is the next value returned; ``advance()`` moves it. With a zero ``tick`` two transactions
    begun without advancing share a timestamp; a tick of a few microseconds keeps them apart while staying
    inside the same second, which is what the whole-second tests need.
    """

    def __init__(self, start: datetime | None = None, tick: timedelta = timedelta(0)) -> None:
        self.now = start or datetime(2026, 11, 22, 19, 39, 19, 500_000)
        self.tick = tick

    def __call__(self) -> datetime:
        value = self.now
        self.now += self.tick
        return value

    def advance(self, seconds: float = 0.0, *, microseconds: int = 0) -> datetime:
        self.now += timedelta(seconds=seconds, microseconds=microseconds)
        return self.now

    def set(self, value: datetime) -> None:
        self.now = value


@dataclass
class FakeUser:
    """Credentials of a user of the fake: a password and API keys (either works on JSON-RPC)."""

    uid: int
    login: str
    password: str
    api_keys: frozenset[str]

    def accepts(self, secret: Any) -> bool:
        return isinstance(secret, str) and (secret == self.password or secret in self.api_keys)


class FakeTransaction:
    """A transaction opened by :meth:`FakeOdoo.begin`: stamped at its start, visible only once committed.

    Its writes lock their rows: another writer touching them gets ``SerializationFailure`` (direct API) or
    waits for this transaction to end (HTTP, like Odoo retrying). Use it as a context manager to commit on
    success and roll back on error.
    """

    def __init__(self, fake: FakeOdoo, txn: Transaction) -> None:
        self._fake = fake
        self._txn = txn

    @property
    def stamp(self) -> datetime:
        """The ``write_date`` of everything written in this transaction."""
        return self._txn.stamp

    @property
    def state(self) -> str:
        return self._txn.state

    def _run(self, work: Callable[[Transaction], T]) -> T:
        with self._fake.store.lock:
            return self._fake._guarded(lambda: work(self._txn))

    def create(self, model: str, vals_list: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[int]:
        items = [vals_list] if isinstance(vals_list, Mapping) else list(vals_list)
        return self._run(lambda txn: orm.create(txn, model, items))

    def write(self, model: str, ids: Sequence[int], vals: Mapping[str, Any]) -> bool:
        self._run(lambda txn: orm.write(txn, model, list(ids), vals))
        return True

    def unlink(self, model: str, ids: Sequence[int]) -> bool:
        self._run(lambda txn: orm.unlink(txn, model, list(ids)))
        return True

    def load(self, model: str, fields: Sequence[str], data: Sequence[Sequence[Any]]) -> dict[str, Any]:
        return self._run(lambda txn: loader.load(txn, model, fields, data))

    def read(
        self, model: str, ids: Sequence[int], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Read as this transaction sees it (its own uncommitted changes included)."""
        return self._run(lambda txn: orm.read(txn, model, list(ids), fields))

    def commit(self) -> None:
        self._txn.finish()
        self._fake.webhooks.send_soon(self._txn.after_commit)

    def rollback(self) -> None:
        self._txn.rollback()

    def __enter__(self) -> FakeTransaction:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self._txn.state == "open":
            self.commit()
        else:
            self.rollback()


class FakeOdoo:
    """An in-memory Odoo 19 with Odoo's models, values, domains, errors and transaction timing.

    ``database`` is the only database name accepted; login ``admin``/``admin`` (uid 2) and API key
    ``admin``; a non-admin user ``demo``/``demo`` (uid 5, API key ``demo``) meets Odoo's access errors.
    ``clock`` returns naive UTC datetimes (with microseconds) and stamps every transaction; inject one to
    control ``write_date`` in tests. Serve it over HTTP with :class:`~syncd.testing.FakeOdooServer`.
    """

    api_key = "admin"
    login = "admin"
    password = "admin"  # noqa: S105 - the fake's documented test credential
    uid = ADMIN_UID

    def __init__(
        self,
        database: str = "odoo",
        demo_data: bool = False,
        clock: Callable[[], datetime] | None = None,
        *,
        base_automation: bool = True,
    ) -> None:
        self.database = database
        self.clock: Callable[[], datetime] = clock or utcnow
        self.store = Store(lambda: self.clock())
        self.faults = Faults()
        #: The webhook posts of automation rules (``base_automation=False``: the app is not installed).
        self.webhooks = automation.FakeWebhooks()
        self.store.on_commit = automation.collect_posts
        self.calls: list[CallRecord] = []
        self.users: dict[int, FakeUser] = {
            ADMIN_UID: FakeUser(ADMIN_UID, "admin", "admin", frozenset({"admin"})),
            5: FakeUser(5, "demo", "demo", frozenset({"demo"})),
        }
        for spec in builtin.builtin_models() + automation.models(with_base_automation=base_automation):
            self.store.declare(spec)
        automation.register(self.store, self.store.specs.values())
        demo.install(self.store, demo_data=demo_data)

    # ------------------------------------------------------------------ schema

    def declare_model(
        self,
        model: str,
        fields: Mapping[str, FieldSpec],
        *,
        description: str | None = None,
        order: str = "id",
        rec_name: str | None = None,
    ) -> ModelSpec:
        """Add a model, or add fields to an existing one (a field "added to Odoo later").

        Records that already exist get the new fields' defaults (or empty values). Relations must point at
        models that exist (or at the model itself).
        """
        with self.store.lock:
            for name, spec in fields.items():
                if spec.relation and spec.relation != model and spec.relation not in self.store.specs:
                    raise ValueError(f"{model}.{name}: relation {spec.relation!r} is not a declared model")
            existing = self.store.specs.get(model)
            if existing is None:
                if rec_name is None:
                    rec_name = "name" if "name" in fields else None
                spec_obj = ModelSpec(
                    model, description or model, dict(fields), order=order, rec_name=rec_name
                )
                self.store.declare(spec_obj)
                automation.register(self.store, [spec_obj])
                return spec_obj
            existing.add_fields(fields)
            automation.register(self.store, [existing])
            stored = {field.name for field in existing.stored_fields()}
            for row in self.store.tables[model].rows.values():
                for name in fields:
                    field = existing.fields[name]
                    if name in stored and name not in row:
                        default = field.default() if callable(field.default) else field.default
                        row[name] = [] if field.type == "many2many" else default
            return existing

    def fields_get(
        self, model: str, allfields: Sequence[str] | None = None, attributes: Sequence[str] | None = None
    ) -> dict[str, Any]:
        return self.store.spec(model).fields_get(allfields, attributes)

    # ------------------------------------------------------------------ users

    def add_user(
        self, login: str, *, password: str | None = None, api_key: str | None = None, admin: bool = False
    ) -> int:
        """Create a user (and its partner); ``admin`` users pass every access check."""
        (uid,) = self.create("res.users", [{"login": login, "name": login}])
        keys = frozenset({api_key}) if api_key else frozenset()
        self.users[uid] = FakeUser(uid, login, password or login, keys)
        if admin:
            self.store.admin_uids.add(uid)
        return uid

    def authenticate(self, login: Any, password: Any) -> int | None:
        for user in self.users.values():
            if user.login == login and user.accepts(password):
                return user.uid
        return None

    def uid_for_api_key(self, key: str) -> int | None:
        return next((user.uid for user in self.users.values() if key in user.api_keys), None)

    def check_credentials(self, db: Any, uid: Any, secret: Any) -> int:
        """``execute_kw``'s checks, with the errors recorded in ``odoo-wire/h.txt``."""
        if db != self.database:
            raise errors.unknown_database(str(db))
        user = self.users.get(uid) if isinstance(uid, int) and not isinstance(uid, bool) else None
        if user is None:
            raise errors.missing_error("res.users", (uid,), uid if isinstance(uid, int) else 0)
        if not user.accepts(secret):
            raise errors.access_denied()
        return user.uid

    # ------------------------------------------------------------------ calls

    def _guarded(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except errors.RowLocked:
            raise errors.serialization_failure() from None

    def run(self, inv: Invocation, method: Method) -> Any:
        """Run a bound method call in its own transaction, committed before returning (direct API)."""
        with self.store.lock:
            if not method.writes:
                return self._guarded(lambda: method.handler(inv, self.store.view(inv.uid)))
            txn = self.store.begin(uid=inv.uid, context=inv.context)
            try:
                result = self._guarded(lambda: method.handler(inv, txn))
            except BaseException:
                txn.rollback()
                raise
            txn.finish()
        self.webhooks.send_soon(txn.after_commit)
        return result

    def call(self, model: str, method: str, *args: Any, uid: int = ADMIN_UID, **kwargs: Any) -> Any:
        """Like ``execute_kw(model, method, args, kwargs)`` as ``uid``, without HTTP (``context=`` allowed)."""
        resolved, inv = methods.execute_kw_invocation(
            self.store.view(uid), model, method, args, kwargs, uid, "direct"
        )
        return self.run(inv, resolved)

    def create(self, model: str, vals_list: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[int]:
        items = [vals_list] if isinstance(vals_list, Mapping) else list(vals_list)
        result: list[int] = self.call(model, "create", items)
        return result

    def write(self, model: str, ids: Sequence[int], vals: Mapping[str, Any]) -> bool:
        return bool(self.call(model, "write", list(ids), vals))

    def unlink(self, model: str, ids: Sequence[int]) -> bool:
        return bool(self.call(model, "unlink", list(ids)))

    def archive(self, model: str, ids: Sequence[int]) -> None:
        self.call(model, "action_archive", list(ids))

    def unarchive(self, model: str, ids: Sequence[int]) -> None:
        self.call(model, "action_unarchive", list(ids))

    def read(
        self, model: str, ids: Sequence[int], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(model, "read", list(ids), fields)
        return result

    def search(
        self,
        model: str,
        domain: Sequence[Any] | None = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        result: list[int] = self.call(
            model, "search", list(domain or []), offset, limit, order, context=context
        )
        return result

    def search_read(
        self,
        model: str,
        domain: Sequence[Any] | None = None,
        fields: Sequence[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            model, "search_read", list(domain or []), fields, offset, limit, order, context=context
        )
        return result

    def search_count(
        self, model: str, domain: Sequence[Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> int:
        return int(self.call(model, "search_count", list(domain or []), context=context))

    def load(
        self,
        model: str,
        fields: Sequence[str],
        data: Sequence[Sequence[Any]],
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(model, "load", list(fields), list(data), context=context)
        return result

    def begin(self, at: datetime | None = None) -> FakeTransaction:
        """Open a transaction stamped ``at`` (default: the clock now), invisible until committed."""
        return FakeTransaction(self, self.store.begin(uid=ADMIN_UID, at=at))

    # ------------------------------------------------------------------ inspection

    def records(self, model: str) -> dict[int, dict[str, Any]]:
        """The committed rows of ``model`` as stored (Python values: datetimes keep their microseconds)."""
        with self.store.lock:
            rows = self.store.tables[model].rows
            return {rid: dict(row) for rid, row in sorted(rows.items())}

    def ref(self, xmlid: str) -> tuple[str, int] | None:
        """``(model, id)`` of an external id such as ``"base.main_partner"``, or None."""
        module, _, name = xmlid.partition(".")
        with self.store.lock:
            imd_id = self.store.xmlids.get((module, name))
            row = self.store.tables["ir.model.data"].rows.get(imd_id) if imd_id is not None else None
            return (row["model"], row["res_id"]) if row else None
