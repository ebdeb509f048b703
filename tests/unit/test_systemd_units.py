"""deploy/systemd: the units keep their contract with the daemon, and systemd-analyze accepts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from syncd.config import DaemonSettings
from syncd.sdnotify import SystemdNotifier

pytestmark = pytest.mark.unit

UNITS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = ("syncd.service", "syncd-once.service", "syncd-once.timer")
INSTALLED_PATH = "/usr/local/bin/syncd"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections → key → values (a key may repeat, as Environment= and LoadCredential= do)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number}: keep unit lines unwrapped"
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"line {number}: not KEY=value inside a section: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def load(name: str) -> Unit:
    return parse_unit((UNITS_DIR / name).read_text(encoding="utf-8"))


def value(unit: Unit, section: str, key: str) -> str:
    """The effective (last) value of a key; fails when absent."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|hr)?")
_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, None: 1}


def seconds(span: str) -> float:
    """A systemd time span ("45s", "1min 30s", "30") in seconds."""
    parts = _SPAN.findall(span.replace(" ", ""))
    assert parts, f"not a time span: {span!r}"
    assert "".join(n + u for n, u in parts) == span.replace(" ", ""), f"not a time span: {span!r}"
    return sum(float(n) * _SECONDS[u or None] for n, u in parts)


# The sandbox both services must carry (key → exact value).
HARDENING = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "StateDirectory": "syncd",
    "UMask": "0077",
}


def test_the_daemon_unit_keeps_its_contract_with_syncd() -> None:
    unit = load("syncd.service")
    service = unit["Service"]
    assert value(unit, "Service", "Type") == "notify"
    assert value(unit, "Service", "NotifyAccess") == "main"
    exec_start = value(unit, "Service", "ExecStart").split()
    assert exec_start[:2] == [INSTALLED_PATH, "run"]
    assert "--once" not in exec_start
    assert exec_start[exec_start.index("--config") + 1] == "/etc/syncd/config.toml"
    assert "-/etc/syncd/syncd.env" in service["EnvironmentFile"]
    assert value(unit, "Service", "Restart") in ("always", "on-failure")
    assert "2" in value(unit, "Service", "RestartPreventExitStatus").split()  # bad config: no loop
    assert "3" not in value(unit, "Service", "RestartPreventExitStatus").split()  # unreachable: retry
    assert value(unit, "Service", "KillSignal") == "SIGTERM"
    # The grace period must run out before systemd's SIGKILL does.
    grace = DaemonSettings().shutdown_grace_seconds
    assert seconds(value(unit, "Service", "TimeoutStopSec")) > grace
    # The notifier pings at half of WatchdogSec, which systemd passes as WATCHDOG_USEC.
    watchdog = seconds(value(unit, "Service", "WatchdogSec"))
    assert watchdog > 0
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": str(int(watchdog * 1_000_000))}
    assert SystemdNotifier.from_env(env).watchdog_interval == watchdog / 2
    assert value(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_daemon_and_the_timer_pair_exclude_each_other() -> None:
    conflicts = " ".join(load("syncd.service")["Unit"]["Conflicts"]).split()
    assert {"syncd-once.timer", "syncd-once.service"} <= set(conflicts)


def test_the_oneshot_runs_once_with_the_same_secrets_and_sandbox() -> None:
    daemon, once = load("syncd.service"), load("syncd-once.service")
    assert value(once, "Service", "Type") == "oneshot"
    exec_start = value(once, "Service", "ExecStart").split()
    assert exec_start[:3] == [INSTALLED_PATH, "run", "--once"]
    assert exec_start[exec_start.index("--config") + 1] == "/etc/syncd/config.toml"
    assert once["Service"]["EnvironmentFile"] == daemon["Service"]["EnvironmentFile"]
    assert "Install" not in once  # started by the timer only
    assert seconds(value(once, "Service", "TimeoutStartSec")) > 0  # a hung run must not stall the timer
    for key, expected in HARDENING.items():
        assert value(daemon, "Service", key) == expected, key
        assert value(once, "Service", key) == expected, key
    sandbox = {k: v for k, v in daemon["Service"].items() if k.startswith(("Protect", "Restrict", "Private"))}
    assert {k: once["Service"].get(k) for k in sandbox} == sandbox


def test_the_timer_triggers_the_oneshot_without_overlapping_runs() -> None:
    timer = load("syncd-once.timer")
    assert timer["Timer"].get("Unit", ["syncd-once.service"]) == ["syncd-once.service"]
    assert seconds(value(timer, "Timer", "OnBootSec")) > 0
    # Counted from the end of the previous run, so a slow run never overlaps the next one.
    assert seconds(value(timer, "Timer", "OnUnitInactiveSec")) > 0
    assert "Persistent" not in timer["Timer"]  # only meaningful with OnCalendar=
    assert value(timer, "Install", "WantedBy") == "timers.target"


def test_the_env_example_names_real_config_keys() -> None:
    """Every SYNCD_* name in the example and the units overrides a key that exists: a misspelt one
    would make load_config reject the whole configuration at start-up (exit 2)."""
    from syncd.config import Settings

    text = (UNITS_DIR / "syncd.env.example").read_text(encoding="utf-8")
    names = re.findall(r"^#?(SYNCD_[A-Z_]+)=", text, re.MULTILINE)
    assert {"SYNCD_ODOO__API_KEY", "SYNCD_DATABASE__DSN"} <= set(names)
    for unit_name in ("syncd.service", "syncd-once.service"):
        unit_text = (UNITS_DIR / unit_name).read_text(encoding="utf-8")
        names += re.findall(r"\b(SYNCD_[A-Z_]+)=", unit_text)
    for name in names:
        section, _, key = name.removeprefix("SYNCD_").lower().partition("__")
        assert key in type(getattr(Settings(), section)).model_fields, name


# ------------------------------------------------------------------------------- systemd-analyze

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def _copy_units(target: Path, *, extra: dict[str, str] | None = None) -> list[Path]:
    """The units with ExecStart= pointing at the syncd really installed here, which verify checks."""
    syncd = shutil.which("syncd")
    if syncd is None:
        pytest.skip("the syncd executable is not on PATH")
    paths = []
    for name in UNITS:
        text = (UNITS_DIR / name).read_text(encoding="utf-8").replace(INSTALLED_PATH, syncd)
        text += (extra or {}).get(name, "")
        path = target / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _verify(paths: list[Path]) -> tuple[int, list[str]]:
    """Exit status of `systemd-analyze verify`, and the lines of its output about our units.

    verify also loads the units ours depend on (network-online.target, …) and, in a container,
    may print complaints about those or about the host: not ours to fix. Only lines naming one of
    our files count. --recursive-errors=no (systemd ≥ 250) keeps such complaints out of the exit
    status too; without the option, the exit status is still asserted below.
    """
    assert SYSTEMD_ANALYZE is not None
    help_text = subprocess.run([SYSTEMD_ANALYZE, "--help"], capture_output=True, text=True).stdout
    options = ["--recursive-errors=no"] if "--recursive-errors" in help_text else []
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *options, *map(str, paths)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0"},
    )  # fmt: skip
    ours = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if any(p.name in line or str(p.parent) in line for p in paths)
    ]
    return proc.returncode, ours


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    returncode, complaints = _verify(_copy_units(tmp_path))
    assert complaints == []
    assert returncode == 0


@needs_systemd_analyze
def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The filter above is not blind: a misspelt key in any of our units is reported."""
    extra = {"syncd.service": "ProtectSytem=strict\n", "syncd-once.timer": "OnUnitInactivSec=5min\n"}
    _, complaints = _verify(_copy_units(tmp_path, extra=extra))
    assert any("syncd.service" in c and "ProtectSytem" in c for c in complaints), complaints
    assert any("syncd-once.timer" in c and "OnUnitInactivSec" in c for c in complaints), complaints


@needs_systemd_analyze
def test_systemd_analyze_security_rates_the_sandbox_ok(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    help_text = subprocess.run([SYSTEMD_ANALYZE, "--help"], capture_output=True, text=True).stdout
    if "--offline" not in help_text:
        pytest.skip("systemd-analyze security --offline needs systemd ≥ 250")
    for path in _copy_units(tmp_path)[:2]:
        proc = subprocess.run(
            [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(path)],
            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0"},
        )  # fmt: skip
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
        assert match, proc.stdout[-2000:] + proc.stderr
        # 0 is a fully locked-down unit, 10 an unprotected one; these score 1.6 on systemd 252.
        assert float(match.group(1)) <= 2.5, path.name
