from __future__ import annotations

import asyncio
import re
import signal
import sys

import pytest

from tests.e2e.helpers import clean_env, syncd

pytestmark = pytest.mark.e2e


def test_demo_runs_the_daemon_with_traffic_both_ways_and_cleans_up() -> None:
    r = syncd("demo", "--seconds", "0")
    assert r.code == 0, r.err
    assert "PostgreSQL ready" in r.out
    assert "fake Odoo 19 ready" in r.out
    assert re.search(r"syncd running: .* http://127\.0\.0\.1:\d+", r.out)
    assert "mirrored 42 partners into odoo.res_partner" in r.out
    assert re.search(r"metrics:  curl -s http://127\.0\.0\.1:\d+/metrics", r.out)
    assert re.search(r"mirror:   psql 'postgresql://\S+' -c 'select .* from odoo\.res_partner", r.out)
    assert re.search(
        r"Odoo → PostgreSQL  partner \d+ \(.+\) email → \S+@example\.com: in odoo\.res_partner", r.out
    )
    assert re.search(
        r"PostgreSQL → Odoo  syncd\.enqueue\(.*'demo-customer-1'.*\) = event 1: done, Odoo res\.partner \d+",
        r.out,
    )
    assert re.search(
        r"PostgreSQL → Odoo  update odoo\.res_partner set name = '.+' where id = \d+: pending, then synced",
        r.out,
    )
    assert r.out.rstrip().endswith("stopping ...")
    assert "Traceback" not in r.err


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
