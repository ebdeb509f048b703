"""``syncd odoo webhooks install|remove|status`` and the webhook rows of ``syncd check``, as a subprocess
against the fake Odoo (the real Odoo: tests/integration/test_webhook_rules.py, with names of its own)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from syncd.testing import FakeOdoo, FakeOdooServer
from tests.e2e.helpers import clean_env, syncd_async

pytestmark = pytest.mark.e2e

SECRET = "s3cret-never-printed"
MODELS = json.dumps(
    [{"model": "res.partner", "fields": ["name", "email"]}, {"model": "res.partner.category"}]
)


@pytest.fixture
async def odoo() -> AsyncIterator[FakeOdooServer]:
    async with FakeOdooServer(FakeOdoo(demo_data=True)) as server:
        yield server


def _row(out: str, name: str) -> list[str]:
    """RESULT and DETAIL of a ``syncd check`` row."""
    (line,) = [line for line in out.splitlines() if line.startswith(name + " ")]
    return line[len(name) :].split(maxsplit=1)


def _env(dsn: str, odoo: FakeOdooServer, **extra: str | None) -> dict[str, str]:
    """The environment of a syncd run; a key given as None is left out."""
    base = {"SYNCD_DATABASE__DSN": dsn, "SYNCD_ODOO__URL": odoo.url, "SYNCD_ODOO__API_KEY": "admin",
            "SYNCD_CDC__MODELS": MODELS, "SYNCD_HTTP__WEBHOOK_SECRET": SECRET,
            "SYNCD_HTTP__PUBLIC_URL": "https://syncd.example.com/"}  # fmt: skip
    return clean_env(**{k: v for k, v in {**base, **extra}.items() if v is not None})


async def test_install_status_remove(db_dsn: str, conn: asyncpg.Connection, odoo: FakeOdooServer) -> None:
    env = _env(db_dsn, odoo)
    r = await syncd_async("odoo", "webhooks", "status", env=env)
    assert r.code == 1, r.out + r.err
    assert "res.partner: no rule 'syncd: res.partner changed'; no rule 'syncd: res.partner deleted'" in r.out

    r = await syncd_async("odoo", "webhooks", "install", env=env)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == [
        "res.partner: created (3 trigger fields, posting to https://syncd.example.com/odoo/webhook/…)",
        "res.partner.category: created (4 trigger fields, posting to https://syncd.example.com/odoo/webhook/…)",
    ]
    r = await syncd_async("odoo", "webhooks", "install", env=env)
    assert r.out.splitlines() == ["res.partner: unchanged", "res.partner.category: unchanged"]

    await conn.execute(
        "insert into syncd.cdc_state (model, last_hint_at) values ('res.partner', now() - interval '10 minutes')"
    )
    r = await syncd_async("odoo", "webhooks", "status", env=env)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == [
        "res.partner: ok (3 trigger fields, posting to https://syncd.example.com/odoo/webhook/…); last hint 10m ago",
        "res.partner.category: ok (4 trigger fields, posting to https://syncd.example.com/odoo/webhook/…); last hint never",
    ]
    r = await syncd_async("odoo", "webhooks", "status", "--json", env=env)
    models = json.loads(r.out)["models"]
    assert [(m["model"], m["ok"], m["last_hint_at"] is not None) for m in models] == [
        ("res.partner", True, True),
        ("res.partner.category", True, False),
    ]

    r = await syncd_async("check", env=env)
    assert r.code == 0, r.out + r.err
    assert _row(r.out, "webhooks res.partner") == [
        "ok",
        "rules active, posting to https://syncd.example.com/odoo/webhook/…",
    ]

    r = await syncd_async(
        "odoo", "webhooks", "remove", env=_env(db_dsn, odoo, SYNCD_HTTP__WEBHOOK_SECRET=None)
    )
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines() == ["res.partner: removed (2 rules)", "res.partner.category: removed (2 rules)"]
    assert odoo.fake.search("base.automation", [], context={"active_test": False}) == []

    r = await syncd_async("check", env=env)
    assert r.code == 0, r.out + r.err  # a warning only: syncd still polls
    result, detail = _row(r.out, "webhooks res.partner")
    assert result == "warn" and detail.startswith("no rule 'syncd: res.partner changed'")
    for out in (r.out, r.err):
        assert SECRET not in out


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"SYNCD_HTTP__WEBHOOK_SECRET": None}, "http.webhook_secret"),
        ({"SYNCD_HTTP__PUBLIC_URL": None}, "http.public_url"),
    ],
)
async def test_install_without_the_secret_or_the_public_url_exits_2(
    db_dsn: str, odoo: FakeOdooServer, extra: dict[str, str | None], key: str
) -> None:
    env = _env(db_dsn, odoo)
    for name in extra:
        del env[name]
    for command in ("install", "status"):
        r = await syncd_async("odoo", "webhooks", command, env=env)
        assert r.code == 2, r.out + r.err
        assert f"syncd: {key} is not set" in r.err


async def test_install_as_a_user_without_the_rights_exits_1(db_dsn: str, odoo: FakeOdooServer) -> None:
    r = await syncd_async("odoo", "webhooks", "install", env=_env(db_dsn, odoo, SYNCD_ODOO__API_KEY="demo"))
    assert r.code == 1, r.out + r.err
    assert "Role / Administrator" in r.err and SECRET not in r.err
