"""The fake Odoo against the real Odoo 19: the same calls to both, over both transports, the same answers.

Each probe is sent as raw HTTP (JSON-2 with the API key, JSON-RPC ``execute_kw`` with the password)
to the fake (demo data) and to the real server of ``ODOO19_*``; the answers must be equal after
dropping what cannot be (``debug`` tracebacks, JSON-RPC request ids, database ids of records made
here, the timestamps themselves). A failure prints both answers: the real one is right, fix the fake
(or, for a difference that is safe to keep, list it in :mod:`syncd.testing.fake`'s docstring).

What syncd depends on is probed: datetime domains (whole seconds), the order inside one second,
``load()``'s row messages and its errors, writes and deletes of missing ids, and the error shapes of
both transports (status codes, names, messages).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.odoo_targets import OdooTarget, Protocol, fake_target, unique

pytestmark = [pytest.mark.integration, pytest.mark.real_odoo]

MISSING = 2_000_000_000  # an id no partner has, in both


@dataclass(frozen=True)
class Probe:
    name: str
    model: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    ids: list[int] | None = None


PROBES = [
    # load(): row messages (the batch is refused, nothing raised) and the errors it does raise
    Probe("load, bad selection value", "res.partner", "load", {"fields": ["name", "type"], "data": [["p", "nonsense"]]}),
    Probe("load, unknown field", "res.partner", "load", {"fields": ["name", "no_such"], "data": [["p", "x"]]}),
    Probe("load, many2one to a missing id", "res.partner", "load",
          {"fields": ["name", "parent_id/.id"], "data": [["p", str(MISSING)]]}),
    Probe("load, many2one id not a number", "res.partner", "load",
          {"fields": ["name", "parent_id/.id"], "data": [["p", "abc"]]}),
    Probe("load, many2one by a name no record has", "res.partner", "load",
          {"fields": ["name", "parent_id"], "data": [["p", "No Such Company, syncd probe"]]}),
    Probe("load, unknown external id", "res.partner", "load",
          {"fields": ["name", "parent_id/id"], "data": [["p", "syncd_probe.no_such_record"]]}),
    Probe("load, bad date", "res.partner", "load", {"fields": ["name", "date"], "data": [["p", "31/02/2026"]]}),
    Probe("load, second row bad", "res.partner", "load",
          {"fields": ["name", "type"], "data": [["p1", "contact"], ["p2", "nonsense"]]}),
    Probe("load, a JSON boolean cell", "res.partner", "load",
          {"fields": ["name", "is_company"], "data": [["p", True]]}),
    # writes, deletes and reads of missing records
    Probe("write, missing id", "res.partner", "write", {"vals": {"name": "x"}}, [MISSING]),
    Probe("unlink, missing id", "res.partner", "unlink", {}, [MISSING]),
    Probe("read, missing id", "res.partner", "read", {"fields": ["name"]}, [MISSING]),
    Probe("write, unknown field", "res.partner", "write", {"vals": {"no_such": 1}}, [1]),
    # error shapes
    Probe("unknown model", "x.nothing", "search_read", {"domain": []}),
    Probe("unknown method", "res.partner", "no_such_method", {}),
    Probe("unknown field in a domain", "res.partner", "search_read",
          {"domain": [["no_such", "=", 1]], "fields": ["name"]}),
    Probe("unexpected keyword", "res.partner", "search_read", {"domain": [], "nope": 1}),
    Probe("private method", "res.partner", "_compute_display_name", {}, [1]),
    Probe("datetime with a timezone in a domain", "res.partner", "search_count",
          {"domain": [["write_date", ">", "2020-01-01T00:00:00+01:00"]]}),
    Probe("ids given to a model method", "res.partner", "search_count", {"domain": []}, [1]),
    Probe("a required field missing", "res.partner", "create", {"vals_list": [{"email": "no-name@probe.test"}]}),
    Probe("a write of a computed field", "res.partner", "write", {"vals": {"display_name": "x"}}, [MISSING]),
    Probe("external id lookup, missing", "ir.model.data", "check_object_reference",
          {"module": "syncd_probe", "xml_id": "nothing"}),
]  # fmt: skip


class Wire:
    """Raw calls to one Odoo, as syncd's transports make them."""

    def __init__(self, http: aiohttp.ClientSession, odoo: OdooTarget) -> None:
        self.http, self.odoo = http, odoo

    async def send(self, protocol: Protocol, probe: Probe) -> Any:
        """The answer, reduced to what both servers can agree on."""
        if protocol == "json2":
            body = {**probe.kwargs, **({"ids": probe.ids} if probe.ids is not None else {})}
            headers = {"Authorization": f"bearer {self.odoo.api_key}", "X-Odoo-Database": self.odoo.database}
            url = f"{self.odoo.url}/json/2/{probe.model}/{probe.method}"
            async with self.http.post(url, json=body, headers=headers) as r:
                text = await r.text()
                return {"status": r.status, "body": _plain(_json_or_text(text))}
        args = [probe.ids] if probe.ids is not None else []
        call = [self.odoo.database, 2, self.odoo.password, probe.model, probe.method, args, probe.kwargs]
        rpc = {"jsonrpc": "2.0", "method": "call", "id": 7,
               "params": {"service": "object", "method": "execute_kw", "args": call}}  # fmt: skip
        async with self.http.post(f"{self.odoo.url}/jsonrpc", json=rpc) as r:
            return {"status": r.status, "body": _plain(await r.json())}

    async def call(self, model: str, method: str, ids: list[int] | None = None, **kwargs: Any) -> Any:
        """A JSON-2 call that must succeed (staging)."""
        answer = await self.send("json2", Probe("staging", model, method, kwargs, ids))
        assert answer["status"] == 200, answer
        return answer["body"]


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"html": "<!doctype html>" in text.lower() or "<html" in text.lower()}


def _plain(value: Any) -> Any:
    """Without what differs by nature: tracebacks (``debug``) and the port of Odoo's own PostgreSQL
    (named in the error of an unknown database)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "debug"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return re.sub(r'(server at "[^"]*", port )\d+', r"\1<port>", value)
    return value


@dataclass
class Both:
    fake: Wire
    real: Wire

    @property
    def each(self) -> tuple[Wire, Wire]:
        return self.fake, self.real


@pytest.fixture
async def both(real_odoo: OdooTarget) -> AsyncIterator[Both]:
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server, aiohttp.ClientSession() as http:
        yield Both(Wire(http, fake_target(fake, server.url)), Wire(http, real_odoo))


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
async def test_same_answer(both: Both, probe: Probe, protocol: Protocol) -> None:
    fake = await both.fake.send(protocol, probe)
    real = await both.real.send(protocol, probe)
    assert fake == real, f"the fake answers differently:\nfake: {fake}\nreal: {real}"


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_datetime_domains_compare_whole_seconds(both: Both, protocol: Protocol) -> None:
    """``=``, ``>``, ``>=``, ``<``, ``<=`` and ``!=`` on write_date, with the value as Odoo prints it, with
    microseconds, with a T, a second before and after and as a bare date: the same records match."""
    answers = []
    for wire in both.each:
        (rid,) = await wire.call("res.partner", "create", vals_list=[{"name": unique("dt-domain")}])
        (row,) = await wire.call("res.partner", "read", [rid], fields=["write_date"])
        stamp = datetime.fromisoformat(row["write_date"])
        values = {
            "as printed": row["write_date"],
            "with microseconds": f"{row['write_date']}.999999",
            "with a T": row["write_date"].replace(" ", "T"),
            "a second before": str(stamp - timedelta(seconds=1)),
            "a second after": str(stamp + timedelta(seconds=1)),
            "the date": row["write_date"][:10],
        }
        got = {}
        for label, value in values.items():
            for op in ("=", "!=", ">", ">=", "<", "<="):
                probe = Probe("count", "res.partner", "search_count",
                              {"domain": [["id", "=", rid], ["write_date", op, value]]})  # fmt: skip
                got[f"write_date {op} {label}"] = (await wire.send(protocol, probe))["body"]
        answers.append(got)
    fake, real = answers
    assert fake == real, {k: (fake[k], real[k]) for k in fake if fake[k] != real[k]}


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_order_inside_one_second_follows_the_microseconds(both: Both, protocol: Protocol) -> None:
    """Three records written one call each in descending id order: ``write_date asc, id asc`` gives
    them with ids going down (the order that breaks keyset cursors), in both."""
    orders = []
    for wire in both.each:
        ids = await wire.call(
            "res.partner", "create", vals_list=[{"name": unique("order")} for _ in range(3)]
        )
        for rid in sorted(ids, reverse=True):
            await wire.call("res.partner", "write", [rid], vals={"comment": "again"})
        probe = Probe("order", "res.partner", "search_read",
                      {"domain": [["id", "in", ids]], "fields": ["id"], "order": "write_date asc, id asc"})  # fmt: skip
        rows = (await wire.send(protocol, probe))["body"]
        if protocol == "jsonrpc":
            rows = rows["result"]
        orders.append([sorted(ids).index(r["id"]) for r in rows])
    assert orders[0] == orders[1] == [2, 1, 0]


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_credentials_and_database_errors(both: Both, protocol: Protocol) -> None:
    """A wrong API key or password, and an unknown database: the same status and error in both."""
    answers = []
    for wire in both.each:
        odoo = wire.odoo
        if protocol == "json2":
            got = []
            for headers in ({"Authorization": "bearer not-a-key"}, {},
                            {"Authorization": f"bearer {odoo.api_key}", "X-Odoo-Database": "no_such_db"}):  # fmt: skip
                async with wire.http.post(f"{odoo.url}/json/2/res.partner/search_count", json={"domain": []},
                                          headers=headers) as r:  # fmt: skip
                    got.append(
                        (r.status, r.headers.get("WWW-Authenticate"), _plain(_json_or_text(await r.text())))
                    )
            answers.append(got)
        else:
            got = []
            for db, password in ((odoo.database, "not-the-password"), ("no_such_db", odoo.password)):
                call = [db, 2, password, "res.partner", "search_count", [[]], {}]
                rpc = {"jsonrpc": "2.0", "method": "call", "id": 7,
                       "params": {"service": "object", "method": "execute_kw", "args": call}}  # fmt: skip
                async with wire.http.post(f"{odoo.url}/jsonrpc", json=rpc) as r:
                    got.append((r.status, _plain(await r.json())))
            auth = {"jsonrpc": "2.0", "method": "call", "id": 7, "params": {
                "service": "common", "method": "authenticate", "args": [odoo.database, odoo.login, "wrong", {}]}}  # fmt: skip
            async with wire.http.post(f"{odoo.url}/jsonrpc", json=auth) as r:
                got.append((r.status, _plain(await r.json())))
            answers.append(got)
    assert answers[0] == answers[1], f"\nfake: {answers[0]}\nreal: {answers[1]}"
