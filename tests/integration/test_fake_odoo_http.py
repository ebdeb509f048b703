"""The fake Odoo over real HTTP: both transports replayed against ``odoo-wire/`` (a, b, c, e, f, g, h, x)."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from syncd.testing import (
    BackgroundFakeOdooServer,
    FakeOdoo,
    FakeOdooServer,
    ManualClock,
    parse_listen,
    serve_forever,
)
from syncd.testing.faults import LOCK_TIMEOUT_TEXT

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 22, 19, 45, 49, 250_000)
DATA_KEYS = {"name", "message", "arguments", "context", "debug"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fake(clock: ManualClock) -> FakeOdoo:
    return FakeOdoo(demo_data=True, clock=clock)


@pytest.fixture
async def server(fake: FakeOdoo) -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(fake, "127.0.0.1", 0) as running:
        yield running


class Wire:
    """Raw requests, as the recordings show them (no Odoo client class involved)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.next_id = 0

    async def jsonrpc(self, service: str, method: str, *args: Any) -> dict[str, Any]:
        self.next_id += 1
        payload = {"jsonrpc": "2.0", "method": "call", "params": {"service": service, "method": method,
                                                                  "args": list(args)}, "id": self.next_id}  # fmt: skip
        async with self.session.post(f"{self.url}/jsonrpc", json=payload) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def execute_kw(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None, *,
        uid: Any = 2, secret: str | None = None, db: str = "odoo",
    ) -> dict[str, Any]:  # fmt: skip
        password = "admin" if secret is None else secret
        return await self.jsonrpc(
            "object", "execute_kw", db, uid, password, model, method, args, kwargs or {}
        )

    async def result(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None
    ) -> Any:
        body = await self.execute_kw(model, method, args, kwargs)
        assert "error" not in body, body
        return body.get("result")

    async def error(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None,
                    **auth: Any) -> tuple[str, str]:  # fmt: skip
        body = await self.execute_kw(model, method, args, kwargs, **auth)
        error = body["error"]
        assert error["code"] == 0 and error["message"] == "Odoo Server Error"
        assert set(error["data"]) == DATA_KEYS and "result" not in body
        return error["data"]["name"], error["data"]["message"]

    async def json2(
        self, model: str, method: str, body: Any = None, *, key: str | None = "admin",
        headers: dict[str, str] | None = None, data: bytes | None = None, verb: str = "POST",
    ) -> tuple[int, Any, Any]:  # fmt: skip
        sent = {"X-Odoo-Database": "odoo", **(headers or {})}
        if key is not None:
            sent["Authorization"] = f"bearer {key}"
        kwargs: dict[str, Any] = (
            {"data": data} if data is not None else {"json": body if body is not None else {}}
        )
        async with self.session.request(
            verb, f"{self.url}/json/2/{model}/{method}", headers=sent, **kwargs
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, resp.headers, await resp.json()
            return resp.status, resp.headers, await resp.text()


@pytest.fixture
async def wire(server: FakeOdooServer) -> AsyncIterator[Wire]:
    async with aiohttp.ClientSession() as session:
        yield Wire(session, server.url)


# ------------------------------------------------------------------------------------------ JSON-RPC


async def test_common_service(wire: Wire) -> None:
    # a.1, a.2, a.2b, h.1
    assert (await wire.jsonrpc("common", "version"))["result"] == {
        "server_version": "19.0",
        "server_version_info": [19, 0, 0, "final", 0, ""],
        "server_serie": "19.0",
        "protocol_version": 1,
    }
    assert (await wire.jsonrpc("common", "authenticate", "odoo", "admin", "admin", {}))["result"] == 2
    assert (await wire.jsonrpc("common", "login", "odoo", "admin", "admin"))["result"] == 2
    assert (await wire.jsonrpc("common", "authenticate", "odoo", "admin", "wrong", {}))["result"] is False
    assert (await wire.jsonrpc("common", "authenticate", "odoo", "admin", "admin", {}))["id"] == wire.next_id


async def test_search_read_over_jsonrpc(wire: Wire) -> None:
    # a.3 (the demo data has other write_dates, the shape is what matters)
    rows = await wire.result("res.partner", "search_read", [[["write_date", ">", "2000-01-01 00:00:00"]]],
                             {"fields": ["id", "name", "write_date", "active"], "order": "write_date asc, id asc",
                              "limit": 3})  # fmt: skip
    assert [row["id"] for row in rows] == [1, 6, 7]  # archived 2, 4, 5 share that second but are hidden
    assert all(
        set(row) == {"id", "name", "write_date", "active"} and len(row["write_date"]) == 19 for row in rows
    )
    assert await wire.error(
        "res.partner", "search_count", [[["write_date", ">", "2000-01-01 00:00:00+00:00"]]]
    ) == (
        "builtins.ValueError",
        "expecting only datetimes with no timezone: '2000-01-01 00:00:00+00:00'",
    )


async def test_a_none_result_has_no_result_key(wire: Wire) -> None:
    # a / h.8 / t3: action_archive returns None
    body = await wire.execute_kw("res.partner", "action_archive", [[42]])
    assert body == {"jsonrpc": "2.0", "id": body["id"]}
    status, _headers, answer = await wire.json2("res.partner", "action_unarchive", {"ids": [42]})
    assert (status, answer) == (200, None)


async def test_jsonrpc_credentials(wire: Wire) -> None:
    # h.2, h.2b, h.2c
    assert await wire.error("res.partner", "search_count", [[]], secret="wrong") == (
        "odoo.exceptions.AccessDenied",
        "Access Denied",
    )
    assert (await wire.execute_kw("res.partner", "search_count", [[]], secret="admin"))["result"] == 37
    assert await wire.error("res.partner", "search_count", [[]], uid=999) == (
        "odoo.exceptions.MissingError",
        "Record does not exist or has been deleted.\n(Record: res.users(999,), User: 999)",
    )
    name, message = await wire.error("res.partner", "search_count", [[]], db="nodb")
    assert name == "psycopg2.OperationalError" and 'database "nodb" does not exist' in message
    assert (await wire.execute_kw("res.partner", "search_count", [[]], uid=5, secret="demo"))["result"] == 37


@pytest.mark.parametrize(
    ("model", "method", "args", "kwargs", "expected"),
    [
        ("res.nothing", "search_read", [[]], {"fields": ["id"]},
         ("odoo.exceptions.UserError", "Object res.nothing doesn't exist")),
        ("res.partner", "write", [[3], {"no_such_field": 1}], {}, ("builtins.KeyError", "no_such_field")),
        ("res.partner", "search_read", [[["no_such_field", "=", 1]]], {"fields": ["id"]},
         ("builtins.ValueError", "Invalid field res.partner.no_such_field in condition ('no_such_field', '=', 1)")),
        ("res.partner", "read", [[3], ["write_date", "create_date", "date"]], {},
         ("builtins.ValueError", "Invalid field 'date' on 'res.partner'")),
        ("res.partner", "write", [[258], {"name": "ghost"}], {},
         ("odoo.exceptions.MissingError",
          "Record does not exist or has been deleted.\n(Record: res.partner(258,), User: 2)")),
        ("res.partner", "unlink", [[258]], {},
         ("odoo.exceptions.MissingError",
          "Record does not exist or has been deleted.\n(Record: res.partner(258,), User: 2)")),
        ("res.partner", "no_such_method", [[]], {},
         ("builtins.AttributeError", "The method 'res.partner.no_such_method' does not exist")),
        ("res.partner", "_search", [[]], {},
         ("odoo.exceptions.AccessError", "Private methods (such as 'res.partner._search') cannot be called remotely.")),
        ("ir.model.data", "_xmlid_to_res_id", ["base.main_partner"], {},
         ("odoo.exceptions.AccessError",
          "Private methods (such as 'ir.model.data._xmlid_to_res_id') cannot be called remotely.")),
        ("res.partner", "search_read", [[["name", "bogus_op", 1]]], {},
         ("builtins.ValueError", "Invalid operator in condition ('name', 'bogus_op', 1)")),
        ("res.partner", "write", [[3], {"parent_id": 3}], {},
         ("odoo.exceptions.ValidationError", "You cannot create recursive Partner hierarchies.")),
        ("res.partner", "create", [{"name": "bad type", "company_type": "alien"}], {},
         ("builtins.ValueError", "Wrong value for res.partner.company_type: 'alien'")),
        ("res.partner", "unlink", [[1]], {},
         ("odoo.exceptions.ValidationError",
          "The operation cannot be completed: Another model is using the record you are trying to delete.\n\n"
          "The troublemaker is: 'Companies' (res.company)\nThanks to the following constraint: 'Partner' "
          "(partner_id)\nHow about archiving the record instead?")),
        ("res.partner", "search_read", [[], ["id"], 0, None, None, "extra"], {},
         ("builtins.TypeError", "BaseModel.search_read() takes 6 positional arguments but 7 were given")),
        ("res.partner", "search_read", [[]], {"bogus": 1},
         ("builtins.TypeError", "BaseModel._read_format() got an unexpected keyword argument 'bogus'")),
    ],
)  # fmt: skip
async def test_jsonrpc_errors(
    wire: Wire, model: str, method: str, args: list[Any], kwargs: dict[str, Any], expected: tuple[str, str]
) -> None:
    # h.3 - h.7 and f.3
    assert await wire.error(model, method, args, kwargs) == expected


async def test_access_error_for_the_demo_user(wire: Wire) -> None:
    name, message = await wire.error("ir.config_parameter", "search_read", [[]], {"fields": ["key"]},
                                     uid=5, secret="demo")  # fmt: skip
    assert name == "odoo.exceptions.AccessError"
    assert message.startswith(
        "You are not allowed to access 'System Parameter' (ir.config_parameter) records."
    )


async def test_create_answers_a_bare_id_for_one_dict_over_jsonrpc_only(wire: Wire) -> None:
    # t2 "create shapes"
    single = await wire.result("res.partner", "create", [{"name": "probe2-w-single"}])
    listed = await wire.result("res.partner", "create", [[{"name": "a"}, {"name": "b"}]])
    assert isinstance(single, int) and listed == [single + 1, single + 2]
    status, _headers, body = await wire.json2("res.partner", "create", {"vals_list": {"name": "j2 single"}})
    assert (status, body) == (200, [single + 3])


async def test_load_and_external_ids_over_jsonrpc(wire: Wire) -> None:
    # f.1 - f.5
    first = await wire.result("res.partner", "load", [["id", "name", "email"], [["syncd_test.partner_1", "Test One",
                                                                                 "a@b.c"]]])  # fmt: skip
    assert first["messages"] == [] and len(first["ids"]) == 1
    again = await wire.result("res.partner", "load", [["id", "name", "email"],
                                                      [["syncd_test.partner_1", "Test One (renamed)", "a@b.c"]]])  # fmt: skip
    assert again == {"ids": first["ids"], "messages": [], "nextrow": 0}
    assert await wire.result("ir.model.data", "check_object_reference", ["syncd_test", "partner_1"]) == [
        "res.partner",
        first["ids"][0],
    ]
    bad = await wire.result("res.partner", "load", [["id", "name", "company_type"],
                                                    [["syncd_test.partner_3", "Three", "alien"]]])  # fmt: skip
    assert bad == {"ids": False, "nextrow": 0, "messages": [
        {"rows": {"from": 0, "to": 0}, "type": "error", "record": 0, "field": "company_type",
         "message": "Value 'alien' not found in selection field 'Company Type'", "moreinfo": ["Person", "Company"],
         "field_name": "Company Type"}]}  # fmt: skip
    assert await wire.error(
        "res.partner", "load", [["id", "name", "no_such_field"], [["x.y", "Four", "x"]]]
    ) == (
        "builtins.ValueError",
        "Invalid field name 'no_such_field'",
    )


# ------------------------------------------------------------------------------------------ JSON-2


async def test_json2_calls(wire: Wire) -> None:
    # g.1 - g.7
    status, headers, rows = await wire.json2("res.partner", "search_read", {
        "domain": [["is_company", "=", True]], "fields": ["id", "name", "write_date", "active"],
        "order": "write_date asc, id asc", "limit": 3})  # fmt: skip
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert [row["id"] for row in rows] == [1, 8, 9]
    _, _, archived = await wire.json2("res.partner", "search_read", {
        "domain": [["active", "=", False]], "fields": ["id", "name", "active"], "context": {"active_test": False},
        "limit": 2})  # fmt: skip
    # (g.2 answered OdooBot and Portal User Template: by then the probe had restored 40 and 41, archived in b)
    assert archived == [{"id": 40, "name": "Chester Reed", "active": False},
                        {"id": 41, "name": "Dwayne Newman", "active": False}]  # fmt: skip
    _, _, read = await wire.json2("res.partner", "read", {"ids": [3], "fields": ["name", "country_id"]})
    assert read == [{"id": 3, "name": "Mitchell Admin", "country_id": [233, "United States"]}]
    _, _, created = await wire.json2("res.partner", "create", {"vals_list": [{"name": "J2 created"}]})
    status, _, written = await wire.json2(
        "res.partner", "write", {"ids": created, "vals": {"name": "J2 renamed"}}
    )
    assert (status, written) == (200, True)
    assert (await wire.json2("res.partner", "read", {"ids": created, "fields": ["name"]}))[2][0][
        "name"
    ] == "J2 renamed"
    _, _, loaded = await wire.json2("res.partner", "load", {"fields": ["id", "name", "email"], "data": [
        ["syncd_test.partner_1", "Test One via json2", "a@b.c"]]})  # fmt: skip
    assert loaded["messages"] == [] and loaded["nextrow"] == 0
    _, _, described = await wire.json2("res.partner", "fields_get", {
        "allfields": ["name", "write_date"], "attributes": ["type", "store", "readonly", "required", "relation"]})  # fmt: skip
    assert described == {"name": {"readonly": False, "required": False, "store": True, "type": "char"},
                         "write_date": {"readonly": True, "required": False, "store": True, "type": "datetime"}}  # fmt: skip
    assert (await wire.json2("res.partner", "search_count", {"domain": []}))[2] == 39
    _, _, reference = await wire.json2("ir.model.data", "check_object_reference",
                                       {"module": "syncd_test", "xml_id": "partner_1"})  # fmt: skip
    assert reference == ["res.partner", loaded["ids"][0]]
    _, _, names = await wire.json2("res.partner", "name_search", {"name": "Azure", "limit": 3})
    assert [pair[0] for pair in names] == [15, 27, 34]


@pytest.mark.parametrize(
    ("model", "method", "body", "status", "name", "message"),
    [
        ("res.partner", "search_read", {"domain": [], "fields": ["id", "no_such_field"], "limit": 1}, 500,
         "builtins.ValueError", "Invalid field 'no_such_field' on 'res.partner'"),
        ("res.partner", "search_read", {"domain": [["no_such_field", "=", 1]], "fields": ["id"]}, 500,
         "builtins.ValueError", "Invalid field res.partner.no_such_field in condition ('no_such_field', '=', 1)"),
        ("res.partner", "write", {"ids": [3], "vals": {"no_such_field": 1}}, 500, "builtins.KeyError",
         "no_such_field"),
        ("res.partner", "write", {"ids": [999999], "vals": {"name": "ghost"}}, 404, "odoo.exceptions.MissingError",
         "Record does not exist or has been deleted.\n(Record: res.partner(999999,), User: 2)"),
        ("res.nothing", "search_read", {"domain": []}, 404, "werkzeug.exceptions.NotFound",
         "the model 'res.nothing' does not exist"),
        ("res.partner", "no_such_method", {}, 404, "werkzeug.exceptions.NotFound",
         "The method 'res.partner.no_such_method' does not exist"),
        ("res.partner", "_search", {"domain": []}, 403, "odoo.exceptions.AccessError",
         "Private methods (such as 'res.partner._search') cannot be called remotely."),
        ("res.partner", "search_fetch", {"domain": [], "field_names": ["name"]}, 403, "odoo.exceptions.AccessError",
         "Private methods (such as 'res.partner.search_fetch') cannot be called remotely."),
        ("res.partner", "search_read", {"args": [[]]}, 500, "builtins.TypeError",
         "BaseModel._read_format() got an unexpected keyword argument 'args'"),
        ("res.partner", "create", {"ids": [3], "vals_list": [{"name": "x"}]}, 422,
         "werkzeug.exceptions.UnprocessableEntity", "cannot call res.partner.create with ids"),
        ("res.partner", "write", {"ids": [3], "vals": {}, "bogus": 1}, 422, "werkzeug.exceptions.UnprocessableEntity",
         "got an unexpected keyword argument 'bogus'"),
        ("res.partner", "unlink", {"ids": [1]}, 422, "odoo.exceptions.ValidationError",
         "The operation cannot be completed: Another model is using the record you are trying to delete.\n\n"
         "The troublemaker is: 'Companies' (res.company)\nThanks to the following constraint: 'Partner' "
         "(partner_id)\nHow about archiving the record instead?"),
        ("sale.order", "unlink", {"ids": [2]}, 422, "odoo.exceptions.UserError",
         "You can not delete a sent quotation or a confirmed sales order. You must first cancel it."),
    ],
)  # fmt: skip
async def test_json2_errors(
    wire: Wire, model: str, method: str, body: dict[str, Any], status: int, name: str, message: str
) -> None:
    # g.E1 - g.E9
    got_status, _headers, answer = await wire.json2(model, method, body)
    assert (got_status, answer["name"], answer["message"]) == (status, name, message)
    assert set(answer) == DATA_KEYS


async def test_json2_routing_and_authentication_errors(wire: Wire) -> None:
    # g.E6 - g.E8, g.E10, g.E11
    status, headers, body = await wire.json2("res.partner", "search_count", {"domain": []}, key="not-a-key")
    assert (status, headers["WWW-Authenticate"], body["name"], body["message"], body["arguments"]) == (
        401, "Bearer", "werkzeug.exceptions.Unauthorized", "Invalid apikey", ["Invalid apikey", 401],
    )  # fmt: skip
    status, headers, body = await wire.json2("res.partner", "search_count", {"domain": []}, key=None)
    assert (status, body["message"]) == (
        401,
        "User not authenticated, use an API Key with a Bearer Authorization header.",
    )
    assert headers["WWW-Authenticate"] == "Bearer"
    status, _, body = await wire.json2(
        "ir.config_parameter", "set_param", {"key": "x.y", "value": "1"}, key="demo"
    )
    assert (status, body["name"]) == (403, "odoo.exceptions.AccessError")
    status, _, body = await wire.json2("res.partner", "search_read", verb="GET")
    assert (status, body["message"]) == (404, "Did you mean POST /json/2/<model>/<method>?")
    status, _, body = await wire.json2("res.partner", "write", data=b"{not json")
    assert (status, body["name"], body["message"]) == (
        400, "werkzeug.exceptions.BadRequest",
        "could not parse the body as json: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)",
    )  # fmt: skip
    status, headers, page = await wire.json2("res.partner", "search_count", {"domain": []},
                                             headers={"X-Odoo-Database": "nope"})  # fmt: skip
    assert (
        status == 404
        and headers["Content-Type"].startswith("text/html")
        and "<title>404 Not Found</title>" in page
    )
    async with wire.session.post(f"{wire.url}/json/2/res.partner/search_count", json={"domain": []},
                                 headers={"Authorization": "Bearer admin"}) as response:  # fmt: skip
        assert (response.status, await response.json()) == (200, 37)  # no X-Odoo-Database: the only database


# ------------------------------------------------------------------------------------------ cursors


async def test_the_keyset_cursor_loses_records_over_json2_too(wire: Wire, fake: FakeOdoo) -> None:
    # c.1 / c.2
    seen: list[int] = []
    cursor = ("2000-01-01 00:00:00", 0)
    while True:
        domain = [
            "|",
            ["write_date", ">", cursor[0]],
            "&",
            ["write_date", "=", cursor[0]],
            ["id", ">", cursor[1]],
        ]
        _, _, rows = await wire.json2("res.partner", "search_read", {
            "domain": domain, "fields": ["id", "write_date"], "order": "write_date asc, id asc", "limit": 5,
            "context": {"active_test": False}})  # fmt: skip
        if not rows:
            break
        seen += [row["id"] for row in rows]
        cursor = (rows[-1]["write_date"], rows[-1]["id"])
    assert len(seen) == 30 and len(set(seen)) == 30
    assert len(fake.records("res.partner")) == 42


async def test_whole_second_rewrite_over_json2(wire: Wire, fake: FakeOdoo, clock: ManualClock) -> None:
    # x.5 "JSON-2 datetime domain with '>' gets the same whole-second rewrite"
    fake.write("res.partner", [42], {"name": "keyset A"})
    wd = fake.read("res.partner", [42], ["write_date"])[0]["write_date"]
    assert (
        await wire.json2("res.partner", "search", {"domain": [["id", "in", [42]], ["write_date", ">", wd]]})
    )[2] == []
    assert (
        await wire.json2("res.partner", "search", {"domain": [["id", "in", [42]], ["write_date", "=", wd]]})
    )[2] == [42]


# ------------------------------------------------------------------------------------------ faults


async def test_fail_next_answers_the_status_before_doing_anything(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.fail_next(2, status=503)
    async with wire.session.post(f"{wire.url}/jsonrpc", json={"params": {"service": "common",
                                                                         "method": "version", "args": []}}) as r:  # fmt: skip
        assert r.status == 503
    status, _, _ = await wire.json2("res.partner", "write", {"ids": [3], "vals": {"ref": "never"}})
    assert status == 503
    assert fake.read("res.partner", [3], ["ref"])[0]["ref"] is False
    assert (await wire.json2("res.partner", "search_count", {"domain": []}))[0] == 200
    assert [call.fault for call in fake.calls] == ["fail:503", "fail:503", None]
    assert [(call.transport, call.method) for call in fake.calls] == [
        ("jsonrpc", "version"), ("json2", "write"), ("json2", "search_count"),
    ]  # fmt: skip


async def test_rate_limit_carries_retry_after_and_methods_can_be_targeted(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.fail_next(1, status=429, retry_after=7, methods={"write"})
    assert (await wire.json2("res.partner", "read", {"ids": [3], "fields": ["name"]}))[0] == 200
    status, headers, _ = await wire.json2("res.partner", "write", {"ids": [3], "vals": {"ref": "x"}})
    assert (status, headers["Retry-After"]) == (429, "7")
    assert (await wire.json2("res.partner", "write", {"ids": [3], "vals": {"ref": "x"}}))[0] == 200


async def test_serialization_failure_fault(wire: Wire, fake: FakeOdoo) -> None:
    # h.9b / h.9c shapes
    fake.faults.serialization_failure_next(2)
    assert await wire.error("res.partner", "write", [[3], {"function": "conc"}]) == (
        "psycopg2.errors.SerializationFailure",
        "could not serialize access due to concurrent update\n",
    )
    status, _, body = await wire.json2("res.partner", "write", {"ids": [3], "vals": {"function": "conc C"}})
    assert (status, body["name"]) == (500, "psycopg2.errors.SerializationFailure")
    assert fake.read("res.partner", [3], ["function"])[0]["function"] is False


async def test_a_load_conflict_is_reported_in_band(wire: Wire, fake: FakeOdoo) -> None:
    """Odoo 19's load() does not raise for a row whose save hit a concurrent transaction: it answers
    normally with ``ids: false`` and PostgreSQL's text in that row's message (like f.txt's row errors),
    and nothing of the batch is kept."""
    fake.faults.load_conflict_next(1, row=1)
    fake.faults.load_conflict_next(1, message=LOCK_TIMEOUT_TEXT, row=5)  # capped at the last row
    fields = ["id", "name"]
    rows = [["syncd_conc.p0", "conc 0"], ["syncd_conc.p1", "conc 1"]]
    assert await wire.result("res.partner", "load", [fields, rows]) == {
        "ids": False,
        "messages": [{"rows": {"from": 1, "to": 1}, "record": 1, "type": "error",
                      "message": "could not serialize access due to concurrent update\n"}],
        "nextrow": 0,
    }  # fmt: skip
    status, _, body = await wire.json2("res.partner", "load", {"fields": fields, "data": rows})
    assert status == 200
    assert body["ids"] is False
    assert body["messages"] == [{"rows": {"from": 1, "to": 1}, "record": 1, "type": "error",
                                 "message": LOCK_TIMEOUT_TEXT}]  # fmt: skip
    assert fake.search_count("res.partner", [("name", "=like", "conc %")]) == 0
    assert [c.fault for c in fake.calls if c.method == "load"] == ["load_conflict"] * 2
    # other methods do not take it, and once used up load() works again
    fake.faults.load_conflict_next(1)
    assert await wire.result("res.partner", "search_count", [[]]) == 37
    assert (await wire.result("res.partner", "load", [fields, rows]))["ids"] is False
    assert len((await wire.result("res.partner", "load", [fields, rows]))["ids"]) == 2


async def test_a_hanging_call_makes_the_client_time_out(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.hang_next(1)
    with pytest.raises(TimeoutError):
        await wire.session.post(f"{wire.url}/json/2/res.partner/search_count", json={"domain": []},
                                headers={"Authorization": "bearer admin"},
                                timeout=aiohttp.ClientTimeout(total=0.2))  # fmt: skip
    assert fake.faults.held("hang") == 1
    assert fake.faults.release_hangs() == 1
    assert (await wire.json2("res.partner", "search_count", {"domain": []}))[2] == 37


async def test_a_dropped_connection_gets_no_answer(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.drop_next(1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await wire.jsonrpc("common", "version")
    assert (await wire.jsonrpc("common", "version"))["result"]["server_serie"] == "19.0"


async def test_latency_is_added_to_answers(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.latency_seconds = 0.05
    loop = asyncio.get_running_loop()
    started = loop.time()
    await wire.jsonrpc("common", "version")
    assert loop.time() - started >= 0.05


async def test_a_late_commit_is_stamped_at_its_start_and_visible_after(
    wire: Wire, fake: FakeOdoo, clock: ManualClock
) -> None:
    # e_shell: a write stamped T that becomes visible when the reader's clock is already past T
    fake.faults.late_commit_next(1)
    stamp = clock.now
    writing = asyncio.create_task(wire.json2("res.partner", "write", {"ids": [3], "vals": {"ref": "late"}}))
    await fake.faults.wait_held("late_commit")
    clock.advance(5)
    (hidden,) = (await wire.json2("res.partner", "read", {"ids": [3], "fields": ["ref", "write_date"]}))[2]
    assert hidden["ref"] is False
    fake.write("res.partner", [7], {"ref": "meanwhile"})  # another record, committed now, stamped later
    cursor = fake.read("res.partner", [7], ["write_date"])[0]["write_date"]
    assert not writing.done()
    fake.faults.release_late_commits()
    assert (await writing)[2] is True
    (visible,) = fake.read("res.partner", [3], ["ref", "write_date"])
    assert visible["ref"] == "late"
    assert fake.records("res.partner")[3]["write_date"] == stamp
    assert visible["write_date"] < cursor  # committed after a record stamped later: a cursor at 7 misses it


async def test_a_late_commit_with_a_delay_commits_by_itself(wire: Wire, fake: FakeOdoo) -> None:
    fake.faults.late_commit_next(1, delay_seconds=0.02, methods={"create"})
    body = await wire.execute_kw("res.partner", "create", [[{"name": "delayed"}]])
    assert fake.read("res.partner", body["result"], ["name"]) == [
        {"id": body["result"][0], "name": "delayed"}
    ]
    assert fake.calls[-1].fault == "late_commit"


async def test_a_call_waits_for_a_row_locked_by_an_open_transaction(wire: Wire, fake: FakeOdoo) -> None:
    # h.9a: the write blocks behind the lock and succeeds once the other transaction commits
    txn = fake.begin()
    txn.write("res.partner", [3], {"function": "holder"})
    writing = asyncio.create_task(wire.execute_kw("res.partner", "write", [[3], {"function": "waiter"}]))
    await fake.faults.wait_held("lock")
    assert not writing.done()
    txn.commit()
    assert (await writing)["result"] is True
    assert fake.read("res.partner", [3], ["function"])[0]["function"] == "waiter"


async def test_a_lock_held_too_long_is_a_serialization_failure(wire: Wire, fake: FakeOdoo) -> None:
    # h.9b: Odoo gives up after its retries
    fake.faults.lock_timeout_seconds = 0.05
    txn = fake.begin()
    txn.write("res.partner", [3], {"function": "holder"})
    status, _, body = await wire.json2("res.partner", "write", {"ids": [3], "vals": {"function": "waiter"}})
    assert (status, body["name"]) == (500, "psycopg2.errors.SerializationFailure")
    txn.rollback()
    assert fake.read("res.partner", [3], ["function"])[0]["function"] is False


async def test_concurrent_calls_are_serialised(wire: Wire, fake: FakeOdoo) -> None:
    results = await asyncio.gather(
        *(wire.json2("res.partner", "create", {"vals_list": [{"name": f"c{i}"}]}) for i in range(20))
    )
    ids = [body[0] for _, _, body in results]
    assert len(set(ids)) == 20
    assert fake.search_count("res.partner", [("name", "=like", "c%")]) == 20


async def test_serve_forever(fake: FakeOdoo) -> None:
    assert parse_listen("localhost:8069") == ("localhost", 8069)
    assert parse_listen("[::1]:18069") == ("::1", 18069)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("localhost")
    ready: asyncio.Queue[FakeOdooServer] = asyncio.Queue()
    task = asyncio.create_task(serve_forever("127.0.0.1:0", database="other", demo_data=True,
                                             on_ready=ready.put_nowait))  # fmt: skip
    started = await ready.get()
    async with aiohttp.ClientSession() as session:
        wire = Wire(session, started.url)
        assert (await wire.jsonrpc("common", "authenticate", "other", "admin", "admin", {}))["result"] == 2
        assert (await wire.execute_kw("res.partner", "search_count", [[]], db="other"))["result"] == 37
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started.fake.database == "other" and started.fake is not fake


def test_background_server_for_synchronous_tests(fake: FakeOdoo) -> None:
    with BackgroundFakeOdooServer(fake) as background:
        host, port = background.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        payload = {"jsonrpc": "2.0", "method": "call", "params": {"service": "object", "method": "execute_kw",
                   "args": ["odoo", 2, "admin", "res.partner", "create", [[{"name": "from a thread"}]], {}]}, "id": 1}  # fmt: skip
        connection.request("POST", "/jsonrpc", json.dumps(payload), {"Content-Type": "application/json"})
        body = json.loads(connection.getresponse().read())
        connection.close()
        (rid,) = body["result"]
        assert fake.read("res.partner", [rid], ["name"]) == [{"id": rid, "name": "from a thread"}]
