"""bench.real_odoo finds its Odoo in the ODOO19_* variables that ``up.sh env`` prints, lets the
``--odoo-*`` options override them, and hands syncd subprocesses the matching credentials. No Odoo is
needed (the benchmark's numbers are in bench/README.md)."""

from __future__ import annotations

import pytest

from bench import real_odoo

pytestmark = pytest.mark.unit


def test_the_odoo_comes_from_odoo19_variables_and_options_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ODOO19_URL", "http://127.0.0.1:8169")
    monkeypatch.setenv("ODOO19_DB", "bench")
    monkeypatch.setenv("ODOO19_API_KEY", "k")
    monkeypatch.setenv("ODOO19_PASSWORD", "pw")
    odoo = real_odoo.RealOdoo.from_args(real_odoo.parser().parse_args([]))
    assert (odoo.url, odoo.database, odoo.login, odoo.api_key, odoo.password) == (
        "http://127.0.0.1:8169", "bench", "admin", "k", "pw",
    )  # fmt: skip
    assert odoo.protocols() == ["json2", "jsonrpc"]
    assert odoo.env("json2")["SYNCD_ODOO__API_KEY"] == "k"
    # JSON-RPC logs in with the password: the API key bench.cdc.Syncd would set is blanked.
    assert odoo.env("jsonrpc") == {
        "SYNCD_ODOO__URL": "http://127.0.0.1:8169", "SYNCD_ODOO__DATABASE": "bench", "SYNCD_ODOO__USERNAME": "admin",
        "SYNCD_ODOO__PROTOCOL": "jsonrpc", "SYNCD_ODOO__API_KEY": "", "SYNCD_ODOO__PASSWORD": "pw",
    }  # fmt: skip
    args = real_odoo.parser().parse_args(["--odoo-url", "http://odoo:8069", "--odoo-api-key", "other"])
    assert (args.odoo_url, args.odoo_api_key, args.odoo_db) == ("http://odoo:8069", "other", "bench")
    assert real_odoo.RealOdoo.from_args(args).settings("jsonrpc").protocol == "jsonrpc"


def test_without_an_odoo_it_says_where_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ODOO19_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        real_odoo.main([])
    assert exit_.value.code == 2
    assert "ODOO19_URL" in capsys.readouterr().err
