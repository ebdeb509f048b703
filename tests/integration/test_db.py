from __future__ import annotations

import pytest

from syncd import db
from syncd.config import DatabaseSettings
from syncd.errors import DatabaseError, DatabaseUnavailable

pytestmark = pytest.mark.integration


def _settings(**kw: object) -> DatabaseSettings:
    return DatabaseSettings.model_validate({"connect_timeout_seconds": 5, **kw})


async def test_refused_connection_is_unavailable_and_hides_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        await db.connect("postgresql://u:s3cret@127.0.0.1:1/x", _settings())
    assert info.value.transient
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1:1" in str(info.value)


async def test_bad_statement_is_a_permanent_database_error(db_dsn: str) -> None:
    pool = await db.create_pool(db_dsn, _settings(pool_min_size=1, pool_max_size=2))
    try:
        with pytest.raises(DatabaseError, match=r"syntax error.*SQLSTATE 42601") as info:
            async with db.transaction(pool, "testing") as conn:
                await conn.execute("selec 1")
        assert not info.value.transient
        async with db.transaction(pool) as conn:
            # jsonb comes back decoded, and goes in from Python values
            assert await conn.fetchval("select $1::jsonb", {"a": [1, "x"]}) == {"a": [1, "x"]}
    finally:
        await pool.close()


async def test_terminated_backend_is_unavailable(db_dsn: str) -> None:
    victim = await db.connect(db_dsn, _settings())
    killer = await db.connect(db_dsn, _settings())
    try:
        pid = victim.get_server_pid()
        await killer.execute("select pg_terminate_backend($1)", pid)
        with pytest.raises(DatabaseUnavailable), db.translate_errors("after terminate"):
            await victim.fetchval("select 1")
    finally:
        await killer.close()
        victim.terminate()


async def test_statement_cache_can_be_disabled_for_poolers(db_dsn: str) -> None:
    conn = await db.connect(db_dsn, _settings(statement_cache_size=0))
    try:
        for _ in range(3):
            assert await conn.fetchval("select $1::int + 1", 1) == 2
        # with the cache off, asyncpg leaves no named prepared statements behind
        assert await conn.fetchval("select count(*) from pg_prepared_statements") == 0
    finally:
        await conn.close()


def test_queries_are_parsed_by_name() -> None:
    assert "pg_advisory_xact_lock" in db.queries["migration_lock"]
    assert all(not line.lstrip().startswith("--") for q in db.queries.values() for line in q.splitlines())


def test_quote_ident() -> None:
    assert db.quote_ident('we"ird name') == '"we""ird name"'
    with pytest.raises(ValueError, match="NUL"):
        db.quote_ident("a\x00b")
