"""OdooClient over real HTTP against a minimal stand-in server that answers like the recordings.

The stand-in (:class:`StubOdoo`) speaks both transports with the exact shapes of ``odoo-wire/``
and takes a script of faults (HTTP statuses, hangs, dropped connections) for the next requests,
so the tests can count attempts and check the error shapes precisely.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from syncd import errors
from syncd.config import OdooSettings
from syncd.odoo import OdooClient, OdooConnectFailedError, RetryPolicy

pytestmark = pytest.mark.integration

API_KEY = "k3y-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
PASSWORD = "pa55-w0rd-never-logged"
FAST = RetryPolicy(retries=3, base_seconds=0.001, max_seconds=0.005, max_retry_after_seconds=0.01)

V19 = {
    "server_version": "19.0",
    "server_version_info": [19, 0, 0, "final", 0, ""],
    "server_serie": "19.0",
    "protocol_version": 1,
}
V17 = {
    "server_version": "17.0",
    "server_version_info": [17, 0, 0, "final", 0, ""],
    "server_serie": "17.0",
    "protocol_version": 1,
}
HTML_404 = (
    "<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>No database is selected and the "
    "requested URL was not found in the server-wide controllers.</p>\n"
)
NO_RESULT = object()  # a method returning None: JSON-RPC answers without a ``result`` key

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fault(Exception):
    def __init__(self, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.name, self.message, self.status = name, message, status

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "arguments": [self.message],
            "context": {},
            "debug": f"Traceback (most recent call last):\n  ...\n{self.name}: {self.message}",
        }


@dataclass
class Call:
    transport: str
    model: str
    method: str
    ids: list[int] | None
    kwargs: dict[str, Any]
    args: list[Any] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class StubOdoo:
    """Both transports over a tiny res.partner store; ``script`` overrides the next answers."""

    def __init__(self, version: dict[str, Any] = V19) -> None:
        self.version = version
        self.partners: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "YourCompany", "active": True},
            2: {"id": 2, "name": "OdooBot", "active": False},
            3: {"id": 3, "name": "Mitchell Admin", "active": True},
        }
        self.xmlids: dict[str, int] = {"base.main_partner": 1}
        self.script: deque[Handler] = deque()
        self.requests: list[str] = []  # every path requested, faults included
        self.calls: list[Call] = []
        self.handlers: dict[tuple[str, str], Callable[[Call], Any]] = {}
        self.release = asyncio.Event()  # lets hanging handlers go at teardown
        self.in_flight = 0
        self.max_in_flight = 0
        self.changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_post("/jsonrpc", self._jsonrpc)
        self.app.router.add_post("/json/2/{model}/{method}", self._json2)

    # ---------------------------------------------------------------------------- fault scripting

    def then_status(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, text=body, headers=headers, content_type="text/html")

        self.script.append(answer)

    def then_hang(self) -> None:
        async def hang(request: web.Request) -> web.StreamResponse:
            await self.release.wait()
            return web.Response(status=503)

        self.script.append(hang)

    def then_drop(self) -> None:
        async def drop(request: web.Request) -> web.StreamResponse:
            await request.read()
            assert request.transport is not None
            request.transport.close()
            return web.Response()

        self.script.append(drop)

    # ---------------------------------------------------------------------------------- transports

    async def _enter(self, request: web.Request) -> web.StreamResponse | None:
        self.requests.append(request.path)
        async with self.changed:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()
        if self.script:
            return await self.script.popleft()(request)
        return None

    async def _leave(self) -> None:
        async with self.changed:
            self.in_flight -= 1
            self.changed.notify_all()

    async def _jsonrpc(self, request: web.Request) -> web.StreamResponse:
        try:
            if (scripted := await self._enter(request)) is not None:
                return scripted
            body = await request.json()
            params = body["params"]
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
            try:
                result = self._rpc(params["service"], params["method"], params["args"])
            except Fault as f:
                answer["error"] = {"code": 0, "message": "Odoo Server Error", "data": f.data()}
            else:
                if result is not NO_RESULT:
                    answer["result"] = result
            return web.json_response(answer)
        finally:
            await self._leave()

    def _rpc(self, service: str, method: str, args: list[Any]) -> Any:
        if service == "common" and method == "version":
            return self.version
        if service == "common" and method == "authenticate":
            db, login, secret, _ = args
            return 2 if (db, login) == ("odoo", "admin") and secret in (API_KEY, PASSWORD) else False
        assert (service, method) == ("object", "execute_kw")
        db, uid, secret, model, meth, margs, kwargs = args
        if secret not in (API_KEY, PASSWORD) or uid != 2:
            raise Fault("odoo.exceptions.AccessDenied", "Access Denied")
        model_methods = ("create", "search", "search_count", "search_read", "load", "fields_get")
        ids = margs[0] if margs and meth not in model_methods else None
        call = Call("jsonrpc", model, meth, ids, kwargs, args=margs)
        return self._dispatch(call)

    async def _json2(self, request: web.Request) -> web.StreamResponse:
        try:
            if (scripted := await self._enter(request)) is not None:
                return scripted
            if request.headers.get("X-Odoo-Database") != "odoo":
                return web.Response(status=404, text=HTML_404, content_type="text/html")
            if request.headers.get("Authorization") != f"bearer {API_KEY}":
                fault = Fault("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401)
                return web.json_response(fault.data(), status=401, headers={"WWW-Authenticate": "Bearer"})
            kwargs = await request.json()
            ids = kwargs.pop("ids", None)
            call = Call(
                "json2",
                request.match_info["model"],
                request.match_info["method"],
                ids,
                kwargs,
                headers=dict(request.headers),
            )
            try:
                result = self._dispatch(call)
            except Fault as f:
                return web.json_response(f.data(), status=f.status)
            return web.json_response(None if result is NO_RESULT else result)
        finally:
            await self._leave()

    # ------------------------------------------------------------------------------------- methods

    def _dispatch(self, call: Call) -> Any:
        self.calls.append(call)
        handler = self.handlers.get((call.model, call.method))
        if handler is not None:
            return handler(call)
        if call.model != "res.partner":
            raise Fault("werkzeug.exceptions.NotFound", f"the model '{call.model}' does not exist", 404)
        if call.method == "search_read":
            domain = call.args[0] if call.args else call.kwargs.get("domain", [])
            active_test = (call.kwargs.get("context") or {}).get("active_test", True)
            rows = [dict(p) for p in self.partners.values() if p["active"] or not active_test]
            if domain:
                raise Fault("builtins.ValueError", "the stub only takes an empty domain")
            fields = call.kwargs.get("fields")
            return [{k: v for k, v in r.items() if k == "id" or not fields or k in fields} for r in rows]
        if call.method == "write":
            assert call.ids is not None
            missing = [i for i in call.ids if i not in self.partners]
            if missing:
                raise Fault(
                    "odoo.exceptions.MissingError",
                    f"Record does not exist or has been deleted.\n(Record: res.partner({missing[0]},), User: 2)",
                    404,
                )
            for i in call.ids:
                self.partners[i].update(call.kwargs["vals"])
            return True
        raise Fault(
            "werkzeug.exceptions.NotFound", f"The method 'res.partner.{call.method}' does not exist", 404
        )


@pytest.fixture
async def stub() -> AsyncIterator[StubOdoo]:
    odoo = StubOdoo()
    yield odoo
    odoo.release.set()


@pytest.fixture
async def server(stub: StubOdoo) -> AsyncIterator[TestServer]:
    srv = TestServer(stub.app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        stub.release.set()
        await srv.close()


def settings_for(server: TestServer, **overrides: Any) -> OdooSettings:
    values: dict[str, Any] = {
        "url": str(server.make_url("")),
        "database": "odoo",
        "username": "admin",
        "api_key": API_KEY,
        "timeout_seconds": 5.0,
        "retries": 3,
    }
    values.update(overrides)
    return OdooSettings(**values)


def client_for(
    server: TestServer, *, observed: list[tuple[str, float]] | None = None, **overrides: Any
) -> OdooClient:
    observe = (lambda m, s: observed.append((m, s))) if observed is not None else None
    return OdooClient(settings_for(server, **overrides), observe=observe, retry_policy=FAST)


# ----------------------------------------------------------------------------- protocol selection


async def test_auto_picks_json2_on_19_with_an_api_key(
    server: TestServer, stub: StubOdoo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd.odoo")
    async with client_for(server) as client:
        assert client.protocol == "json2"
        assert client.uid is None
        info = await client.version()
        rows = await client.search_read("res.partner", [], ["name"])

    assert info.major == 19
    assert info.serie == "19.0"
    assert [r["id"] for r in rows] == [1, 3]
    assert stub.requests == ["/jsonrpc", "/json/2/res.partner/search_read"]  # version asked once
    chosen = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("using json2" in m for m in chosen)


async def test_auto_picks_jsonrpc_on_17(server: TestServer, stub: StubOdoo) -> None:
    stub.version = V17

    async with client_for(server) as client:
        assert client.protocol == "jsonrpc"
        assert client.uid == 2
        assert (await client.version()).major == 17
        await client.search_read("res.partner", [], ["name"])

    assert stub.calls[-1].transport == "jsonrpc"


async def test_auto_picks_jsonrpc_with_a_password_only(server: TestServer, stub: StubOdoo) -> None:
    async with client_for(server, api_key=None, password=PASSWORD) as client:
        assert client.protocol == "jsonrpc"
        assert client.uid == 2
        await client.search_read("res.partner", [], ["name"])

    assert stub.calls[-1].transport == "jsonrpc"


async def test_auto_falls_back_to_json2_when_there_is_no_jsonrpc(server: TestServer, stub: StubOdoo) -> None:
    stub.then_status(404, "<h1>Not Found</h1>")

    async with client_for(server) as client:
        assert client.protocol == "json2"
        assert len(await client.search_read("res.partner", [], ["name"])) == 2

    assert stub.requests == ["/jsonrpc", "/json/2/res.partner/search_read"]


async def test_configured_protocol_skips_negotiation(server: TestServer, stub: StubOdoo) -> None:
    async with client_for(server, protocol="json2") as client:
        assert client.protocol == "json2"

    assert stub.requests == []


async def test_wrong_password_names_database_and_login_but_not_the_secret(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(server, api_key=None, password="wr0ng-pa55word", protocol="jsonrpc")

    with pytest.raises(errors.OdooAuthenticationError) as excinfo:
        await client.connect()

    assert "'admin'" in str(excinfo.value)
    assert "'odoo'" in str(excinfo.value)
    assert "wr0ng-pa55word" not in str(excinfo.value)
    assert all("wr0ng-pa55word" not in r.getMessage() for r in caplog.records)
    assert client.protocol is None  # connect() cleaned up after itself


async def test_wrong_api_key_on_json2(server: TestServer) -> None:
    async with client_for(server, api_key="wr0ng-k3y", protocol="json2") as client:
        with pytest.raises(errors.OdooAuthenticationError) as excinfo:
            await client.search_count("res.partner", [])

    assert excinfo.value.status == 401
    assert excinfo.value.odoo_message == "Invalid apikey"
    assert "wr0ng-k3y" not in str(excinfo.value)


async def test_unknown_database_html_404_on_json2(server: TestServer) -> None:
    async with client_for(server, database="nope", protocol="json2") as client:
        with pytest.raises(errors.OdooPermanentError) as excinfo:
            await client.search_count("res.partner", [])

    assert type(excinfo.value) is errors.OdooPermanentError
    assert excinfo.value.status == 404
    assert "odoo.database" in str(excinfo.value)


# -------------------------------------------------------------------------------- request shapes


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_request_shapes(server: TestServer, stub: StubOdoo, protocol: str) -> None:
    seen: list[Call] = []

    def record(result: Any) -> Callable[[Call], Any]:
        def handle(call: Call) -> Any:
            seen.append(call)
            return result

        return handle

    stub.handlers[("res.partner", "read")] = record([{"id": 3, "name": "Mitchell Admin"}])
    stub.handlers[("res.partner", "create")] = record([256])
    stub.handlers[("res.partner", "search")] = record([1, 3])
    stub.handlers[("res.partner", "search_count")] = record(2)
    stub.handlers[("res.partner", "unlink")] = record(True)
    stub.handlers[("res.partner", "fields_get")] = record({"name": {"type": "char", "store": True}})
    stub.handlers[("res.partner", "get_external_id")] = record({"1": "base.main_partner", "3": ""})
    stub.handlers[("res.partner", "load")] = record({"ids": [245], "messages": [], "nextrow": 0})

    async with client_for(server, protocol=protocol) as client:
        assert await client.read("res.partner", [3], ["name"], context={"lang": "en_US"}) == [
            {"id": 3, "name": "Mitchell Admin"}
        ]
        assert await client.create("res.partner", [{"name": "J2 created"}]) == [256]
        assert await client.search("res.partner", [], limit=2, order="id") == [1, 3]
        assert await client.search_count("res.partner", []) == 2
        assert await client.unlink("res.partner", [256]) is True
        assert await client.fields_get("res.partner", attributes=["type", "store"]) == {
            "name": {"type": "char", "store": True}
        }
        assert await client.get_external_ids("res.partner", [1, 3]) == {1: "base.main_partner", 3: False}
        loaded = await client.load(
            "res.partner", ["id", "name"], [["syncd.p1", "One"]], context={"tz": "UTC"}
        )

    assert loaded.ids == [245]
    assert loaded.ok
    read, create, search, count, unlink, fields_get, xmlids, load = seen
    assert read.ids == [3]
    assert read.kwargs == {"fields": ["name"], "context": {"lang": "en_US"}}
    assert unlink.ids == [256]
    assert xmlids.ids == [1, 3]
    assert fields_get.kwargs == {"attributes": ["type", "store"]}
    assert load.kwargs == {"fields": ["id", "name"], "data": [["syncd.p1", "One"]], "context": {"tz": "UTC"}}
    if protocol == "json2":
        assert create.ids is None and create.kwargs == {"vals_list": [{"name": "J2 created"}]}
        assert search.kwargs == {"domain": [], "limit": 2, "order": "id"}
        assert count.kwargs == {"domain": []}
        assert read.headers["Authorization"] == f"bearer {API_KEY}"
        assert read.headers["X-Odoo-Database"] == "odoo"
    else:
        # Record methods get args=[ids]; create/search* take their first argument positionally
        # (Odoo ≤ 17 needs that), everything else goes by keyword.
        assert read.args == [[3]]
        assert create.args == [[{"name": "J2 created"}]] and create.kwargs == {}
        assert search.args == [[]] and search.kwargs == {"limit": 2, "order": "id"}
        assert load.args == []


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_none_result(server: TestServer, stub: StubOdoo, protocol: str) -> None:
    stub.handlers[("res.partner", "action_archive")] = lambda call: NO_RESULT

    async with client_for(server, protocol=protocol) as client:
        assert await client.call("res.partner", "action_archive", ids=[3]) is None

    assert stub.calls[-1].ids == [3]


async def test_check_object_reference(server: TestServer, stub: StubOdoo) -> None:
    def lookup(call: Call) -> Any:
        xmlid = f"{call.kwargs['module']}.{call.kwargs['xml_id']}"
        if xmlid not in stub.xmlids:
            raise Fault("builtins.ValueError", f"External ID not found in the system: {xmlid}")
        return ["res.partner", stub.xmlids[xmlid]]

    stub.handlers[("ir.model.data", "check_object_reference")] = lookup

    for protocol in ("json2", "jsonrpc"):
        async with client_for(server, protocol=protocol) as client:
            assert await client.check_object_reference("base", "main_partner") == ("res.partner", 1)
            assert await client.check_object_reference("base", "nothing") is None


# ---------------------------------------------------------------------------------- error shapes


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_missing_error_keeps_odoo_details(server: TestServer, stub: StubOdoo, protocol: str) -> None:
    async with client_for(server, protocol=protocol) as client:
        with pytest.raises(errors.OdooMissingError) as excinfo:
            await client.write("res.partner", [999999], {"name": "ghost"})

    err = excinfo.value
    assert err.name == "odoo.exceptions.MissingError"
    assert err.odoo_message is not None and err.odoo_message.startswith("Record does not exist")
    assert (err.model, err.method) == ("res.partner", "write")
    assert err.status == (404 if protocol == "json2" else 200)
    assert "Traceback" not in str(err)
    assert len(stub.calls) == 1  # permanent: never retried


async def test_unknown_method_is_unknown_name(server: TestServer) -> None:
    async with client_for(server) as client:
        with pytest.raises(errors.OdooUnknownNameError):
            await client.call("res.partner", "no_such_method", ids=[1])


# -------------------------------------------------------------------------------------- retries


async def test_503_then_success_is_retried(server: TestServer, stub: StubOdoo) -> None:
    observed: list[tuple[str, float]] = []
    async with client_for(server, observed=observed, protocol="json2") as client:
        stub.then_status(503, "<html>maintenance</html>")
        stub.then_status(503, "<html>maintenance</html>")
        rows = await client.search_read("res.partner", [], ["name"])

    assert [r["id"] for r in rows] == [1, 3]
    assert stub.requests.count("/json/2/res.partner/search_read") == 3
    assert [m for m, _ in observed] == ["search_read"] * 3
    assert all(s >= 0 for _, s in observed)


async def test_retries_give_up_after_the_configured_number(server: TestServer, stub: StubOdoo) -> None:
    async with client_for(server, protocol="json2", retries=2) as client:
        client.retry_policy = RetryPolicy(retries=2, base_seconds=0.001, max_seconds=0.001)
        for _ in range(5):
            stub.then_status(502, "bad gateway")
        with pytest.raises(errors.OdooServerUnavailableError) as excinfo:
            await client.search_count("res.partner", [])

    assert excinfo.value.status == 502
    assert len(stub.requests) == 3


async def test_429_is_retried_and_keeps_retry_after(server: TestServer, stub: StubOdoo) -> None:
    async with client_for(server, protocol="json2") as client:
        stub.then_status(429, "slow down", headers={"Retry-After": "7"})
        assert len(await client.search_read("res.partner", [], ["name"])) == 2
        client.retry_policy = RetryPolicy(retries=0)
        stub.then_status(429, "slow down", headers={"Retry-After": "7"})
        with pytest.raises(errors.OdooRateLimitedError) as excinfo:
            await client.search_read("res.partner", [], ["name"])

    assert excinfo.value.retry_after == 7.0
    assert len(stub.requests) == 3


async def test_timeout_is_quick_and_typed(server: TestServer, stub: StubOdoo) -> None:
    async with client_for(server, protocol="json2", timeout_seconds=0.2) as client:
        client.retry_policy = RetryPolicy(retries=0)
        stub.then_hang()
        started = time.monotonic()
        with pytest.raises(errors.OdooTimeoutError) as excinfo:
            await client.search_count("res.partner", [])

    assert time.monotonic() - started < 2.0
    assert "0.2 s" in str(excinfo.value)
    assert excinfo.value.transient


async def test_reads_are_retried_after_a_timeout_but_create_is_not(
    server: TestServer, stub: StubOdoo
) -> None:
    stub.handlers[("res.partner", "create")] = lambda call: [300]
    async with client_for(server, protocol="json2", timeout_seconds=0.2) as client:
        stub.then_hang()
        assert len(await client.search_read("res.partner", [], ["name"])) == 2
        assert stub.requests.count("/json/2/res.partner/search_read") == 2

        stub.then_hang()
        with pytest.raises(errors.OdooTimeoutError):
            await client.create("res.partner", [{"name": "maybe twice"}])
        assert stub.requests.count("/json/2/res.partner/create") == 1


async def test_dropped_connection(server: TestServer, stub: StubOdoo) -> None:
    stub.handlers[("res.partner", "create")] = lambda call: [300]
    async with client_for(server, protocol="jsonrpc") as client:
        stub.then_drop()
        assert len(await client.search_read("res.partner", [], ["name"])) == 2

        stub.then_drop()
        with pytest.raises(errors.OdooConnectionError) as excinfo:
            await client.create("res.partner", [{"name": "maybe twice"}])

    assert not isinstance(excinfo.value, OdooConnectFailedError)
    assert [c.method for c in stub.calls] == ["search_read"]  # the dropped create never reached a handler
    assert stub.requests.count("/jsonrpc") == 1 + 2 + 1  # authenticate, 2 search_read, 1 create


async def test_create_is_retried_when_the_server_said_503(server: TestServer, stub: StubOdoo) -> None:
    stub.handlers[("res.partner", "create")] = lambda call: [300]
    async with client_for(server, protocol="json2") as client:
        stub.then_status(503, "<html>maintenance</html>")
        assert await client.create("res.partner", [{"name": "once"}]) == [300]

    assert stub.requests.count("/json/2/res.partner/create") == 2
    assert [c.method for c in stub.calls] == ["create"]


async def test_connection_refused_is_retried_even_for_create() -> None:
    # A port that was just free: nothing listens there.
    probe = TestServer(web.Application(), host="127.0.0.1")
    await probe.start_server()
    url = str(probe.make_url(""))
    await probe.close()
    observed: list[tuple[str, float]] = []
    settings = OdooSettings(url=url, api_key=API_KEY, protocol="json2", retries=2)

    async with OdooClient(settings, observe=lambda m, s: observed.append((m, s)), retry_policy=FAST) as c:
        c.retry_policy = RetryPolicy(retries=2, base_seconds=0.001, max_seconds=0.001)
        with pytest.raises(OdooConnectFailedError):
            await c.create("res.partner", [{"name": "x"}])

    assert [m for m, _ in observed] == ["create"] * 3


# ---------------------------------------------------------------------------------- concurrency


async def test_concurrency_is_bounded(server: TestServer, stub: StubOdoo) -> None:
    gates: deque[asyncio.Future[None]] = deque()

    async def slow(request: web.Request) -> web.StreamResponse:
        gate = asyncio.get_running_loop().create_future()
        gates.append(gate)
        async with stub.changed:
            stub.changed.notify_all()
        await gate
        return web.json_response(7)

    async with client_for(server, protocol="json2", max_concurrency=2) as client:
        for _ in range(6):
            stub.script.append(slow)
        calls = [asyncio.create_task(client.search_count("res.partner", [])) for _ in range(6)]
        for remaining in range(6, 0, -1):
            # Wait until as many requests as the bound allows are held by the server, then let one go.
            async with stub.changed:
                await stub.changed.wait_for(lambda r=remaining: len(gates) >= min(2, r))  # type: ignore[misc]
            gates.popleft().set_result(None)
        results = await asyncio.gather(*calls)

    assert results == [7] * 6
    assert stub.max_in_flight == 2
    assert len(stub.requests) == 6


# ---------------------------------------------------------------------------------------- secrets


async def test_secrets_never_reach_logs_errors_or_repr(
    server: TestServer, stub: StubOdoo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(call: Call) -> Any:
        raise Fault("odoo.exceptions.AccessDenied", f"bad credential {API_KEY} / {PASSWORD}")

    stub.handlers[("res.partner", "echo")] = echo
    raised: list[BaseException] = []
    for protocol in ("json2", "jsonrpc"):
        client = client_for(server, protocol=protocol, password=PASSWORD, timeout_seconds=0.2)
        async with client:
            client.retry_policy = RetryPolicy(retries=1, base_seconds=0.001, max_seconds=0.001)
            stub.then_hang()
            stub.then_hang()
            with pytest.raises(errors.OdooTimeoutError) as timeout:
                await client.search_count("res.partner", [])
            with pytest.raises(errors.OdooAuthenticationError) as denied:
                await client.call("res.partner", "echo")
            raised += [timeout.value, denied.value]
            texts = [repr(client), str(client)]
    bad = client_for(server, api_key=None, password="wr0ng-" + PASSWORD, protocol="jsonrpc")
    with pytest.raises(errors.OdooAuthenticationError) as auth:
        await bad.connect()
    raised.append(auth.value)

    texts += [str(e) for e in raised] + [repr(e.args) for e in raised]
    texts += [str(getattr(e, "odoo_message", "")) + repr(getattr(e, "arguments", [])) for e in raised]
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    assert any("bad credential ***" in t for t in texts)  # the echo was seen, and blanked
    assert any("Odoo traceback" in r.getMessage() for r in caplog.records)  # DEBUG logging was on
    for text in texts:
        assert API_KEY not in text
        assert PASSWORD not in text


async def test_a_given_session_is_not_closed(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = OdooClient(settings_for(server, protocol="json2"), session=session)
        async with client:
            assert await client.search_read("res.partner", [], ["name"], context={"active_test": False})
        assert not session.closed
