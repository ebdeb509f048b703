"""``FakeOdooServer``: a real aiohttp server speaking Odoo 19's two external APIs over a :class:`FakeOdoo`.

- JSON-RPC, ``POST /jsonrpc``: ``common.version``/``authenticate``/``login``, ``db.list``/``server_version``,
  ``object.execute_kw``/``execute``. Always HTTP 200; errors in ``{"error": {"code": 0, "message": "Odoo
  Server Error", "data": {...}}}``; a method returning None answers without a ``result`` key.
- JSON-2, ``POST /json/2/<model>/<method>`` with ``Authorization: bearer <key>`` (and optionally
  ``X-Odoo-Database``): keyword arguments plus ``ids`` and ``context`` in the body, the bare result back,
  errors with real HTTP statuses and a flat ``{name, message, arguments, context, debug}`` body.

Faults set on ``fake.faults`` apply to both. Calls run as serialised transactions on the fake's store; a
call touching a row locked by an open transaction (``fake.begin()``, a late commit) waits for it like Odoo's
retry loop, up to ``faults.lock_timeout_seconds``, then fails with ``SerializationFailure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from types import TracebackType
from typing import Any, cast

from aiohttp import web

from syncd.testing import errors, loader, methods
from syncd.testing.fake import FakeOdoo
from syncd.testing.faults import CallRecord, PendingFault
from syncd.testing.methods import Invocation, Method
from syncd.testing.store import Transaction

log = logging.getLogger("syncd.testing")

#: Faults that act while the call runs rather than before it.
_WHILE_RUNNING = frozenset({"late_commit", "load_conflict"})

VERSION = {
    "server_version": "19.0",
    "server_version_info": [19, 0, 0, "final", 0, ""],
    "server_serie": "19.0",
    "protocol_version": 1,
}
UNKNOWN_DATABASE_PAGE = """<!DOCTYPE html>
<title>404 Not Found</title>
<h1>Not Found</h1>
<p>No database is selected and the requested URL was not found in the server-wide controllers.</p>
<p>Please verify the hostname, <a href=/web/login>login</a> and try again.</p>

<!-- Alternatively, use the X-Odoo-Database header. -->
"""
NO_KEY = "User not authenticated, use an API Key with a Bearer Authorization header."


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _unexpected(exc: Exception) -> errors.FakeOdooError:
    log.exception("fake Odoo: unexpected error")
    return errors.FakeOdooError(f"builtins.{type(exc).__name__}", str(exc))


class FakeOdooServer:
    """Serve ``fake`` on ``host:port`` (port 0 picks a free one); ``url`` is known once started.

    Use ``async with FakeOdooServer(fake) as server:``, or ``start()``/``close()``.
    """

    def __init__(self, fake: FakeOdoo, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._bound: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        if self._bound is None:
            raise RuntimeError("the server is not started")
        host, port = self._bound
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_post("/jsonrpc", self._jsonrpc)
        app.router.add_post("/json/2/{model}/{method}", self._json2)
        app.router.add_route("*", "/json/2{tail:.*}", self._json2_not_found)
        app.router.add_get("/web/health", self._health)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        address = self._runner.addresses[0]
        self._bound = (str(address[0]), int(address[1]))

    async def close(self) -> None:
        # Hanging calls end with a closed connection; late commits commit now rather than never.
        self.fake.faults.release_hangs()
        self.fake.faults.release_late_commits()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOdooServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ shared machinery

    def _record(self, call: CallRecord) -> None:
        self.fake.calls.append(call)

    async def _fault_response(
        self, request: web.Request, fault: PendingFault | None
    ) -> web.StreamResponse | None:
        """Answer (or not) for faults that act before anything runs; None lets the call proceed."""
        if fault is None or fault.kind in ("serialization", "late_commit", "load_conflict"):
            return None
        if fault.kind == "fail":
            headers = {}
            if fault.retry_after is not None:
                seconds = fault.retry_after
                headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            phrase = HTTPStatus(fault.status).phrase
            page = f"<html><head><title>{fault.status} {phrase}</title></head><body><h1>{phrase}</h1></body></html>"
            return web.Response(status=fault.status, text=page, content_type="text/html", headers=headers)
        if fault.kind == "hang":
            await self.fake.faults.wait_released("hang", None)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never delivered: the connection is gone

    async def _answer(self, response: web.Response) -> web.Response:
        if self.fake.faults.latency_seconds > 0:
            await asyncio.sleep(self.fake.faults.latency_seconds)
        return response

    async def _execute(self, inv: Invocation, method: Method, during: PendingFault | None) -> Any:
        """Run the call; ``during`` is a fault that acts while it runs (a late commit, a load conflict)."""
        if during is not None and during.kind == "load_conflict" and method.name == "load":
            method = replace(method, handler=loader.with_conflict(method.handler, during.row, during.message))
        late = during if during is not None and during.kind == "late_commit" else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.fake.faults.lock_timeout_seconds
        while True:
            try:
                return await self._execute_once(inv, method, late)
            except errors.RowLocked as exc:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise errors.serialization_failure() from None
                await self._wait_for(cast(Transaction, exc.holder), remaining)

    async def _execute_once(self, inv: Invocation, method: Method, late: PendingFault | None) -> Any:
        store = self.fake.store
        if not method.writes:
            with store.lock:
                return method.handler(inv, store.view(inv.uid))
        if late is None:
            with store.lock:
                txn, result = self._apply(inv, method)
                txn.finish()
        else:
            with store.lock:
                # Stamped now, committed later: the transaction's write_date is in the past when it shows up.
                txn, result = self._apply(inv, method)
            try:
                await self.fake.faults.wait_released("late_commit", late.delay_seconds)
            finally:
                txn.finish()
        # Like Odoo: webhooks post after the commit, before the call is answered.
        await self.fake.webhooks.deliver(txn.after_commit)
        return result

    def _apply(self, inv: Invocation, method: Method) -> tuple[Transaction, Any]:
        """Run a writing method in a new transaction (the caller holds the store lock); on an error the
        transaction is rolled back, else the caller decides when it commits."""
        txn = self.fake.store.begin(uid=inv.uid, context=inv.context)
        try:
            return txn, method.handler(inv, txn)
        except BaseException:
            txn.rollback()
            raise

    async def _wait_for(self, holder: Transaction, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        def wake_from_any_thread() -> None:
            loop.call_soon_threadsafe(wake)

        holder.add_done_callback(wake_from_any_thread)
        with self.fake.faults.holding("lock"), contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, seconds)

    # ------------------------------------------------------------------ JSON-RPC

    async def _jsonrpc(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.Response(status=400, text="Bad Request: the body is not a JSON-RPC request")
        request_id = body.get("id")
        raw_params = body.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        service, name = str(params.get("service")), str(params.get("method"))
        raw_args = params.get("args")
        args: list[Any] = raw_args if isinstance(raw_args, list) else []
        model, target, call_args, call_kwargs = None, name, list(args), {}
        if service == "object" and len(args) >= 5:
            model, target = args[3], str(args[4])
            call_args = (args[5] if len(args) > 5 else []) if name == "execute_kw" else list(args[5:])
            call_kwargs = (
                args[6] if name == "execute_kw" and len(args) > 6 and isinstance(args[6], dict) else {}
            )
        elif service == "common" and len(call_args) > 2:
            call_args[2] = "<secret>"
        known = methods.METHODS.get(target)
        fault = self.fake.faults.take(target, writes=bool(model and known and known.writes))
        self._record(
            CallRecord("jsonrpc", service, model, target, call_args, dict(call_kwargs), self.fake.clock(),
                       fault.label if fault else None)
        )  # fmt: skip
        early = await self._fault_response(request, fault)
        if early is not None:
            return early
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        try:
            if fault is not None and fault.kind == "serialization":
                raise errors.serialization_failure()
            during = fault if fault is not None and fault.kind in _WHILE_RUNNING else None
            result = await self._jsonrpc_dispatch(service, name, args, during)
            if result is not None:
                payload["result"] = result
        except errors.FakeOdooError as exc:
            payload["error"] = {"code": 0, "message": "Odoo Server Error", "data": exc.data()}
        except Exception as exc:  # a bug in the fake: still answer like Odoo would
            payload["error"] = {"code": 0, "message": "Odoo Server Error", "data": _unexpected(exc).data()}
        return await self._answer(_json(payload))

    async def _jsonrpc_dispatch(
        self, service: str, name: str, args: list[Any], during: PendingFault | None
    ) -> Any:
        fake = self.fake
        if service == "common":
            if name == "version":
                return VERSION
            if name in ("authenticate", "login"):
                if len(args) < 3:
                    raise errors.type_error(f"exp_{name}() missing required positional arguments")
                if args[0] != fake.database:
                    raise errors.unknown_database(str(args[0]))
                return fake.authenticate(args[1], args[2]) or False
            if name == "about":
                return "See http://openerp.com"
        elif service == "db":
            if name == "list":
                return [fake.database]
            if name == "server_version":
                return VERSION["server_version"]
        elif service == "object" and name in ("execute_kw", "execute"):
            if len(args) < 5:
                raise errors.type_error(f"{name}() missing required positional arguments")
            db, uid, secret, model, method_name = args[:5]
            if name == "execute_kw":
                method_args = args[5] if len(args) > 5 else []
                method_kwargs = dict(args[6]) if len(args) > 6 and isinstance(args[6], dict) else {}
            else:
                method_args, method_kwargs = list(args[5:]), {}
            uid = fake.check_credentials(db, uid, secret)
            return await self._object_call(
                uid, model, str(method_name), list(method_args), method_kwargs, during
            )
        else:
            raise errors.key_error(service)
        raise errors.attribute_error(f"module 'odoo.service.{service}' has no attribute 'exp_{name}'")

    async def _object_call(
        self,
        uid: int,
        model: Any,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        during: PendingFault | None,
    ) -> Any:
        store = self.fake.store
        method, inv = methods.execute_kw_invocation(
            store.view(uid), model, name, args, kwargs, uid, "jsonrpc"
        )
        return await self._execute(inv, method, during)

    # ------------------------------------------------------------------ JSON-2

    async def _json2(self, request: web.Request) -> web.StreamResponse:
        model, name = request.match_info["model"], request.match_info["method"]
        raw = await request.read()
        try:
            parsed: Any = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            parsed = exc
        known = methods.METHODS.get(name)
        fault = self.fake.faults.take(name, writes=bool(known and known.writes))
        recorded = dict(parsed) if isinstance(parsed, dict) else {}
        self._record(
            CallRecord("json2", "json2", model, name, list(recorded.get("ids") or []), recorded, self.fake.clock(),
                       fault.label if fault else None)
        )  # fmt: skip
        early = await self._fault_response(request, fault)
        if early is not None:
            return early
        database = request.headers.get("X-Odoo-Database")
        if database is not None and database != self.fake.database:
            return await self._answer(
                web.Response(status=404, text=UNKNOWN_DATABASE_PAGE, content_type="text/html")
            )
        try:
            if fault is not None and fault.kind == "serialization":
                raise errors.serialization_failure()
            uid = self._bearer_uid(request)
            during = fault if fault is not None and fault.kind in _WHILE_RUNNING else None
            result = await self._json2_call(uid, model, name, parsed, during)
            response = _json(result)
        except errors.FakeOdooError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            response = _json(exc.data(), exc.status, headers)
        except Exception as exc:  # a bug in the fake: still answer like Odoo would
            response = _json(_unexpected(exc).data(), 500)
        return await self._answer(response)

    def _bearer_uid(self, request: web.Request) -> int:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise errors.http_error(401, NO_KEY)
        uid = self.fake.uid_for_api_key(key.strip())
        if uid is None:
            raise errors.http_error(401, "Invalid apikey")
        return uid

    async def _json2_call(
        self, uid: int, model: str, name: str, parsed: Any, during: PendingFault | None
    ) -> Any:
        if isinstance(parsed, ValueError):
            raise errors.http_error(400, f"could not parse the body as json: {parsed}")
        if not isinstance(parsed, dict):
            raise errors.http_error(400, "could not parse the body as json: expected a JSON object")
        body = dict(parsed)
        ids = body.pop("ids", None) or []
        context = body.pop("context", None) or {}
        store = self.fake.store
        if model not in store.specs:
            raise errors.http_error(404, f"the model '{model}' does not exist")
        try:
            method = methods.resolve(store.view(uid), model, name)
        except errors.FakeOdooError as exc:
            if exc.name == "builtins.AttributeError":
                raise errors.http_error(404, exc.message) from None
            raise
        if not method.record and ids:
            raise errors.http_error(422, f"cannot call {model}.{name} with ids")
        ids = list(ids) if isinstance(ids, list | tuple) else [ids]
        params = methods.bind_keywords(method, body)
        inv = Invocation(model, name, ids, params, dict(context), uid, "json2")
        return await self._execute(inv, method, during)

    async def _json2_not_found(self, request: web.Request) -> web.StreamResponse:
        exc = errors.http_error(404, "Did you mean POST /json/2/<model>/<method>?")
        return _json(exc.data(), 404)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        """Odoo's ``/web/health`` (no login): ``{"status": "pass"}``, and ``db_server_status``
        when asked. Faults act on it as on any call (method ``/web/health``): an Odoo that
        answers 503 answers it here too."""
        fault = self.fake.faults.take("/web/health", writes=False)
        self._record(CallRecord("http", "web", None, "/web/health", [], dict(request.query), self.fake.clock(),
                                fault.label if fault else None))  # fmt: skip
        early = await self._fault_response(request, fault)
        if early is not None:
            return early
        body: dict[str, Any] = {"status": "pass"}
        if request.query.get("db_server_status"):
            body["db_server_status"] = True
        return await self._answer(_json(body))


class BackgroundFakeOdooServer:
    """A :class:`FakeOdooServer` on its own event loop in a daemon thread, for synchronous test suites.

    ``with BackgroundFakeOdooServer(fake) as server: requests.post(server.url + "/jsonrpc", ...)``. The fake
    stays usable from the test's thread (its store is guarded by a lock).
    """

    def __init__(self, fake: FakeOdoo, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = FakeOdooServer(fake, host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-odoo", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("the fake Odoo server could not start") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def __enter__(self) -> BackgroundFakeOdooServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def parse_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[v6]:PORT`` too) → ``(host, port)``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve_forever(
    listen: str = "127.0.0.1:8069",
    database: str = "odoo",
    demo_data: bool = False,
    *,
    on_ready: Callable[[FakeOdooServer], None] | None = None,
) -> None:
    """Serve a fresh :class:`FakeOdoo` until cancelled (the ``syncd fake-odoo`` command).

    ``on_ready`` is called with the started server (its ``url`` and ``fake``), e.g. to print the address.
    """
    host, port = parse_listen(listen)
    fake = FakeOdoo(database=database, demo_data=demo_data)
    async with FakeOdooServer(fake, host, port) as server:
        if on_ready is not None:
            on_ready(server)
        log.info(
            "fake Odoo 19 serving database %r on %s (login admin/admin, API key admin)", database, server.url
        )
        await asyncio.Event().wait()
