"""Webhooks of the fake Odoo: ``ir.model``, ``ir.model.fields``, ``ir.actions.server``, ``base.automation``.

The four models carry the fields (names, types, selection values, access groups) of a real Odoo 19 with
the Automation Rules app, as far as syncd's rules use them. ``ir.model`` and ``ir.model.fields`` describe
the fake's own models (:func:`register`, kept up to date by ``FakeOdoo.declare_model``).

After a transaction commits, every active rule whose trigger matches posts like Odoo's "Send Webhook
Notification" action (``odoo-wire``/``webhook-payload.txt``): ``json.dumps({"_action": "<action
name>(#<id>)", "_id": <record id>, "_model": <model>, **read(webhook_field_ids, load=None)},
sort_keys=True, default=str)`` with ``Content-Type: application/json``, timeout 1 s, no retry, a
failure only logged. Over HTTP the posts go out before the call is answered, as Odoo posts from the
request's thread after the commit; calls of the direct API post from a task (or a thread) instead.

What the fake decides from the committed change rather than from Odoo's calls, and so does differently:

* ``on_create_or_write``/``on_write`` fire when a trigger field's value differs after the commit, or,
  without trigger fields, when the record changed at all: **once per record and transaction**. A real
  Odoo re-runs a rule without trigger fields on its internal writes (13 posts for one partner create).
* ``on_unlink`` fires for every record the transaction deleted, cascaded deletions too (Odoo: only
  records whose ``unlink()`` ran); the body is read from the record as it was.
* ``filter_domain``/``filter_pre_domain`` and the triggers other than create/write/archive/unlink are
  stored but never fire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from syncd.testing import orm
from syncd.testing.fields import FieldSpec, ModelSpec
from syncd.testing.store import Store, Transaction, View

F = FieldSpec
log = logging.getLogger("syncd.testing")

ADMIN_GROUP = "Role / Administrator"  # base.group_system in Odoo 19
ACCESS_RIGHTS = "Access Rights"  # base.group_erp_manager
#: When :func:`register` says the fake's models were "installed".
INSTALLED_AT = datetime(2026, 1, 1, 0, 0, 0)

TRIGGERS = [
    ("on_stage_set", "Stage is set to"), ("on_user_set", "User is set"), ("on_tag_set", "Tag is added"),
    ("on_state_set", "State is set to"), ("on_priority_set", "Priority is set to"),
    ("on_archive", "On archived"), ("on_unarchive", "On unarchived"), ("on_create", "On create"),
    ("on_create_or_write", "On create and edit"), ("on_write", "On update"), ("on_unlink", "On deletion"),
    ("on_change", "On UI change"), ("on_time", "Based on date field"),
    ("on_time_created", "After creation"), ("on_time_updated", "After last update"),
    ("on_message_received", "On incoming message"), ("on_message_sent", "On outgoing message"),
    ("on_webhook", "On webhook"),
]  # fmt: skip
STATES = [
    ("object_write", "Update Record"), ("object_create", "Create Record"), ("object_copy", "Duplicate Record"),
    ("next_activity", "Create Activity"), ("mail_post", "Send Email"), ("sms", "Send SMS"),
    ("followers", "Add Followers"), ("remove_followers", "Remove Followers"), ("code", "Execute Code"),
    ("webhook", "Send Webhook Notification"), ("multi", "Multi Actions"),
]  # fmt: skip
USAGES = [
    ("ir_actions_server", "Server Action"), ("ir_cron", "Scheduled Action"), ("base_automation", "Automation Rule")
]  # fmt: skip
FIELD_TYPES = sorted(
    {
        "binary", "boolean", "char", "date", "datetime", "float", "html", "integer", "json", "many2many",
        "many2one", "many2one_reference", "monetary", "one2many", "properties", "properties_definition",
        "reference", "selection", "text",
    }
)  # fmt: skip


def _model_name(view: View, _rid: int, row: Mapping[str, Any]) -> str | None:
    model = view.get("ir.model", row["model_id"]) if row.get("model_id") else None
    return model.get("model") if model else None


def ir_model() -> ModelSpec:
    return ModelSpec(
        "ir.model",
        "Models",
        order="model",
        access_group=ACCESS_RIGHTS,
        fields={
            "name": F("char", string="Model Description", required=True),
            "model": F("char", string="Model", required=True),
        },
    )


def ir_model_fields() -> ModelSpec:
    return ModelSpec(
        "ir.model.fields",
        "Fields",
        order="name, id",
        access_group=ACCESS_RIGHTS,
        fields={
            "name": F("char", string="Field Name", required=True),
            "model": F("char", string="Model Name", required=True),
            "model_id": F("many2one", string="Model", relation="ir.model", required=True, ondelete="cascade"),
            "field_description": F("char", string="Field Label"),
            "ttype": F("selection", string="Field Type", required=True, selection=[(t, t) for t in FIELD_TYPES]),
            "relation": F("char", string="Related Model"),
            "store": F("boolean", string="Stored", default=True),
        },
    )  # fmt: skip


def ir_actions_server(*, base_automation: bool) -> ModelSpec:
    fields = {
        "name": F("char", string="Action Name", required=True),
        "type": F("char", string="Action Type", required=True, default="ir.actions.server"),
        "usage": F("selection", string="Usage", required=True, selection=USAGES, default="ir_actions_server"),
        "state": F("selection", string="Type", required=True, selection=STATES, default="object_write"),
        "model_id": F("many2one", string="Model", relation="ir.model", required=True, ondelete="cascade"),
        "model_name": F("char", string="Model Name", readonly=True, store=False, compute=_model_name),
        "webhook_url": F("char", string="Webhook URL"),
        "webhook_field_ids": F(
            "many2many",
            string="Webhook Fields",
            relation="ir.model.fields",
            relation_table="ir_act_server_webhook_field_rel",
            column2="field_id",
        ),
    }
    if base_automation:
        fields["base_automation_id"] = F(
            "many2one", string="Automation Rule", relation="base.automation", ondelete="cascade"
        )
    return ModelSpec(
        "ir.actions.server", "Server Action", order="name, id", access_group=ADMIN_GROUP, fields=fields
    )


def base_automation() -> ModelSpec:
    return ModelSpec(
        "base.automation",
        "Automation Rule",
        order="id",
        access_group=ADMIN_GROUP,
        fields={
            "name": F("char", string="Automation Rule Name", required=True),
            "model_id": F("many2one", string="Model", relation="ir.model", required=True, ondelete="cascade"),
            "model_name": F("char", string="Model Name", readonly=True, store=False, compute=_model_name),
            "active": F("boolean", string="Active", default=True),
            "trigger": F("selection", string="Trigger", required=True, selection=TRIGGERS),
            "trigger_field_ids": F(
                "many2many",
                string="Trigger Fields",
                relation="ir.model.fields",
                relation_table="base_automation_ir_model_fields_rel",
                column2="ir_model_fields_id",
            ),
            "action_server_ids": F(
                "one2many",
                string="Actions",
                relation="ir.actions.server",
                relation_field="base_automation_id",
            ),
            "filter_domain": F("char", string="Apply on"),
            "filter_pre_domain": F("char", string="Before Update Domain"),
            "log_webhook_calls": F("boolean", string="Log Calls", default=False),
        },
    )


def models(*, with_base_automation: bool = True) -> list[ModelSpec]:
    """The four models (three without the Automation Rules app)."""
    specs = [ir_model(), ir_model_fields(), ir_actions_server(base_automation=with_base_automation)]
    return [*specs, base_automation()] if with_base_automation else specs


# ------------------------------------------------------------------------------------------ registry


def register(store: Store, specs: Iterable[ModelSpec]) -> None:
    """Describe ``specs`` in ``ir.model``/``ir.model.fields`` (new models and new fields only)."""
    with store.lock:
        txn = store.begin(uid=1, at=INSTALLED_AT)
        known = {row["model"]: rid for rid, row in txn.iter_rows("ir.model")}
        described = {(row["model"], row["name"]) for _rid, row in txn.iter_rows("ir.model.fields")}
        for spec in specs:
            model_id = known.get(spec.name)
            if model_id is None:
                model_id = _insert(txn, "ir.model", {"name": spec.description, "model": spec.name})
                known[spec.name] = model_id
            for name, field in spec.fields.items():
                if (spec.name, name) in described:
                    continue
                values = {"name": name, "model": spec.name, "model_id": model_id, "field_description": field.label,
                          "ttype": field.type, "relation": field.relation, "store": field.store}  # fmt: skip
                _insert(txn, "ir.model.fields", values)
        txn.commit()


def _insert(txn: Transaction, model: str, values: Mapping[str, Any]) -> int:
    # Straight into the transaction (no create()): a fake is made per test, with ~500 fields to describe.
    spec = txn.store.spec(model)
    rid = txn.new_id(model)
    row: dict[str, Any] = {field.name: None for field in spec.stored_fields()}
    row.update(values, create_date=txn.stamp, write_date=txn.stamp, create_uid=txn.uid, write_uid=txn.uid)
    txn.insert(model, rid, row)
    return rid


# ------------------------------------------------------------------------------------------ firing


@dataclass
class WebhookPost:
    """One post of a webhook action, and how it went (``status``, or ``error``: the exception's class)."""

    url: str
    body: bytes
    status: int | None = None
    error: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def collect_posts(txn: Transaction) -> list[WebhookPost]:
    """The posts ``txn`` makes once committed (called by the store just before it commits)."""
    store = txn.store
    if "base.automation" not in store.specs:
        return []
    rules = sorted((rid, row) for rid, row in txn.iter_rows("base.automation") if row.get("active"))
    posts: list[WebhookPost] = []
    for rule_id, rule in rules:
        model = _model_name(txn, rule_id, rule)
        changes = txn.changes.get(model) if model else None
        if not model or not changes or model not in store.specs:
            continue
        actions = sorted(
            (aid, action)
            for aid, action in txn.iter_rows("ir.actions.server")
            if action.get("base_automation_id") == rule_id and action.get("state") == "webhook" and action.get("webhook_url")
        )  # fmt: skip
        if not actions:
            continue
        triggers = [_field_name(txn, fid) for fid in rule.get("trigger_field_ids") or ()]
        committed = store.tables[model].rows
        for rid in sorted(changes):
            new, old = changes[rid], committed.get(rid)
            if not _fires(rule["trigger"], old, new, [t for t in triggers if t]):
                continue
            view: View = txn if new is not None else store.view(txn.uid)
            row = new if new is not None else old
            assert row is not None
            for action_id, action in actions:
                body = _payload(view, model, rid, row, action_id, action)
                posts.append(WebhookPost(action["webhook_url"], body))
    return posts


def _field_name(view: View, field_id: int) -> str | None:
    row = view.get("ir.model.fields", field_id)
    return row.get("name") if row else None


def _fires(
    trigger: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, fields: list[str]
) -> bool:
    if new is None:
        return trigger == "on_unlink" and old is not None
    if old is None:
        return trigger in ("on_create", "on_create_or_write")
    if trigger == "on_archive":
        return bool(old.get("active")) and not new.get("active")
    if trigger == "on_unarchive":
        return not old.get("active") and bool(new.get("active"))
    if trigger not in ("on_write", "on_create_or_write"):
        return False
    if not fields:
        return dict(old) != dict(new)
    return any(old.get(name) != new.get(name) for name in fields)


def _payload(
    view: View, model: str, rid: int, row: Mapping[str, Any], action_id: int, action: Mapping[str, Any]
) -> bytes:
    vals: dict[str, Any] = {"_action": f"{action['name']}(#{action_id})", "_id": rid, "_model": model}
    names = [name for fid in action.get("webhook_field_ids") or () if (name := _field_name(view, fid))]
    if names:
        # Odoo: record.read(fields, load=None)[0], then default=str: many2one as a bare id, datetimes
        # with their microseconds ("2026-12-07 19:09:09.997843").
        reader = orm.Reader(view, model, load=None)
        vals.update(reader.record(rid, dict(row), [n for n in names if n in reader.spec.fields]))
        for name in names:
            value = row.get(name)
            if isinstance(value, datetime):
                vals[name] = value
    return json.dumps(vals, sort_keys=True, default=str).encode()


# ------------------------------------------------------------------------------------------ delivery


class FakeWebhooks:
    """Sends the posts of committed transactions; ``sent`` lists every attempt, in order."""

    timeout_seconds = 1.0

    def __init__(self) -> None:
        self.sent: list[WebhookPost] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads: list[threading.Thread] = []

    async def deliver(self, posts: list[WebhookPost]) -> None:
        """Post one after the other, each within 1 s; a failure is logged (without the URL: it holds
        the receiver's secret) and not retried."""
        if not posts:
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        headers = {"Content-Type": "application/json", "User-Agent": "python-requests/2.31.0"}
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for post in posts:
                try:
                    async with session.post(post.url, data=post.body, headers=headers) as response:
                        post.status = response.status
                        await response.read()
                    if post.status >= 400:
                        log.warning("fake Odoo: webhook call answered HTTP %d", post.status)
                except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                    post.error = type(e).__name__
                    log.warning("fake Odoo: webhook call failed (%s)", post.error)
                self.sent.append(post)

    def send_soon(self, posts: list[WebhookPost]) -> None:
        """Deliver from a task of the running loop, or from a thread when there is none (direct API)."""
        if not posts:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            thread = threading.Thread(target=asyncio.run, args=(self.deliver(posts),), daemon=True)
            self._threads.append(thread)
            thread.start()
            return
        task = loop.create_task(self.deliver(posts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until the posts sent from tasks and threads are done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.join)
