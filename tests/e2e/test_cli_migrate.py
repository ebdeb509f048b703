from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd import migrate
from syncd.testing.postgres import TestDatabases
from tests.e2e.helpers import clean_env, syncd

pytestmark = pytest.mark.e2e


def test_help_lists_every_command() -> None:
    r = syncd("--help")
    assert r.code == 0
    for command in ("run", "migrate", "check", "status", "outbox", "resync", "demo", "fake-odoo", "--once"):
        assert command in r.out


def test_no_command_is_a_usage_error() -> None:
    assert syncd().code == 2


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "syncd.toml").write_text('[cdc]\ninterval_seconds = "soon"\n')
    r = syncd("migrate", cwd=tmp_path)
    assert r.code == 2
    assert "cdc.interval_seconds = 'soon'" in r.err
    assert "Traceback" not in r.err


def test_unreachable_postgres_exits_3_without_showing_the_password() -> None:
    env = clean_env(SYNCD_DATABASE__DSN="postgresql://syncd:hunter2@127.0.0.1:1/x")
    r = syncd("migrate", "--check", env=env)
    assert r.code == 3
    assert "unreachable" in r.err
    assert "hunter2" not in r.err + r.out


def test_migrate_check_then_migrate_on_a_fresh_database(test_databases: TestDatabases) -> None:
    # a database without the syncd schema: clone the template, then drop the schema
    dsn = test_databases.clone()
    try:
        env = clean_env(SYNCD_DATABASE__DSN=dsn)
        test_databases.execute(dsn, "drop schema syncd cascade")
        r = syncd("migrate", "--check", env=env)
        assert r.code == 1
        assert "0001_initial" in r.out and "run `syncd migrate`" in r.out
        r = syncd("migrate", env=env)
        assert r.code == 0, r.err
        assert "applied 0001_initial" in r.out
        r = syncd("migrate", "--check", env=env)
        assert (r.code, r.out.strip()) == (0, f"schema is current (version {len(migrate.load_migrations())})")
    finally:
        test_databases.drop(dsn)


def test_embedded_postgres_is_used_without_a_dsn_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    (tmp_path / "syncd.toml").write_text(f'[database]\ndata_dir = "{data_dir}"\n')
    first = syncd("migrate", cwd=tmp_path)
    assert first.code == 0, first.err
    assert "applied 0001_initial" in first.out
    assert (data_dir / "PG_VERSION").exists()
    # the server this command started was stopped on exit, and started again with the data kept
    assert not (data_dir / "postmaster.pid").exists()
    second = syncd("migrate", cwd=tmp_path)
    assert second.code == 0, second.err
    assert "nothing to do" in second.out


@pytest.mark.parametrize("args", [["--dry-run"], ["--dry-run", "status"], ["--once", "status"]])
def test_once_and_dry_run_without_their_command_say_what_they_go_with(args: list[str]) -> None:
    r = syncd(*args)
    assert r.code == 2
    assert r.out == ""
    assert "goes with" in r.err or "go with" in r.err
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["outbox", "list"],
        ["outbox", "discard", "1"],
        ["resync", "res.partner"],
    ],
)
def test_reading_commands_without_a_dsn_create_no_embedded_database(tmp_path: Path, args: list[str]) -> None:
    data_dir = tmp_path / "pgdata"
    env = clean_env(SYNCD_DATABASE__DATA_DIR=str(data_dir), SYNCD_CDC__MODELS='[{"model": "res.partner"}]')
    r = syncd(*args, env=env, cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    message = json.loads(r.out)["error"] if "--json" in args else r.err
    assert "no database.dsn" in message and "SYNCD_DATABASE__DSN" in message
    assert str(data_dir) in message
    assert not data_dir.exists()
    assert "Traceback" not in r.err


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["status", "--json"], 3, "PostgreSQL is unreachable"),
        (["odoo", "webhooks", "status", "--json"], 2, "http.webhook_secret is not set"),
    ],
)
def test_json_commands_report_errors_as_json_on_stdout(args: list[str], code: int, says: str) -> None:
    env = clean_env(
        SYNCD_DATABASE__DSN="postgresql://syncd:hunter2@127.0.0.1:1/x",
        SYNCD_CDC__MODELS='[{"model": "res.partner"}]',
    )
    r = syncd(*args, env=env)
    assert r.code == code, r.out + r.err
    error = json.loads(r.out)
    assert error["exit_code"] == code
    assert says in error["error"]
    assert "hunter2" not in r.out + r.err
