"""Small asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Until one of ``events`` is set or ``seconds`` pass — "a wake-up, or the poll interval, or the
    stop event, whichever comes first"."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
