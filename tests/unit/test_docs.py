"""The README and docs/ against the code: a README that does not match the code is a bug.

Checks what can drift silently: the two commands on the first screen, every configuration key in
docs/configuration.md, every metric in the README's table, a runbook entry for every alert rule,
links and anchors between the documents, and every TOML example loading through the real loader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from syncd import metrics
from syncd.config import ModelSettings, Settings, load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: The other documents users read: the deployment guides and the benchmarks' report.
GUIDES = [ROOT / "deploy" / "systemd" / "README.md", ROOT / "deploy" / "helm" / "syncd" / "README.md",
          ROOT / "bench" / "README.md"]  # fmt: skip
ALERTS = ROOT / "deploy" / "helm" / "syncd" / "files" / "alerts.yaml"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a document."""
    out = set()
    for line in _without_code(_text(path)).splitlines():
        m = re.match(r"^#+\s+(.*)", line)
        if m:
            out.add(_anchor(m.group(1)))
    return out


def test_first_screen_shows_install_test_and_demo() -> None:
    first = _text(README).splitlines()[:15]
    commands = [line.split("#")[0].strip() for line in first]
    assert "pip install -e '.[dev]'" in commands
    assert "python -m pytest" in commands
    assert "syncd demo" in commands


def test_every_config_key_is_documented() -> None:
    doc = _text(ROOT / "docs" / "configuration.md")
    sections = {name: f.annotation for name, f in Settings.model_fields.items() if name != "source"}
    missing = []
    for name, model in sections.items():
        assert model is not None
        heading = f"## `[{name}]`"
        assert heading in doc, f"docs/configuration.md has no section {heading}"
        body = doc.split(heading, 1)[1].split("\n## ", 1)[0]
        missing += [f"{name}.{key}" for key in model.model_fields if f"| `{key}` |" not in body]
    missing += [f"cdc.models.{key}" for key in ModelSettings.model_fields if f"| `{key}` |" not in doc]
    assert not missing, f"keys without a row in docs/configuration.md: {missing}"


def _metric_names() -> list[str]:
    names = []
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            for family in obj.describe():
                suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
                names.append(family.name + suffix)
    return names


def test_every_metric_is_in_the_readme() -> None:
    names = _metric_names()
    assert "syncd_cdc_records_total" in names  # the helper sees the module's metrics at all
    readme = _text(README)
    missing = [n for n in names if f"`{n}" not in readme]
    assert not missing, f"metrics missing from the README's table: {missing}"


def _alert_rules() -> list[dict[str, Any]]:
    rules = [r for g in yaml.safe_load(_text(ALERTS))["groups"] for r in g["rules"] if "alert" in r]
    assert rules
    return rules


def _runbook_headings() -> list[str]:
    """The ``###`` headings under ``## Runbook`` in the README."""
    runbook = _text(README).split("\n## Runbook\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (.*)$", runbook, flags=re.M)


def test_every_alert_has_a_runbook_entry() -> None:
    headings = " ".join(_runbook_headings())
    missing = [r["alert"] for r in _alert_rules() if r["alert"] not in headings]
    assert not missing, f"alerts without a ### entry under ## Runbook: {missing}"


def test_every_runbook_url_points_at_its_own_runbook_entry() -> None:
    """An alert's link opens the README at its entry: the anchor is a ``###`` heading under
    ``## Runbook`` that names the alert, and no two alerts share one."""
    entries = {_anchor(heading): heading for heading in _runbook_headings()}
    urls = {r["alert"]: r["annotations"]["runbook_url"] for r in _alert_rules()}
    wrong = {}
    for alert, url in urls.items():
        page, _, anchor = url.partition("#")
        if not page.endswith("/README.md") or alert not in entries.get(anchor, ""):
            wrong[alert] = url
    assert not wrong, f"runbook_url not at the alert's own heading under ## Runbook: {wrong}"
    assert len(set(urls.values())) == len(urls), "two alerts share a runbook_url"


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", [README, *DOCS, *GUIDES], ids=_doc_id)
def test_no_document_cites_the_spec(path: Path) -> None:
    """The specification syncd was built from is not in the repository: documents cite the README
    and docs/ instead, which a reader has."""
    cited = [line.strip() for line in _text(path).splitlines() if re.search(r"\bSPEC\b", line)]
    assert not cited, f"{_doc_id(path)} cites the SPEC: {cited}"


@pytest.mark.parametrize("path", [README, *DOCS, *GUIDES], ids=_doc_id)
def test_links_and_anchors_resolve(path: Path) -> None:
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", _without_code(_text(path))):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        target, _, fragment = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        missing_anchor = bool(fragment) and resolved.suffix == ".md" and fragment not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(link)
    assert not broken, f"{_doc_id(path)}: broken links {broken}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_toml_examples_load(path: Path, tmp_path: Path) -> None:
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", _text(path), flags=re.S)):
        file = tmp_path / f"example{i}.toml"
        file.write_text(block, encoding="utf-8")
        settings = load_config(file, {"SYNCD_ODOO__API_KEY": "x"})
        assert settings.source == file
