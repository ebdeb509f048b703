"""The Odoo client's ``observe`` callback feeds ``syncd_odoo_request_*`` (fake Odoo over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from syncd import errors, metrics
from syncd.config import OdooSettings
from syncd.odoo import OdooClient, RetryPolicy
from syncd.testing import FakeOdoo, FakeOdooServer

pytestmark = pytest.mark.integration

FAST = RetryPolicy(retries=3, base_seconds=0.001, max_seconds=0.005)


def errors_counted(method: str, kind: str) -> float:
    value = REGISTRY.get_sample_value("syncd_odoo_request_errors_total", {"method": method, "kind": kind})
    return value or 0.0


def requests_counted(method: str) -> float:
    return REGISTRY.get_sample_value("syncd_odoo_request_seconds_count", {"method": method}) or 0.0


@pytest.fixture
def fake() -> FakeOdoo:
    return FakeOdoo(database="odoo", demo_data=True)


@pytest.fixture(params=["json2", "jsonrpc"])
async def client(request: pytest.FixtureRequest, fake: FakeOdoo) -> AsyncIterator[OdooClient]:
    async with FakeOdooServer(fake, host="127.0.0.1", port=0) as server:
        settings = OdooSettings(
            url=str(server.url), api_key="admin", protocol=request.param, timeout_seconds=5
        )
        async with OdooClient(settings, observe=metrics.observe_odoo_request, retry_policy=FAST) as c:
            yield c


async def test_retried_503s_count_as_transient_errors(client: OdooClient, fake: FakeOdoo) -> None:
    before = {k: errors_counted("search_count", k) for k in ("transient", "permanent")}
    requests_before = requests_counted("search_count")
    fake.faults.fail_next(2, status=503, methods={"search_count"})

    assert await client.search_count("res.partner", []) > 0

    assert errors_counted("search_count", "transient") - before["transient"] == 2
    assert errors_counted("search_count", "permanent") == before["permanent"]
    assert requests_counted("search_count") - requests_before == 3  # two failed, one answered


async def test_a_rejected_call_counts_as_permanent_error(client: OdooClient) -> None:
    before = {k: errors_counted("write", k) for k in ("transient", "permanent")}

    with pytest.raises(errors.OdooPermanentError):
        await client.write("res.partner", [10**9], {"name": "nobody"})  # no such record

    assert errors_counted("write", "permanent") - before["permanent"] == 1
    assert errors_counted("write", "transient") == before["transient"]


async def test_a_two_argument_observer_still_works(fake: FakeOdoo) -> None:
    observed: list[tuple[str, float]] = []

    def observe(method: str, seconds: float) -> None:
        observed.append((method, seconds))

    fake.faults.fail_next(1, status=503, methods={"search_count"})
    async with FakeOdooServer(fake, host="127.0.0.1", port=0) as server:
        settings = OdooSettings(url=str(server.url), api_key="admin", protocol="json2")
        async with OdooClient(settings, observe=observe, retry_policy=FAST) as c:
            await c.search_count("res.partner", [])

    assert [m for m, _ in observed] == ["search_count", "search_count"]
    assert all(s >= 0 for _, s in observed)


async def test_the_observer_is_given_the_error(fake: FakeOdoo) -> None:
    seen: list[tuple[str, type[BaseException] | None]] = []

    def observe(method: str, seconds: float, error: Exception | None) -> None:
        seen.append((method, type(error) if error is not None else None))

    fake.faults.fail_next(1, status=503, methods={"search_count"})
    async with FakeOdooServer(fake, host="127.0.0.1", port=0) as server:
        settings = OdooSettings(url=str(server.url), api_key="admin", protocol="json2")
        async with OdooClient(settings, observe=observe, retry_policy=FAST) as c:
            await c.search_count("res.partner", [])

    assert seen == [
        ("search_count", errors.OdooServerUnavailableError),
        ("search_count", None),
    ]
