"""syncd's webhook rules in Odoo (``syncd odoo webhooks install|remove|status``).

Odoo 17+ can post to a URL when a record changes: a *server action* (``ir.actions.server``,
``state="webhook"``) run by an *automation rule* (``base.automation``, the Automation Rules app). For
every mirrored model syncd keeps two rules, each with its own action (``action_server_ids`` is a
one2many: an action belongs to one rule, linking it to a second one moves it):

==================================  ======================  ===========================================
rule                                trigger                 posts when
==================================  ======================  ===========================================
``syncd: res.partner changed``      ``on_create_or_write``  a record is created, or a *trigger field*
                                                            changes value (archiving: ``active``)
``syncd: res.partner deleted``      ``on_unlink``           a record is deleted (posted after the commit)
==================================  ======================  ===========================================

with the actions ``syncd: res.partner webhook (changed)`` and ``… (deleted)``. The actions carry no
``webhook_field_ids``: the body is ``{"_action", "_id", "_model"}``, a hint only; the poller reads the
record itself. Trigger fields are the mirrored fields plus ``active``, never ``write_date``/``write_uid``
(they move on every write, so the rule would post for fields syncd does not mirror). Measured on Odoo
19: without trigger fields one create posts 13 times and a write of any field posts; with them one
create or write of a listed field posts once, other fields not at all. With ``fields = "*"`` every
stored field is a trigger field, stored computed ones too (a partner's create then posts ~5 times,
as Odoo recomputes them in the same transaction): a hint for each change of a mirrored column.

Records are found by name (and the model the name carries), archived ones included, so ``install``
is idempotent: it creates what is missing, updates what differs (URL, trigger fields, active) and
never creates a second rule. Everything named ``<prefix>: …`` belongs to syncd; nothing else is
touched. The secret part of the URL never leaves this module unredacted (:func:`redact_url`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from syncd.config import WEBHOOK_PATH_PREFIX, ModelSettings
from syncd.errors import OdooAccessError, OdooUnknownNameError, WebhookSetupError
from syncd.odoo.client import OdooClient

Kind = Literal["changed", "deleted"]
KINDS: tuple[Kind, ...] = ("changed", "deleted")
TRIGGERS: dict[Kind, str] = {"changed": "on_create_or_write", "deleted": "on_unlink"}
#: The path of syncd's endpoint; the secret follows it.
PREFIX = "syncd"
#: Never trigger fields: ``write_date``/``write_uid`` move on every write (any field, mirrored or
#: not), the others never change after the create, which posts anyway.
NOT_TRIGGERS = frozenset({"id", "display_name", "write_date", "write_uid", "create_date", "create_uid"})
RIGHTS = (
    "give the Odoo user the Administrator role (Settings > Users > Access Rights: Role / "
    "Administrator, base.group_system; 'Administration: Settings' before Odoo 19): creating server "
    "actions and automation rules, and reading ir.model, needs it"
)
NO_APP = "install the Automation Rules app (base_automation) in Odoo (Apps > Automation Rules)"

#: ``select_fields(model, fields_get)``: the fields mirrored for the model (syncd.cdc.schema.select_fields).
FieldSelector = Callable[[ModelSettings, Mapping[str, Mapping[str, Any]]], Sequence[str]]


def redact_url(url: str) -> str:
    """``url`` safe to print: the secret after ``/odoo/webhook/`` (or any path, and any password in the
    host part, of a URL syncd did not build) replaced by ``…``."""
    head, sep, _secret = url.partition(WEBHOOK_PATH_PREFIX)
    parts = urlsplit(head if sep else url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    if sep:
        return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + f"{WEBHOOK_PATH_PREFIX}…"
    path = "/…" if parts.path.strip("/") or parts.query else parts.path
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def rule_name(model: str, kind: Kind, prefix: str = PREFIX) -> str:
    return f"{prefix}: {model} {kind}"


def action_name(model: str, kind: Kind, prefix: str = PREFIX) -> str:
    return f"{prefix}: {model} webhook ({kind})"


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class RuleStatus:
    """One of syncd's rules as found in Odoo, compared with what syncd wants."""

    kind: Kind
    name: str
    exists: bool
    active: bool = False
    trigger: str | None = None
    #: the action's URL with the secret replaced by ``…`` (None: no webhook action on the rule)
    url: str | None = None
    url_ok: bool = False
    missing_fields: tuple[str, ...] = ()
    extra_fields: tuple[str, ...] = ()
    #: more rules of the same name (``install`` deletes them: each would post too)
    duplicates: int = 0

    def problems(self, expected_url: str | None) -> list[str]:
        if not self.exists:
            return [f"no rule {self.name!r}"]
        found = []
        if not self.active:
            found.append(f"rule {self.name!r} is archived")
        if self.trigger != TRIGGERS[self.kind]:
            found.append(f"rule {self.name!r} triggers {self.trigger} instead of {TRIGGERS[self.kind]}")
        if self.url is None:
            found.append(f"rule {self.name!r} has no webhook action")
        elif not self.url_ok and expected_url is not None:
            shown = redact_url(expected_url)
            found.append(
                f"rule {self.name!r} posts to {self.url} with another secret"
                if self.url == shown
                else f"rule {self.name!r} posts to {self.url} instead of {shown}"
            )
        if self.missing_fields or self.extra_fields:
            diff = [f"missing {', '.join(self.missing_fields)}"] if self.missing_fields else []
            diff += [f"extra {', '.join(self.extra_fields)}"] if self.extra_fields else []
            found.append(f"rule {self.name!r} trigger fields differ ({'; '.join(diff)})")
        if self.duplicates:
            found.append(f"{self.duplicates + 1} rules named {self.name!r}")
        return found


@dataclass(frozen=True)
class ModelStatus:
    """syncd's rules of one model. ``configured`` is False for rules of a model no longer in
    ``[[cdc.models]]`` (``install`` and ``remove`` delete them)."""

    model: str
    rules: tuple[RuleStatus, ...]
    trigger_fields: tuple[str, ...] = ()
    configured: bool = True
    expected_url: str | None = field(default=None, repr=False)

    def problems(self) -> list[str]:
        if not self.configured:
            return ["not in [[cdc.models]], yet syncd's rules for it are in Odoo"]
        return [p for rule in self.rules for p in rule.problems(self.expected_url)]

    @property
    def ok(self) -> bool:
        return not self.problems()

    def as_json(self) -> dict[str, Any]:
        """For ``--json``: no secret (URLs are redacted)."""
        return {
            "model": self.model,
            "configured": self.configured,
            "ok": self.ok,
            "problems": self.problems(),
            "trigger_fields": list(self.trigger_fields),
            "rules": [
                {
                    "kind": r.kind,
                    "name": r.name,
                    "exists": r.exists,
                    "active": r.active,
                    "trigger": r.trigger,
                    "url": r.url,
                    "url_ok": r.url_ok,
                    "missing_fields": list(r.missing_fields),
                    "extra_fields": list(r.extra_fields),
                    "duplicates": r.duplicates,
                }
                for r in self.rules
            ],
        }


@dataclass(frozen=True)
class Change:
    """What ``install`` or ``remove`` did for one model."""

    model: str
    outcome: Literal["created", "updated", "unchanged", "removed", "absent"]
    details: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ the work


@dataclass
class _Desired:
    model: str
    model_id: int
    #: trigger field name → ir.model.fields id
    fields: dict[str, int]


@dataclass
class _Found:
    rules: dict[tuple[str, Kind], list[dict[str, Any]]]
    actions: dict[int, dict[str, Any]]


class WebhookRules:
    """syncd's webhook rules for ``models`` in the Odoo behind ``client``.

    ``url`` is where Odoo should post (:func:`webhook_url`; ``install`` and ``status`` need it).
    ``select_fields`` names the mirrored fields of a model (``syncd.cdc.schema.select_fields``;
    passed in because this package does not depend on the CDC). ``prefix`` starts every name syncd
    gives (tests use their own so that runs sharing an Odoo do not touch each other's rules).
    """

    def __init__(
        self,
        client: OdooClient,
        models: Sequence[ModelSettings],
        *,
        url: str | None,
        select_fields: FieldSelector,
        prefix: str = PREFIX,
    ) -> None:
        self._client = client
        self._models = list(models)
        self._url = url
        self._select = select_fields
        self._prefix = prefix
        self._name = re.compile(rf"^{re.escape(prefix)}: (?P<model>\S+) (?P<kind>changed|deleted)$")
        self._action = re.compile(rf"^{re.escape(prefix)}: \S+ webhook \((changed|deleted)\)$")

    # ------------------------------------------------------------------ commands

    async def install(self) -> list[Change]:
        """Create or update the rules of every configured model; delete those of other models."""
        url = self._need_url()
        with _explained():
            desired = await self._desired()
            found = await self._found()
            changes = [await self._install_model(d, found, url) for d in desired]
            stale = sorted({m for m, _kind in found.rules} - set(self._configured))
            changes += await self._remove_models(found, stale)
        return changes

    async def remove(self) -> list[Change]:
        """Delete every rule and action named by syncd (configured models or not)."""
        with _explained():
            found = await self._found()
            models = self._configured + sorted({m for m, _k in found.rules} - set(self._configured))
            changes = await self._remove_models(found, models)
            # Actions of syncd's that lost their rule (edited by hand): nothing would run them, but
            # "remove" leaves nothing behind.
            orphans = await self._client.search_read(
                "ir.actions.server",
                [("name", "=like", f"{self._prefix}: %"), ("base_automation_id", "=", False)],
                ["name"],
            )
            ours = [a["id"] for a in orphans if self._is_action_name(a["name"])]
            if ours:
                await self._client.unlink("ir.actions.server", ours)
        done = {c.model for c in changes}
        return changes + [Change(m, "absent") for m in models if m not in done]

    async def status(self) -> list[ModelStatus]:
        """Per configured model (then per model syncd left rules for): what is in Odoo and what differs."""
        url = self._need_url()
        with _explained():
            desired = await self._desired()
            found = await self._found()
            extra_ids = {
                fid
                for d in desired
                for rule in found.rules.get((d.model, "changed"), [])[:1]
                for fid in rule["trigger_field_ids"]
                if fid not in d.fields.values()
            }
            names = await self._field_names(extra_ids)
            result = [self._status(d, found, url, names) for d in desired]
            for model in sorted({m for m, _k in found.rules} - set(self._configured)):
                rules = tuple(
                    RuleStatus(kind, rule_name(model, kind, self._prefix), True)
                    for kind in KINDS
                    if found.rules.get((model, kind))
                )
                result.append(ModelStatus(model, rules, configured=False))
        return result

    # ------------------------------------------------------------------ reading Odoo

    @property
    def _configured(self) -> list[str]:
        return [m.model for m in self._models]

    def _need_url(self) -> str:
        if self._url is None:
            raise ValueError("WebhookRules: no url (http.public_url and http.webhook_secret)")
        return self._url

    def _is_action_name(self, name: str) -> bool:
        return self._action.match(name) is not None

    async def _desired(self) -> list[_Desired]:
        """What each configured model's rules should be. Checks first that Odoo can have them."""
        client = self._client
        state = await client.fields_get("ir.actions.server", allfields=["state"], attributes=["selection"])
        values = {v for v, _label in state.get("state", {}).get("selection") or []}
        if "webhook" not in values:
            version = (await client.version()).server_version or "this version"
            raise WebhookSetupError(
                f"Odoo {version} has no webhook server actions: webhooks need Odoo 17+; syncd polls only "
                "(leave http.webhook_secret unset)"
            )
        wanted = ["base.automation", *self._configured]
        rows = await client.search_read("ir.model", [("model", "in", wanted)], ["model"])
        model_ids = {r["model"]: r["id"] for r in rows}
        if "base.automation" not in model_ids:
            raise WebhookSetupError(f"Odoo has no automation rules (model base.automation): {NO_APP}")
        unknown = [m for m in self._configured if m not in model_ids]
        if unknown:
            raise WebhookSetupError(
                f"no model {', '.join(unknown)} in Odoo: fix [[cdc.models]] (or install the app that has it)"
            )
        desired = []
        for m in self._models:
            fields = await client.fields_get(m.model, attributes=["type", "store"])
            names = [n for n in self._select(m, fields) if n not in NOT_TRIGGERS]
            if "active" in fields and "active" not in names:
                names.append("active")  # archiving and restoring change what the mirror shows
            rows = await client.search_read(
                "ir.model.fields", [("model", "=", m.model), ("name", "in", names)], ["name"]
            )
            by_name = {r["name"]: r["id"] for r in rows}
            desired.append(
                _Desired(m.model, model_ids[m.model], {n: by_name[n] for n in names if n in by_name})
            )
        return desired

    async def _found(self) -> _Found:
        """syncd's rules (archived ones too), by (model, kind), oldest first, and their actions."""
        rows = await self._client.search_read(
            "base.automation",
            [("name", "=like", f"{self._prefix}: %")],
            ["name", "active", "trigger", "trigger_field_ids", "action_server_ids"],
            order="id",
            context={"active_test": False},
        )
        rules: dict[tuple[str, Kind], list[dict[str, Any]]] = {}
        for row in rows:
            match = self._name.match(row["name"])
            if match:
                kind: Kind = "changed" if match["kind"] == "changed" else "deleted"
                rules.setdefault((match["model"], kind), []).append(row)
        action_ids = sorted({a for group in rules.values() for r in group for a in r["action_server_ids"]})
        actions = await self._client.read(
            "ir.actions.server", action_ids, ["name", "state", "webhook_url", "webhook_field_ids"]
        )
        return _Found(rules, {a["id"]: a for a in actions})

    async def _field_names(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await self._client.read("ir.model.fields", sorted(ids), ["name"])
        return {r["id"]: r["name"] for r in rows}

    def _our_actions(
        self, rule: dict[str, Any], found: _Found, model: str, kind: Kind
    ) -> list[dict[str, Any]]:
        name = action_name(model, kind, self._prefix)
        return [
            found.actions[a]
            for a in rule["action_server_ids"]
            if a in found.actions and found.actions[a]["name"] == name
        ]

    # ------------------------------------------------------------------ install / remove / status

    async def _install_model(self, desired: _Desired, found: _Found, url: str) -> Change:
        client, model = self._client, desired.model
        details: list[str] = []
        created = 0
        for kind in KINDS:
            name = rule_name(model, kind, self._prefix)
            field_ids = sorted(desired.fields.values()) if kind == "changed" else []
            action = {
                "name": action_name(model, kind, self._prefix),
                "model_id": desired.model_id,
                "state": "webhook",
                "usage": "base_automation",
                "webhook_url": url,
                "webhook_field_ids": [(6, 0, [])],
            }
            rules = found.rules.get((model, kind), [])
            if not rules:
                rule = {
                    "name": name,
                    "model_id": desired.model_id,
                    "trigger": TRIGGERS[kind],
                    "trigger_field_ids": [(6, 0, field_ids)],
                    "active": True,
                    "action_server_ids": [(0, 0, action)],
                }
                # One call: the rule and its action appear together or not at all.
                await client.create("base.automation", [rule])
                created += 1
                continue
            keep, extra = rules[0], rules[1:]
            if extra:
                await client.unlink("base.automation", [r["id"] for r in extra])
                details.append(f"{len(extra)} duplicate {kind} rules deleted")
            vals: dict[str, Any] = {}
            if not keep["active"]:
                vals["active"] = True
                details.append(f"{kind} rule reactivated")
            if keep["trigger"] != TRIGGERS[kind]:
                vals["trigger"] = TRIGGERS[kind]
                details.append(f"{kind} rule trigger")
            if sorted(keep["trigger_field_ids"]) != field_ids:
                vals["trigger_field_ids"] = [(6, 0, field_ids)]
                details.append("trigger fields")
            ours = self._our_actions(keep, found, model, kind)
            commands: list[Any] = [(2, a["id"]) for a in ours[1:]]
            if not ours:
                commands.append((0, 0, action))
                details.append(f"{kind} webhook action")
            else:
                current = ours[0]
                update: dict[str, Any] = {}
                if current["state"] != "webhook":
                    update["state"] = "webhook"
                if current["webhook_url"] != url:
                    update["webhook_url"] = url
                    details.append(f"{kind} URL")
                if current["webhook_field_ids"]:
                    update["webhook_field_ids"] = [(6, 0, [])]
                if update:
                    commands.append((1, current["id"], update))
            if commands:
                vals["action_server_ids"] = commands
            if vals:
                await client.write("base.automation", [keep["id"]], vals)
        if created == len(KINDS):
            shown = f"{len(desired.fields)} trigger fields, posting to {redact_url(url)}"
            return Change(model, "created", (shown,))
        if created:
            details.insert(0, f"{created} missing rule created")
        return Change(model, "updated" if details else "unchanged", tuple(dict.fromkeys(details)))

    async def _remove_models(self, found: _Found, models: Sequence[str]) -> list[Change]:
        changes = []
        for model in models:
            rules = [r for kind in KINDS for r in found.rules.get((model, kind), [])]
            if not rules:
                continue
            # Odoo deletes a rule's actions with it (ondelete cascade); ours are named, so delete
            # them explicitly too in case one was moved to another rule.
            actions = [
                a["id"]
                for kind in KINDS
                for r in found.rules.get((model, kind), [])
                for a in self._our_actions(r, found, model, kind)
            ]
            await self._client.unlink("base.automation", [r["id"] for r in rules])
            left = await self._client.search("ir.actions.server", [("id", "in", actions)]) if actions else []
            if left:
                await self._client.unlink("ir.actions.server", left)
            note = () if model in self._configured else ("not in [[cdc.models]]",)
            changes.append(Change(model, "removed", (f"{len(rules)} rules", *note)))
        return changes

    def _status(self, desired: _Desired, found: _Found, url: str, names: Mapping[int, str]) -> ModelStatus:
        model = desired.model
        rules = []
        for kind in KINDS:
            name = rule_name(model, kind, self._prefix)
            group = found.rules.get((model, kind), [])
            if not group:
                rules.append(RuleStatus(kind, name, exists=False))
                continue
            rule = group[0]
            ours = self._our_actions(rule, found, model, kind)
            action = ours[0] if ours and ours[0]["state"] == "webhook" else None
            found_url = action["webhook_url"] if action and isinstance(action["webhook_url"], str) else None
            missing: tuple[str, ...] = ()
            extra: tuple[str, ...] = ()
            if kind == "changed":
                have = set(rule["trigger_field_ids"])
                missing = tuple(sorted(n for n, fid in desired.fields.items() if fid not in have))
                wanted = set(desired.fields.values())
                extra = tuple(sorted(names.get(fid, f"#{fid}") for fid in have - wanted))
            rules.append(
                RuleStatus(
                    kind,
                    name,
                    exists=True,
                    active=bool(rule["active"]),
                    trigger=rule["trigger"],
                    url=redact_url(found_url) if found_url is not None else None,
                    url_ok=found_url == url,
                    missing_fields=missing,
                    extra_fields=extra,
                    duplicates=len(group) - 1,
                )
            )
        return ModelStatus(model, tuple(rules), tuple(sorted(desired.fields)), expected_url=url)


@contextlib.contextmanager
def _explained() -> Iterator[None]:
    """Odoo's refusals, said as what to do about them."""
    try:
        yield
    except OdooAccessError as e:
        refusal = " ".join(str(e.odoo_message or e).split())  # Odoo's text spans several lines
        raise WebhookSetupError(f"Odoo refused access ({refusal}); {RIGHTS}") from None
    except OdooUnknownNameError as e:
        if "base.automation" in str(e):
            raise WebhookSetupError(
                f"Odoo has no automation rules (model base.automation): {NO_APP}"
            ) from None
        raise
