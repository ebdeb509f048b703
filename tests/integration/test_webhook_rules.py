"""syncd's webhook rules (syncd.odoo.webhooks) against the fake and the real Odoo 19: install is
idempotent, the rules post once per change of a mirrored field (and on archive and delete), status
names what is wrong without showing the secret, remove leaves nothing behind.

Each test names its rules with its own prefix (``unique``), so runs sharing the real Odoo never touch
each other's rules, and removes them at the end: a rule left behind would post to a dead URL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from syncd.cdc.schema import select_fields
from syncd.config import ModelSettings, OdooSettings, webhook_path
from syncd.errors import WebhookSetupError
from syncd.odoo import OdooClient
from syncd.odoo.webhooks import Change, WebhookRules, redact_url
from syncd.testing import FakeOdoo, FakeOdooServer
from tests.odoo_targets import OdooTarget, unique

pytestmark = pytest.mark.integration

SECRET = "s3cret-do-not-print"


def webhook_url(base: str, secret: str) -> str:
    """What HttpSettings.webhook_url() builds from ``http.public_url`` and the secret."""
    return base + webhook_path(secret)


PARTNER = ModelSettings(model="res.partner", fields=["name", "email"])
CATEGORY = ModelSettings(model="res.partner.category", fields=["name"])


@dataclass
class Listener:
    """A local HTTP server standing in for syncd's endpoint: every POST it received."""

    base: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def for_record(self, rid: int) -> list[dict[str, Any]]:
        return [body for _path, body in self.posts if body.get("_id") == rid]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    box: list[Listener] = []

    async def receive(request: web.Request) -> web.Response:
        box[0].posts.append((request.path, await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    box.append(Listener(f"http://127.0.0.1:{runner.addresses[0][1]}"))
    try:
        yield box[0]
    finally:
        await runner.cleanup()


@dataclass
class Rules:
    """syncd's rules under a prefix of this test only, over an admin client of ``odoo``."""

    odoo: OdooTarget
    client: OdooClient
    prefix: str
    url: str

    def rules(self, models: Sequence[ModelSettings] = (PARTNER,), url: str | None = None) -> WebhookRules:
        return WebhookRules(
            self.client, models, url=url or self.url, select_fields=select_fields, prefix=self.prefix
        )

    async def found(self, model: str = "base.automation") -> list[dict[str, Any]]:
        fields = ["name", "active"] if model == "base.automation" else ["name"]
        domain = [("name", "=like", f"{self.prefix}: %")]
        return await self.client.search_read(model, domain, fields, context={"active_test": False})


@pytest.fixture
async def hooks(odoo_target: OdooTarget, listener: Listener) -> AsyncIterator[Rules]:
    async with odoo_target.client() as client:
        prefix = unique("syncd-test")
        rules = Rules(odoo_target, client, prefix, webhook_url(listener.base, SECRET))
        try:
            yield rules
        finally:
            await rules.rules([PARTNER, CATEGORY]).remove()
            assert await rules.found() == [] and await rules.found("ir.actions.server") == []


async def _settle(odoo: OdooTarget) -> None:
    """Over HTTP both Odoos post before answering; a moment more for the listener to record it."""
    await asyncio.sleep(0.3 if odoo.real else 0.05)


async def test_install_twice_keeps_one_rule_per_trigger_and_remove_leaves_nothing(hooks: Rules) -> None:
    models = [PARTNER, CATEGORY]
    first = await hooks.rules(models).install()
    assert [(c.model, c.outcome) for c in first] == [
        ("res.partner", "created"),
        ("res.partner.category", "created"),
    ]
    assert SECRET not in repr(first) and "/odoo/webhook/…" in first[0].details[0]
    again = await hooks.rules(models).install()
    assert [(c.model, c.outcome) for c in again] == [
        ("res.partner", "unchanged"),
        ("res.partner.category", "unchanged"),
    ]

    rules = {r["name"]: r for r in await hooks.found()}
    p = hooks.prefix
    assert sorted(rules) == sorted(
        f"{p}: {m} {k}" for m in ("res.partner", "res.partner.category") for k in ("changed", "deleted")
    )
    changed = (await hooks.client.read("base.automation", [rules[f"{p}: res.partner changed"]["id"]],
                                       ["trigger", "trigger_field_ids", "action_server_ids", "active"]))[0]  # fmt: skip
    assert changed["trigger"] == "on_create_or_write" and changed["active"]
    names = {
        f["name"] for f in await hooks.client.read("ir.model.fields", changed["trigger_field_ids"], ["name"])
    }
    assert names == {"name", "email", "active"}  # mirrored fields plus archiving; never write_date
    (action,) = await hooks.client.read("ir.actions.server", changed["action_server_ids"],
                                        ["name", "state", "webhook_url", "webhook_field_ids", "usage"])  # fmt: skip
    assert action["name"] == f"{p}: res.partner webhook (changed)"
    assert (action["state"], action["webhook_url"], action["webhook_field_ids"]) == ("webhook", hooks.url, [])
    assert action["usage"] == "base_automation"
    deleted = (await hooks.client.read("base.automation", [rules[f"{p}: res.partner deleted"]["id"]],
                                       ["trigger", "trigger_field_ids", "action_server_ids"]))[0]  # fmt: skip
    assert deleted["trigger"] == "on_unlink" and deleted["trigger_field_ids"] == []
    assert (
        len(deleted["action_server_ids"]) == 1
        and deleted["action_server_ids"] != changed["action_server_ids"]
    )
    assert len(await hooks.found("ir.actions.server")) == 4

    statuses = await hooks.rules(models).status()
    assert [(s.model, s.ok, s.problems()) for s in statuses] == [
        ("res.partner", True, []),
        ("res.partner.category", True, []),
    ]
    assert statuses[0].trigger_fields == ("active", "email", "name")

    removed = await hooks.rules(models).remove()
    assert [(c.model, c.outcome) for c in removed] == [
        ("res.partner", "removed"),
        ("res.partner.category", "removed"),
    ]
    assert await hooks.found() == [] and await hooks.found("ir.actions.server") == []
    assert [(c.model, c.outcome) for c in await hooks.rules(models).remove()] == [
        ("res.partner", "absent"), ("res.partner.category", "absent")
    ]  # fmt: skip


async def test_a_hint_per_create_change_of_a_mirrored_field_archive_and_delete(
    hooks: Rules, listener: Listener
) -> None:
    await hooks.rules().install()
    client, p = hooks.client, hooks.prefix
    (rid,) = await client.create("res.partner", [{"name": unique("hooked"), "email": "a@example.com"}])
    seen: list[str] = []

    async def step(expected: list[str]) -> None:
        await _settle(hooks.odoo)
        bodies = listener.for_record(rid)[len(seen) :]
        seen.extend(b["_action"] for b in bodies)
        assert [b["_action"].rsplit("(#", 1)[0] for b in bodies] == expected
        assert all(set(b) == {"_action", "_id", "_model"} and b["_model"] == "res.partner" for b in bodies)

    try:
        await step([f"{p}: res.partner webhook (changed)"])  # once, not 13 times
        await client.write("res.partner", [rid], {"phone": "+1 555 0100"})  # not mirrored
        await step([])
        await client.write("res.partner", [rid], {"email": "b@example.com"})
        await step([f"{p}: res.partner webhook (changed)"])
        await client.write("res.partner", [rid], {"email": "b@example.com"})  # same value: no change
        await step([])
        await client.call("res.partner", "action_archive", [rid])
        await step([f"{p}: res.partner webhook (changed)"])
        await client.unlink("res.partner", [rid])
        await step([f"{p}: res.partner webhook (deleted)"])
        assert all(path == f"/odoo/webhook/{SECRET}" for path, b in listener.posts if b["_id"] == rid)
    finally:
        left = await client.search("res.partner", [("id", "=", rid)], context={"active_test": False})
        if left:
            await client.unlink("res.partner", left)


async def test_status_names_what_is_wrong_and_install_repairs_it(hooks: Rules, listener: Listener) -> None:
    await hooks.rules().install()
    client, p = hooks.client, hooks.prefix
    rules = {r["name"]: r["id"] for r in await hooks.found()}
    await client.write("base.automation", [rules[f"{p}: res.partner deleted"]], {"active": False})
    changed = rules[f"{p}: res.partner changed"]
    (rule,) = await client.read("base.automation", [changed], ["action_server_ids", "trigger_field_ids"])
    email = await client.search("ir.model.fields", [("model", "=", "res.partner"), ("name", "=", "email")])
    phone = await client.search("ir.model.fields", [("model", "=", "res.partner"), ("name", "=", "phone")])
    kept = [f for f in rule["trigger_field_ids"] if f not in email] + phone
    await client.write("base.automation", [changed], {"trigger_field_ids": [(6, 0, kept)]})
    await client.write(
        "ir.actions.server",
        rule["action_server_ids"],
        {"webhook_url": webhook_url(listener.base, "other-secret-xyz")},
    )

    (status,) = await hooks.rules().status()
    problems = status.problems()
    assert not status.ok
    assert f"rule '{p}: res.partner deleted' is archived" in problems
    assert (
        f"rule '{p}: res.partner changed' posts to {listener.base}/odoo/webhook/… with another secret"
        in problems
    )
    assert f"rule '{p}: res.partner changed' trigger fields differ (missing email; extra phone)" in problems
    shown = repr(status) + json.dumps(status.as_json())
    assert SECRET not in shown and "other-secret-xyz" not in shown

    elsewhere = webhook_url("https://elsewhere.example.com", SECRET)
    (moved,) = await hooks.rules(url=elsewhere).status()
    assert (
        f"rule '{p}: res.partner changed' posts to {listener.base}/odoo/webhook/… instead of https://elsewhere.example.com/odoo/webhook/…"
        in moved.problems()
    )

    (change,) = await hooks.rules().install()
    assert change.outcome == "updated"
    assert set(change.details) == {"deleted rule reactivated", "trigger fields", "changed URL"}
    (status,) = await hooks.rules().status()
    assert status.ok, status.problems()
    assert len(await hooks.found()) == 2  # repaired in place, nothing created twice

    await client.unlink("base.automation", [rules[f"{p}: res.partner deleted"]])
    (status,) = await hooks.rules().status()
    assert status.problems() == [f"no rule '{p}: res.partner deleted'"]


async def test_install_deletes_the_rules_of_a_model_no_longer_configured(hooks: Rules) -> None:
    await hooks.rules([PARTNER, CATEGORY]).install()
    statuses = await hooks.rules([PARTNER]).status()
    assert [(s.model, s.configured, s.ok) for s in statuses] == [
        ("res.partner", True, True),
        ("res.partner.category", False, False),
    ]
    changes = await hooks.rules([PARTNER]).install()
    assert changes == [
        Change("res.partner", "unchanged"),
        Change("res.partner.category", "removed", ("2 rules", "not in [[cdc.models]]")),
    ]
    assert {r["name"] for r in await hooks.found()} == {
        f"{hooks.prefix}: res.partner changed",
        f"{hooks.prefix}: res.partner deleted",
    }


async def test_every_stored_field_triggers_with_fields_star(hooks: Rules) -> None:
    everything = ModelSettings(model="res.partner.category")
    await hooks.rules([everything]).install()
    (status,) = await hooks.rules([everything]).status()
    fields = await hooks.client.fields_get("res.partner.category", attributes=["type", "store"])
    expected = set(select_fields(everything, fields)) - {
        "write_date",
        "write_uid",
        "create_date",
        "create_uid",
    }
    assert set(status.trigger_fields) == expected and "active" in expected and "name" in expected


# ---------------------------------------------------------------------------------- fake Odoo only


@pytest.fixture
async def fake_client() -> AsyncIterator[tuple[FakeOdoo, OdooClient]]:
    fake = FakeOdoo()
    async with FakeOdooServer(fake) as server, OdooClient(_settings(server.url)) as client:
        yield fake, client


def _settings(url: str, key: str = "admin") -> OdooSettings:
    from pydantic import SecretStr

    return OdooSettings(url=url, api_key=SecretStr(key), protocol="json2", retries=0)


def _rules(client: OdooClient) -> WebhookRules:
    return WebhookRules(
        client, [PARTNER], url=webhook_url("http://127.0.0.1:9", SECRET), select_fields=select_fields
    )


async def test_without_base_automation_the_error_says_which_app_to_install() -> None:
    async with (
        FakeOdooServer(FakeOdoo(base_automation=False)) as server,
        OdooClient(_settings(server.url)) as client,
    ):
        for command in ("install", "status", "remove"):
            with pytest.raises(
                WebhookSetupError, match=r"install the Automation Rules app \(base_automation\)"
            ):
                await getattr(_rules(client), command)()


async def test_an_odoo_without_webhook_actions_is_told_to_poll(
    fake_client: tuple[FakeOdoo, OdooClient],
) -> None:
    fake, client = fake_client
    spec = fake.store.spec("ir.actions.server")
    state = spec.fields["state"]
    spec.fields["state"] = dataclasses.replace(
        state, selection=[s for s in state.selection or () if s[0] != "webhook"]
    )
    with pytest.raises(WebhookSetupError, match=r"webhooks need Odoo 17\+; syncd polls only"):
        await _rules(client).install()


async def test_a_user_without_the_rights_is_told_which_group(
    fake_client: tuple[FakeOdoo, OdooClient],
) -> None:
    _fake, admin = fake_client
    url = str(admin._settings.url)
    async with OdooClient(_settings(url, key="demo")) as client:
        with pytest.raises(WebhookSetupError, match=r"Role / Administrator") as info:
            await _rules(client).install()
    assert SECRET not in str(info.value)


async def test_duplicates_are_deleted_by_install(fake_client: tuple[FakeOdoo, OdooClient]) -> None:
    fake, client = fake_client
    await _rules(client).install()
    (model_id,) = fake.search("ir.model", [("model", "=", "res.partner")])
    fake.create(
        "base.automation",
        [{"name": "syncd: res.partner changed", "model_id": model_id, "trigger": "on_write"}],
    )
    (status,) = await _rules(client).status()
    assert "2 rules named 'syncd: res.partner changed'" in status.problems()
    (change,) = await _rules(client).install()
    assert change.details == ("1 duplicate changed rules deleted",)
    assert len(fake.search("base.automation", [], context={"active_test": False})) == 2


def test_urls_never_show_the_secret() -> None:
    url = webhook_url("https://syncd.example.com/base", SECRET)
    assert url == f"https://syncd.example.com/base/odoo/webhook/{SECRET}"
    assert redact_url(url) == "https://syncd.example.com/base/odoo/webhook/…"
    assert (
        redact_url("https://user:pw@other.example.com:8443/hook?token=x")
        == "https://other.example.com:8443/…"
    )
    assert redact_url("http://[::1]:9000") == "http://[::1]:9000"
