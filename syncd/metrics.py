"""Every ``syncd_*`` metric, defined once (SPEC §6). Names and labels are contract.

Units are in the names, counters end in ``_total``, and no label carries a record id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from syncd import __version__

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

# --------------------------------------------------------------------------------------- outbox
OUTBOX_EVENTS = Gauge("syncd_outbox_events", "Outbox events by status", ["status"])
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "syncd_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox event (0 when none)"
)
OUTBOX_DELIVERED = Counter("syncd_outbox_delivered", "Outbox events applied to Odoo", ["model", "op"])
OUTBOX_FAILURES = Counter(
    "syncd_outbox_failures", "Failed outbox deliveries by kind (transient, permanent)", ["model", "kind"]
)
OUTBOX_DELIVERY_SECONDS = Histogram(
    "syncd_outbox_delivery_seconds",
    "Seconds from enqueue to done",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

# ----------------------------------------------------------------------------------------- Odoo
ODOO_REQUEST_SECONDS = Histogram(
    "syncd_odoo_request_seconds",
    "Duration of HTTP requests to Odoo by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

BUILD_INFO = Info("syncd_build", "syncd version")
BUILD_INFO.info({"version": __version__})


def observe_odoo_request(method: str, seconds: float) -> None:
    """The ``observe`` callback of :class:`syncd.odoo.OdooClient`."""
    ODOO_REQUEST_SECONDS.labels(method=method).observe(seconds)
