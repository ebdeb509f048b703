"""The Helm chart (deploy/helm/syncd) and the container image's build files.

Without Helm: every ``ci/*-values.yaml`` (merged over values.yaml, as Helm merges them) passes
values.schema.json and bad values fail it naming the key; values.yaml documents every key; the
default config loads with the real config loader as a pod would see it. With Helm (a ``helm`` on
PATH, or the ``helm_python`` module of the helm-python-sdk package, a dev dependency whose wheel embeds
Helm's Go library): ``helm lint --strict`` and ``helm template`` per ci values file, and checks of what
they render.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

import syncd
from syncd.config import Settings, load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "syncd"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())

#: What each ci values file must render (mode deployment: Deployment, Service, PDB; cronjob: CronJob).
EXPECTED_KINDS = {
    "cronjob": ["ConfigMap", "CronJob", "Secret", "ServiceAccount"],
    "default": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"],
    "existing-secret": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"],
    "ha": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"],
    "monitoring": [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ],
    "pooler": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"],
    "webhooks": ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"],
}

#: Where the chart mounts the Secret's files (templates/_helpers.tpl, syncd.secretDir).
SECRET_DIR = "/run/secrets/syncd"

#: The values of secret that hold secrets (never shown in an error, never outside the Secret).
SECRET_VALUES = ("dsn", "odooApiKey", "odooPassword", "webhookSecret")

#: What the schema says about a secret in configToml.
INLINE_SECRET = "must not set dsn, api_key, password or webhook_secret (they belong in the Secret)"


def _ci_name(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: expected a mapping"
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge key by key, anything else replaces, null deletes the key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _schema_errors(values: dict[str, Any]) -> list[str]:
    """One line per problem: the key's path and what is wrong (values of secret keys never shown)."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    lines = []
    for error in sorted(validator.iter_errors(values), key=lambda e: e.json_path):
        path = error.json_path
        if error.validator == "not":  # only configToml has one
            lines.append(f"{path}: {INLINE_SECRET}")
        elif path.split(".")[-1] in SECRET_VALUES:
            if error.validator == "minLength":
                n = error.validator_value
                what = "must not be empty" if n == 1 else f"must have at least {n} characters"
            elif error.validator == "maxLength" and error.validator_value == 0:
                what = "must be empty"
            else:
                what = f"fails {error.validator}"
            lines.append(f"{path}: {what}")
        else:
            lines.append(f"{path}: {error.message}")
    return lines


# ------------------------------------------------------------------------------- schema and values


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_there_is_a_ci_values_file_per_feature() -> None:
    assert sorted(_ci_name(p) for p in CI_VALUES) == sorted(EXPECTED_KINDS)


@pytest.mark.parametrize("path", CI_VALUES, ids=_ci_name)
def test_ci_values_pass_the_schema(path: Path) -> None:
    assert _schema_errors(_merge(DEFAULTS, _load(path))) == []


def test_values_yaml_passes_the_schema_once_given_the_required_credentials() -> None:
    # values.yaml on its own is meant to fail: a DSN (or an existing Secret) is required.
    assert _schema_errors(DEFAULTS) == [
        "$.secret.dsn: must not be empty",
        "$.secret.odooApiKey: must not be empty",
    ]
    given = _merge(DEFAULTS, {"secret": {"dsn": "postgresql://u:p@db/syncd", "odooApiKey": "k"}})
    assert _schema_errors(given) == []
    assert _schema_errors(_merge(DEFAULTS, {"secret": {"existingSecret": "creds"}})) == []


BAD_VALUES = [
    pytest.param(
        {"replicas": 2}, "$: Additional properties are not allowed ('replicas' was unexpected)", id="typo"
    ),
    pytest.param(
        {"mode": "daemonset"}, "$.mode: 'daemonset' is not one of ['deployment', 'cronjob']", id="mode"
    ),
    pytest.param({"replicaCount": "2"}, "$.replicaCount: '2' is not of type 'integer'", id="string-number"),
    pytest.param({"image": {"repository": ""}}, "$.image.repository: '' should be non-empty", id="no-image"),
    pytest.param(
        {"http": {"port": 70000}}, "$.http.port: 70000 is greater than the maximum of 65535", id="port"
    ),
    pytest.param(
        {"daemon": {"shutdownGraceSeconds": 0}},
        "$.daemon.shutdownGraceSeconds: 0 is less than the minimum of 1",
        id="no-grace",
    ),
    pytest.param(
        {"podDisruptionBudget": {"minAvailable": "half"}},
        "$.podDisruptionBudget.minAvailable: 'half' is not valid under any of the given schemas",
        id="pdb",
    ),
    pytest.param(
        {"secret": {"odooAuth": "password"}},
        "$.secret.odooPassword: must not be empty",
        id="password-auth-without-password",
    ),
    pytest.param(
        {"secret": {"dsn": ""}},
        "$.secret.dsn: must not be empty",
        id="no-dsn",
    ),
    pytest.param(
        {"secret": {"keys": {"dsn": ""}}},
        "$.secret.keys.dsn: must not be empty",
        id="no-dsn-key",
    ),
    pytest.param(
        {"configToml": '[database]\ndsn = "postgresql://u:hunter2@db/syncd"\n'},
        f"$.configToml: {INLINE_SECRET}",
        id="dsn-in-configmap",
    ),
    pytest.param(
        {"configToml": 'odoo.api_key = "hunter2"\n'},
        f"$.configToml: {INLINE_SECRET}",
        id="api-key-in-configmap",
    ),
    pytest.param(
        {"configToml": '[odoo]\nurl = "https://erp.example.com"\n  password="hunter2"\n'},
        f"$.configToml: {INLINE_SECRET}",
        id="password-in-configmap",
    ),
    pytest.param(
        {"configToml": '[http]\nwebhook_secret = "hunter2-0123456789abcdef"\n'},
        f"$.configToml: {INLINE_SECRET}",
        id="webhook-secret-in-configmap",
    ),
    pytest.param(
        {"configToml": 'http.webhook_secret="hunter2-0123456789abcdef"\n'},
        f"$.configToml: {INLINE_SECRET}",
        id="dotted-webhook-secret-in-configmap",
    ),
    pytest.param(
        {"secret": {"webhooks": True}},
        "$.secret.webhookSecret: must have at least 16 characters",
        id="webhooks-without-a-secret",
    ),
    pytest.param(
        {"secret": {"webhooks": True, "webhookSecret": "hunter2"}},
        "$.secret.webhookSecret: must have at least 16 characters",
        id="short-webhook-secret",
    ),
    pytest.param(
        {"secret": {"webhookSecret": "hunter2-0123456789abcdef"}},
        "$.secret.webhookSecret: must be empty",
        id="webhook-secret-with-webhooks-off",
    ),
    pytest.param(
        {"secret": {"webhooks": "yes"}},
        "$.secret.webhooks: 'yes' is not of type 'boolean'",
        id="webhooks-not-a-boolean",
    ),
    pytest.param(
        {"secret": {"keys": {"webhookSecret": ""}}},
        "$.secret.keys.webhookSecret: must not be empty",
        id="no-webhook-secret-key",
    ),
]


@pytest.mark.parametrize(("override", "expected"), BAD_VALUES)
def test_bad_values_are_rejected_naming_the_key(override: dict[str, Any], expected: str) -> None:
    good = _merge(DEFAULTS, _load(CHART / "ci" / "default-values.yaml"))
    errors = _schema_errors(_merge(good, override))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors
    assert "hunter2" not in errors[0]


def test_secret_file_keys_in_the_config_are_allowed() -> None:
    toml = (
        '[database]\ndsn_file = "/x/dsn"\n[odoo]\napi_key_file = "/x/k"\npassword_file = "/x/p"\n'
        '[http]\nwebhook_secret_file = "/x/w"\npublic_url = "https://syncd.example.com"\n'
    )
    good = _merge(DEFAULTS, _load(CHART / "ci" / "default-values.yaml"))
    assert _schema_errors(_merge(good, {"configToml": toml})) == []


def test_webhooks_from_an_existing_secret_need_no_value() -> None:
    # The key is in the Secret managed elsewhere: secret.webhookSecret stays empty.
    values = {"secret": {"existingSecret": "creds", "webhooks": True, "keys": {"webhookSecret": "HOOK"}}}
    assert _schema_errors(_merge(DEFAULTS, values)) == []


def _undocumented_keys(text: str) -> list[str]:
    """Keys of a YAML file written in block style that have no comment line right above them.

    Lines inside a block scalar (``key: |``) are text, not keys; flow collections (``{a: 1}``) count
    as their key's line.
    """
    missing: list[str] = []
    path: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    scalar_indent: int | None = None  # inside a block scalar whose key sits at this indent
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if scalar_indent is not None:
            if not stripped or indent > scalar_indent:
                continue
            scalar_indent = None
        if not stripped:
            previous = ""
            continue
        match = re.match(r"^( *)([A-Za-z0-9_.\-/]+):(\s|$)", line)
        if match and not stripped.startswith("#"):
            while path and path[-1][0] >= indent:
                path.pop()
            path.append((indent, match.group(2)))
            if not previous.startswith("#"):
                missing.append(".".join(key for _, key in path))
            if re.search(r":\s*[|>][-+]?\s*$", line):
                scalar_indent = indent
        previous = stripped
    return missing


def test_values_yaml_documents_every_key() -> None:
    assert _undocumented_keys((CHART / "values.yaml").read_text()) == []


def test_the_comment_checker_finds_undocumented_keys() -> None:
    text = "# doc\na: 1\nb:\n  # doc\n  c: 2\n  d: 3\n# doc\ne: |\n  f: not a key\ng: {h: 1}\n"
    assert _undocumented_keys(text) == ["b", "b.d", "g"]


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key
        if sub.get("additionalProperties") is False:
            yield from _schema_keys(sub, f"{prefix}{key}.")


def _value_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _value_keys(value, f"{prefix}{key}.")
    return keys


def test_every_key_of_the_schema_is_in_values_yaml() -> None:
    # The schema rejects unknown keys, so values.yaml has no key the schema lacks; and the reverse:
    # a key the schema knows is shown (and documented) in values.yaml. `global` is Helm's.
    assert sorted(set(_schema_keys(SCHEMA)) - _value_keys(DEFAULTS) - {"global"}) == []


def test_chart_yaml() -> None:
    chart = _load(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "syncd"
    assert chart["type"] == "application"
    assert chart["appVersion"] == syncd.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"]), chart["version"]


# --------------------------------------------------------------------------- the config in the pod

#: The environment the chart gives the container (templates/_helpers.tpl, syncd.podTemplate) for the
#: default values; SYNCD_DAEMON__INSTANCE_ID comes from the pod's name.
POD_ENV = {
    "SYNCD_HTTP__ENABLED": "true",
    "SYNCD_HTTP__LISTEN": "0.0.0.0:9187",
    "SYNCD_DAEMON__SHUTDOWN_GRACE_SECONDS": "30",
    "SYNCD_DAEMON__INSTANCE_ID": "syncd-6d5f7c9b8-x2x7q",
    "SYNCD_DATABASE__DSN_FILE": f"{SECRET_DIR}/dsn",
    "SYNCD_ODOO__API_KEY_FILE": f"{SECRET_DIR}/odoo-api-key",
}


def _pod_env(values: dict[str, Any]) -> dict[str, str]:
    """POD_ENV for these values: with secret.webhooks (mode deployment) the webhook secret's file too."""
    env = dict(POD_ENV)
    if values["secret"]["webhooks"] and values["mode"] == "deployment":
        env["SYNCD_HTTP__WEBHOOK_SECRET_FILE"] = f"{SECRET_DIR}/webhook-secret"
    return env


def _load_as_in_the_pod(
    tmp_path: Path, config_toml: str, env: dict[str, str], secrets: dict[str, str]
) -> Settings:
    """load_config on the ConfigMap's file, with the Secret's files under tmp_path instead of SECRET_DIR."""
    config = tmp_path / "config.toml"
    config.write_text(config_toml)
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    for name, value in secrets.items():
        (secret_dir / name).write_text(value)
    env = {k: v.replace(SECRET_DIR, str(secret_dir)) for k, v in env.items()}
    return load_config(config, env=env)


@pytest.mark.parametrize("path", CI_VALUES, ids=_ci_name)
def test_the_config_toml_loads_as_the_pod_sees_it(tmp_path: Path, path: Path) -> None:
    values = _merge(DEFAULTS, _load(path))
    settings = _load_as_in_the_pod(
        tmp_path,
        values["configToml"],
        _pod_env(values),
        {
            "dsn": "postgresql://syncd:pw@db:5432/syncd\n",
            "odoo-api-key": "key\n",
            "webhook-secret": f"{values['secret']['webhookSecret']}\n",
        },
    )
    assert settings.http.enabled
    assert settings.http.listen == "0.0.0.0:9187"
    assert settings.database.dsn is not None
    assert settings.database.dsn.get_secret_value() == "postgresql://syncd:pw@db:5432/syncd"
    assert not settings.database.embedded
    assert settings.odoo.secret == "key"
    assert settings.daemon.instance_id == "syncd-6d5f7c9b8-x2x7q"
    assert settings.cdc.models, "the config mirrors no model"
    if values["secret"]["webhooks"]:
        # The rules can be installed from the pod: the URL is whole (public_url is in configToml).
        assert settings.http.webhooks_enabled
        secret = values["secret"]["webhookSecret"]
        assert settings.http.webhook_url() == f"{settings.http.public_url}/odoo/webhook/{secret}"
    else:
        assert not settings.http.webhooks_enabled


def test_a_ci_values_file_turns_webhooks_on() -> None:
    assert [_ci_name(p) for p in CI_VALUES if _merge(DEFAULTS, _load(p))["secret"]["webhooks"]] == [
        "webhooks"
    ]


def test_the_pod_env_names_keys_syncd_knows() -> None:
    # The chart's SYNCD_<SECTION>__<KEY> variables (templates/_helpers.tpl) are config keys of
    # syncd's loader; a misspelt one would be ignored or refused only in the pod.
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    names = re.findall(r"- name: (SYNCD_[A-Z0-9_]+)", text)
    assert "SYNCD_HTTP__WEBHOOK_SECRET_FILE" in names
    for name in names:
        section, _, key = name.removeprefix("SYNCD_").lower().partition("__")
        assert section in Settings.model_fields, name
        annotation = Settings.model_fields[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), name
        assert key in annotation.model_fields, name


def test_the_default_config_is_meant_for_a_cluster(tmp_path: Path) -> None:
    settings = _load_as_in_the_pod(
        tmp_path, DEFAULTS["configToml"], POD_ENV, {"dsn": "postgresql://db/syncd", "odoo-api-key": "k"}
    )
    assert settings.log.format == "json"
    assert [m.model for m in settings.cdc.models] == ["res.partner"]
    # terminationGracePeriodSeconds is shutdownGraceSeconds + 15 (the template adds it).
    assert settings.daemon.shutdown_grace_seconds == DEFAULTS["daemon"]["shutdownGraceSeconds"]


# ------------------------------------------------------------------------------ the container image


def test_dockerfile_builds_a_non_root_syncd_image() -> None:
    text = (ROOT / "deploy" / "container" / "Dockerfile").read_text()
    instructions = [
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert len(froms) == 2, "a build stage and a runtime stage"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in instructions
    assert any("pip install ." in line for line in instructions)
    assert "USER 10001:10001" in instructions
    assert instructions[-2:] == ['ENTRYPOINT ["syncd"]', 'CMD ["run"]']
    assert not [i for i in instructions if "SYNCD_" in i], "the image sets no syncd configuration"
    # The chart's pod security context runs as the image's user.
    assert DEFAULTS["podSecurityContext"]["runAsUser"] == 10001
    assert DEFAULTS["podSecurityContext"]["runAsGroup"] == 10001


def test_dockerignore_lets_in_what_pip_install_needs() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: everything out, then what the build needs back in"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    pyproject = (ROOT / "pyproject.toml").read_text()
    needed = {"pyproject.toml", "syncd", "migrations"}  # the package and its force-included migrations
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.MULTILINE)
    assert readme is not None
    needed.add(readme.group(1))
    assert '"migrations" = "syncd/migrations"' in pyproject
    assert needed <= allowed, needed - allowed
    for path in allowed:
        assert (ROOT / path).exists(), path


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        ["hadolint", str(ROOT / "deploy" / "container" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------ with Helm


@dataclass
class Helm:
    """`helm lint` and `helm template` through the helm binary or Helm's Go library (helm_python)."""

    name: str
    lint: Callable[[Path, dict[str, Any]], list[str]]
    render: Callable[[Path, dict[str, Any]], list[dict[str, Any]]]


def _docs(stream: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(stream) if d]


def _helm_binary(helm: str, tmp: Path) -> Helm:
    def values_file(values: dict[str, Any]) -> Path:
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def lint(chart: Path, values: dict[str, Any]) -> list[str]:
        cmd = [helm, "lint", "--strict", str(chart), "-f", str(values_file(values))]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return [] if result.returncode == 0 else [result.stdout + result.stderr]

    def render(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
        cmd = [helm, "template", "rel", str(chart), "--namespace", "ns", "-f", str(values_file(values))]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        return _docs(result.stdout)

    return Helm("helm", lint, render)


def _helm_library(module: Any) -> Helm:
    def lint(chart: Path, values: dict[str, Any]) -> list[str]:
        report = module.lint(str(chart), values, strict=True)
        problems = [m["error"] for m in report.get("messages", []) if m["severity"] >= 2]
        return problems + list(report.get("errors") or [])

    def render(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            out = module.Chart.load(str(chart)).render(values, name="rel", namespace="ns", is_install=True)
        except module.HelmError as e:
            raise RuntimeError(str(e)) from None
        return [
            d for name, text in sorted(out.items()) if not name.endswith("NOTES.txt") for d in _docs(text)
        ]

    return Helm("helm_python", lint, render)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = shutil.which("helm")
    if binary is not None:
        return _helm_binary(binary, tmp_path_factory.mktemp("helm"))
    try:
        import helm_python
    except ImportError:
        pytest.skip(
            "Helm is not available: no `helm` on PATH (not a Debian package) and no helm_python module "
            "(helm-python-sdk, in the dev extras: pip install -e '.[dev]'); helm lint/template checks skipped"
        )
    return _helm_library(helm_python)


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            return dict(doc["spec"]["template"])
        if doc["kind"] == "CronJob":
            return dict(doc["spec"]["jobTemplate"]["spec"]["template"])
    raise AssertionError("neither a Deployment nor a CronJob")


def _needs_files(values: dict[str, Any]) -> bool:
    return bool(values["prometheusRule"]["enabled"] or values["grafanaDashboard"]["enabled"])


def _files_present() -> bool:
    return (CHART / "files" / "alerts.yaml").is_file() and (CHART / "files" / "dashboard.json").is_file()


@pytest.mark.parametrize("path", CI_VALUES, ids=_ci_name)
def test_helm_lint_passes(helm: Helm, path: Path) -> None:
    values = _merge(DEFAULTS, _load(path))
    if _needs_files(values) and not _files_present():
        pytest.skip("files/alerts.yaml or files/dashboard.json is not in the chart yet")
    assert helm.lint(CHART, _load(path)) == []


def test_helm_lint_rejects_values_yaml_without_a_dsn(helm: Helm) -> None:
    problems = "\n".join(helm.lint(CHART, {}))
    assert "/secret/dsn" in problems


@pytest.mark.parametrize("path", CI_VALUES, ids=_ci_name)
def test_helm_template_renders_a_working_pod(helm: Helm, path: Path, tmp_path: Path) -> None:
    ci = _load(path)
    values = _merge(DEFAULTS, ci)
    if _needs_files(values) and not _files_present():
        pytest.skip("files/alerts.yaml or files/dashboard.json is not in the chart yet")
    docs = helm.render(CHART, ci)
    assert sorted(d["kind"] for d in docs) == EXPECTED_KINDS[_ci_name(path)]

    template = _pod_spec(docs)
    pod = template["spec"]
    assert re.fullmatch(r"[0-9a-f]{64}", template["metadata"]["annotations"]["checksum/config"])
    (container,) = pod["containers"]
    once = values["mode"] == "cronjob"
    assert container["args"][:2] == (["run", "--once"] if once else ["run", "--config"])
    assert ("--migrate" in container["args"]) == values["migrate"]

    # Security: non-root, read-only root filesystem with a writable /tmp, no API token.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 (the pod's /tmp, not ours)

    # Probes: liveness never touches dependencies, readiness does; none for a one-shot Job.
    if once:
        assert pod["restartPolicy"] == "Never"
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    else:
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"

    env = {e["name"]: e.get("value", "") for e in container["env"]}
    grace = float(env["SYNCD_DAEMON__SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > grace
    port = int(env["SYNCD_HTTP__LISTEN"].rpartition(":")[2])
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]

    # Secrets: only in the Secret, mounted as files that the *_file keys name.
    configmap = next(d for d in _of_kind(docs, "ConfigMap") if "config.toml" in d["data"])
    assert mounts["/etc/syncd"] == "config"
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    secret_volume = volumes[mounts[SECRET_DIR]]["secret"]
    items = {i["key"]: i["path"] for i in secret_volume["items"]}
    inline = {k: v for k, v in values["secret"].items() if k in SECRET_VALUES and v}
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            assert not [k for k, v in inline.items() if v in text], f"a secret value in the {doc['kind']}"
    if values["secret"]["existingSecret"]:
        assert not _of_kind(docs, "Secret")
        assert secret_volume["secretName"] == values["secret"]["existingSecret"]
    else:
        (secret,) = _of_kind(docs, "Secret")
        assert secret_volume["secretName"] == secret["metadata"]["name"]
        assert set(items) == set(secret["data"])
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded[values["secret"]["keys"]["dsn"]] == values["secret"]["dsn"]

    # And the config loads, from the ConfigMap and the container's environment, as syncd will.
    files = {path: f"secret of {key}" for key, path in items.items()}
    files["dsn"] = "postgresql://syncd:pw@db:5432/syncd"
    webhooks = values["secret"]["webhooks"] and not once
    assert ("webhook-secret" in files) == webhooks
    if webhooks:
        files["webhook-secret"] = "from-the-secret-0123456789"
    env["SYNCD_DAEMON__INSTANCE_ID"] = "syncd-0"
    settings = _load_as_in_the_pod(tmp_path, configmap["data"]["config.toml"], env, files)
    assert settings.http.listen == f"0.0.0.0:{port}"
    assert settings.daemon.shutdown_grace_seconds == grace
    assert settings.database.dsn is not None and not settings.database.embedded
    credential = (
        settings.odoo.password if values["secret"]["odooAuth"] == "password" else settings.odoo.api_key
    )
    assert credential is not None
    assert credential.get_secret_value().startswith("secret of ")
    assert settings.http.webhooks_enabled == webhooks
    if webhooks:
        assert settings.http.webhook_secret is not None
        assert settings.http.webhook_secret.get_secret_value() == "from-the-secret-0123456789"

    if not once:
        (service,) = _of_kind(docs, "Service")
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert service["spec"]["publishNotReadyAddresses"] is True
        (pdb,) = _of_kind(docs, "PodDisruptionBudget")
        assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_a_config_change_rolls_the_pods(helm: Helm) -> None:
    base = _load(CHART / "ci" / "default-values.yaml")

    def checksum(override: dict[str, Any]) -> str:
        docs = helm.render(CHART, _merge(base, override))
        return str(_pod_spec(docs)["metadata"]["annotations"]["checksum/config"])

    first = checksum({})
    assert checksum({"replicaCount": 3}) == first
    assert checksum({"configToml": DEFAULTS["configToml"] + "\n[cdc]\n"}) != first


def test_monitoring_resources_embed_the_shipped_files(helm: Helm) -> None:
    if not _files_present():
        pytest.skip("files/alerts.yaml or files/dashboard.json is not in the chart yet")
    docs = helm.render(CHART, _load(CHART / "ci" / "monitoring-values.yaml"))
    (rule,) = _of_kind(docs, "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts  # verbatim: Prometheus' own {{ $labels }} templates reach it intact
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (monitor,) = _of_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    dashboard = next(d for d in _of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["syncd.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_monitoring_without_the_files_fails_with_a_clear_message(helm: Helm, tmp_path: Path) -> None:
    chart = tmp_path / "syncd"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    with pytest.raises(RuntimeError, match=r"files/(alerts\.yaml|dashboard\.json) is missing"):
        helm.render(chart, _load(CHART / "ci" / "monitoring-values.yaml"))


# ---------------------------------------------------------------------------------- webhooks (Helm)

#: A valid webhook secret (16+ characters of A-Z a-z 0-9 - _ . ~).
WEBHOOK_SECRET = "hunter2-0123456789abcdef"


def _webhook_parts(docs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """The container's env and the Secret volume's items (key -> file name) of a rendered pod."""
    pod = _pod_spec(docs)["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    return env, {i["key"]: i["path"] for i in volume["secret"]["items"]}


def test_webhooks_are_off_by_default(helm: Helm) -> None:
    docs = helm.render(CHART, _load(CHART / "ci" / "default-values.yaml"))
    env, items = _webhook_parts(docs)
    assert "SYNCD_HTTP__WEBHOOK_SECRET_FILE" not in env
    assert "webhook-secret" not in items.values()
    (secret,) = _of_kind(docs, "Secret")
    assert "webhook-secret" not in secret["data"]


def test_webhooks_mount_the_secret_from_the_chart_secret(helm: Helm) -> None:
    docs = helm.render(CHART, _load(CHART / "ci" / "webhooks-values.yaml"))
    env, items = _webhook_parts(docs)
    assert env["SYNCD_HTTP__WEBHOOK_SECRET_FILE"] == f"{SECRET_DIR}/webhook-secret"
    assert items["webhook-secret"] == "webhook-secret"
    (secret,) = _of_kind(docs, "Secret")
    values = _load(CHART / "ci" / "webhooks-values.yaml")["secret"]
    assert base64.b64decode(secret["data"]["webhook-secret"]).decode() == values["webhookSecret"]


def test_webhooks_with_an_existing_secret_use_its_key(helm: Helm) -> None:
    secret = {"existingSecret": "creds", "webhooks": True, "keys": {"webhookSecret": "HOOK"}}
    docs = helm.render(CHART, {"secret": secret})
    assert not _of_kind(docs, "Secret")
    env, items = _webhook_parts(docs)
    assert env["SYNCD_HTTP__WEBHOOK_SECRET_FILE"] == f"{SECRET_DIR}/webhook-secret"
    assert items["HOOK"] == "webhook-secret"


def test_webhooks_are_left_out_of_the_cronjob(helm: Helm) -> None:
    # A `--once` run serves no HTTP: no webhook secret in its pod, nor in the Secret.
    values = _merge(_load(CHART / "ci" / "webhooks-values.yaml"), {"mode": "cronjob"})
    docs = helm.render(CHART, values)
    env, items = _webhook_parts(docs)
    assert "SYNCD_HTTP__WEBHOOK_SECRET_FILE" not in env
    assert "webhook-secret" not in items.values()
    (secret,) = _of_kind(docs, "Secret")
    assert set(secret["data"]) == set(items)


def test_a_webhook_secret_change_rolls_the_pods(helm: Helm) -> None:
    base = _load(CHART / "ci" / "webhooks-values.yaml")

    def checksum(secret: str) -> str:
        docs = helm.render(CHART, _merge(base, {"secret": {"webhookSecret": secret}}))
        return str(_pod_spec(docs)["metadata"]["annotations"]["checksum/secret"])

    assert checksum(WEBHOOK_SECRET) != checksum(WEBHOOK_SECRET + "-rotated")


@pytest.mark.parametrize(
    ("webhook_secret", "message"),
    [
        pytest.param("hunter2", "webhookSecret", id="short"),
        pytest.param("hunter2 0123456789abcdef", "at least 16 characters of A-Z a-z 0-9", id="space"),
        pytest.param("hunter2/0123456789abcdef", "at least 16 characters of A-Z a-z 0-9", id="slash"),
    ],
)
def test_a_bad_webhook_secret_fails_without_showing_it(helm: Helm, webhook_secret: str, message: str) -> None:
    values = _merge(
        _load(CHART / "ci" / "webhooks-values.yaml"), {"secret": {"webhookSecret": webhook_secret}}
    )
    with pytest.raises(RuntimeError) as failure:
        helm.render(CHART, values)
    assert message in str(failure.value)
    assert "hunter2" not in str(failure.value)


def test_helm_rejects_a_webhook_secret_in_the_config_map(helm: Helm) -> None:
    toml = DEFAULTS["configToml"] + '\n[http]\nwebhook_secret = "hunter2-0123456789abcdef"\n'
    values = _merge(_load(CHART / "ci" / "default-values.yaml"), {"configToml": toml})
    with pytest.raises(RuntimeError, match="configToml"):
        helm.render(CHART, values)
