"""The event loop: uvloop when it is installed (SPEC: "an asyncio daemon (uvloop)"), else asyncio's.

``SYNCD_EVENT_LOOP=asyncio`` forces the standard loop (e.g. to rule uvloop out when debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop's name and a factory for :class:`asyncio.Runner` (None: asyncio's default)."""
    if os.environ.get("SYNCD_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on the chosen loop."""
    _, factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
