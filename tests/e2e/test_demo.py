from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from tests.e2e.helpers import clean_env, syncd

pytestmark = pytest.mark.e2e


def test_demo_runs_and_cleans_up() -> None:
    r = syncd("demo", "--seconds", "0")
    assert r.code == 0, r.err
    assert "PostgreSQL ready" in r.out
    assert "fake Odoo 19 ready" in r.out
    assert "mirrored 42 partners into odoo.res_partner" in r.out
    assert "email='mitchell.admin@example.com'" in r.out
    assert "queued outbox event 1" in r.out
    assert "delivered 1: event done" in r.out
    assert r.out.rstrip().endswith("stopping ...")


async def test_demo_ends_cleanly_on_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd", "demo", env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
        assert line, "the demo ended before asking for Ctrl-C"
        seen.append(line)
        if "Ctrl-C ends the demo" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0
    assert "stopping ..." in rest.decode()
