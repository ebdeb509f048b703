"""The backlog-shapes benchmark (``bench/outbox_shapes.py``) runs end to end on tiny sizes: its shapes
are the backlogs they claim to be, a drain stops at its time limit and says how far it got, and every
section prints its table. No timing is asserted (the numbers are the benchmark's, bench/README.md)."""

from __future__ import annotations

import asyncpg
import pytest

from bench import outbox_shapes as shapes
from bench.outbox import Database
from syncd.testing.postgres import PostgresServer, TestDatabases

pytestmark = pytest.mark.integration


@pytest.fixture
def database(pg_server: PostgresServer, test_databases: TestDatabases, db_dsn: str) -> Database:
    """The benchmark's database handle on the test session's server (not closed: the session owns it)."""
    return Database(pg_server, "test server", dbs=test_databases, dsn=db_dsn)


async def test_fill_builds_each_shape(conn: asyncpg.Connection) -> None:
    mixed = shapes.Shape("mixed", 100, keys=10, hot=50)
    await shapes.fill(conn, mixed)
    rows = await conn.fetch("select id, key from syncd.outbox order by id")
    hot = [r["id"] for r in rows if r["key"].startswith("hot-")]
    assert len(rows) == 100
    assert len(hot) == 50
    assert len({r["key"] for r in rows if r["key"].startswith("hot-")}) == 10
    assert len({r["key"] for r in rows}) == 60  # 10 hot keys + 50 distinct
    assert hot[:3] == [2, 4, 6]  # interleaved with the distinct keys, not one block

    await conn.execute("truncate syncd.outbox restart identity")
    half = shapes.Shape("half-done", 10, keys=1, hot=10, done=10)
    await shapes.fill(conn, half, "enqueue")
    got = await conn.fetch("select id, key, status, payload->>'name' as name from syncd.outbox order by id")
    assert {r["key"] for r in got} == {"hot"}
    assert [r["status"] for r in got] == ["done"] * 10 + ["pending"] * 10
    assert len({r["name"] for r in got}) == 20  # every payload differs


async def test_a_drain_stops_at_its_time_limit(database: Database) -> None:
    drain = await shapes.drain_shape(database, shapes.Shape("distinct", 20_000), 0.05, "insert")
    assert drain.stopped == "stopped after 0.05 s"
    assert 0 < drain.finished < 20_000
    assert drain.claims > 0


async def test_every_section_reports(database: Database) -> None:
    options = shapes.Options(
        backlogs=[
            shapes.Shape("distinct", 300),
            shapes.Shape("one-key", 20, keys=1, hot=20),
            shapes.Shape("half-done", 10, keys=1, hot=10, done=10),
            shapes.Shape("mixed", 40, keys=2, hot=20),
        ],
        shape_timeout=30,
        reps=1,
        e2e_events=20,
        pgmq_events=300,
    )
    out = "\n".join(await shapes.bench(database, options))
    print(out)
    for heading in (
        "## 1. Backlog shapes",
        "## 2. Into the fake Odoo",
        "## 3. syncd's claim loop against pgmq",
    ):
        assert heading in out
    assert "300 events, all distinct keys" in out
    assert "2 keys × 10 + 20 distinct" in out
    assert "stopped" not in out
    assert "| 10 keys × 2 upserts" in out
