"""Serve an empty fake Odoo (``FakeOdoo()``) in its own process, for :mod:`bench.outbox`.

The outbox benchmark runs it as a child so that the fake's CPU time is not syncd's and the two
share the machine's cores the way a real deployment would. Once listening, one JSON line goes to
stdout::

    {"url": "http://127.0.0.1:41234"}

It serves until SIGTERM/SIGINT or until its stdin is closed (the benchmark is gone).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python bench/outbox_fake.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import signal
import threading

from syncd.testing import FakeOdoo, FakeOdooServer, parse_listen


async def serve(listen: str) -> None:
    host, port = parse_listen(listen)
    fake = FakeOdoo()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: whoever started us is gone
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with FakeOdooServer(fake, host, port) as server:
        print(json.dumps({"url": server.url}), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    args = parser.parse_args()
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
