"""The outbox direction under abuse, with the real ``syncd run`` as a subprocess and the fake Odoo in
this process: kill -9 at random moments, two replicas on one database, Odoo down for a while, and
PostgreSQL restarted under the daemon. (Polling without LISTEN is in
``tests/integration/test_outbox_faults.py``.)

Events are upserts of ``res.partner`` whose name is ``<tag>:<key>:<sequence number>``, so every load row
that reached the fake tells which event it carried, and the records of a key can be found by name prefix.
Waiting is done by polling the database (short interval, overall limit), never by fixed sleeps; the only
fixed wait is the length of the Odoo outage itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from syncd.outbox.consumer import MAX_CONSUMER_BACKOFF
from syncd.outbox.xmlid import external_id
from syncd.testing import FakeOdoo, FakeOdooServer
from syncd.testing.postgres import PostgresServer
from tests.e2e.helpers import Daemon, clean_env, wait_until

pytestmark = pytest.mark.e2e

MODEL = "res.partner"
#: Seconds Odoo answers 503 in test_odoo_down_then_healthy (SPEC scenario: ~30 s).
OUTAGE_SECONDS = float(os.environ.get("SYNCD_TEST_ODOO_OUTAGE_SECONDS", "30"))


def _seed() -> int:
    """``SYNCD_TEST_SEED`` replays a run; the seed is printed (shown when a test fails)."""
    seed = int(os.environ.get("SYNCD_TEST_SEED") or random.randrange(2**32))
    print(f"random seed: SYNCD_TEST_SEED={seed}")
    return seed


class Rig:
    """The fake Odoo, this test's database, and the daemons started against them."""

    def __init__(self, fake: FakeOdoo, url: str, dsn: str, tmp: Path, conn: asyncpg.Connection) -> None:
        self.fake, self.url, self.dsn, self.tmp, self.conn = fake, url, dsn, tmp, conn
        self.daemons: list[Daemon] = []

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            SYNCD_DATABASE__DSN=self.dsn,
            SYNCD_ODOO__URL=self.url,
            SYNCD_ODOO__API_KEY="admin",
            SYNCD_CDC__ENABLED="false",
            SYNCD_HTTP__ENABLED="false",
            **extra,
        )

    async def daemon(self, env: dict[str, str]) -> Daemon:
        d = Daemon(env, self.tmp / f"syncd-{len(self.daemons)}.log")
        self.daemons.append(d)
        return await d.start()

    async def reconnect(self) -> None:
        await self.conn.close()
        self.conn = await asyncpg.connect(self.dsn)

    async def counts(self) -> Counter[str]:
        rows = await self.conn.fetch("select status, count(*) as n from syncd.outbox group by status")
        return Counter({r["status"]: r["n"] for r in rows})

    async def enqueue(self, events: list[tuple[str, int]], tag: str) -> None:
        """Upserts ``(key, seq)`` in one transaction (one NOTIFY)."""
        rows = [(key, json.dumps({"name": f"{tag}:{key}:{seq:05d}"})) for key, seq in events]
        async with self.conn.transaction():
            await self.conn.executemany(f"select syncd.enqueue('{MODEL}', 'upsert', $1, $2::jsonb)", rows)

    async def rows(self) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "select id, key, status, attempts, last_error from syncd.outbox order by id"
        )


@pytest.fixture
async def rig(db_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    fake = FakeOdoo()
    async with FakeOdooServer(fake) as server:
        conn = await asyncpg.connect(db_dsn)
        rig = Rig(fake, server.url, db_dsn, tmp_path, conn)
        try:
            yield rig
        finally:
            for d in rig.daemons:
                await d.kill()
            for i, d in enumerate(rig.daemons):  # shown by pytest when the test failed
                print(f"----- daemon {i} (pid {d.pid}), last lines of {d.log_path.name}:\n{d.log_tail(15)}")
            await rig.conn.close()


class Producer:
    """Enqueues ``total`` upserts over ``keys`` keys, ``chunk`` per transaction, while syncd runs,
    keeping at most ``backlog`` events unfinished so that the enqueueing spreads over the whole run."""

    def __init__(
        self,
        dsn: str,
        tag: str,
        total: int,
        keys: int,
        rng: random.Random,
        chunk: int = 20,
        backlog: int = 150,
    ) -> None:
        self.dsn, self.tag, self.total, self.keys, self.rng = dsn, tag, total, keys, rng
        self.chunk, self.backlog = chunk, backlog
        self.sent: list[tuple[str, int]] = []

    @property
    def last(self) -> dict[str, int]:
        """The last sequence number enqueued for each key: the value Odoo must end with."""
        return {key: seq for key, seq in self.sent}

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while len(self.sent) < self.total:
                unfinished = await conn.fetchval(
                    "select count(*) from syncd.outbox where status in ('pending', 'inflight')"
                )
                if unfinished >= self.backlog:
                    await asyncio.sleep(0.02)
                    continue
                n = min(self.chunk, self.total - len(self.sent))
                batch = [(f"k{self.rng.randrange(self.keys):03d}", len(self.sent) + i + 1) for i in range(n)]
                rows = [(k, json.dumps({"name": f"{self.tag}:{k}:{s:05d}"})) for k, s in batch]
                async with conn.transaction():
                    await conn.executemany(f"select syncd.enqueue('{MODEL}', 'upsert', $1, $2::jsonb)", rows)
                self.sent += batch
        finally:
            await conn.close()


def delivered(fake: FakeOdoo, tag: str) -> list[tuple[str, int]]:
    """``(key, seq)`` of every upsert row of ``tag`` that reached the fake (faulted calls left out), in
    the order the fake received them."""
    out: list[tuple[str, int]] = []
    for call in list(fake.calls):
        if call.model != MODEL or call.method != "load" or call.fault is not None:
            continue
        fields = call.kwargs.get("fields") or call.args[0]
        data = call.kwargs.get("data") or call.args[1]
        col = fields.index("name")
        for row in data:
            t, key, seq = str(row[col]).split(":")
            if t == tag:
                out.append((key, int(seq)))
    return out


def writing_calls(fake: FakeOdoo) -> int:
    """HTTP calls that change records and were let through."""
    return sum(
        1
        for c in fake.calls
        if c.fault is None and c.method in ("load", "write", "unlink", "create", "action_archive")
    )


def check_final_records(fake: FakeOdoo, tag: str, last: dict[str, int]) -> list[str]:
    """Problems with the fake's end state: one record per key, holding the key's last value."""
    problems: list[str] = []
    partners = fake.records(MODEL)
    by_key: dict[str, list[int]] = defaultdict(list)
    for rid, rec in partners.items():
        name = str(rec.get("name") or "")
        if name.startswith(f"{tag}:"):
            by_key[name.split(":")[1]].append(rid)
    for key, seq in sorted(last.items()):
        ref = fake.ref(external_id("syncd", MODEL, key))
        want = f"{tag}:{key}:{seq:05d}"
        if len(by_key[key]) != 1:
            problems.append(f"{key}: {len(by_key[key])} records {by_key[key]}")
        if ref is None:
            problems.append(f"{key}: no external id")
        elif ref[0] != MODEL or partners.get(ref[1], {}).get("name") != want:
            problems.append(f"{key}: {ref} holds {partners.get(ref[1], {}).get('name')!r}, want {want!r}")
    if set(by_key) != set(last):
        problems.append(f"records for keys never enqueued: {sorted(set(by_key) - set(last))}")
    return problems


def out_of_order(seen: list[tuple[str, int]], *, strictly: bool) -> list[str]:
    """Keys whose values reached Odoo with an older one after a newer one (or, ``strictly``, twice)."""
    problems = []
    previous: dict[str, int] = {}
    for key, seq in seen:
        before = previous.get(key, 0)
        if seq < before or (strictly and seq == before):
            problems.append(f"{key}: {seq} after {before}")
        previous[key] = max(before, seq)
    return problems


# ------------------------------------------------------------------------------------------ tests


async def test_kill_9_at_random_moments_loses_nothing_and_ends_with_the_last_values(rig: Rig) -> None:
    """2,000 upserts over 300 keys, enqueued while `syncd run` is killed (-9) and restarted 20 times,
    each time after a random number of newly delivered events: every event ends done, the fake holds
    exactly one record per key with that key's last value, and no key ever saw an older value after
    a newer one."""
    total, keys, kills = 2000, 300, 20
    rng = random.Random(_seed())
    env = rig.env(
        SYNCD_OUTBOX__LEASE_SECONDS="2",  # a killed consumer's events come back after 2 s
        SYNCD_OUTBOX__BACKOFF_BASE_SECONDS="0.05",
        SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
        SYNCD_OUTBOX__BATCH_SIZE="50",
        SYNCD_OUTBOX__FOLD_MAX_EVENTS="1",  # every value is to reach Odoo (folds: test_outbox_chains.py)
    )
    producer = Producer(rig.dsn, "chaos", total, keys, rng)
    feeding = asyncio.create_task(producer.run())
    try:
        for cycle in range(kills):
            d = await rig.daemon(env)
            target = min((await rig.counts())["done"] + rng.randint(1, 120), total)

            async def reached(target: int = target) -> bool:
                return (await rig.counts())["done"] >= target

            await wait_until(reached, within=60, interval=0.01, what=f"{target} done events (cycle {cycle})")
            assert d.alive, f"syncd run exited by itself in cycle {cycle}"
            await d.kill()
        final = await rig.daemon(env)
        await asyncio.wait_for(feeding, 120)

        async def all_done() -> bool:
            return (await rig.counts())["done"] == total

        await wait_until(all_done, within=60, what="every event done")
        await final.wait_ready()  # everything may have been delivered before it even started
        assert await final.terminate() == 0
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    rows = await rig.rows()
    print(
        "attempts:",
        sorted(Counter(r["attempts"] for r in rows).items()),
        "load rows:",
        len(delivered(rig.fake, "chaos")),
    )
    assert len(rows) == total and len(producer.sent) == total
    assert Counter(r["status"] for r in rows) == {"done": total}  # none inflight, pending or dead
    assert max(r["attempts"] for r in rows) >= 2, "no kill hit a claimed event: the chaos tested nothing"
    assert len(producer.last) > 250 and max(Counter(k for k, _ in producer.sent).values()) >= 5
    seen = delivered(rig.fake, "chaos")
    assert set(seen) == set(producer.sent), "some events never reached Odoo"
    assert out_of_order(seen, strictly=False) == []
    assert check_final_records(rig.fake, "chaos", producer.last) == []


async def test_two_replicas_never_deliver_an_event_twice(rig: Rig) -> None:
    """Two `syncd run` on one database: each event reaches Odoo exactly once (no faults, so no retries),
    a key's values arrive strictly in order, and both replicas did deliver."""
    total, keys = 1000, 150
    rig.fake.faults.latency_seconds = 0.02  # batches stay in flight long enough for both to hold some
    # No folding: every value is to reach Odoo (a fold sends only the last of a run of upserts).
    env = {"SYNCD_OUTBOX__BATCH_SIZE": "20", "SYNCD_OUTBOX__POLL_INTERVAL_SECONDS": "0.2",
           "SYNCD_OUTBOX__FOLD_MAX_EVENTS": "1"}  # fmt: skip
    replicas = [await rig.daemon(rig.env(SYNCD_DAEMON__INSTANCE_ID=name, **env)) for name in ("a", "b")]
    producer = Producer(rig.dsn, "two", total, keys, random.Random(_seed()), backlog=200)
    feeding = asyncio.create_task(producer.run())
    holders: set[str] = set()

    async def finished() -> bool:
        inflight = await rig.conn.fetch(
            "select distinct locked_by from syncd.outbox where status = 'inflight'"
        )
        holders.update(r["locked_by"] for r in inflight)
        return feeding.done() and (await rig.counts())["done"] == total

    try:
        await wait_until(finished, within=120, interval=0.02, what="every event done")
        await feeding  # re-raises a failure of the producer
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
    # A holder is the instance id and a suffix of its process run.
    assert {h.split("/")[0] for h in holders} == {"a", "b"}, f"not both replicas held events: {holders}"
    for d in replicas:
        assert d.alive
        assert await d.terminate() == 0

    rows = await rig.rows()
    assert Counter((r["status"], r["attempts"]) for r in rows) == {("done", 1): total}
    seen = delivered(rig.fake, "two")
    twice = [e for e, n in Counter(seen).items() if n > 1]
    assert twice == [], f"delivered more than once: {twice[:10]}"
    assert sorted(seen) == sorted(producer.sent)
    assert out_of_order(seen, strictly=True) == []
    # Events + retries bounds the rows Odoo was asked to write; no faults means no retries, so every
    # event is exactly one row, and the calls that write are at most one per event.
    assert writing_calls(rig.fake) <= total
    assert check_final_records(rig.fake, "two", producer.last) == []


async def test_odoo_down_then_healthy(rig: Rig) -> None:
    """Odoo answers 503 to everything for OUTAGE_SECONDS while events are pending (more arrive
    halfway): afterwards every event is delivered, none is dead, and the consumer's own pause after
    whole-batch failures bounded both the attempts per event and the calls Odoo saw meanwhile.

    The bound: after f batches failed as a whole the consumer waits P_f = poll * 2^(f-1) (capped at
    MAX_CONSUMER_BACKOFF) before each claim, and with 2 batch slots at most 2 batches are in flight
    when it reads the pause, so claim c starts no earlier than P_1 + ... + P_(c-3) = poll * (2^(c-3) - 1)
    after the first. Claims that fit into the outage: c <= 3 + log2(outage / poll + 1). Each is one
    load (fields are cached from the warm-up) repeated by the client odoo.retries times.
    """
    poll, retries, max_attempts = 1.0, 3, 10
    d = await rig.daemon(
        rig.env(
            SYNCD_OUTBOX__BACKOFF_BASE_SECONDS="0.5",
            SYNCD_OUTBOX__BACKOFF_MAX_SECONDS="4",
            SYNCD_OUTBOX__MAX_ATTEMPTS=str(max_attempts),
            SYNCD_OUTBOX__POLL_INTERVAL_SECONDS=str(poll),
            SYNCD_ODOO__RETRIES=str(retries),
        )
    )
    await rig.enqueue([("warm", 1)], "down")

    async def done(n: int) -> bool:
        return (await rig.counts())["done"] == n

    await wait_until(lambda: done(1), within=30, what="the warm-up event")

    rig.fake.faults.fail_next(10**9, status=503)
    first_call = len(rig.fake.calls)
    await rig.enqueue([(f"k{i:02d}", i) for i in range(1, 41)], "down")
    await asyncio.sleep(OUTAGE_SECONDS / 2)
    await rig.enqueue([(f"k{i:02d}", i) for i in range(41, 61)], "down")
    await asyncio.sleep(OUTAGE_SECONDS / 2)
    mid = await rig.counts()  # still down: nothing can get through while this is read
    rig.fake.faults.clear()
    # The consumer's calls; the daemon's readiness probe (GET /web/health) fails meanwhile too.
    failed_calls = [
        c for c in rig.fake.calls[first_call:] if c.fault is not None and c.method != "/web/health"
    ]

    await wait_until(lambda: done(61), within=MAX_CONSUMER_BACKOFF + 30, what="delivery after the outage")
    assert d.alive

    rows = await rig.rows()
    assert Counter(r["status"] for r in rows) == {"done": 61}, [r for r in rows if r["status"] != "done"]
    max_claims = 3 + math.floor(math.log2(OUTAGE_SECONDS / poll + 1))
    attempts = max(r["attempts"] for r in rows)
    assert mid["done"] == 1 and mid["dead"] == 0  # nothing got through (or died) during the outage
    assert 2 <= attempts <= min(max_claims + 1, max_attempts - 1), (attempts, max_claims)
    assert failed_calls, "the outage was never noticed"
    assert {c.fault for c in failed_calls} == {"fail:503"}
    assert len(failed_calls) <= max_claims * (1 + retries), (len(failed_calls), max_claims)
    assert check_final_records(rig.fake, "down", {f"k{i:02d}": i for i in range(1, 61)} | {"warm": 1}) == []
    assert await d.terminate() == 0


async def test_postgres_restart_mid_run(rig: Rig, pg_server: PostgresServer) -> None:
    """PostgreSQL stops (fast shutdown) and starts again on the same port while `syncd run` delivers:
    the daemon survives, reconnects (pool and LISTEN), delivers what was in flight and what is enqueued
    after the restart, and still shuts down cleanly."""
    server = pg_server.embedded
    if server is None:
        pytest.skip(
            f"needs the embedded test server that this process can restart (this run: {pg_server.kind})"
        )
    rig.fake.faults.latency_seconds = 0.02  # batches are in flight when PostgreSQL goes away
    d = await rig.daemon(
        rig.env(
            SYNCD_OUTBOX__LEASE_SECONDS="2",
            SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
            SYNCD_OUTBOX__BATCH_SIZE="20",
            SYNCD_OUTBOX__BACKOFF_BASE_SECONDS="0.05",
            SYNCD_DATABASE__CONNECT_TIMEOUT_SECONDS="2",
        )
    )
    await rig.enqueue([(f"k{i:03d}", i) for i in range(1, 201)], "restart")

    async def done_at_least(n: int) -> bool:
        return (await rig.counts())["done"] >= n

    await wait_until(lambda: done_at_least(40), within=30, what="40 events done before the restart")
    try:
        await asyncio.to_thread(server.stop, "fast")

        async def noticed() -> bool:  # the daemon's claims fail meanwhile: its retry path is exercised
            return "outbox: claim failed" in d.log_path.read_text(errors="replace")

        await wait_until(noticed, within=15, what="the daemon noticing that PostgreSQL is away")
        assert d.alive
        await asyncio.to_thread(server.start)
    finally:
        if not server.is_running():  # the server is shared by the whole session
            await asyncio.to_thread(server.start)
    await rig.reconnect()
    await rig.enqueue([(f"k{i:03d}", i) for i in range(201, 301)], "restart")
    await wait_until(lambda: done_at_least(300), within=60, what="every event done after the restart")
    assert d.alive, "syncd run died when PostgreSQL restarted"

    rows = await rig.rows()
    assert Counter(r["status"] for r in rows) == {"done": 300}
    assert check_final_records(rig.fake, "restart", {f"k{i:03d}": i for i in range(1, 301)}) == []
    listening = await rig.conn.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and application_name = 'syncd' and query ilike 'listen%'"
    )
    assert listening == 1, "the LISTEN connection was not re-established"
    assert await d.terminate() == 0
