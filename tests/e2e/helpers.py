"""Run the real ``syncd`` CLI as a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg


@dataclass
class Result:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any SYNCD_* setting of the machine running the tests, and with the
    daemon's HTTP endpoint on a free port (replicas run side by side; see :func:`http_url`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and k != "NOTIFY_SOCKET"}
    env["SYNCD_HTTP__LISTEN"] = "127.0.0.1:0"
    env.update(extra)
    return env


HTTP_LINE = re.compile(r"serving /metrics, /healthz and /readyz on (http://\S+)")


def http_url(log: str) -> str | None:
    """The URL a daemon's HTTP endpoint bound, from its log."""
    m = HTTP_LINE.search(log)
    return m.group(1) if m else None


def syncd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        env=env if env is not None else clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


async def syncd_async(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """The CLI as a subprocess without blocking the test's event loop (which may serve the fake Odoo)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        *args,
        env=env if env is not None else clean_env(),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    within: float,
    interval: float = 0.05,
    what: str = "condition",
) -> float:
    """Poll ``condition`` every ``interval`` until it holds; returns the seconds it took. Fails the test
    (naming ``what``) after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await condition():
        if loop.time() - start > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
    return loop.time() - start


async def mirror_has_name(conn: Any, model: str, rid: int, name: str) -> bool:
    """Whether the mirror of ``model`` exists and holds ``name`` for record ``rid``."""
    table = model.replace(".", "_")
    try:
        got = await conn.fetchval(f'select name from odoo."{table}" where id = $1', rid)
    except asyncpg.UndefinedTableError:
        return False
    return bool(got == name)


class Daemon:
    """``syncd run`` as a subprocess, its output (stdout and stderr) in ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Daemon:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "syncd", "run", env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def wait_ready(self, within: float = 30) -> None:
        """Until the daemon logged that it runs (its signal handlers are installed by then)."""

        async def ready() -> bool:
            assert self.alive, f"syncd run exited during startup\n{self.log_tail()}"
            return "syncd running as" in self.log_path.read_text(errors="replace")

        await wait_until(ready, within=within, what=f"syncd run to start ({self.log_path})")

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases stay behind."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()

    async def terminate(self, grace: float = 30) -> int:
        """SIGTERM and wait for the exit code (SIGKILL after ``grace`` seconds)."""
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"syncd run did not stop within {grace}s of SIGTERM\n{self.log_tail()}"
            ) from None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
