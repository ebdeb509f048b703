"""The alert rules and the Grafana dashboard shipped in deploy/helm/syncd/files/.

Always: their structure, and that every metric they query is one syncd.metrics defines. With
``promtool`` on PATH (``.ci/run`` installs it where it can): ``promtool check rules`` on the rules
and on every dashboard query, and ``promtool test rules`` on tests/promtool/alerts_test.yaml.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

import syncd.metrics  # noqa: F401  (registers every syncd_* metric)
from tests.unit.test_metrics import SPEC_METRICS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "deploy" / "helm" / "syncd" / "files"
ALERTS = FILES / "alerts.yaml"
DASHBOARD = FILES / "dashboard.json"
PROMTOOL_TESTS = ROOT / "tests" / "promtool" / "alerts_test.yaml"
#: Each alert links to its own entry under the README's Runbook (tests/unit/test_docs.py checks the headings).
README_URL = "https://github.com/syncd/syncd/blob/main/README.md"

#: The alerts issue 5 asks for, plus SyncdAbsent and SyncdComponentRestarting.
EXPECTED_ALERTS = {
    "SyncdDown",
    "SyncdAbsent",
    "SyncdNotReady",
    "SyncdComponentRestarting",
    "SyncdCdcLagHigh",
    "SyncdCdcStalled",
    "SyncdCdcErrors",
    "SyncdOutboxOldestPendingTooOld",
    "SyncdOutboxDeadLettersIncreasing",
    "SyncdOutboxConflictHeld",
    "SyncdOdooErrorsHigh",
}

METRIC_NAME = re.compile(r"\bsyncd_[a-zA-Z0-9_]+")
SUFFIXES = {
    "counter": ("",),  # the TYPE line already says ..._total
    "gauge": ("",),
    "histogram": ("", "_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def exposed_series() -> set[str]:
    """Every series name (and histogram family name) syncd exposes, from the ``# TYPE`` lines of
    the exposition: a labelled metric has its TYPE line even before any child exists."""
    names: set[str] = set()
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE syncd_"):
            _, _, name, kind = line.split()
            names.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in d["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


def dashboard_queries(d: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(d) for t in p.get("targets", []) if "expr" in t]
    return exprs + [v["definition"] for v in d["templating"]["list"] if v["type"] == "query"]


def metrics_in(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus; .ci/run does it as root)")
    return path


# --------------------------------------------------------------------------------------- alerts


def test_every_expected_alert_is_defined_once() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert sorted(names) == sorted(EXPECTED_ALERTS)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_for_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == f"{README_URL}#{rule['alert'].lower()}"


def test_only_the_availability_alerts_name_a_scrape_job() -> None:
    """The job matcher is the one thing to adapt to a deployment: keep it in two places."""
    with_job = {r["alert"] for r in alert_rules() if "job=" in r["expr"]}
    assert with_job == {"SyncdDown", "SyncdAbsent"}


def test_every_metric_in_the_alerts_is_defined() -> None:
    used = metrics_in([rule["expr"] for rule in alert_rules()])
    assert used  # the pattern found something
    assert used <= exposed_series(), f"not defined in syncd.metrics: {sorted(used - exposed_series())}"


def test_every_alert_has_a_promtool_case_that_fires_and_one_that_does_not() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert cases == {name: {True, False} for name in EXPECTED_ALERTS}


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(PROMTOOL_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# ------------------------------------------------------------------------------------ dashboard


def test_dashboard_panels_have_unique_ids_and_titles() -> None:
    all_panels = list(panels(dashboard()))
    ids = [p["id"] for p in all_panels]
    titles = [p["title"] for p in all_panels]
    assert len(ids) == len(set(ids))
    assert len(titles) == len(set(titles))
    assert all(p["title"].strip() for p in all_panels)


def test_dashboard_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = p["title"]


def test_dashboard_queries_use_the_datasource_variable() -> None:
    d = dashboard()
    assert {v["name"] for v in d["templating"]["list"]} >= {"datasource", "job", "instance", "model"}
    for p in panels(d):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]


def test_every_metric_on_the_dashboard_is_defined() -> None:
    used = metrics_in(dashboard_queries(dashboard()))
    assert used <= exposed_series(), f"not defined in syncd.metrics: {sorted(used - exposed_series())}"


def test_every_spec_metric_is_on_the_dashboard() -> None:
    used = metrics_in(dashboard_queries(dashboard()))
    # A histogram is queried through its _bucket or _count series.
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    missing = {name for name in SPEC_METRICS if name not in used and name not in families}
    assert not missing


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule for ``promtool check rules``."""
    tool = promtool()
    variables = {"$__rate_interval": "5m", "$job": ".*", "$instance": ".*", "$model": ".*"}
    rules = []
    for i, expr in enumerate(dashboard_queries(dashboard())):
        if expr.startswith("label_values("):  # a Grafana function: check its selector
            expr = re.sub(r"^label_values\((.*), \w+\)$", r"\1", expr)
        for name, value in variables.items():
            expr = expr.replace(name, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr
