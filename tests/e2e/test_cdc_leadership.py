"""Two ``syncd run`` replicas on one database: each model is polled by exactly one of them, and when
that one dies (SIGKILL) the other takes its models over within seconds.

Who polls what is read from two independent sources: the replicas' own log lines ("now polling X on
this replica", on stderr, awaited as they arrive) and PostgreSQL's ``pg_locks`` (the per-model
advisory lock, held by one dedicated connection per replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from syncd.db import queries
from syncd.testing import FakeOdoo, FakeOdooServer, FieldSpec
from tests.e2e.helpers import clean_env, mirror_has_name, wait_until

pytestmark = pytest.mark.e2e

MODELS = ["x.alpha", "x.beta", "x.gamma"]
#: syncd's advisory lock key space (the first key of ``pg_try_advisory_lock(int, int)``); the second
#: is the model's number in ``syncd.cdc_lock_keys``
LOCK_CLASS = 1937337955
CLAIM = re.compile(r"now polling (\S+) on this replica")


class Replica:
    """``syncd run`` as a subprocess; its stderr lines are collected as they come, and every new
    line wakes whoever waits on the shared ``board``."""

    def __init__(self, name: str, board: asyncio.Condition) -> None:
        self.name = name
        self.board = board
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "syncd", "run", env=env, cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            async with self.board:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self.board.notify_all()
        async with self.board:
            self.board.notify_all()  # EOF: the process is gone

    @property
    def claims(self) -> set[str]:
        """The models this replica said it started polling."""
        return {m.group(1) for line in self.lines if (m := CLAIM.search(line))}

    @property
    def exited(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None

    async def stop(self, sig: int) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        return code

    def output(self) -> str:
        return f"--- replica {self.name} ---\n" + "\n".join(self.lines[-40:])


async def wait_logs(board: asyncio.Condition, predicate: Callable[[], bool], *, within: float, what: str,
                   replicas: list[Replica]) -> float:  # fmt: skip
    """Until ``predicate`` holds, woken by every new log line; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with board:
            await asyncio.wait_for(board.wait_for(predicate), within)
    except TimeoutError:
        logs = "\n".join(r.output() for r in replicas)
        raise AssertionError(f"timed out after {within}s waiting for {what}\n{logs}") from None
    return loop.time() - start


async def lock_holders(conn: asyncpg.Connection) -> dict[str, list[int]]:
    """Per model, the backend pids holding its advisory lock in this database."""
    rows = await conn.fetch(
        """
        select m.model, l.pid
        from unnest($1::text[]) as m(model)
        join pg_locks l
          on l.locktype = 'advisory' and l.granted
         and l.database = (select oid from pg_database where datname = current_database())
         and l.classid::bigint = $2 and l.objsubid = 2
         and l.objid = (select key::oid from syncd.cdc_lock_keys k where k.model = m.model)
        join pg_stat_activity a on a.pid = l.pid and a.application_name = 'syncd'
        """,
        MODELS,
        LOCK_CLASS,
    )
    holders: dict[str, list[int]] = {m: [] for m in MODELS}
    for r in rows:
        holders[r["model"]].append(r["pid"])
    return holders


async def test_each_model_has_one_poller_and_a_survivor_takes_over(db_dsn: str, tmp_path: Path) -> None:
    fake = FakeOdoo()
    for model in MODELS:
        fake.declare_model(model, {"name": FieldSpec("char")})
        fake.create(model, [{"name": f"{model} {i}"} for i in range(3)])

    async with FakeOdooServer(fake) as server:
        env = clean_env(
            SYNCD_DATABASE__DSN=db_dsn,
            SYNCD_ODOO__URL=server.url,
            SYNCD_ODOO__API_KEY="admin",
            SYNCD_CDC__MODELS=json.dumps([{"model": m, "fields": ["name"]} for m in MODELS]),
            SYNCD_CDC__INTERVAL_SECONDS="0.5",
            SYNCD_HTTP__ENABLED="false",
            SYNCD_OUTBOX__ENABLED="false",
        )
        board = asyncio.Condition()
        replicas = [Replica("a", board), Replica("b", board)]
        db = await asyncpg.connect(db_dsn)
        try:
            # The test's own connection holds every model's lock at first, then hands them out so
            # that each replica ends up with some: the first model to whichever replica is faster,
            # the others to the other one (the first is paused with SIGSTOP meanwhile).
            for model in MODELS:
                assert await db.fetchval(queries["cdc_leader_try_lock"], model)  # as a replica would
            await asyncio.gather(*(r.start(env, tmp_path) for r in replicas))

            def running() -> bool:
                assert not any(r.exited for r in replicas), "a replica exited"
                return all(any("syncd running as" in line for line in r.lines) for r in replicas)

            await wait_logs(board, running, within=30, what="both replicas to start", replicas=replicas)
            await db.fetchval(queries["cdc_leader_unlock"], MODELS[0])
            await wait_logs(board, lambda: any(MODELS[0] in r.claims for r in replicas), within=20,
                           what=f"a replica to claim {MODELS[0]}", replicas=replicas)  # fmt: skip
            first = next(r for r in replicas if MODELS[0] in r.claims)
            other = next(r for r in replicas if r is not first)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGSTOP)
            try:
                for model in MODELS[1:]:
                    await db.fetchval(queries["cdc_leader_unlock"], model)
                await wait_logs(board, lambda: set(MODELS[1:]) <= other.claims, within=20,
                               what=f"replica {other.name} to claim {MODELS[1:]}", replicas=replicas)  # fmt: skip
            finally:
                first.proc.send_signal(signal.SIGCONT)
            # ---- exactly one poller per model, by the logs and by the locks
            for model in MODELS:
                claimed_by = [r.name for r in replicas if model in r.claims]
                assert len(claimed_by) == 1, (model, claimed_by)
            holders = await lock_holders(db)
            assert all(len(pids) == 1 for pids in holders.values()), holders
            assert holders[MODELS[1]] == holders[MODELS[2]] != holders[MODELS[0]], holders

            # ---- both replicas running, every model is mirrored (by its one poller)
            for model in MODELS:
                fake.write(model, [1], {"name": "while both run"})

            async def while_both_run() -> bool:
                return all([await mirror_has_name(db, m, 1, "while both run") for m in MODELS])

            # (the first model's change needs the resumed replica: it runs again, and took nothing)
            await wait_until(while_both_run, within=20, what="changes made while both run")
            for model in MODELS:
                assert sum(model in r.claims for r in replicas) == 1, model
            assert await lock_holders(db) == holders

            # ---- SIGKILL the replica polling the first model: the other one takes its models over
            victim = next(r for r in replicas if MODELS[0] in r.claims)
            survivor = next(r for r in replicas if r is not victim)
            taken = victim.claims
            kept = survivor.claims
            assert await victim.stop(signal.SIGKILL) == -signal.SIGKILL
            seconds = await wait_logs(
                board, lambda: taken <= survivor.claims, within=20,
                what=f"replica {survivor.name} to take over {sorted(taken)}", replicas=replicas,
            )  # fmt: skip
            assert survivor.claims == taken | kept
            assert not survivor.exited
            holders = await lock_holders(db)
            assert all(len(pids) == 1 for pids in holders.values()), holders
            assert len({pids[0] for pids in holders.values()}) == 1, holders  # the survivor's connection

            # ---- a change made in Odoo now reaches the mirror through the survivor
            for model in MODELS:
                fake.write(model, [2], {"name": "after the takeover"})

            async def after_takeover() -> bool:
                return all([await mirror_has_name(db, m, 2, "after the takeover") for m in MODELS])

            await wait_until(after_takeover, within=20, what="changes made after the takeover")

            # ---- SIGTERM: a clean exit
            assert await survivor.stop(signal.SIGTERM) == 0, survivor.output()
            assert any("syncd stopped" in line for line in survivor.lines), survivor.output()
            print(f"takeover of {sorted(taken)} by replica {survivor.name} took {seconds:.1f}s")
        finally:
            for r in replicas:
                if r.proc is not None and r.proc.returncode is None:
                    r.proc.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(r.proc.wait(), 10)
            await db.close()
