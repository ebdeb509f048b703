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
import signal
import sys
import threading

from bench.model import build_fake
from syncd.testing import FakeOdooServer, parse_listen


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
