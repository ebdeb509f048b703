"""What happens to an event after a failed delivery: a value object with a pure decision.

Transient failures are retried with exponential backoff and jitter up to ``max_attempts``; then the
event is dead. Permanent failures are dead at once. The consumer as a whole also backs off after
a batch failed transiently, so that Odoo being down does not burn every event's attempts in seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from syncd.backoff import backoff
from syncd.config import OutboxSettings


@dataclass(frozen=True)
class Decision:
    """``dead`` — give up; otherwise retry after ``delay_seconds``."""

    dead: bool
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class RetryStrategy:
    max_attempts: int = 10
    base_seconds: float = 1.0
    max_seconds: float = 600.0

    @classmethod
    def from_settings(cls, s: OutboxSettings) -> RetryStrategy:
        return cls(s.max_attempts, s.backoff_base_seconds, s.backoff_max_seconds)

    def decide(
        self, *, attempts: int, transient: bool, rand: Callable[[], float] = random.random
    ) -> Decision:
        """After the ``attempts``-th attempt failed (1-based)."""
        if not transient or attempts >= self.max_attempts:
            return Decision(dead=True)
        return Decision(dead=False, delay_seconds=self.delay(attempts, rand))

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        """``base * 2^(attempts-1)`` capped at ``max``, with "equal jitter": half fixed, half random,
        so that events that failed together do not come back together."""
        return backoff(attempts, self.base_seconds, self.max_seconds, rng=rand)
