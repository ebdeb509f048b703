from __future__ import annotations

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
