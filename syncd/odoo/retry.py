"""When to repeat a failed Odoo call, and how long to wait first: a value object with pure methods.

The decision has two inputs besides the error: the attempt number, and whether the call is
*idempotent*. Repeating an idempotent call (a read, a ``write`` of fixed values, a ``load`` keyed
by external ids) after an ambiguous failure is harmless. Repeating ``create`` after a timeout or a
dropped connection may create the records twice, because the first request may have reached Odoo
and committed; so a non-idempotent call is only repeated after an error that proves it did not run
(:func:`~syncd.odoo.classify.proves_not_executed`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from syncd.backoff import backoff
from syncd.errors import OdooError, OdooRateLimitedError
from syncd.odoo.classify import proves_not_executed


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient Odoo errors are retried.

    ``retries`` is the number of repeats after the first attempt (``odoo.retries``). Waits grow as
    ``base_seconds * 2**(n-1)`` up to ``max_seconds``, with "equal jitter" (half fixed, half random;
    :func:`syncd.backoff.backoff`) so that concurrent callers do not retry in lockstep. A 429's ``Retry-After`` is honoured up to
    ``max_retry_after_seconds``.
    """

    retries: int = 3
    base_seconds: float = 0.2
    max_seconds: float = 5.0
    max_retry_after_seconds: float = 30.0

    def should_retry(self, error: BaseException | None, *, attempt: int, idempotent: bool) -> bool:
        """Whether to try again after ``error`` ended attempt number ``attempt`` (1-based)."""
        if attempt > self.retries:
            return False
        if not isinstance(error, OdooError) or not error.transient:
            return False
        return idempotent or proves_not_executed(error)

    def delay(
        self, error: BaseException | None, attempt: int, *, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to wait after attempt number ``attempt`` (1-based) failed with ``error``."""
        if isinstance(error, OdooRateLimitedError) and error.retry_after is not None:
            return min(float(error.retry_after), self.max_retry_after_seconds)
        return backoff(attempt, self.base_seconds, self.max_seconds, rng=rand)


#: Methods that can be repeated without changing the outcome. ``unlink`` is here: a repeat of a
#: delete that already happened fails with MissingError instead of deleting anything else. ``load``
#: is decided per call (idempotent only with an ``id`` column of external ids).
IDEMPOTENT_METHODS = frozenset(
    {
        "version",
        "authenticate",
        "search",
        "search_read",
        "search_count",
        "read",
        "fields_get",
        "name_search",
        "name_get",
        "read_group",
        "formatted_read_group",
        "web_search_read",
        "web_read",
        "check_object_reference",
        "get_external_id",
        "context_get",
        "default_get",
        "export_data",
        "write",
        "unlink",
        "action_archive",
        "action_unarchive",
    }
)


def is_idempotent(method: str, kwargs: dict[str, object] | None = None) -> bool:
    """Whether repeating ``method`` with these keyword arguments cannot duplicate its effect."""
    if method == "load":
        fields = (kwargs or {}).get("fields")
        return isinstance(fields, list) and "id" in fields
    return method in IDEMPOTENT_METHODS
