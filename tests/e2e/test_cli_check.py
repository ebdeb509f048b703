from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from syncd.embedded import free_port
from syncd.testing import FakeOdoo, FakeOdooServer
from syncd.testing.postgres import TestDatabases
from tests.e2e.helpers import clean_env, syncd, syncd_async
from tests.odoo_targets import OdooTarget, Protocol

pytestmark = pytest.mark.e2e

MODELS = json.dumps([{"model": "res.partner", "fields": ["name", "email", "parent_id", "active"]}])


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


def _env(dsn: str, url: str, **extra: str) -> dict[str, str]:
    base = {
        "SYNCD_DATABASE__DSN": dsn,
        "SYNCD_ODOO__URL": url,
        "SYNCD_ODOO__API_KEY": "admin",
        "SYNCD_CDC__MODELS": MODELS,
    }
    return clean_env(**{**base, **extra})


def _target_env(dsn: str, odoo: OdooTarget, protocol: Protocol = "json2", **extra: str) -> dict[str, str]:
    """``syncd check`` against the fake or the real Odoo (``odoo_target`` runs each test on both)."""
    return clean_env(
        **{"SYNCD_DATABASE__DSN": dsn, "SYNCD_CDC__MODELS": MODELS, **odoo.env(protocol), **extra}
    )


def _row(out: str, name: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(name + " ")]
    assert lines, f"no row {name!r} in:\n{out}"
    return lines[0]


async def test_check_all_green(db_dsn: str, odoo_target: OdooTarget) -> None:
    r = await syncd_async("check", env=_target_env(db_dsn, odoo_target))
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"]
    for name in ("config", "postgres", "schema", "odoo", "odoo credentials", "model res.partner"):
        assert " ok " in _row(r.out, name)
    assert "protocol json2" in _row(r.out, "odoo")
    assert "4 fields to mirror" in _row(r.out, "model res.partner")
    assert "admin" not in _row(r.out, "postgres")


async def test_check_over_jsonrpc_with_a_password(db_dsn: str, odoo_target: OdooTarget) -> None:
    env = _target_env(db_dsn, odoo_target, "jsonrpc", SYNCD_ODOO__PROTOCOL="auto")
    assert "SYNCD_ODOO__API_KEY" not in env
    r = await syncd_async("check", env=env)
    assert r.code == 0, r.out + r.err
    assert "protocol jsonrpc" in _row(r.out, "odoo")
    assert "uid 2" in _row(r.out, "odoo credentials")


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
async def test_wrong_credentials_exit_1(db_dsn: str, odoo_target: OdooTarget, protocol: Protocol) -> None:
    env = _target_env(
        db_dsn, odoo_target, "json2", SYNCD_ODOO__API_KEY="not-the-key-xyz", SYNCD_ODOO__PROTOCOL=protocol
    )
    r = await syncd_async("check", env=env)
    assert r.code == 1, r.out + r.err
    assert "FAIL" in _row(r.out, "odoo credentials")
    assert "not-the-key-xyz" not in r.out + r.err
    # the key to fix, as `syncd run` names it
    assert "check odoo.api_key (SYNCD_ODOO__API_KEY) and odoo.username" in _row(r.out, "odoo credentials")


async def test_a_refused_password_names_odoo_password(db_dsn: str, odoo: FakeOdooServer) -> None:
    env = _env(db_dsn, odoo.url, SYNCD_ODOO__PROTOCOL="jsonrpc", SYNCD_ODOO__PASSWORD="not-the-password")
    del env["SYNCD_ODOO__API_KEY"]
    r = await syncd_async("check", env=env)
    assert r.code == 1, r.out + r.err
    row = _row(r.out, "odoo credentials")
    assert "FAIL" in row and "check odoo.password (SYNCD_ODOO__PASSWORD) and odoo.username" in row


async def test_missing_and_computed_fields_are_named(db_dsn: str, odoo_target: OdooTarget) -> None:
    models = json.dumps([{"model": "res.partner", "fields": ["name", "no_such_field", "display_name"]}])
    r = await syncd_async("check", env=_target_env(db_dsn, odoo_target, SYNCD_CDC__MODELS=models))
    assert r.code == 1
    row = _row(r.out, "model res.partner")
    assert "'no_such_field' does not exist" in row
    assert "'display_name' of res.partner is computed" in row


async def test_unknown_model_is_reported(db_dsn: str, odoo_target: OdooTarget) -> None:
    models = json.dumps([{"model": "x.nothing"}])
    r = await syncd_async("check", env=_target_env(db_dsn, odoo_target, SYNCD_CDC__MODELS=models))
    assert r.code == 1
    assert "FAIL" in _row(r.out, "model x.nothing")


async def test_unreachable_odoo_exits_3(db_dsn: str) -> None:
    r = await syncd_async("check", env=_env(db_dsn, f"http://127.0.0.1:{free_port()}"))
    assert r.code == 3, r.out + r.err
    assert "FAIL" in _row(r.out, "odoo")


async def test_unmigrated_schema_exits_1(test_databases: TestDatabases, odoo: FakeOdooServer) -> None:
    dsn = test_databases.clone()
    try:
        test_databases.execute(dsn, "drop schema syncd cascade")
        r = await syncd_async("check", env=_env(dsn, odoo.url))
        assert r.code == 1
        assert "run `syncd migrate`" in _row(r.out, "schema")
    finally:
        test_databases.drop(dsn)


async def test_fake_odoo_command_serves_both_transports() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "fake-odoo", "--listen", f"127.0.0.1:{port}", "--demo-data",
        "--database", "trial", env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        assert f"listening on http://127.0.0.1:{port}" in line
        async with aiohttp.ClientSession() as http:
            body = {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {"service": "common", "method": "version", "args": []},
            }
            async with http.post(f"http://127.0.0.1:{port}/jsonrpc", json={**body, "id": 1}) as resp:
                assert (await resp.json())["result"]["server_version"] == "19.0"
            headers = {"Authorization": "bearer admin", "X-Odoo-Database": "trial"}
            url = f"http://127.0.0.1:{port}/json/2/res.partner/search_count"
            async with http.post(url, json={"domain": []}, headers=headers) as resp:
                assert resp.status == 200
                assert await resp.json() > 10  # demo data
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_fake_odoo_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = syncd("fake-odoo", "--listen", f"127.0.0.1:{port}", timeout=60)
    assert r.code == 1, r.out + r.err
    assert r.err.strip().splitlines() == [
        f"syncd: --listen 127.0.0.1:{port}: cannot listen: the address is already in use "
        "(is another fake Odoo running? choose another port with --listen HOST:PORT)"
    ]


async def test_a_related_field_names_the_model_to_mirror(db_dsn: str, odoo_target: OdooTarget) -> None:
    models = json.dumps([{"model": "product.product", "fields": ["default_code", "name"]}])
    r = await syncd_async("check", env=_target_env(db_dsn, odoo_target, SYNCD_CDC__MODELS=models))
    assert r.code == 1, r.out + r.err
    row = _row(r.out, "model product.product")
    assert "'name' of product.product is not stored: it is related to product_tmpl_id.name" in row
    assert "mirror product.template (field 'name') instead" in row
