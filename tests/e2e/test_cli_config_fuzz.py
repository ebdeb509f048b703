"""Malformed configuration through the real CLI: exit code 2, one line per problem naming the key (or
the file and line), no traceback, no secret. The generated cases run in-process in
``tests/unit/test_config_fuzz.py``; these are the ones that must also hold end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import clean_env, syncd

pytestmark = pytest.mark.e2e

SECRET = "S3CRET-e2e-77"


@pytest.mark.parametrize(
    ("args", "toml", "env", "expected"),
    [
        pytest.param(
            ["check"],
            b'[odoo]\nurl = "https://erp.example.com"\napi_key = "' + SECRET.encode() + b'"\n[cdc\n',
            {},
            ["not valid TOML", "line 4"],
            id="toml-syntax",
        ),
        pytest.param(
            ["--once"],
            b'[odoo]\napi_key = "' + SECRET.encode() + b'"\n',
            {
                "SYNCD_CDC__INTERVAL_SECONDS": "soon",
                "SYNCD_CDC__MODELS": '[{"model": "res.partner", "fields": 5}]',
            },
            ["cdc.interval_seconds = 'soon'", "cdc.models.0.fields"],
            id="env-overrides",
        ),
        pytest.param(
            ["run"],
            b'[odoo]\nurl = "http://erp\xff.example.com"\n',
            {},
            ["not UTF-8 text (line 2)"],
            id="not-utf8",
        ),
        pytest.param(
            ["migrate"],
            b'[outbox]\nlease_seconds = inf\n[database]\ndsn = "mysql://u:' + SECRET.encode() + b'@h/db"\n',
            {"SYNCD_ODOO__PASSWORD_FILE": "/does/not/exist"},
            [
                "outbox.lease_seconds = inf: Input should be a finite number",
                "database.dsn: expected a postgresql://",
                "odoo.password_file = '/does/not/exist': cannot read",
            ],
            id="inf-and-bad-dsn",
        ),
    ],
)
def test_a_malformed_config_exits_2_naming_the_problem(
    tmp_path: Path, args: list[str], toml: bytes, env: dict[str, str], expected: list[str]
) -> None:
    (tmp_path / "syncd.toml").write_bytes(toml)
    r = syncd(*args, cwd=tmp_path, env=clean_env(**env))
    assert r.code == 2, r.err
    for text in expected:
        assert text in r.err
    assert "Traceback" not in r.err + r.out
    assert SECRET not in r.err + r.out
