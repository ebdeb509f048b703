"""Webhook hints as operators run them: ``syncd run`` (a subprocess) with ``http.webhook_secret``,
the fake Odoo over HTTP in this process and a real PostgreSQL; ``syncd check`` says how hints travel.

- a hint makes the model poll at once (the interval is 60 s), and a flood of 10,000 hints is a
  bounded number of polls while the outbox keeps delivering;
- the daemon's log (at debug level) never shows the secret;
- behind a transaction-mode pooler, ``syncd check`` says that hints reach only the polling replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import Daemon, clean_env, http_url, syncd_async, wait_until

pytestmark = pytest.mark.e2e

MODEL = "res.partner"
MODELS = json.dumps([{"model": MODEL, "fields": ["name", "email"]}])
SECRET = "e2e-S3cret-of-the-webhook-0123456789"


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


def env(dsn: str, odoo_url: str, **extra: str) -> dict[str, str]:
    # No SYNCD_CDC__INTERVAL_SECONDS: with the secret it is 60 s, so only hints poll within the test.
    settings = {
        "SYNCD_DATABASE__DSN": dsn,
        "SYNCD_ODOO__URL": odoo_url,
        "SYNCD_ODOO__API_KEY": "admin",
        "SYNCD_ODOO__RETRIES": "0",
        "SYNCD_CDC__MODELS": MODELS,
        "SYNCD_HTTP__WEBHOOK_SECRET": SECRET,
        "SYNCD_HTTP__PUBLIC_URL": "https://syncd.internal:9187",
        "SYNCD_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
        "SYNCD_DAEMON__PROBE_INTERVAL_SECONDS": "0.2",
        "SYNCD_LOG__LEVEL": "debug",
    }
    return clean_env(**{**settings, **extra})


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def hint_polls(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    return scraped.get(("syncd_cdc_polls_total", frozenset({"model": MODEL, "trigger": "hint"}.items())), 0.0)


async def test_hints_poll_at_once_a_flood_stays_bounded_and_the_outbox_keeps_going(
    db_dsn: str, odoo: FakeOdooServer, tmp_path: Path
) -> None:
    fake = odoo.fake
    daemon = await Daemon(env(db_dsn, odoo.url), tmp_path / "syncd.log").start()
    conn = await asyncpg.connect(db_dsn)
    try:
        await daemon.wait_ready()
        url = http_url(daemon.log_path.read_text())
        assert url is not None
        hook = f"{url}/odoo/webhook/{SECRET}"

        async def table() -> bool:
            return bool(await conn.fetchval("select to_regclass('odoo.res_partner') is not null"))

        await wait_until(table, within=15, what="the first poll")

        async def mirrored(rid: int, name: str) -> bool:
            return await conn.fetchval("select name from odoo.res_partner where id = $1", rid) == name

        # One hint: the record is in the mirror long before the 60 s interval.
        [rid] = fake.create(MODEL, {"name": "Hinted", "email": "h@example.com"})
        async with aiohttp.ClientSession() as s, s.post(hook, json={"_id": rid, "_model": MODEL}) as r:
            assert r.status == 202 and await r.json() == {"status": "accepted"}
        took = await wait_until(lambda: mirrored(rid, "Hinted"), within=10, interval=0.01, what="the hint")
        assert took < 2.0, took

        # A flood of 10,000 hints (Odoo re-runs a rule on every internal write: 13 POSTs for one
        # create), with an outbox event enqueued in the middle of it.
        before = await scrape(url)
        [flooded] = fake.create(MODEL, {"name": "Flooded"})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        bodies = [{"_id": flooded if i % 2 else i % 5000 + 1, "_model": MODEL} for i in range(10_000)]
        under_way = asyncio.Event()
        flooding = asyncio.create_task(flood(hook, bodies, under_way))
        await asyncio.wait_for(under_way.wait(), 30)
        event = await conn.fetchval(
            "select syncd.enqueue('res.partner', 'upsert', 'during-flood', '{\"name\": \"From the app\"}')"
        )

        async def delivered() -> bool:
            return await conn.fetchval("select status from syncd.outbox where id = $1", event) == "done"

        delivery = await wait_until(
            delivered, within=15, interval=0.02, what="the event sent during the flood"
        )
        statuses = await flooding
        seconds = loop.time() - t0
        assert statuses == {202: 10_000}
        assert fake.search(MODEL, [("name", "=", "From the app")])
        await wait_until(lambda: mirrored(flooded, "Flooded"), within=5, what="the flooded record")
        after = await scrape(url)
        polls = hint_polls(after) - hint_polls(before)
        local = ("syncd_webhook_hints_total", frozenset({"model": MODEL, "route": "local"}.items()))
        print(
            f"10,000 hints in {seconds:.2f} s: {polls:.0f} hinted polls; an outbox event enqueued "
            f"during the flood was delivered in {delivery:.2f} s"
        )
        assert after[local] - before.get(local, 0.0) == 10_000
        # Bounded by the 50 ms debounce: at most ~20 a second, whatever the number of hints.
        assert 1 <= polls <= seconds / 0.05 + 5, (polls, seconds)
        assert delivery < 5.0, delivery

        assert await daemon.terminate() == 0
    finally:
        await conn.close()
        await daemon.kill()
    log = daemon.log_path.read_text()
    assert "webhook hints accepted at POST /odoo/webhook/<http.webhook_secret>" in log
    assert " DEBUG " in log  # the check covers the most talkative level
    assert SECRET not in log


async def test_a_hint_to_the_replica_that_does_not_poll_reaches_the_one_that_does(
    db_dsn: str, odoo: FakeOdooServer, tmp_path: Path
) -> None:
    leader = await Daemon(env(db_dsn, odoo.url), tmp_path / "a.log").start()
    other: Daemon | None = None
    conn = await asyncpg.connect(db_dsn)
    try:
        await leader.wait_ready()

        async def leads() -> bool:
            return f"now polling {MODEL} on this replica" in leader.log_path.read_text()

        await wait_until(leads, within=15, what="the first replica to poll the model")
        other = await Daemon(env(db_dsn, odoo.url), tmp_path / "b.log").start()
        await other.wait_ready()
        url = http_url(other.log_path.read_text())
        assert url is not None
        [rid] = odoo.fake.create(MODEL, {"name": "Through the other replica"})
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{url}/odoo/webhook/{SECRET}", json={"_id": rid, "_model": MODEL}) as r,
        ):
            assert r.status == 202

        async def mirrored() -> bool:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                return await conn.fetchval("select name from odoo.res_partner where id = $1", rid) is not None
            return False

        took = await wait_until(mirrored, within=10, interval=0.01, what="the leader's hinted poll")
        assert took < 2.0, took  # the interval is 60 s
        forwarded = ("syncd_webhook_hints_total", frozenset({"model": MODEL, "route": "forwarded"}.items()))
        assert (await scrape(url))[forwarded] == 1
        assert f"now polling {MODEL} on this replica" not in other.log_path.read_text()
    finally:
        await conn.close()
        for daemon in (leader, other):
            if daemon is not None:
                await daemon.terminate()


async def test_check_says_how_hints_travel(db_dsn: str, odoo: FakeOdooServer) -> None:
    r = await syncd_async("check", env=env(db_dsn, odoo.url))
    assert r.code == 0, r.out + r.err
    [row] = [line for line in r.out.splitlines() if line.startswith("webhook hints ")]
    assert " ok " in row
    assert "https://syncd.internal:9187/odoo/webhook/…" in row
    assert "hints reach the replica that polls the model (NOTIFY syncd_cdc_hint)" in row
    assert "cdc.interval_seconds = 60" in row

    r = await syncd_async("check", env=env(db_dsn, odoo.url, SYNCD_DATABASE__POOLER="transaction"))
    assert r.code == 0, r.out + r.err
    [row] = [line for line in r.out.splitlines() if line.startswith("webhook hints ")]
    assert (
        "hints reach only the replica that polls the model (database.pooler = transaction has no "
        "LISTEN); others wait for the next poll" in row
    )
    assert SECRET not in r.out + r.err

    r = await syncd_async("check", env=env(db_dsn, odoo.url, SYNCD_HTTP__WEBHOOK_SECRET=""))
    assert r.code == 2  # an empty secret is not "off": it is too short, said without showing it
    assert "http.webhook_secret: too short" in r.err


async def flood(url: str, bodies: list[dict[str, object]], under_way: asyncio.Event) -> dict[int, int]:
    """POST every body, 32 at a time on kept-alive connections; the answers' statuses. ``under_way``
    is set once a fifth of them were answered."""
    statuses: dict[int, int] = {}
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:

        async def worker() -> None:
            for body in queue:
                async with s.post(url, json=body) as r:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                if sum(statuses.values()) >= len(bodies) // 5:
                    under_way.set()

        await asyncio.gather(*(worker() for _ in range(32)))
    return statuses
