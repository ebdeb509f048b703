"""bench.bidirectional_speed finds its Odoo as bench.real_odoo does (``ODOO19_*``, ``--odoo-*``),
needs none for the trigger section alone, and builds a writable and a plain mirror table of the same
columns without an Odoo. No Odoo or PostgreSQL is needed (the numbers are in bench/README.md)."""

from __future__ import annotations

import pytest

from bench import bidirectional_speed as bench

pytestmark = pytest.mark.unit


def test_options_and_odoo19_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODOO19_URL", "http://127.0.0.1:8169")
    monkeypatch.setenv("ODOO19_API_KEY", "k")
    args = bench.parser().parse_args([])
    assert (args.odoo_url, args.odoo_api_key, args.sections) == (
        "http://127.0.0.1:8169", "k", ["base", "mass", "trigger"],
    )  # fmt: skip
    assert (args.events, args.mass_rows, args.trigger_rows, args.batch_sizes, args.fake) == (
        2000, 5000, 10000, [100], True,
    )  # fmt: skip
    args = bench.parser().parse_args(["--sections", "trigger", "--no-fake", "--batch-sizes", "50", "500"])
    assert (args.sections, args.fake, args.batch_sizes) == (["trigger"], False, [50, 500])


def test_the_odoo_sections_say_where_to_get_an_odoo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ODOO19_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--sections", "base"])
    assert exit_.value.code == 2
    assert "--sections trigger" in capsys.readouterr().err


def test_the_trigger_tables_differ_only_in_being_writable() -> None:
    tables = bench.trigger_tables()
    plain, writable = tables["plain"], tables["writable"]
    assert (plain.writable, writable.writable) == (False, True)
    assert plain.columns == writable.columns
    assert [c.field for c in writable.columns] == bench.FIELDS
    assert dict(writable.locked)["write_date"] == "Odoo sets it on every write"
