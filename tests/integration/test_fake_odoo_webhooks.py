"""The fake Odoo's automation rules post like a real Odoo 19's webhook action (odoo19/webhook-payload.txt):
the body, after the commit only, once per change of a trigger field, and from the direct API too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from syncd.embedded import free_port
from syncd.testing import FakeOdoo, ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    posts: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", posts
    finally:
        await runner.cleanup()


def _rule(fake: FakeOdoo, url: str, *, trigger: str = "on_create_or_write", triggers: tuple[str, ...] = (),
          fields: tuple[str, ...] = ()) -> int:  # fmt: skip
    (model_id,) = fake.search("ir.model", [("model", "=", "res.partner")])

    def ids(names: tuple[str, ...]) -> list[int]:
        return fake.search("ir.model.fields", [("model", "=", "res.partner"), ("name", "in", list(names))])

    action = {"name": "Partner webhook", "model_id": model_id, "state": "webhook", "webhook_url": url,
              "webhook_field_ids": [(6, 0, ids(fields))]}  # fmt: skip
    (rule,) = fake.create("base.automation", [{"name": "rule", "model_id": model_id, "trigger": trigger,
                                               "trigger_field_ids": [(6, 0, ids(triggers))],
                                               "action_server_ids": [(0, 0, action)]}])  # fmt: skip
    return rule


async def test_the_body_is_odoos(received: tuple[str, list[dict[str, Any]]]) -> None:
    url, posts = received
    fake = FakeOdoo(clock=ManualClock(datetime(2026, 12, 7, 19, 9, 9, 997843)))
    _rule(fake, url, triggers=("name", "email"), fields=("name", "email", "write_date", "country_id"))
    (rid,) = fake.create(
        "res.partner", [{"name": "Webhook Test Partner", "email": "hook@example.com", "country_id": 20}]
    )
    await fake.webhooks.drain()
    action_id = fake.search("ir.actions.server", [("name", "=", "Partner webhook")])[0]
    assert posts == [{"_action": f"Partner webhook(#{action_id})", "_id": rid, "_model": "res.partner",
                      "country_id": 20, "email": "hook@example.com", "id": rid, "name": "Webhook Test Partner",
                      "write_date": "2026-12-07 19:09:09.997843"}]  # fmt: skip
    assert [p.body.decode()[:20] for p in fake.webhooks.sent] == [
        '{"_action": "Partner'
    ]  # sort_keys, Odoo's spacing


async def test_once_per_change_of_a_trigger_field_and_nothing_on_rollback(
    received: tuple[str, list[dict[str, Any]]],
) -> None:
    url, posts = received
    fake = FakeOdoo()
    _rule(fake, url, triggers=("email", "active"))
    (rid,) = fake.create("res.partner", [{"name": "A", "email": "a@example.com"}])
    fake.write("res.partner", [rid], {"phone": "1"})
    fake.write("res.partner", [rid], {"email": "b@example.com"})
    fake.archive("res.partner", [rid])
    txn = fake.begin()
    txn.write("res.partner", [rid], {"email": "c@example.com"})
    txn.rollback()
    await fake.webhooks.drain()
    assert [p["_id"] for p in posts] == [rid, rid, rid]  # create, email, archive
    assert all(set(p) == {"_action", "_id", "_model"} for p in posts)


async def test_without_trigger_fields_every_change_posts_and_unlink_has_its_own_rule(
    received: tuple[str, list[dict[str, Any]]],
) -> None:
    url, posts = received
    fake = FakeOdoo()
    _rule(fake, url)
    _rule(fake, url, trigger="on_unlink")
    (rid,) = fake.create("res.partner", [{"name": "A"}])
    fake.write("res.partner", [rid], {"phone": "1"})
    fake.unlink("res.partner", [rid])
    await fake.webhooks.drain()
    assert [p["_id"] for p in posts] == [rid, rid, rid]
    assert posts[-1]["_action"] != posts[0]["_action"]  # the on_unlink rule's own action


async def test_an_archived_rule_posts_nothing_and_a_dead_url_is_only_logged(
    received: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    url, posts = received
    fake = FakeOdoo()
    rule = _rule(fake, url)
    fake.write("base.automation", [rule], {"active": False})
    fake.create("res.partner", [{"name": "A"}])
    dead = f"http://127.0.0.1:{free_port()}/odoo/webhook/s3cret"
    _rule(fake, dead)
    with caplog.at_level(logging.WARNING, "syncd.testing"):
        fake.create("res.partner", [{"name": "B"}])
        await fake.webhooks.drain()
    assert posts == []
    assert [p.error for p in fake.webhooks.sent] == ["ClientConnectorError"]
    assert "webhook call failed" in caplog.text and "s3cret" not in caplog.text
