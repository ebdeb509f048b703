"""Serve a fake Odoo holding N ``x.bench`` records, in its own process (``python -m bench.fake_server``).

The benchmark runs it as a child so that syncd's CPU time and memory are its own. Once the records are
built and the server listens, one JSON line goes to stdout::

    {"url": "http://127.0.0.1:41234", "records": 100000, "build_seconds": 9.1}

It serves until SIGTERM/SIGINT or until its stdin is closed (the benchmark died). Writes during the
benchmark (the incremental test) go through the fake's ordinary JSON-2 API with the API key ``admin``.
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
from dataclasses import dataclass
from pathlib import Path

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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
    async with FakeOdooServer(fake, host, port) as server:
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
