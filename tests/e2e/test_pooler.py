"""syncd through PgBouncer in transaction mode — the way Supabase's port 6543 behaves: a server
connection per transaction, so no LISTEN, no prepared statements kept, no session advisory locks.

- the pooler really is in transaction mode (its admin console says so; a session-level setting made
  by one client shows up in another client's transaction and is gone from its own; a session
  advisory lock outlives the client that took it — why leadership is a lease there);
- ``syncd migrate`` and ``syncd --once`` (twice, and one with an outbox event) through the pooler:
  a run that ends hands its leases back, so the next one polls every model at once;
- two ``syncd run`` replicas with ``database.pooler = "transaction"`` and only the pooler's DSN:
  each model polled by exactly one of them (their logs and ``syncd.cdc_leases``), changes both ways
  (the outbox by polling), SIGKILL of the leading replica and the other takes its models over once
  their leases have run out — not before — then a clean SIGTERM hands the leases back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from syncd.cdc.service import lease_seconds
from syncd.testing import FakeOdoo, FakeOdooServer, FieldSpec
from tests.e2e.helpers import clean_env, mirror_has_name, syncd_async, wait_until
from tests.e2e.test_cdc_leadership import Replica, wait_logs
from tests.pgbouncer import POOL_SIZE, PgBouncer, pgbouncer

pytestmark = pytest.mark.e2e

MODELS = ["res.partner", "x.alpha", "x.beta"]
INTERVAL = 0.5
LEASE = lease_seconds(INTERVAL)
EVENTS = 40


@pytest.fixture
def bouncer(db_dsn: str, tmp_path: Path) -> Iterator[PgBouncer]:
    with pgbouncer(db_dsn, tmp_path / "pgbouncer") as b:
        yield b


async def test_the_pooler_really_is_in_transaction_mode(db_dsn: str, bouncer: PgBouncer) -> None:
    config = bouncer.config()
    assert config["pool_mode"] == "transaction"
    assert int(config["default_pool_size"]) == POOL_SIZE
    dsn = bouncer.dsn(db_dsn)
    one = await asyncpg.connect(dsn, statement_cache_size=0)
    two = await asyncpg.connect(dsn, statement_cache_size=0)
    direct = await asyncpg.connect(db_dsn)
    try:
        # A session-level setting, made outside any transaction, stays on the server connection …
        first = await one.fetchval("select pg_backend_pid() from set_config('syncd.probe', 'one', false)")
        async with two.transaction():
            # … which the pooler hands to the next client that starts a transaction …
            assert await two.fetchval("select pg_backend_pid()") == first
            assert await two.fetchval("select current_setting('syncd.probe', true)") == "one"
            # … while the client that made it runs its next statement on another server connection.
            assert await one.fetchval("select pg_backend_pid()") != first
            assert await one.fetchval("select current_setting('syncd.probe', true)") in (None, "")
        # A session advisory lock is left behind when its client goes: the pooler keeps the server
        # connection. This is what CDC leadership by lease (database.pooler = "transaction") avoids.
        assert await one.fetchval("select pg_try_advisory_lock(4242)")
        await one.close()
        held = await direct.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory' and objid = 4242 and granted"
        )
        assert held == 1
    finally:
        for c in (one, two, direct):
            if not c.is_closed():
                await c.close()


async def test_migrate_and_once_through_the_pooler(db_dsn: str, bouncer: PgBouncer) -> None:
    fake = FakeOdoo(demo_data=True)
    async with FakeOdooServer(fake) as server:
        env = clean_env(
            SYNCD_DATABASE__DSN=bouncer.dsn(db_dsn),
            SYNCD_DATABASE__POOLER="transaction",
            SYNCD_ODOO__URL=server.url,
            SYNCD_ODOO__API_KEY="admin",
            SYNCD_CDC__MODELS=json.dumps([{"model": "res.partner", "fields": ["name"]}]),
        )
        r = await syncd_async("migrate", env=env)  # nothing to apply, but under its lock
        assert r.code == 0, r.err
        r = await syncd_async("migrate", "--check", env=env)
        assert r.code == 0, r.err
        before = fake.records("res.partner")
        db = await asyncpg.connect(db_dsn)
        try:
            for run in range(2):
                if run:
                    await db.execute(
                        "select syncd.enqueue('res.partner', 'upsert', 'once-1', '{\"name\": \"From --once\"}')"
                    )
                r = await syncd_async("--once", env=env)
                assert r.code == 0, r.err
                assert "skipped" not in r.err, r.err  # the first run handed its lease back
                assert await leases(db) == {}
            # Every partner there was before the event (archived ones too); the event's new partner
            # is mirrored by the next pass (CDC runs before the outbox is drained).
            assert await db.fetchval("select count(*) from odoo.res_partner") == len(before)
            assert await db.fetchval("select status from syncd.outbox where key = 'once-1'") == "done"
        finally:
            await db.close()


async def leases(db: asyncpg.Connection) -> dict[str, tuple[str, float]]:
    """Per model: the holder's instance id and the seconds its lease has left (< 0: ran out)."""
    rows = await db.fetch(
        "select model, holder, extract(epoch from lease_until - now())::float8 as left from syncd.cdc_leases"
    )
    return {r["model"]: (r["holder"].split("/", 1)[0], r["left"]) for r in rows}


async def test_two_replicas_through_the_pooler_both_ways_and_a_takeover_after_sigkill(
    db_dsn: str, bouncer: PgBouncer, tmp_path: Path
) -> None:
    fake = FakeOdoo(demo_data=True)
    for model in MODELS[1:]:
        fake.declare_model(model, {"name": FieldSpec("char")})
        fake.create(model, [{"name": f"{model} {i}"} for i in range(3)])
    ids = {model: fake.search(model, [], limit=2, order="id") for model in MODELS}

    async with FakeOdooServer(fake) as server:
        env = clean_env(
            SYNCD_DATABASE__DSN=bouncer.dsn(db_dsn),  # the pooler's DSN only
            SYNCD_DATABASE__POOLER="transaction",
            SYNCD_DATABASE__POOL_MIN_SIZE="5",
            SYNCD_ODOO__URL=server.url,
            SYNCD_ODOO__API_KEY="admin",
            SYNCD_CDC__MODELS=json.dumps([{"model": m, "fields": ["name"]} for m in MODELS]),
            SYNCD_CDC__INTERVAL_SECONDS=str(INTERVAL),
            SYNCD_OUTBOX__POLL_INTERVAL_SECONDS="0.2",
            SYNCD_HTTP__ENABLED="false",
        )
        board = asyncio.Condition()
        replicas = [Replica("a", board), Replica("b", board)]
        db = await asyncpg.connect(db_dsn)  # the test's own view, directly
        try:
            # The test holds two models' leases at first, then hands them out so that each replica
            # ends up with some: the first model to whichever replica is faster, the others to the
            # other one (the first is paused with SIGSTOP meanwhile, for much less than a lease).
            await db.execute(
                "insert into syncd.cdc_leases (model, holder, lease_until)"
                " select unnest($1::text[]), 'test', now() + interval '1 hour'",
                MODELS[1:],
            )
            await asyncio.gather(
                *(r.start({**env, "SYNCD_DAEMON__INSTANCE_ID": r.name}, tmp_path) for r in replicas)
            )

            def first_claimed() -> bool:
                assert not any(r.exited for r in replicas), "\n".join(r.output() for r in replicas)
                running = all(any("syncd running as" in line for line in r.lines) for r in replicas)
                return running and any(MODELS[0] in r.claims for r in replicas)

            await wait_logs(board, first_claimed, within=30, what=f"both running, {MODELS[0]} claimed",
                            replicas=replicas)  # fmt: skip
            first = next(r for r in replicas if MODELS[0] in r.claims)
            other = next(r for r in replicas if r is not first)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGSTOP)
            try:
                await db.execute("delete from syncd.cdc_leases where holder = 'test'")
                await wait_logs(board, lambda: set(MODELS[1:]) <= other.claims, within=LEASE - 1,
                               what=f"replica {other.name} to claim {MODELS[1:]}", replicas=replicas)  # fmt: skip
            finally:
                first.proc.send_signal(signal.SIGCONT)

            # ---- exactly one poller per model: by the logs and by the lease table
            claimed_by = {m: [r.name for r in replicas if m in r.claims] for m in MODELS}
            assert all(len(names) == 1 for names in claimed_by.values()), claimed_by
            assert claimed_by == {MODELS[0]: [first.name], **{m: [other.name] for m in MODELS[1:]}}
            held = await leases(db)
            assert {m: held[m][0] for m in MODELS} == {m: names[0] for m, names in claimed_by.items()}
            assert all(left > 0 for _, left in held.values()), held

            # ---- and through the pooler: many client connections share a few server connections
            clients = [c for c in bouncer.show("CLIENTS") if c["database"] == db_dsn.rsplit("/", 1)[1]]
            servers = [s for s in bouncer.show("SERVERS") if s["database"] == db_dsn.rsplit("/", 1)[1]]
            assert len(clients) >= 10 > POOL_SIZE >= len(servers), (len(clients), len(servers))

            # ---- Odoo → PostgreSQL for every model, PostgreSQL → Odoo by polling
            for model in MODELS:
                fake.write(model, [ids[model][0]], {"name": "while both run"})

            async def while_both_run() -> bool:
                return all([await mirror_has_name(db, m, ids[m][0], "while both run") for m in MODELS])

            await wait_until(while_both_run, within=20, what="changes made in Odoo while both run")
            await db.execute(
                "select syncd.enqueue('res.partner', 'upsert', 'pooled-' || i, jsonb_build_object('name', 'pooled ' || i))"
                " from generate_series(1, $1::int) i",
                EVENTS,
            )

            async def outbox_done(prefix: str, n: int) -> bool:
                done = await db.fetchval(
                    "select count(*) from syncd.outbox where key like $1 and status = 'done'", prefix + "%"
                )
                return bool(done == n)

            await wait_until(
                lambda: outbox_done("pooled-", EVENTS), within=30, what="the outbox events delivered"
            )
            names = {
                r["name"] for r in fake.search_read("res.partner", [("name", "=like", "pooled %")], ["name"])
            }
            assert names == {f"pooled {i}" for i in range(1, EVENTS + 1)}

            # ---- SIGKILL the replica polling res.partner: its leases stay until they run out
            victim = next(r for r in replicas if MODELS[0] in r.claims)
            survivor = next(r for r in replicas if r is not victim)
            taken, kept = victim.claims, survivor.claims
            assert await victim.stop(signal.SIGKILL) == -signal.SIGKILL
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            left_behind = {
                m: left for m, (holder, left) in (await leases(db)).items() if holder == victim.name
            }
            assert set(left_behind) == taken, left_behind
            seconds = await wait_logs(
                board, lambda: taken <= survivor.claims, within=4 * LEASE,
                what=f"replica {survivor.name} to take over {sorted(taken)}", replicas=replicas,
            )  # fmt: skip
            took = loop.time() - killed_at
            # Not before the victim's leases ran out (the log line comes after the takeover) …
            assert took >= max(left_behind.values()) - 0.2, (took, left_behind)
            # … and within a lease length and a renewal interval or so after that.
            assert seconds < LEASE + 4 * INTERVAL + 2, seconds
            assert survivor.claims == taken | kept
            held = await leases(db)
            assert {holder for holder, _ in held.values()} == {survivor.name}, held

            # ---- both ways again, through the survivor
            for model in MODELS:
                fake.write(model, [ids[model][1]], {"name": "after the takeover"})

            async def after_takeover() -> bool:
                return all([await mirror_has_name(db, m, ids[m][1], "after the takeover") for m in MODELS])

            await wait_until(after_takeover, within=20, what="changes made in Odoo after the takeover")
            await db.execute(
                "select syncd.enqueue('res.partner', 'upsert', 'later-' || i, jsonb_build_object('name', 'later ' || i))"
                " from generate_series(1, 5) i"
            )
            await wait_until(lambda: outbox_done("later-", 5), within=20, what="events after the takeover")
            counts = dict(await db.fetch("select status, count(*) from syncd.outbox group by status"))
            assert counts == {"done": EVENTS + 5}, counts

            # ---- SIGTERM: a clean exit that hands the leases back at once
            assert await survivor.stop(signal.SIGTERM) == 0, survivor.output()
            assert await leases(db) == {}
            problems = [
                line for line in survivor.lines if "Traceback" in line or "prepared statement" in line
            ]
            assert problems == [], survivor.output()
            print(
                f"takeover of {sorted(taken)} by replica {survivor.name}: {took:.1f}s after SIGKILL (lease {LEASE:.0f}s)"
            )
        finally:
            for r in replicas:
                if r.proc is not None and r.proc.returncode is None:
                    r.proc.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(r.proc.wait(), 10)
            await db.close()
