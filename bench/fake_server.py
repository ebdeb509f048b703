"""Serve a fake Odoo holding N ``x.bench`` records, in its own process (``python -m bench.fake_server``).

The benchmark runs it as a child so that syncd's CPU time and memory are its own. Once the records are
built and the server listens, one JSON line goes to stdout::

    {"url": "http://127.0.0.1:41234", "records": 100000, "build_seconds": 9.1}

It serves until SIGTERM/SIGINT or until its stdin is closed (the benchmark died). Writes during the
benchmark (the incremental test) go through the fake's ordinary JSON-2 API with the API key ``admin``.
``GET /bench/calls`` answers how many calls the fake has received so far, by ``model.method`` (or the
bare method for calls without a model), counted from its request log (``FakeOdoo.calls``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.model import build_fake
from syncd.testing import FakeOdooServer, parse_listen

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakeProcess:
    """The parent side: this module run as a child process, serving a fake Odoo with N records (0 for
    demo data only, as the outbox benchmark uses)."""

    proc: subprocess.Popen[str]
    url: str
    build_seconds: float

    @classmethod
    async def start(cls, records: int) -> FakeProcess:
        proc = subprocess.Popen(  # noqa: ASYNC220 - spawning does not block; its output is awaited below
            [sys.executable, "-m", "bench.fake_server", "--records", str(records)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line:
            proc.wait()
            raise RuntimeError(f"the fake Odoo runner exited with {proc.returncode} before listening")
        info = json.loads(line)
        return cls(proc, info["url"], info["build_seconds"])

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def calls(self) -> Counter[str]:
        """The calls the fake has received so far, by ``model.method`` (see :class:`BenchServer`)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/bench/calls") as response:
            response.raise_for_status()
            return Counter({str(k): int(v) for k, v in (await response.json()).items()})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class BenchServer(FakeOdooServer):
    """The fake Odoo plus ``GET /bench/calls``: the calls received so far, by ``model.method``."""

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/bench/calls", self._calls)
        return app

    async def _calls(self, _request: web.Request) -> web.Response:
        counts = Counter(f"{c.model}.{c.method}" if c.model else c.method for c in self.fake.calls)
        return web.json_response(dict(counts))


async def serve(records: int, listen: str) -> None:
    fake, seconds = build_fake(records)
    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: whoever started us is gone
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with BenchServer(fake, host, port) as server:
        print(
            json.dumps({"url": server.url, "records": records, "build_seconds": round(seconds, 2)}),
            flush=True,
        )
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    args = parser.parse_args()
    asyncio.run(serve(args.records, args.listen))


if __name__ == "__main__":
    main()
