"""/metrics, /healthz and /readyz over real HTTP, with readiness probed against a real PostgreSQL and
the fake Odoo; one log line per change of a dependency's state, not one per probe."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from syncd import db
from syncd.config import DatabaseSettings, OdooSettings
from syncd.errors import SyncdError
from syncd.health import Health, HealthMonitor
from syncd.http import HttpServer
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo, FakeOdooServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer("127.0.0.1:0", Health())
    await http.start()
    try:
        yield http
    finally:
        await http.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def get_json(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json()


async def test_healthz_answers_while_nothing_is_reachable_and_readyz_says_why_not(server: HttpServer) -> None:
    assert server.port != 0
    status, _, body = await get(server.url + "/healthz")
    assert status == 200 and '"ok"' in body
    status, report = await get_json(server.url + "/readyz")
    assert status == 503
    assert report["ready"] is False and report["serving"] is False
    assert set(report["checks"]) == {"postgres", "odoo", "schema"}
    assert report["checks"]["odoo"] == {"ok": False, "detail": "not checked yet", "for_seconds": 0.0}


async def test_metrics_is_the_prometheus_text_format(server: HttpServer) -> None:
    status, content_type, body = await get(server.url + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain") and "version=" in content_type
    assert 'syncd_build_info{version="' in body
    assert "syncd_ready 0.0" in body
    assert 'syncd_dependency_up{dependency="odoo"} 0.0' in body


async def test_a_taken_port_is_a_clear_error(server: HttpServer) -> None:
    other = HttpServer(f"127.0.0.1:{server.port}", Health())
    with pytest.raises(
        SyncdError, match=r"http.listen 127.0.0.1:\d+: cannot listen: the address is already in use"
    ):
        await other.start()


async def test_readiness_follows_the_dependencies_with_one_log_line_per_change(
    server: HttpServer, db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "syncd.health")
    health = server.health
    fake = FakeOdoo()
    pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        async with FakeOdooServer(fake) as odoo_server:
            settings = OdooSettings(url=odoo_server.url, api_key="admin", retries=0)  # type: ignore[arg-type]
            async with OdooClient(settings) as odoo:
                # An interval this short makes every probe ask Odoo (no call of the daemon's work
                # is that recent): test_odoo_client_fake covers the probes that need not ask.
                monitor = HealthMonitor(health, pool, odoo, interval=1e-9, timeout=5)
                await monitor.probe()
                health.set_serving(True)
                status, report = await get_json(server.url + "/readyz")
                assert status == 200, report
                assert report["checks"]["schema"]["detail"].startswith("version ")
                assert "syncd_ready 1.0" in (await get(server.url + "/metrics"))[2]

                # Odoo answers 503 for a while: not ready, still alive; logged once.
                fake.faults.fail_next(1000, status=503)
                await monitor.probe()
                await monitor.probe()
                status, report = await get_json(server.url + "/readyz")
                assert status == 503
                assert report["checks"]["odoo"]["ok"] is False and "503" in report["checks"]["odoo"]["detail"]
                assert report["checks"]["postgres"]["ok"] is True
                assert (await get(server.url + "/healthz"))[0] == 200
                assert 'syncd_dependency_up{dependency="odoo"} 0.0' in (await get(server.url + "/metrics"))[2]
                fake.faults.clear()
                await monitor.probe()
                assert (await get(server.url + "/readyz"))[0] == 200
    finally:
        await pool.close()
    lines = [r.getMessage().split(":")[0] for r in caplog.records if r.name == "syncd.health"]
    # The first probe checks both sides at once, so its three lines come in either order.
    assert sorted(lines[:3]) == ["Odoo ok", "PostgreSQL ok", "the database schema ok"], lines
    assert lines[3:] == ["Odoo is not ok any more", "Odoo ok again after 0 s"], lines


async def test_a_schema_newer_than_this_syncd_makes_it_unready(server: HttpServer, db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("insert into syncd.schema_migrations values (9999, 'from_the_future', 'x')")
    finally:
        await conn.close()
    pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2))
    try:
        async with FakeOdooServer(FakeOdoo()) as odoo_server:
            settings = OdooSettings(url=odoo_server.url, api_key="admin", retries=0)  # type: ignore[arg-type]
            async with OdooClient(settings) as odoo:
                await HealthMonitor(server.health, pool, odoo, interval=60, timeout=5).probe()
    finally:
        await pool.close()
    server.health.set_serving(True)
    status, report = await get_json(server.url + "/readyz")
    assert status == 503
    assert report["checks"]["postgres"]["ok"] is True
    assert "9999_from_the_future" in report["checks"]["schema"]["detail"]
    assert "upgrade syncd" in report["checks"]["schema"]["detail"]


async def test_stopping_makes_it_unready_at_once(server: HttpServer) -> None:
    health = server.health
    for name in ("postgres", "odoo", "schema"):
        health.set(name, True)
    health.set_serving(True)
    assert (await get(server.url + "/readyz"))[0] == 200
    health.set_stopping()
    status, report = await get_json(server.url + "/readyz")
    assert status == 503 and report["stopping"] is True
