"""Every ``syncd_*`` metric, defined once (SPEC §6). Names and labels are contract.

Units are in the names, counters end in ``_total``, and no label carries a record id. The Grafana
dashboard and the alert rules in ``deploy/helm/syncd/files/`` query these names; a test checks that
every name they use is defined here.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd import __version__
from syncd.errors import SyncdError

# No `*_created` series: they double the counter series and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class BulkHistogram(Collector):
    """A histogram without labels that takes a batch of observations at once.

    prometheus_client's Histogram has no bulk observe: a batch of 500 delivered events cost 500
    ``observe()`` calls, ~400 µs (0.8 µs an event, a few per cent of the consumer's CPU per event),
    against ~70 µs here (one bucket search per value, one lock per batch). Writing the Histogram's
    private fields did as well, but would count wrong, silently, the day they change; this is the
    client's public custom-collector API instead, and exposes the same series (``_bucket{le}``,
    ``_count``, ``_sum``; a value on a bound counts in that bound's bucket, as observe() does).
    """

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames: tuple[str, ...] = ()
        bounds = sorted(float(b) for b in buckets)
        self.upper_bounds: tuple[float, ...] = (
            (*bounds, math.inf) if bounds[-1] != math.inf else tuple(bounds)
        )
        self._counts = [0] * len(self.upper_bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()  # a collect() from another thread (an embedder's exporter)
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_all((value,))

    def observe_all(self, values: Sequence[float]) -> None:
        """``observe(v)`` for each value (each >= 0, or the sum means little, as with Histogram)."""
        if not values:
            return
        tally = Tally(bisect_left(self.upper_bounds, v) for v in values)  # first bound >= v
        total = math.fsum(values)
        with self._lock:
            for i, n in tally.items():
                self._counts[i] += n
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        les = ["+Inf" if math.isinf(b) else repr(b) for b in self.upper_bounds]  # as Histogram writes them
        yield HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(les, accumulate(counts), strict=True)),
            sum_value=total,
        )


# ------------------------------------------------------------------------------------------ CDC
CDC_RECORDS = Counter(
    "syncd_cdc_records",
    "Odoo records written into mirror tables (inserted, changed, or marked deleted)",
    ["model"],
)
CDC_LAG = Gauge(
    "syncd_cdc_lag_seconds",
    "Seconds since the start of the last poll that reached the end of the model's changes",
    ["model"],
)
CDC_LAST_SUCCESS = Gauge(
    "syncd_cdc_last_success_timestamp_seconds",
    "Unix time of the last successful poll of the model",
    ["model"],
)
CDC_ERRORS = Counter("syncd_cdc_errors", "Failed polls or reconciliations", ["model"])
CDC_POLLS = Counter(
    "syncd_cdc_polls",
    "Polls of a model by what started them: interval (cdc.interval_seconds) or hint (a webhook wake-up)",
    ["model", "trigger"],
)

# ------------------------------------------------------------------------------------- webhooks
WEBHOOK_HINTS = Counter(
    "syncd_webhook_hints",
    "Webhook hints accepted, by model and route: local (this replica polls the model), forwarded "
    "(by NOTIFY to the replica that does), dropped (no way to it from here: its next poll finds the change)",
    ["model", "route"],
)
WEBHOOK_ROUTES = ("local", "forwarded", "dropped")
# No model label: the model of a refused request is whatever the sender wrote.
WEBHOOK_REJECTED = Counter(
    "syncd_webhook_rejected",
    "Webhook requests refused, by reason: secret (wrong secret, 404), size (body too large, 413), "
    "json (not a JSON object with a string _model and a positive integer _id, 400), "
    "model (_model is not mirrored, 422)",
    ["reason"],
)
WEBHOOK_REJECT_REASONS = ("secret", "size", "json", "model")

# --------------------------------------------------------------------------------------- outbox
OUTBOX_EVENTS = Gauge("syncd_outbox_events", "Outbox events by status", ["status"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "syncd_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox event (0 when none)"
)
OUTBOX_DELIVERED = Counter("syncd_outbox_delivered", "Outbox events applied to Odoo", ["model", "op"])
OUTBOX_OLDEST_CONFLICT_AGE = Gauge(
    "syncd_outbox_oldest_conflict_age_seconds",
    "Age of the oldest held conflict waiting for `syncd outbox resolve` (0 when none)",
)
OUTBOX_CONFLICTS = Counter(
    "syncd_outbox_conflicts",
    "Fields of writes with a base that Odoo had changed meanwhile, by model and conflict policy",
    ["model", "policy"],
)
OUTBOX_FAILURES = Counter(
    "syncd_outbox_failures", "Failed outbox deliveries by kind (transient, permanent)", ["model", "kind"]
)
# ~5 ms when idle, seconds under load or while retrying (backoff up to outbox.backoff_max_seconds),
# hours for events that waited out a long Odoo or syncd outage.
# fmt: off
_DELIVERY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600,
    86400,
)
# fmt: on
#: A BulkHistogram: the consumer observes a whole batch's events at once.
OUTBOX_DELIVERY_SECONDS = BulkHistogram(
    "syncd_outbox_delivery_seconds", "Seconds from enqueue to done", buckets=_DELIVERY_BUCKETS
)

# ----------------------------------------------------------------------------------------- Odoo
ODOO_REQUEST_SECONDS = Histogram(
    "syncd_odoo_request_seconds",
    "Duration of HTTP requests to Odoo by method",
    ["method"],
    # Most calls take 5 ms to 2 s; a timed-out one ends at odoo.timeout_seconds (30 s default, up to 60).
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
ODOO_REQUEST_ERRORS = Counter(
    "syncd_odoo_request_errors",
    "Failed HTTP requests to Odoo by method and kind (transient: worth retrying; permanent: not)",
    ["method", "kind"],
)

# ----------------------------------------------------------------------------- daemon and build
READY = Gauge("syncd_ready", "1 when the daemon is ready (what /readyz answers), else 0")
DEPENDENCY_UP = Gauge(
    "syncd_dependency_up",
    "1 when the dependency (postgres, odoo) answered its last check, else 0",
    ["dependency"],
)
COMPONENT_RESTARTS = Counter(
    "syncd_component_restarts",
    "Times a service of the daemon (cdc, outbox, hints, http) failed and was started again",
    ["component"],
)
for _component in (
    "cdc",
    "outbox",
    "hints",
    "http",
):  # at 0 from the start: increase() sees the first restart
    COMPONENT_RESTARTS.labels(component=_component)

BUILD_INFO = Info("syncd_build", "syncd version")
BUILD_INFO.info({"version": __version__})

_ERROR_KINDS = ("transient", "permanent")
_methods_seen: set[str] = set()


def observe_odoo_request(method: str, seconds: float, error: BaseException | None = None) -> None:
    """The ``observe`` callback of :class:`syncd.odoo.OdooClient`: one call per HTTP request.

    ``error`` is what the request raised (None when it succeeded); it counts as ``transient`` when
    it is a :class:`~syncd.errors.SyncdError` that says so, else as ``permanent``.
    """
    ODOO_REQUEST_SECONDS.labels(method=method).observe(seconds)
    if method not in _methods_seen:
        # Both error series start at 0 with the method's first request, so that rate() sees the
        # first error too (a series born at 1 shows no increase).
        _methods_seen.add(method)
        for kind in _ERROR_KINDS:
            ODOO_REQUEST_ERRORS.labels(method=method, kind=kind)
    if error is not None:
        kind = "transient" if isinstance(error, SyncdError) and error.transient else "permanent"
        ODOO_REQUEST_ERRORS.labels(method=method, kind=kind).inc()
