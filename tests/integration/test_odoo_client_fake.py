"""OdooClient against the built-in fake Odoo (``syncd.testing``), over both transports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from syncd import errors
from syncd.config import OdooSettings
from syncd.odoo import OdooClient, RetryPolicy

testing = pytest.importorskip("syncd.testing")
if not hasattr(testing, "FakeOdoo"):  # pragma: no cover - while syncd.testing is being written
    pytest.skip("syncd.testing has no FakeOdoo yet", allow_module_level=True)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(retries=3, base_seconds=0.001, max_seconds=0.005)


@pytest.fixture
def fake() -> Any:
    return testing.FakeOdoo(database="odoo", demo_data=True)


@pytest.fixture
async def url(fake: Any) -> AsyncIterator[str]:
    async with testing.FakeOdooServer(fake, host="127.0.0.1", port=0) as server:
        yield str(server.url)


@pytest.fixture(params=["json2", "jsonrpc"])
async def client(request: pytest.FixtureRequest, url: str) -> AsyncIterator[OdooClient]:
    settings = OdooSettings(
        url=url, database="odoo", username="admin", api_key="admin", protocol=request.param, timeout_seconds=5
    )
    async with OdooClient(settings, retry_policy=FAST) as c:
        assert c.protocol == request.param
        yield c


async def test_auto_negotiates_json2_with_a_key(url: str) -> None:
    settings = OdooSettings(url=url, api_key="admin")
    async with OdooClient(settings) as c:
        assert (await c.version()).major >= 19
        assert c.protocol == "json2"


async def test_auto_negotiates_jsonrpc_with_a_password(url: str) -> None:
    async with OdooClient(OdooSettings(url=url, password="admin")) as c:
        assert c.protocol == "jsonrpc"
        assert isinstance(c.uid, int)


async def test_wrong_password(url: str) -> None:
    client = OdooClient(OdooSettings(url=url, password="not-the-password", protocol="jsonrpc"))
    with pytest.raises(errors.OdooAuthenticationError) as excinfo:
        await client.connect()
    assert "not-the-password" not in str(excinfo.value)


async def test_search_read_hides_archived_records_unless_active_test_is_off(client: OdooClient) -> None:
    active = await client.search_read("res.partner", [], ["id", "name", "active"])
    everything = await client.search_read(
        "res.partner", [], ["id", "name", "active"], context={"active_test": False}
    )

    assert active and all(r["active"] for r in active)
    archived = [r for r in everything if not r["active"]]
    assert archived
    assert {r["id"] for r in everything} == {r["id"] for r in active} | {r["id"] for r in archived}
    assert await client.search_count("res.partner", []) == len(active)


async def test_create_write_read_round_trip(client: OdooClient) -> None:
    name = f"syncd client {uuid.uuid4().hex[:8]}"
    [new_id] = await client.create("res.partner", [{"name": name, "email": "c@example.com"}])

    assert await client.write("res.partner", [new_id], {"name": name + " renamed"}) is True
    [row] = await client.read("res.partner", [new_id], ["name", "email"])

    assert row == {"id": new_id, "name": name + " renamed", "email": "c@example.com"}
    assert await client.search("res.partner", [["id", "=", new_id]]) == [new_id]
    assert await client.unlink("res.partner", [new_id]) is True
    assert await client.read("res.partner", [new_id], ["name"]) == []


async def test_load_upserts_and_returns_row_errors(client: OdooClient) -> None:
    xmlid = f"syncd_test.partner_{uuid.uuid4().hex[:8]}"
    first = await client.load("res.partner", ["id", "name"], [[xmlid, "Loaded"]], context={"tz": "UTC"})
    again = await client.load("res.partner", ["id", "name"], [[xmlid, "Loaded again"]])

    assert first.ok and first.ids is not None
    assert again.ids == first.ids
    module, _, name = xmlid.partition(".")
    assert await client.check_object_reference(module, name) == ("res.partner", first.ids[0])
    assert await client.check_object_reference(module, "no_such_xmlid") is None
    assert await client.get_external_ids("res.partner", first.ids) == {first.ids[0]: xmlid}

    bad = await client.load(
        "res.partner",
        ["id", "name", "country_id"],
        [[f"{xmlid}_ok", "Fine", ""], [f"{xmlid}_bad", "Eight", "Atlantis"]],
    )
    assert bad.ids is None
    assert not bad.ok
    assert bad.errors and bad.errors[0]["rows"] == {"from": 1, "to": 1}
    assert await client.check_object_reference(module, f"{name}_ok") is None  # the batch rolled back


async def test_write_of_a_missing_id_is_missing_error(client: OdooClient) -> None:
    with pytest.raises(errors.OdooMissingError) as excinfo:
        await client.write("res.partner", [999_999_999], {"name": "ghost"})

    assert excinfo.value.name == "odoo.exceptions.MissingError"
    assert (excinfo.value.model, excinfo.value.method) == ("res.partner", "write")


async def test_unknown_field_is_permanent(client: OdooClient) -> None:
    with pytest.raises(errors.OdooPermanentError) as excinfo:
        await client.search_read("res.partner", [], ["id", "no_such_field"], limit=1)

    assert isinstance(excinfo.value, errors.OdooUnknownNameError)
    assert "no_such_field" in (excinfo.value.odoo_message or "")


async def test_fields_get(client: OdooClient) -> None:
    fields = await client.fields_get("res.partner", attributes=["type", "store", "relation"])

    assert fields["name"]["type"] == "char"
    assert fields["write_date"]["type"] == "datetime"


async def test_injected_503_is_retried(client: OdooClient, fake: Any) -> None:
    expected = await client.search_count("res.partner", [])
    fake.faults.fail_next(2, status=503)

    assert await client.search_count("res.partner", []) == expected


def probes(fake: Any) -> int:
    return sum(1 for c in fake.calls if c.method in ("/web/health", "context_get"))


async def test_the_readiness_probe_is_cheap_and_still_sees_odoo_go_down(
    client: OdooClient, fake: Any
) -> None:
    await client.ping()
    assert [c.method for c in fake.calls][-1:] == ["/web/health"], "no login, no model: Odoo's health route"
    await client.search_read("res.partner", [], ["name"], limit=1)
    before = probes(fake)
    await client.ping(fresh=60)
    assert probes(fake) == before, "a call of the daemon's work just succeeded: nothing to ask"
    fake.faults.fail_next(1000, status=503)
    with pytest.raises(errors.OdooError):
        await client.search_read("res.partner", [], ["name"], limit=1)
    with pytest.raises(errors.OdooError, match="503"):
        await client.ping(fresh=60)  # the failure since the success makes it ask
    fake.faults.clear()
    await client.ping(fresh=60)


async def test_a_refused_key_keeps_the_probe_failing(url: str, fake: Any) -> None:
    settings = OdooSettings(url=url, database="odoo", username="admin", api_key="admin", protocol="json2")
    async with OdooClient(settings, retry_policy=FAST) as c:
        await c.search_read("res.partner", [], ["name"], limit=1)
        fake.faults.fail_next(1, status=401)
        with pytest.raises(errors.OdooAuthenticationError):
            await c.search_read("res.partner", [], ["name"], limit=1)
        with pytest.raises(errors.OdooAuthenticationError):
            await c.ping(fresh=60)
        await c.search_read("res.partner", [], ["name"], limit=1)
        await c.ping(fresh=60)
