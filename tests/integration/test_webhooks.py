"""Webhook hints over real HTTP into a CDC service polling the fake Odoo (over HTTP) into a real
PostgreSQL: what the endpoint refuses (and that nothing is polled then), that a good hint polls at
once, how hints reach the replica that polls the model (NOTIFY; dropped behind a transaction
pooler), and that the secret never reaches a log record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from syncd import db
from syncd.cdc.hints import HintRouter
from syncd.cdc.service import CdcService
from syncd.config import DatabaseSettings, OdooSettings, Settings
from syncd.health import Health
from syncd.http import WEBHOOK_MAX_BYTES, HttpServer
from syncd.logs import JsonFormatter, TextFormatter
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import wait_until

pytestmark = pytest.mark.integration

MODEL = "res.partner"
SECRET = "wh-S3cret-never-logged-0123456789"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hint_polls() -> float:
    return metric("syncd_cdc_polls_total", model=MODEL, trigger="hint")


def routed(route: str) -> float:
    return metric("syncd_webhook_hints_total", model=MODEL, route=route)


def rejected(reason: str) -> float:
    return metric("syncd_webhook_rejected_total", reason=reason)


@dataclass
class Replica:
    """One replica in this process: a CDC service, its hint router and its HTTP endpoint."""

    service: CdcService
    router: HintRouter
    http: HttpServer
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def hook(self) -> str:
        return f"{self.http.url}/odoo/webhook/{SECRET}"

    async def post(self, body: Any, *, url: str | None = None, **kw: Any) -> int:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(url or self.hook, data=data, headers=headers, **kw) as r,
        ):
            await r.read()
            return r.status


@dataclass
class Rig:
    fake: FakeOdoo
    odoo: OdooClient
    pool: asyncpg.Pool
    dsn: str
    replicas: list[Replica] = field(default_factory=list)

    def settings(self, instance: str, pooler: str = "none") -> Settings:
        # No cdc.interval_seconds: with webhooks on it is 60 s, so within a test only a hint polls.
        return Settings.model_validate(
            {
                "database": {"pooler": pooler},
                "cdc": {"models": [{"model": MODEL, "fields": ["name", "email"]}]},
                "http": {"webhook_secret": SECRET},
                "daemon": {"instance_id": instance},
            }
        )

    async def replica(self, instance: str, pooler: str = "none") -> Replica:
        settings = self.settings(instance, pooler)
        assert settings.cdc.interval_seconds == 60.0
        service = CdcService(settings, self.odoo, self.pool, self.dsn)
        router = HintRouter(settings)
        router.service = service
        http = HttpServer("127.0.0.1:0", Health(), webhook_secret=settings.http.webhook_secret, hints=router)
        await http.start()
        r = Replica(service, router, http)
        r.tasks = [
            asyncio.create_task(service.run(r.stop)),
            asyncio.create_task(router.run(r.stop, self.pool, self.dsn)),
        ]
        self.replicas.append(r)
        return r

    async def mirrored(self, rid: int) -> dict[str, Any] | None:
        with contextlib.suppress(asyncpg.UndefinedTableError):
            row = await self.pool.fetchrow("select name, email from odoo.res_partner where id = $1", rid)
            return dict(row) if row is not None else None
        return None

    async def has(self, rid: int, name: str | None = None) -> bool:
        row = await self.mirrored(rid)
        return row is not None and (name is None or row["name"] == name)

    async def caught_up(self, leader: Replica) -> None:
        """Until ``leader`` polls the model and its first poll has filled the mirror."""

        async def ready() -> bool:
            return MODEL in leader.service.leading and bool(
                await self.pool.fetchval("select to_regclass('odoo.res_partner') is not null")
                and await self.pool.fetchval("select count(*) from odoo.res_partner")
            )

        await wait_until(ready, within=15, what="the first poll")


@pytest.fixture
async def rig(db_dsn: str) -> AsyncIterator[Rig]:
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server:
        pool = await db.create_pool(db_dsn, DatabaseSettings(pool_min_size=1, pool_max_size=6))
        try:
            async with OdooClient(
                OdooSettings(url=server.url, api_key=SecretStr("admin"), retries=0)
            ) as odoo:
                r = Rig(fake, odoo, pool, db_dsn)
                try:
                    yield r
                finally:
                    for replica in r.replicas:
                        replica.stop.set()
                        await asyncio.wait_for(asyncio.gather(*replica.tasks), 15)
                        await replica.http.stop()
        finally:
            await pool.close()


@contextlib.contextmanager
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every record of every logger at DEBUG, as captured and as syncd's formatters print it."""
    caplog.set_level(logging.DEBUG)
    yield
    assert caplog.records, "nothing was logged at all: the check would prove nothing"
    for record in caplog.records:
        for text in (
            record.getMessage(),
            record.exc_text or "",
            TextFormatter().format(record),
            JsonFormatter().format(record),
        ):
            assert SECRET not in text, (record.name, text)


async def raw_request(port: int, request: bytes) -> bytes:
    """A request as bytes, as no client library would send it; the answer's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


# ------------------------------------------------------------------------------------ endpoint


async def test_refused_requests_poll_nothing_and_never_log_the_secret(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    with no_secret_logged(caplog):
        r = await rig.replica("a")
        await rig.caught_up(r)
        [rid] = rig.fake.create(MODEL, {"name": "Not yet"})
        polls, hints = hint_polls(), sum(routed(x) for x in ("local", "forwarded", "dropped"))
        before_local = routed("local")
        before = {reason: rejected(reason) for reason in ("secret", "size", "json", "model")}
        good = {"_action": "Partner webhook(#353)", "_id": rid, "_model": MODEL, "id": rid}

        wrong = f"{r.http.url}/odoo/webhook/{SECRET[:-1]}x"
        assert await r.post(good, url=wrong) == 404
        assert await r.post(good, url=f"{r.http.url}/odoo/webhook/{SECRET}/x") == 404
        assert await r.post({**good, "pad": "x" * WEBHOOK_MAX_BYTES}) == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
            for _ in range(WEBHOOK_MAX_BYTES // 1024 + 2):
                yield b" " * 1024

        async with aiohttp.ClientSession() as s, s.post(r.hook, data=chunks()) as resp:
            assert resp.status == 413
        assert await r.post(b"{not json") == 400
        assert await r.post(b"\xff\xfe") == 400
        for body in (
            [good],
            "res.partner",
            {"_id": rid},
            {"_model": MODEL},
            {**good, "_model": 5},
            {**good, "_id": str(rid)},
            {**good, "_id": True},
            {**good, "_id": 0},
            {**good, "_id": -3},
            {**good, "_id": 1.5},
            {**good, "_id": 2**31},
        ):
            assert await r.post(body) == 400, body
        assert await r.post({**good, "_model": "res.users"}) == 422
        # Malformed requests that aiohttp itself refuses, with the secret in their request line.
        assert (await raw_request(r.http.port, f"POST /odoo/webhook/{SECRET}\x01 HTTP/1.1\r\n\r\n".encode()))[
            9:12
        ] == b"400"
        assert (await raw_request(r.http.port, f"POST /odoo/webhook/{SECRET} HTTP/9.x\r\n\r\n".encode()))[
            9:12
        ] == b"400"
        async with aiohttp.ClientSession() as s, s.get(r.hook) as resp:
            assert resp.status == 405

        assert {reason: rejected(reason) - n for reason, n in before.items()} == {
            "secret": 1,  # the path with an extra segment matches no route at all
            "size": 2,
            "json": 13,
            "model": 1,
        }
        assert sum(routed(x) for x in ("local", "forwarded", "dropped")) == hints  # the router saw none
        # Nothing woke the model: a wake-up would have polled within its 50 ms debounce.
        await asyncio.sleep(0.3)
        assert hint_polls() == polls
        assert await rig.mirrored(rid) is None

        # The same endpoint takes a good hint (the refusals above were refusals, not an outage).
        assert await r.post(good) == 202
        await wait_until(lambda: rig.has(rid), within=5, what="the hinted record in the mirror")
        assert hint_polls() == polls + 1
        assert routed("local") == 1 + before_local
        # A failing hint is a 500 whose log line does not show the path either.
        r.router.service = None
        r.router.forwarding = False

        def boom(*_a: Any) -> str:
            raise RuntimeError("the router broke")

        r.router.hint = boom  # type: ignore[method-assign]
        assert await r.post(good) == 500
    assert any("webhook: a hint for res.partner failed" in rec.getMessage() for rec in caplog.records)
    assert any(rec.name == "aiohttp.server" for rec in caplog.records)


async def test_a_hint_polls_the_model_at_once(rig: Rig) -> None:
    r = await rig.replica("a")
    await rig.caught_up(r)
    loop = asyncio.get_running_loop()
    for n in range(3):
        polls, local = hint_polls(), routed("local")
        [rid] = rig.fake.create(MODEL, {"name": f"Hinted {n}", "email": f"h{n}@example.com"})
        t0 = loop.time()
        assert await r.post({"_action": "x(#1)", "_id": rid, "_model": MODEL, "email": "ignored"}) == 202
        await wait_until(lambda rid=rid: rig.has(rid), within=5, interval=0.01, what="the hinted record")
        took = loop.time() - t0
        # The interval is 60 s: only the hint explains it (50 ms debounce plus one poll).
        assert took < 2.0, took
        assert hint_polls() == polls + 1
        assert routed("local") == local + 1
        # The mirror holds what Odoo holds, not what the hint said.
        assert await rig.mirrored(rid) == {"name": f"Hinted {n}", "email": f"h{n}@example.com"}


class CountingPool:
    """The pool, counting the statements that record when hints arrived."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.recorded = 0

    async def execute(self, query: str, *args: Any) -> str:
        self.recorded += query == db.queries["cdc_state_hinted"]
        return await self.pool.execute(query, *args)


async def test_when_hints_arrive_is_written_at_most_once_a_second(rig: Rig) -> None:
    await rig.pool.execute(db.queries["cdc_state_ensure"], MODEL)
    router = HintRouter(rig.settings("a"))
    pool = CountingPool(rig.pool)
    stop = asyncio.Event()
    running = asyncio.create_task(router.run(stop, pool, rig.dsn))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        while loop.time() - t0 < 2.5:  # 250 hints, 10 every 0.1 s
            for i in range(10):
                router.hint(MODEL, i + 1)
            await asyncio.sleep(0.1)
        at = loop.time() - t0

        async def written() -> bool:
            got = await rig.pool.fetchval("select last_hint_at from syncd.cdc_state where model = $1", MODEL)
            return got is not None

        await wait_until(written, within=5, what="last_hint_at")
    finally:
        stop.set()
        await running
    assert 1 <= pool.recorded <= at / 1.0 + 1, (pool.recorded, at)


# ------------------------------------------------------------------------------------ replicas


@contextlib.asynccontextmanager
async def notifications(dsn: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The payloads of every NOTIFY syncd_cdc_hint while inside."""
    got: list[dict[str, Any]] = []
    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener("syncd_cdc_hint", lambda *a: got.append(json.loads(a[3])))
        yield got
    finally:
        await conn.close()


async def test_a_hint_to_a_replica_that_does_not_poll_the_model_is_applied_by_the_one_that_does(
    rig: Rig,
) -> None:
    a = await rig.replica("a")
    await rig.caught_up(a)
    b = await rig.replica("b")  # starts after a holds the model's lock: b polls nothing
    await wait_until(lambda: _holds(b.service.leading == set()), within=5, what="b to run")
    async with notifications(rig.dsn) as sent:
        polls, forwarded = hint_polls(), routed("forwarded")
        [rid] = rig.fake.create(MODEL, {"name": "Via b"})
        assert await b.post({"_id": rid, "_model": MODEL}) == 202
        await wait_until(lambda: rig.has(rid, "Via b"), within=5, interval=0.01, what="a to poll")
        assert MODEL not in b.service.leading
        assert hint_polls() == polls + 1  # a's hinted poll (b polls nothing)
        await wait_until(lambda: _holds(routed("forwarded") == forwarded + 1), within=5, what="the count")
        assert sent == [{"model": MODEL, "ids": [rid]}]


async def test_a_flood_of_hints_is_a_few_notifies_and_a_few_polls(rig: Rig) -> None:
    a = await rig.replica("a")
    await rig.caught_up(a)
    b = await rig.replica("b")
    [rid] = rig.fake.create(MODEL, {"name": "Flooded"})
    loop = asyncio.get_running_loop()
    async with notifications(rig.dsn) as sent:
        polls, forwarded = hint_polls(), routed("forwarded")
        t0 = loop.time()
        statuses = await flood(b.hook, [{"_id": i % 3000 + 1, "_model": MODEL} for i in range(10_000)])
        seconds = loop.time() - t0
        assert statuses == {202: 10_000}
        await wait_until(lambda: _holds(routed("forwarded") == forwarded + 10_000), within=5, what="all sent")
        await wait_until(lambda: rig.has(rid, "Flooded"), within=5, what="the flooded record")
    notifies, polled = len(sent), hint_polls() - polls
    print(f"10,000 hints in {seconds:.2f} s: {notifies} NOTIFYs, {polled:.0f} hinted polls")
    # One NOTIFY per batch of 20 ms at most, each within the payload limit with at most 500 ids.
    assert notifies <= seconds / 0.02 + 5, (notifies, seconds)
    assert all(len(json.dumps(p)) < 8000 and len(p["ids"]) <= 500 for p in sent)
    # The leader's debounce (50 ms) and its polls' own duration bound the hinted polls.
    assert polled <= seconds / 0.05 + 5, (polled, seconds)


async def test_a_burst_is_one_notify_within_the_payload_limit(rig: Rig) -> None:
    router = HintRouter(rig.settings("b"))  # polls nothing: every hint is passed on
    stop = asyncio.Event()
    running = asyncio.create_task(router.run(stop, rig.pool, rig.dsn))
    try:
        before = routed("forwarded")
        await wait_until(lambda: _holds(router.hint(MODEL, 1) == "forwarded"), within=5, what="the router")
        await wait_until(lambda: _holds(routed("forwarded") == before + 1), within=5, what="the first hint")
        async with notifications(rig.dsn) as sent:
            forwarded = routed("forwarded")
            for rid in range(1, 10_001):  # all at once: one batch
                router.hint(MODEL, 2**31 - rid)
            await wait_until(lambda: _holds(routed("forwarded") == forwarded + 10_000), within=5, what="sent")
            await wait_until(lambda: _holds(bool(sent)), within=5, what="the NOTIFY")
    finally:
        stop.set()
        await running
    [payload] = sent
    assert payload["model"] == MODEL and len(payload["ids"]) == 500
    assert len(json.dumps(payload, separators=(",", ":"))) < 8000


async def test_behind_a_transaction_pooler_a_hint_to_another_replica_is_dropped(rig: Rig) -> None:
    a = await rig.replica("a", pooler="transaction")
    await rig.caught_up(a)
    b = await rig.replica("b", pooler="transaction")
    await wait_until(lambda: _holds(b.service.leading == set()), within=5, what="b to run")
    assert not b.router.listening and not b.router.forwarding
    async with notifications(rig.dsn) as sent:
        polls, dropped = hint_polls(), routed("dropped")
        [rid] = rig.fake.create(MODEL, {"name": "Lost hint"})
        assert await b.post({"_id": rid, "_model": MODEL}) == 202
        assert routed("dropped") == dropped + 1  # counted as it is taken
        # A hint to the leader itself still polls at once.
        assert await a.post({"_id": rid, "_model": MODEL}) == 202
        await wait_until(lambda: rig.has(rid, "Lost hint"), within=5, interval=0.01, what="a's hinted poll")
        assert hint_polls() == polls + 1
    assert sent == []


async def flood(url: str, bodies: list[dict[str, Any]], concurrency: int = 32) -> dict[int, int]:
    """POST every body, ``concurrency`` at a time on kept-alive connections; the answers' statuses."""
    statuses: dict[int, int] = {}
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def worker() -> None:
            for body in queue:
                async with s.post(url, json=body) as r:
                    statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def _holds(condition: bool) -> bool:
    return condition
