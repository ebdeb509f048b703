"""How long to wait after failures in a row: the one backoff of syncd.

Every waiting loop uses it: the outbox's per-event retries (``outbox.backoff_*``) and the
consumer's own pause, the Odoo client's retries, the CDC poller after a failed poll, the supervisor
before it restarts a component, and the daemon while it waits for PostgreSQL or Odoo at start.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def backoff(
    attempt: int,
    base: float,
    cap: float,
    *,
    jitter: bool = True,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row (1-based).

    The ceiling is ``base * 2**(attempt-1)``, at most ``cap``; with ``jitter`` the wait is drawn
    between half the ceiling and the ceiling ("equal jitter": half fixed, half random), without it
    the wait is the ceiling. ``rng`` returns a float in [0, 1) (``random.random``); tests pass their
    own to get fixed waits.

    Equal rather than full jitter (anywhere between 0 and the ceiling): full jitter spreads
    callers best, but may draw a wait of almost nothing, and then a loop against a dependency that
    is down spins, and a wait documented as "doubling from X" would not even wait X/2. Equal jitter
    still spreads callers that failed together over half the ceiling (they do not come back in
    lockstep), keeps the growth, and guarantees ``min(base, cap) / 2``; a caller that needs a longer
    minimum (the consumer's pause: a poll interval; the outbox's timeout fence) takes the larger of
    the two.

    Any ``attempt`` is fine: a huge one gives ``cap`` instead of an OverflowError.
    """
    try:
        # ldexp is exact (base · 2^n) and raises only when the result is beyond the float range,
        # which is beyond any cap; 2.0**n would raise from n = 1024 on.
        ceiling = min(cap, math.ldexp(base, max(0, attempt - 1)))
    except OverflowError:
        ceiling = cap
    if not jitter:
        return ceiling
    return ceiling / 2 + rng() * ceiling / 2
