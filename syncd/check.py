"""``syncd check``: reach both sides, verify credentials, schema and the configured models and fields.

Each check yields one :class:`CheckResult`; the CLI prints them as a table and turns them into an
exit code (3 when something could not be reached, 1 when something is wrong, else 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd import db, migrate
from syncd.cdc.schema import SchemaProblem, select_fields
from syncd.config import WEBHOOK_PATH_PREFIX, ModelSettings, Settings, redact_dsn
from syncd.errors import (
    DatabaseError,
    DatabaseUnavailable,
    OdooAuthenticationError,
    OdooError,
    SyncdError,
    WebhookSetupError,
)
from syncd.odoo import OdooClient, webhooks


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    #: The failure is "could not reach" (exit 3) rather than "reached, but wrong" (exit 1).
    unreachable: bool = False
    #: Worth fixing, but syncd works without it (polling only): shown as "warn", exit code unchanged.
    warning: bool = False


async def run_checks(settings: Settings) -> list[CheckResult]:
    source = str(settings.source) if settings.source else "defaults and SYNCD_* environment"
    results = [CheckResult("config", True, source)]
    results += _webhook_routing(settings)
    results += await _check_postgres(settings)
    results += await _check_odoo(settings)
    return results


def _webhook_routing(settings: Settings) -> list[CheckResult]:
    """What webhook hints will do here (only with ``http.webhook_secret``); never shows the secret."""
    http = settings.http
    if not http.webhooks_enabled:
        return []
    where = f"{http.public_url}{WEBHOOK_PATH_PREFIX}…" if http.public_url else "http.public_url not set"
    if settings.database.session_state:
        routing = "hints reach the replica that polls the model (NOTIFY syncd_cdc_hint)"
    else:
        routing = (
            "hints reach only the replica that polls the model (database.pooler = transaction has "
            "no LISTEN); others wait for the next poll"
        )
    interval = f"cdc.interval_seconds = {settings.cdc.interval_seconds:g}"
    return [CheckResult("webhook hints", True, f"{where}; {routing}; {interval}")]


async def _check_postgres(settings: Settings) -> list[CheckResult]:
    where = "embedded PostgreSQL" if settings.database.embedded else "database.dsn"
    try:
        async with db.open_dsn(settings.database) as dsn:
            results = await _check_schema(dsn, settings)
    except SyncdError as e:
        return [CheckResult("postgres", False, f"{where}: {e}", unreachable=True)]
    if settings.database.embedded and results[0].ok:
        results[0] = CheckResult(
            "postgres", True, f"embedded, data in {settings.database.data_dir}: {results[0].detail}"
        )
    return results


async def _check_schema(dsn: str, settings: Settings) -> list[CheckResult]:
    try:
        conn = await db.connect(dsn, settings.database)
    except DatabaseUnavailable as e:
        return [CheckResult("postgres", False, str(e), unreachable=True)]
    except DatabaseError as e:
        return [CheckResult("postgres", False, str(e))]
    try:
        version = await conn.fetchval("show server_version")
        results = [CheckResult("postgres", True, f"{redact_dsn(dsn)} (PostgreSQL {version})")]
        status = await migrate.check(conn)
        if status.current:
            results.append(CheckResult("schema", True, f"version {status.version}, current"))
        else:
            results.append(CheckResult("schema", False, "; ".join(status.problems())))
        return results
    except SyncdError as e:
        return [CheckResult("schema", False, str(e), unreachable=e.transient)]
    finally:
        await conn.close()


async def _check_odoo(settings: Settings) -> list[CheckResult]:
    odoo = settings.odoo
    if odoo.secret is None:
        return [
            CheckResult(
                "odoo credentials",
                False,
                "no odoo.api_key or odoo.password configured (set one, or SYNCD_ODOO__API_KEY)",
            )
        ]
    client = OdooClient(odoo)
    try:
        try:
            await client.connect()
        except OdooAuthenticationError as e:
            return [CheckResult("odoo credentials", False, odoo.credentials_refused(str(e)))]
        except OdooError as e:
            return [CheckResult("odoo", False, f"{odoo.url}: {e}", unreachable=e.transient)]
        info = await client.version()
        results = [
            CheckResult("odoo", True, f"{odoo.url}: Odoo {info.server_version}, protocol {client.protocol}")
        ]
        try:
            # JSON-2 has no login call; context_get is the cheapest call any valid credential may make.
            await client.call("res.users", "context_get")
        except OdooAuthenticationError as e:
            results.append(CheckResult("odoo credentials", False, odoo.credentials_refused(str(e))))
            return results
        except OdooError as e:
            results.append(CheckResult("odoo credentials", False, str(e), unreachable=e.transient))
            return results
        who = f"uid {client.uid}, " if client.uid is not None else ""
        results.append(
            CheckResult("odoo credentials", True, f"{odoo.username} ({who}database {odoo.database!r})")
        )
        for model in settings.cdc.models:
            results.append(await _check_model(client, model))
        if settings.http.webhook_secret is not None and settings.cdc.models:
            results += await _check_webhook_rules(client, settings)
        return results
    except OdooError as e:
        return [CheckResult("odoo", False, str(e), unreachable=e.transient)]
    finally:
        await client.close()


async def _check_model(client: OdooClient, model: ModelSettings) -> CheckResult:
    name = f"model {model.model}"
    try:
        # related and relation: a related field's refusal names the model to mirror instead
        fields = await client.fields_get(
            model.model, attributes=["type", "store", "string", "related", "relation"]
        )
    except OdooError as e:
        return CheckResult(name, False, f"cannot read its fields: {e}", unreachable=e.transient)
    try:
        selected = select_fields(model, fields)
    except SchemaProblem as e:
        return CheckResult(name, False, str(e))
    return CheckResult(name, True, f"{len(selected)} fields to mirror")


async def _check_webhook_rules(client: OdooClient, settings: Settings) -> list[CheckResult]:
    """Webhooks are configured: are syncd's rules in Odoo, active and posting here? Only warnings:
    without hints syncd still polls."""
    http = settings.http
    if not http.public_url or http.webhook_secret is None:
        return [
            CheckResult("webhooks", True, "http.public_url is not set: Odoo cannot post hints", warning=True)
        ]
    url = http.webhook_url()
    rules = webhooks.WebhookRules(client, settings.cdc.models, url=url, select_fields=select_fields)
    try:
        statuses = await rules.status()
    except (OdooError, WebhookSetupError, SchemaProblem) as e:
        return [CheckResult("webhooks", True, f"cannot inspect the rules: {e}", warning=True)]
    results = []
    for status in statuses:
        name = f"webhooks {status.model}"
        if status.ok:
            results.append(CheckResult(name, True, f"rules active, posting to {webhooks.redact_url(url)}"))
        else:
            fix = "`syncd odoo webhooks install`"
            detail = "; ".join(status.problems()) + f" (fix: {fix}; until then syncd polls only)"
            results.append(CheckResult(name, True, detail, warning=True))
    return results
