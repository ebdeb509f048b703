from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

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


def test_demo_into_a_pipe_that_closes_stops_its_postgresql(tmp_path: Path) -> None:
    """`syncd demo | head`: the reader leaves early; the demo ends quietly and stops its server
    (it used to leave PostgreSQL running with its data folder deleted)."""
    with (tmp_path / "stderr").open("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "demo", "--seconds", "120"],
            env=clean_env(), stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            port = None
            while port is None:
                line = proc.stdout.readline()
                assert line, "the demo ended before its PostgreSQL was ready"
                m = re.search(r"PostgreSQL ready: postgresql://\S+@127\.0\.0\.1:(\d+)/", line)
                port = int(m.group(1)) if m else None
            proc.stdout.close()  # as `head` does once it has its lines
            assert proc.wait(timeout=90) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    try:
        assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
        assert not _answers(port), f"the demo's PostgreSQL still runs on port {port}"
    finally:
        _stop_orphan(port)


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop_orphan(port: int) -> None:
    """Stop the postmaster left listening on ``port`` (the bug this test is about), by its pid: the
    process holding the listening socket (its data folder is gone, so it takes no connection)."""
    if not _answers(port):
        return
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                os.kill(int(proc.name), signal.SIGQUIT)
                return
        except OSError:
            continue
