from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import clean_env, syncd_async

pytestmark = pytest.mark.e2e

MODELS = json.dumps(
    [{"model": "res.partner", "fields": ["name", "email", "active"]}, {"model": "product.product"}]
)


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


async def test_once_status_resync(db_dsn: str, odoo: FakeOdooServer) -> None:
    env = clean_env(
        SYNCD_DATABASE__DSN=db_dsn,
        SYNCD_ODOO__URL=odoo.url,
        SYNCD_ODOO__API_KEY="admin",
        SYNCD_CDC__MODELS=MODELS,
    )
    r = await syncd_async("--once", env=env)
    assert r.code == 0, r.err
    assert "res.partner: 42 records read, 42 written" in r.out
    assert "product.product:" in r.out

    r = await syncd_async("status", "--json", env=env)
    assert r.code == 0, r.err
    status = json.loads(r.out)
    partner = next(m for m in status["models"] if m["model"] == "res.partner")
    assert (
        partner["phase"] == "incremental" and partner["rows_mirrored"] == 42 and partner["last_error"] is None
    )
    assert status["outbox"]["events"] == {"pending": 0, "inflight": 0, "done": 0, "dead": 0, "conflict": 0}
    assert status["outbox"]["conflicts_held"] == []

    r = await syncd_async("status", env=env)
    assert r.out.splitlines()[0].split()[:3] == ["MODEL", "PHASE", "CURSOR"]

    r = await syncd_async("resync", "res.partner", env=env)
    assert r.code == 0 and "cursor reset" in r.out
    partner = next(m for m in json.loads((await syncd_async("status", "--json", env=env)).out)["models"]
                   if m["model"] == "res.partner")  # fmt: skip
    assert (partner["phase"], partner["cursor"]) == ("backfill", None)

    r = await syncd_async("--once", env=env)  # the resync reads everything again but rewrites nothing
    assert "res.partner: 42 records read, 0 written" in r.out

    r = await syncd_async("resync", "res.users", env=env)
    assert r.code == 2 and "not in [[cdc.models]]" in r.err


async def test_once_with_a_missing_field_exits_1(db_dsn: str, odoo: FakeOdooServer) -> None:
    models = json.dumps([{"model": "res.partner", "fields": ["name", "no_such_field"]}])
    env = clean_env(
        SYNCD_DATABASE__DSN=db_dsn,
        SYNCD_ODOO__URL=odoo.url,
        SYNCD_ODOO__API_KEY="admin",
        SYNCD_CDC__MODELS=models,
    )
    r = await syncd_async("--once", env=env)
    assert r.code == 1
    assert "res.partner: FAILED: field 'no_such_field' does not exist on res.partner" in r.out


async def test_dry_run_writes_nothing(db_dsn: str, odoo: FakeOdooServer) -> None:
    env = clean_env(
        SYNCD_DATABASE__DSN=db_dsn,
        SYNCD_ODOO__URL=odoo.url,
        SYNCD_ODOO__API_KEY="admin",
        SYNCD_CDC__MODELS=MODELS,
    )
    r = await syncd_async("--once", "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "res.partner: 42 records read, 0 written" in r.out
    status = json.loads((await syncd_async("status", "--json", env=env)).out)
    assert {m["phase"] for m in status["models"]} == {"not started"}


async def test_run_refuses_an_unmigrated_schema(test_databases, odoo: FakeOdooServer) -> None:  # type: ignore[no-untyped-def]
    dsn = test_databases.clone()
    try:
        test_databases.execute(dsn, "drop schema syncd cascade")
        env = clean_env(SYNCD_DATABASE__DSN=dsn, SYNCD_ODOO__URL=odoo.url, SYNCD_ODOO__API_KEY="admin")
        r = await syncd_async("run", env=env)
        assert r.code == 1
        assert "run `syncd migrate`" in r.err
    finally:
        test_databases.drop(dsn)


@pytest.mark.parametrize(
    ("protocol", "credential", "key"),
    [
        ("json2", {"SYNCD_ODOO__API_KEY": "not-the-key"}, "odoo.api_key (SYNCD_ODOO__API_KEY)"),
        ("jsonrpc", {"SYNCD_ODOO__PASSWORD": "not-the-password"}, "odoo.password (SYNCD_ODOO__PASSWORD)"),
    ],
)
async def test_once_stops_at_once_on_refused_credentials_naming_the_key(
    db_dsn: str, odoo: FakeOdooServer, protocol: str, credential: dict[str, str], key: str
) -> None:
    env = clean_env(
        SYNCD_DATABASE__DSN=db_dsn,
        SYNCD_ODOO__URL=odoo.url,
        SYNCD_ODOO__PROTOCOL=protocol,
        SYNCD_CDC__MODELS=MODELS,
        **credential,
    )
    conn = await asyncpg.connect(db_dsn)
    try:  # an event to deliver: the consumer used to pause and retry it batch after batch
        await conn.execute("select syncd.enqueue('res.partner', 'upsert', 'k1', '{\"name\": \"A\"}'::jsonb)")
    finally:
        await conn.close()
    started = time.monotonic()
    r = await syncd_async("--once", env=env)
    assert r.code == 2, r.out + r.err
    assert time.monotonic() - started < 30
    last = r.err.strip().splitlines()[-1]
    assert "refused the credentials of user 'admin' in database 'odoo'" in last, r.err
    assert f"check {key}" in last
    assert "Traceback" not in r.err
    assert "not-the" not in r.out + r.err


async def test_status_shows_models_of_the_database_that_the_config_no_longer_has(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            "insert into syncd.cdc_state (model, phase, rows_mirrored, last_error)"
            " values ('res.users', 'incremental', 7, 'boom')"
        )
    finally:
        await conn.close()
    env = clean_env(SYNCD_DATABASE__DSN=db_dsn, SYNCD_CDC__MODELS='[{"model": "res.partner"}]')
    r = await syncd_async("status", "--json", env=env)
    assert r.code == 0, r.err
    models = {m["model"]: m for m in json.loads(r.out)["models"]}
    assert (models["res.partner"]["configured"], models["res.partner"]["phase"]) == (True, "not started")
    assert models["res.users"]["configured"] is False
    assert (models["res.users"]["phase"], models["res.users"]["rows_mirrored"]) == ("incremental", 7)
    r = await syncd_async("status", env=env)
    assert r.code == 0, r.err
    line = next(line for line in r.out.splitlines() if line.startswith("res.users"))
    assert "not configured" in line and "incremental" in line
    assert "not in [[cdc.models]]" in r.out
