from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from syncd import migrate
from syncd.errors import SchemaError
from syncd.migrate import Migration
from syncd.testing.postgres import TestDatabases

pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_conn(test_databases: TestDatabases):
    """A connection to an empty (unmigrated) database."""
    dsn = test_databases.clone()
    c = await asyncpg.connect(dsn)
    await c.execute("drop schema syncd cascade")
    try:
        yield c
    finally:
        await c.close()
        test_databases.drop(dsn)


async def test_template_is_current(conn: asyncpg.Connection) -> None:
    status = await migrate.check(conn)
    assert status.current, status.problems()
    assert status.version == len(migrate.load_migrations())


async def test_apply_on_empty_database_then_nothing_pending(empty_conn: asyncpg.Connection) -> None:
    before = await migrate.check(empty_conn)
    assert [m.version for m in before.pending] == [m.version for m in migrate.load_migrations()]
    applied = await migrate.apply(empty_conn)
    assert [m.version for m in applied] == [m.version for m in before.pending]
    assert await migrate.apply(empty_conn) == []
    assert (await migrate.check(empty_conn)).current
    assert await empty_conn.fetchval("select to_regclass('syncd.outbox') is not null")


async def test_concurrent_migrate_runs_serialise(test_databases: TestDatabases) -> None:
    dsn = test_databases.clone()
    try:
        conns = [await asyncpg.connect(dsn) for _ in range(3)]
        await conns[0].execute("drop schema syncd cascade")
        results = await asyncio.gather(*(migrate.apply(c) for c in conns))
        # exactly one run applied everything; the others found nothing pending
        assert sorted(len(r) for r in results) == [0, 0, len(migrate.load_migrations())]
        assert await conns[0].fetchval("select count(*) from syncd.schema_migrations") == len(
            results[0]
        ) + len(results[1]) + len(results[2])
        for c in conns:
            await c.close()
    finally:
        test_databases.drop(dsn)


async def test_altered_migration_is_reported_and_refused(conn: asyncpg.Connection) -> None:
    known = migrate.load_migrations()
    changed = [Migration(known[0].version, known[0].name, known[0].sql + "\n-- edited\n"), *known[1:]]
    status = await migrate.check(conn, changed)
    assert [a.version for a in status.altered] == [1]
    assert "were changed since they ran" in status.problems()[0]
    with pytest.raises(SchemaError, match="changed since they ran"):
        await migrate.apply(conn, changed)


async def test_database_newer_than_code_is_reported(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "insert into syncd.schema_migrations (version, name, checksum) values (999, 'future', 'x')"
    )
    status = await migrate.check(conn)
    assert [a.version for a in status.unknown] == [999]
    assert "upgrade syncd" in status.problems()[0]


async def test_failing_migration_applies_nothing(empty_conn: asyncpg.Connection) -> None:
    known = [*migrate.load_migrations()]
    broken = [*known, Migration(len(known) + 1, "broken", "create table syncd.ok (x int); select 1/0;")]
    with pytest.raises(SchemaError, match=r"migration \d{4}_broken failed.*nothing was applied"):
        await migrate.apply(empty_conn, broken)
    # all-or-nothing: not even the good ones before it were recorded
    assert await empty_conn.fetchval("select to_regclass('syncd.schema_migrations')") is None


def test_migration_files_are_well_formed(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("select 1;")
    (tmp_path / "0003_c.sql").write_text("select 1;")
    with pytest.raises(SchemaError, match="without gaps"):
        migrate.load_migrations(tmp_path)
    (tmp_path / "bad name.sql").write_text("select 1;")
    with pytest.raises(SchemaError, match=r"NNNN_name\.sql"):
        migrate.load_migrations(tmp_path)


async def test_0008_keeps_who_may_call_enqueue(empty_conn: asyncpg.Connection) -> None:
    """0008 gives syncd.enqueue an argument (a new signature): the roles that could call the old one
    (docs/supabase.md grants an app role) can call the new one, and PUBLIC still cannot when it had
    been revoked."""
    known = migrate.load_migrations()
    await migrate.apply(empty_conn, [m for m in known if m.version < 8])
    role = "syncd_test_app_backend"
    await empty_conn.execute(f"drop role if exists {role}")
    await empty_conn.execute(f"create role {role}")
    try:
        await empty_conn.execute(
            "revoke all on function syncd.enqueue(text, text, text, jsonb, bigint) from public"
        )
        await empty_conn.execute(
            f"grant execute on function syncd.enqueue(text, text, text, jsonb, bigint) to {role}"
        )
        await migrate.apply(empty_conn, known)
        new = "syncd.enqueue(text, text, text, jsonb, bigint, jsonb)"
        assert await empty_conn.fetchval("select has_function_privilege($1, $2, 'execute')", role, new)
        public = await empty_conn.fetchval(
            "select bool_or(a.grantee = 0) from pg_proc p"
            " cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            " where p.oid = $1::regprocedure",
            new,
        )
        assert public is False
        resolve = "syncd.outbox_resolve(bigint, text)"
        assert not await empty_conn.fetchval(
            "select has_function_privilege($1, $2, 'execute')", role, resolve
        )
    finally:
        await empty_conn.execute(f"drop owned by {role}")
        await empty_conn.execute(f"drop role {role}")
