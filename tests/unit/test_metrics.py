"""The metric names of SPEC §6 are exposed, and the Odoo error counter classifies what it is given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from syncd import __version__, errors, metrics

pytestmark = pytest.mark.unit

#: SPEC §6, name → (type, labels). A contract: renaming one breaks dashboards and alerts.
SPEC_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "syncd_cdc_records_total": ("counter", ("model",)),
    "syncd_cdc_lag_seconds": ("gauge", ("model",)),
    "syncd_cdc_last_success_timestamp_seconds": ("gauge", ("model",)),
    "syncd_cdc_errors_total": ("counter", ("model",)),
    "syncd_outbox_events": ("gauge", ("status",)),
    "syncd_outbox_oldest_pending_age_seconds": ("gauge", ()),
    "syncd_outbox_delivered_total": ("counter", ("model", "op")),
    "syncd_outbox_failures_total": ("counter", ("model", "kind")),
    "syncd_outbox_delivery_seconds": ("histogram", ()),
    "syncd_odoo_request_seconds": ("histogram", ("method",)),
    "syncd_build_info": ("info", ("version",)),
}


def exposed_types() -> dict[str, str]:
    """``# TYPE`` lines of the exposition: a labelled metric has one even before it has a child."""
    text = generate_latest(REGISTRY).decode()
    return {
        parts[2]: parts[3]
        for parts in (line.split() for line in text.splitlines() if line.startswith("# TYPE syncd_"))
    }


def families() -> dict[str, str]:
    """Collected family names with the suffix the exposition adds (counters ``_total``, info ``_info``)."""
    suffix = {"counter": "_total", "info": "_info"}
    return {
        f.name + suffix.get(f.type, ""): f.type for f in REGISTRY.collect() if f.name.startswith("syncd_")
    }


@pytest.mark.parametrize("name", sorted(SPEC_METRICS))
def test_every_spec_metric_is_registered_with_its_type(name: str) -> None:
    kind, _ = SPEC_METRICS[name]
    assert families().get(name) == kind
    # In the text format an info metric is a gauge named ..._info.
    assert exposed_types().get(name) == ("gauge" if kind == "info" else kind)


def defined() -> dict[str, tuple[str, ...]]:
    """The label names of the metric objects of syncd.metrics by exposed name."""
    suffix = {"counter": "_total", "info": "_info"}
    found = {
        m._name + suffix.get(m._type or "", ""): m._labelnames
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }
    found.update(
        {m.name: m.labelnames for m in vars(metrics).values() if isinstance(m, metrics.BulkHistogram)}
    )
    return found


@pytest.mark.parametrize("name", sorted(SPEC_METRICS))
def test_every_spec_metric_has_its_labels(name: str) -> None:
    kind, labels = SPEC_METRICS[name]
    if kind == "info":  # an info's labels are in its one sample
        assert REGISTRY.get_sample_value(name, {"version": __version__}) == 1.0
    else:
        assert defined()[name] == labels


def test_buckets_cover_what_is_measured() -> None:
    delivery = metrics.OUTBOX_DELIVERY_SECONDS.upper_bounds
    odoo = metrics.ODOO_REQUEST_SECONDS.labels(method="syncd_test_buckets")._upper_bounds
    # Delivery: ~5 ms when idle to hours after an outage; Odoo: 5 ms calls to 60 s timeouts.
    assert delivery[0] <= 0.005 and 86400 in delivery
    assert odoo[0] <= 0.005 and 60 in odoo


def test_odoo_error_series_exist_from_a_methods_first_request() -> None:
    method = "syncd_test_first_request"

    def errors_counted(kind: str) -> float | None:
        return REGISTRY.get_sample_value("syncd_odoo_request_errors_total", {"method": method, "kind": kind})

    assert errors_counted("transient") is None
    metrics.observe_odoo_request(method, 0.01)

    # Both kinds at 0 before any error, so that rate() counts the first one too.
    assert errors_counted("transient") == 0.0
    assert errors_counted("permanent") == 0.0

    metrics.observe_odoo_request(method, 0.02, errors.OdooTimeoutError("no answer"))
    metrics.observe_odoo_request(method, 0.02, errors.OdooValidationError("rejected"))
    metrics.observe_odoo_request(method, 0.02, ValueError("not an Odoo error: a bug"))
    assert errors_counted("transient") == 1.0
    assert errors_counted("permanent") == 2.0
    assert REGISTRY.get_sample_value("syncd_odoo_request_seconds_count", {"method": method}) == 4.0


@pytest.mark.parametrize("component", ["cdc", "outbox", "http"])
def test_restart_series_exist_before_the_first_restart(component: str) -> None:
    # increase() cannot see the first restart of a series that is born at 1.
    value = REGISTRY.get_sample_value("syncd_component_restarts_total", {"component": component})
    assert value is not None


@given(
    st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.sampled_from([0.005, 0.01, 1.0, 30.0])
    )
)
def test_a_bulk_histogram_exposes_what_a_histogram_would(values: list[float]) -> None:
    """syncd_outbox_delivery_seconds takes a batch at once: the same exposition — bucket lines (a
    value on a bound counts in that bound's bucket), count and sum — as prometheus_client's
    Histogram with observe() called for each value, through public API only."""
    buckets = (0.005, 0.01, 0.1, 1.0, 30.0, 86400)
    one_by_one, bulk = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("h", "h", buckets=buckets, registry=one_by_one)
    for v in values:
        histogram.observe(v)
    metrics.BulkHistogram("h", "h", buckets, registry=bulk).observe_all(values)

    def lines(registry: CollectorRegistry) -> tuple[list[str], float]:
        text = generate_latest(registry).decode().splitlines()
        (total,) = [float(line.split()[1]) for line in text if line.startswith("h_sum ")]
        return [line for line in text if not line.startswith(("h_sum ", "h_created "))], total

    (got, got_sum), (want, want_sum) = lines(bulk), lines(one_by_one)
    assert got == want
    assert got_sum == pytest.approx(want_sum)  # fsum of the batch vs a running sum


def test_a_bulk_histogram_observes_one_value_too() -> None:
    h = metrics.BulkHistogram("one", "one", (1.0, 2.0), registry=CollectorRegistry())
    h.observe(1.0)
    h.observe_all([])
    h.observe_all([1.5, 99.0])
    (family,) = h.collect()
    assert [(s.name, s.labels.get("le"), s.value) for s in family.samples] == [
        ("one_bucket", "1.0", 1), ("one_bucket", "2.0", 2), ("one_bucket", "+Inf", 3),
        ("one_count", None, 3), ("one_sum", None, 101.5),
    ]  # fmt: skip
