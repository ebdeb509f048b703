"""``syncd check``: reach both sides, verify credentials, schema and the configured models and fields.

Each check yields one :class:`CheckResult`; the CLI prints them as a table and turns them into an
exit code (3 when something could not be reached, 1 when something is wrong, else 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd import db, migrate
from syncd.config import ModelSettings, Settings, redact_dsn
from syncd.errors import DatabaseError, DatabaseUnavailable, OdooError, SyncdError

#: Odoo field types that can be mirrored (SPEC §3); binary only when listed explicitly.
MIRRORABLE_TYPES = frozenset(
    {
        "char", "text", "html", "selection", "integer", "float", "monetary", "boolean", "date",
        "datetime", "many2one", "one2many", "many2many", "json", "properties", "binary",
    }
)  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    #: The failure is "could not reach" (exit 3) rather than "reached, but wrong" (exit 1).
    unreachable: bool = False


async def run_checks(settings: Settings) -> list[CheckResult]:
    source = str(settings.source) if settings.source else "defaults and SYNCD_* environment"
    results = [CheckResult("config", True, source)]
    results += await _check_postgres(settings)
    results += await _check_odoo(settings)
    return results


async def _check_postgres(settings: Settings) -> list[CheckResult]:
    where = "embedded PostgreSQL" if settings.database.embedded else "database.dsn"
    try:
        async with db.open_dsn(settings.database) as dsn:
            return await _check_schema(dsn, settings)
    except SyncdError as e:
        return [CheckResult("postgres", False, f"{where}: {e}", unreachable=True)]


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
    from syncd.odoo import OdooClient

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
        except OdooError as e:
            return [CheckResult("odoo", False, f"{odoo.url}: {e}", unreachable=e.transient)]
        info = await client.version()
        results = [
            CheckResult("odoo", True, f"{odoo.url}: Odoo {info.server_version}, protocol {client.protocol}"),
            CheckResult("odoo credentials", True, f"{odoo.username} on database {odoo.database!r}"),
        ]
        for model in settings.cdc.models:
            results.append(await _check_model(client, model))
        return results
    except OdooError as e:
        return [CheckResult("odoo", False, str(e), unreachable=e.transient)]
    finally:
        await client.close()


async def _check_model(client: Any, model: ModelSettings) -> CheckResult:
    name = f"model {model.model}"
    try:
        fields: dict[str, dict[str, Any]] = await client.fields_get(
            model.model, attributes=["type", "store", "string"]
        )
    except OdooError as e:
        return CheckResult(name, False, f"cannot read its fields: {e}", unreachable=e.transient)
    problems = model_field_problems(model, fields)
    if problems:
        return CheckResult(name, False, "; ".join(problems))
    count = len(mirror_fields(model, fields))
    return CheckResult(name, True, f"{count} fields to mirror")


def mirror_fields(model: ModelSettings, fields: dict[str, dict[str, Any]]) -> list[str]:
    """The fields a model's mirror table gets: the listed ones, or every stored non-binary one for "*"."""
    if model.fields == "*":
        return sorted(
            n
            for n, f in fields.items()
            if f.get("store") and f.get("type") in MIRRORABLE_TYPES and f.get("type") != "binary"
        )
    return list(model.fields)


def model_field_problems(model: ModelSettings, fields: dict[str, dict[str, Any]]) -> list[str]:
    """Listed fields that do not exist, are not stored, or have a type that cannot be mirrored."""
    if model.fields == "*":
        return []
    out = []
    for name in model.fields:
        spec = fields.get(name)
        if spec is None:
            out.append(f"field {name!r} does not exist on {model.model}")
        elif not spec.get("store", False):
            out.append(f"field {name!r} of {model.model} is computed, not stored: it cannot be mirrored")
        elif spec.get("type") not in MIRRORABLE_TYPES:
            out.append(
                f"field {name!r} of {model.model} has type {spec.get('type')!r}, which is not mirrored"
            )
    return out
