"""``syncd run`` as operators see it: a subprocess against the fake Odoo (over HTTP, in this process)
and a real PostgreSQL, watched through its HTTP endpoint, its log and the systemd notify socket.

- changes flow both ways, the SPEC §6 metrics move, READY/WATCHDOG/STOPPING reach systemd, and a
  SIGTERM in the middle of traffic ends with exit 0 within the grace period, nothing lost and nothing
  left ``inflight``;
- Odoo down for a while: /readyz 503, /healthz 200, one log line each way, recovery without restart;
- Odoo unreachable at start: the daemon waits (HTTP up, not ready), then starts by itself;
- a second SIGTERM ends a shutdown that waits for a hanging Odoo call at once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import Daemon, clean_env, http_url, syncd_async, wait_until

pytestmark = pytest.mark.e2e

MODELS = json.dumps([{"model": "res.partner", "fields": ["name", "email", "active"]}])
GRACE = 15.0


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


def daemon_env(dsn: str, odoo_url: str, **extra: str) -> dict[str, str]:
    settings = dict(
        SYNCD_DATABASE__DSN=dsn,
        SYNCD_ODOO__URL=odoo_url,
        SYNCD_ODOO__API_KEY="admin",
        SYNCD_ODOO__RETRIES="0",
        SYNCD_CDC__MODELS=MODELS,
        SYNCD_CDC__INTERVAL_SECONDS="0.2",
        SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
        SYNCD_OUTBOX__BACKOFF_BASE_SECONDS="0.05",
        SYNCD_OUTBOX__BACKOFF_MAX_SECONDS="0.2",
        SYNCD_DAEMON__PROBE_INTERVAL_SECONDS="0.2",
        SYNCD_DAEMON__SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    return clean_env(**{**settings, **extra})


class NotifySocket:
    """A stand-in for systemd's notify socket: a datagram socket whose messages the test awaits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, line: str, within: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not any(line in m.splitlines() for m in self.messages):
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {line} from syncd within {within}s; got {self.messages}")
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), left)
            self.messages.append(data.decode())

    def drain(self) -> None:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.messages)


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    try:
        yield ns
    finally:
        ns.sock.close()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def started(daemon: Daemon) -> str:
    """Wait for the daemon's HTTP endpoint to be announced; return its URL."""

    async def announced() -> bool:
        assert daemon.alive, f"syncd run exited\n{daemon.log_tail()}"
        return http_url(daemon.log_path.read_text(errors="replace")) is not None

    await wait_until(announced, within=30, what="the HTTP endpoint")
    url = http_url(daemon.log_path.read_text(errors="replace"))
    assert url is not None
    return url


async def test_both_directions_metrics_systemd_and_a_clean_sigterm_mid_traffic(
    db_dsn: str, odoo: FakeOdooServer, tmp_path: Path
) -> None:
    fake = odoo.fake
    with notify_socket(tmp_path) as ns:
        env = daemon_env(
            db_dsn,
            odoo.url,
            NOTIFY_SOCKET=str(ns.path),
            WATCHDOG_USEC="400000",
            SYNCD_OUTBOX__BATCH_SIZE="10",
        )
        daemon = await Daemon(env, tmp_path / "syncd.log").start()
        conn = await asyncpg.connect(db_dsn)
        try:
            await ns.wait_for("READY=1")
            url = await started(daemon)
            status, body = await get(url + "/readyz")
            assert status == 200, body
            before = samples((await get(url + "/metrics"))[1])

            # Odoo → PostgreSQL
            [pid] = fake.create("res.partner", {"name": "Grace Hopper", "email": "grace@example.com"})

            async def mirrored() -> bool:
                if not await conn.fetchval("select to_regclass('odoo.res_partner') is not null"):
                    return False  # the first poll has not created the mirror table yet
                return (
                    await conn.fetchval("select name from odoo.res_partner where id = $1", pid)
                    == "Grace Hopper"
                )

            await wait_until(mirrored, within=15, what="the new partner in the mirror")

            # PostgreSQL → Odoo
            event = await conn.fetchval(
                "select syncd.enqueue('res.partner', 'upsert', 'k-first', '{\"name\": \"From the app\"}')"
            )

            async def delivered() -> bool:
                return await conn.fetchval("select status from syncd.outbox where id = $1", event) == "done"

            await wait_until(delivered, within=15, what="the outbox event delivered")
            assert fake.search("res.partner", [("name", "=", "From the app")])

            after = samples((await get(url + "/metrics"))[1])
            moved = {
                "syncd_cdc_records_total": value(after, "syncd_cdc_records_total", model="res.partner")
                > value(before, "syncd_cdc_records_total", model="res.partner"),
                "syncd_cdc_last_success_timestamp_seconds": value(
                    after, "syncd_cdc_last_success_timestamp_seconds", model="res.partner"
                )
                > 0,
                "syncd_outbox_delivered_total": value(
                    after, "syncd_outbox_delivered_total", model="res.partner", op="upsert"
                )
                >= 1,
                "syncd_outbox_delivery_seconds": value(after, "syncd_outbox_delivery_seconds_count") >= 1,
                "syncd_odoo_request_seconds": value(after, "syncd_odoo_request_seconds_count", method="load")
                >= 1,
                "syncd_build_info": value(after, "syncd_build_info", version=_version()) == 1,
                "syncd_ready": value(after, "syncd_ready") == 1,
            }
            assert all(moved.values()), moved
            names = {name for name, _ in after}
            for spec_name in (
                "syncd_cdc_lag_seconds",
                "syncd_cdc_errors_total",
                "syncd_outbox_events",
                "syncd_outbox_oldest_pending_age_seconds",
            ):
                assert spec_name in names, spec_name

            # Traffic, then SIGTERM while events are being delivered.
            # Slow Odoo calls (0.2 s for 10 events) keep deliveries in flight when SIGTERM comes.
            fake.faults.latency_seconds = 0.2
            await conn.execute(
                "select syncd.enqueue('res.partner', 'upsert', 'k-' || i, jsonb_build_object('name', 'n' || i))"
                " from generate_series(1, 400) i"
            )

            async def some_done() -> bool:
                return bool(
                    await conn.fetchval(
                        "select count(*) > 5 from syncd.outbox where key like 'k-%' and key <> 'k-first' and status = 'done'"
                    )
                )

            await wait_until(some_done, within=15, what="deliveries to start")
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            code = await daemon.terminate(grace=GRACE + 10)
            took = loop.time() - t0
            assert code == 0, daemon.log_tail()
            assert took < GRACE, took
            ns.drain()
            assert ns.count("STOPPING=1") == 1
            assert ns.count("WATCHDOG=1") >= 2
            assert ns.messages.index(next(m for m in ns.messages if "READY=1" in m)) < ns.messages.index(
                next(m for m in ns.messages if "STOPPING=1" in m)
            )

            counts = dict(await conn.fetch("select status, count(*) from syncd.outbox group by status"))
            assert counts.get("inflight", 0) == 0, counts
            assert counts.get("dead", 0) == 0, counts
            assert counts.get("done", 0) >= 6, counts
            assert counts.get("pending", 0) > 0, counts  # stopped mid-traffic: the rest was given back

            # Whatever was given back is delivered by the next run; nothing was lost.
            fake.faults.latency_seconds = 0.0
            again = await Daemon(env, tmp_path / "syncd-2.log").start()
            try:
                await again.wait_ready()

                async def all_done() -> bool:
                    return not await conn.fetchval("select count(*) from syncd.outbox where status <> 'done'")

                await wait_until(all_done, within=60, what="every event done")
            finally:
                assert await again.terminate(grace=GRACE + 10) == 0
            names_in_odoo = {
                r["name"] for r in fake.search_read("res.partner", [("name", "=like", "n%")], ["name"])
            }
            assert names_in_odoo >= {f"n{i}" for i in range(1, 401)}
            xmlids = fake.search_read(
                "ir.model.data", [("module", "=", "syncd"), ("model", "=", "res.partner")], ["name"]
            )
            assert len(xmlids) == 401 == len({x["name"] for x in xmlids})  # one record per key
        finally:
            await conn.close()
            await daemon.kill()


def _version() -> str:
    from syncd import __version__

    return __version__


async def test_odoo_down_for_a_while_makes_it_unready_not_dead_and_it_recovers_without_restart(
    db_dsn: str, odoo: FakeOdooServer, tmp_path: Path
) -> None:
    daemon = await Daemon(daemon_env(db_dsn, odoo.url), tmp_path / "syncd.log").start()
    try:
        await daemon.wait_ready()
        url = await started(daemon)

        async def ready_is(code: int) -> bool:
            return (await get(url + "/readyz"))[0] == code

        await wait_until(lambda: ready_is(200), within=15, what="/readyz 200")
        odoo.fake.faults.fail_next(100_000, status=503)
        await wait_until(lambda: ready_is(503), within=15, what="/readyz 503 while Odoo answers 503")
        _, body = await get(url + "/readyz")
        assert json.loads(body)["checks"]["odoo"]["ok"] is False
        assert (await get(url + "/healthz"))[0] == 200
        # Let several probes fail (they come every 0.2 s): still one line.
        failed_before = len([c for c in odoo.fake.calls if c.fault])

        async def more_failures() -> bool:
            return (
                len([c for c in odoo.fake.calls if c.fault and c.method == "/web/health"])
                >= failed_before + 5
            )

        await wait_until(more_failures, within=15, what="five more failed probes")
        odoo.fake.faults.clear()
        await wait_until(lambda: ready_is(200), within=15, what="/readyz 200 again")
        assert daemon.alive
        log = daemon.log_path.read_text()
        assert log.count("Odoo is not ok any more") == 1, log
        assert log.count("Odoo ok again after") == 1, log
        assert log.count("syncd running as") == 1  # no restart
        assert "Traceback" not in log
    finally:
        assert await daemon.terminate() == 0


async def test_odoo_unreachable_at_start_the_daemon_waits_then_starts_by_itself(
    db_dsn: str, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with notify_socket(tmp_path) as ns:
        env = daemon_env(db_dsn, f"http://127.0.0.1:{port}", NOTIFY_SOCKET=str(ns.path))
        daemon = await Daemon(env, tmp_path / "syncd.log").start()
        try:
            await waits_then_starts(daemon, ns, port)
        finally:
            await daemon.kill()


async def waits_then_starts(daemon: Daemon, ns: NotifySocket, port: int) -> None:
    # systemd hears that start-up goes on, and why; READY only once Odoo answers.
    await ns.wait_for("STATUS=waiting for Odoo")
    assert any("EXTEND_TIMEOUT_USEC=" in m for m in ns.messages)
    assert ns.count("READY=1") == 0
    url = await started(daemon)
    assert (await get(url + "/readyz"))[0] == 503
    assert (await get(url + "/healthz"))[0] == 200

    async def waiting_logged() -> bool:
        return "Odoo not ok" in daemon.log_path.read_text()

    await wait_until(waiting_logged, within=15, what="the daemon to say it waits for Odoo")
    async with FakeOdooServer(FakeOdoo(demo_data=True), port=port):
        await daemon.wait_ready(within=60)

        async def ready() -> bool:
            return (await get(url + "/readyz"))[0] == 200

        await wait_until(ready, within=15, what="/readyz 200")
        await ns.wait_for("READY=1")
        assert daemon.log_path.read_text().count("Odoo not ok") == 1
        assert await daemon.terminate() == 0


async def test_a_second_sigterm_exits_at_once(db_dsn: str, odoo: FakeOdooServer, tmp_path: Path) -> None:
    env = daemon_env(db_dsn, odoo.url, SYNCD_DAEMON__SHUTDOWN_GRACE_SECONDS="120")
    daemon = await Daemon(env, tmp_path / "syncd.log").start()
    conn = await asyncpg.connect(db_dsn)
    try:
        await daemon.wait_ready()
        odoo.fake.faults.hang_next(1, methods={"load"})
        await conn.execute("select syncd.enqueue('res.partner', 'upsert', 'stuck', '{\"name\": \"x\"}')")
        await odoo.fake.faults.wait_held("hang")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)

        async def stopping_logged() -> bool:
            return "SIGTERM received: stopping" in daemon.log_path.read_text()

        await wait_until(stopping_logged, within=10, what="the first SIGTERM to be taken")
        assert daemon.alive  # waiting for the hanging call, within its 120 s grace
        daemon.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(daemon.proc.wait(), 10)
        assert code == 1
        assert "second SIGTERM: exiting now" in daemon.log_path.read_text()
    finally:
        odoo.fake.faults.release_hangs()
        await conn.close()
        await daemon.kill()


async def test_a_refused_api_key_stops_the_start_with_a_clear_error(
    db_dsn: str, odoo: FakeOdooServer
) -> None:
    env = daemon_env(db_dsn, odoo.url, SYNCD_ODOO__API_KEY="not-the-key")
    r = await syncd_async("run", env=env)
    assert r.code == 2, r.err  # a configuration problem: systemd's RestartPreventExitStatus=2 applies
    assert "Traceback" not in r.err
    assert "not-the-key" not in r.err + r.out
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"syncd: Odoo at {odoo.url} refused the credentials of user 'admin'"), r.err
    assert "check odoo.api_key" in last
