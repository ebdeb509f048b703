"""The ``syncd`` command line (SPEC §1): parses arguments, loads the config, calls into the rest.

Exit codes: 0 success; 1 the work ran but something failed; 2 bad usage or invalid config;
3 a dependency (PostgreSQL, Odoo) could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd import __version__, db
from syncd.config import Settings, load_config
from syncd.errors import ConfigError, DatabaseUnavailable, SchemaError, SyncdError
from syncd.logs import setup_logging

if TYPE_CHECKING:
    from syncd.odoo.webhooks import Change, ModelStatus
    from syncd.outbox.redrive import Superseded

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

log = logging.getLogger("syncd.cli")


# ----------------------------------------------------------------------------------------- parser


def _common_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On the top-level parser the flags get real defaults; on subcommands SUPPRESS keeps a flag given
    # before the command from being overwritten, so `syncd --config x check` == `syncd check --config x`.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $SYNCD_CONFIG, ./syncd.toml, /etc/syncd/config.toml)",
    )
    parser.add_argument("--log-format", choices=["text", "json"], default=default, help="log line format")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=default, help="log level"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keep Odoo and PostgreSQL in step: CDC mirror tables one way, a transactional outbox "
        "the other.",
        epilog="Exit codes: 0 ok, 1 work failed, 2 bad usage or config, 3 a dependency is unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    _common_flags(parser, top=True)
    parser.add_argument("--once", action="store_true", help="same as `syncd run --once`")
    parser.add_argument("--dry-run", action="store_true", help="with --once: read and plan, write nothing")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common_flags(p, top=False)
        return p

    p = add("run", "run the daemon: CDC pollers, outbox consumers and the HTTP endpoint")
    p.add_argument("--once", action="store_true", default=argparse.SUPPRESS, help="one pass, then exit")
    p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS, help="write nothing")
    p.add_argument("--migrate", action="store_true", help="apply pending migrations before starting")

    p = add("migrate", "apply the database migrations (or only verify them)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if migrations are pending")

    add("check", "validate the config and reach PostgreSQL and Odoo; print a table")

    p = add("status", "per model: cursor, lag, rows, last error; outbox counts")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("outbox", "inspect and redrive the outbox")
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    q = osub.add_parser("list", help="list events")
    _common_flags(q, top=False)
    q.add_argument("--status", choices=["pending", "inflight", "done", "dead", "conflict"])
    q.add_argument("--limit", type=int, default=50)
    q = osub.add_parser(
        "retry",
        help="make dead events pending again",
        description="Make dead events pending again (attempts reset). A dead event is refused (left "
        "dead, exit 1) when a later event of the same record has been applied or is being applied: "
        "retrying it would set the record back to older values.",
    )
    _common_flags(q, top=False)
    q.add_argument("ids", nargs="*", type=int)
    q.add_argument("--all-dead", action="store_true")
    q.add_argument(
        "--force",
        action="store_true",
        help="retry them even when a later event of the same record was applied: their older values "
        "then overwrite what that later event set",
    )
    q = osub.add_parser(
        "resolve",
        help="decide a held conflict",
        description="A held conflict (status conflict) is a write whose fields Odoo changed since the app "
        "read them; its other fields were written. --take app writes the held values anyway; --take odoo "
        "keeps Odoo's values (docs/bidirectional.md).",
    )
    _common_flags(q, top=False)
    q.add_argument("ids", nargs="+", type=int)
    q.add_argument("--take", choices=["app", "odoo"], required=True)
    q = osub.add_parser("discard", help="drop events")
    _common_flags(q, top=False)
    q.add_argument("ids", nargs="+", type=int)

    p = add("odoo", "set up Odoo for syncd")
    odoo_sub = p.add_subparsers(dest="odoo_command", metavar="WHAT", required=True)
    q = odoo_sub.add_parser(
        "webhooks",
        help="the automation rules that post a hint to syncd when a mirrored record changes",
        description="The automation rules (base_automation) that make Odoo 17+ post a hint to "
        "{http.public_url}/odoo/webhook/{http.webhook_secret} when a record of a mirrored model is "
        "created, changed or deleted, so that syncd polls it at once (docs/webhooks.md).",
    )
    hooks_sub = q.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    for name, help_ in (
        ("install", "create or update the rules of every [[cdc.models]] model (safe to repeat)"),
        ("remove", "delete every rule and action syncd created in Odoo"),
        ("status", "per model: the rules, their URL and trigger fields, the last hint; exit 1 if wrong"),
    ):
        r = hooks_sub.add_parser(name, help=help_, description=help_)
        _common_flags(r, top=False)
        if name == "status":
            r.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("resync", "re-read one model from the beginning (keeps the mirror)")
    p.add_argument("model")

    p = add("demo", "embedded PostgreSQL + fake Odoo + the daemon, with a little traffic both ways")
    p.add_argument("--seconds", type=float, metavar="N", help="end after N seconds (default: at Ctrl-C)")

    p = add("fake-odoo", "serve the built-in fake Odoo (login admin/admin, API key admin)")
    p.add_argument("--listen", default="127.0.0.1:8069", metavar="HOST:PORT")
    p.add_argument("--database", default="odoo", metavar="NAME")
    p.add_argument("--demo-data", action="store_true", help="load demo partners, products, ...")
    return parser


# --------------------------------------------------------------------------------------- commands


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_config(args.config)
    # [log] in the file is the default; the command-line flags win.
    setup_logging(args.log_format or settings.log.format, args.log_level or settings.log.level)
    return settings


@contextlib.asynccontextmanager
async def _existing_database(settings: Settings, command: str) -> AsyncIterator[str]:
    """The DSN for a command that reads (or resets) what syncd wrote. Without ``database.dsn`` that
    is the embedded PostgreSQL of ``database.data_dir`` if `syncd migrate` or `syncd run` made one
    there, never a new one: an empty database would only answer that nothing exists."""
    database = settings.database
    if database.embedded and not (database.data_dir.expanduser() / "PG_VERSION").is_file():
        raise ConfigError(
            f"{command}: no database.dsn configured (set dsn in [database] or SYNCD_DATABASE__DSN "
            f"to the PostgreSQL syncd writes to), and no embedded PostgreSQL in {database.data_dir} "
            "(`syncd migrate` or `syncd run` without a dsn creates it there)"
        )
    async with db.open_dsn(database) as dsn:
        yield dsn


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return asyncio.run(_migrate(settings, check_only=args.check))


async def _migrate(settings: Settings, *, check_only: bool) -> int:
    from syncd import db

    async with db.open_dsn(settings.database) as dsn:
        conn = await db.connect(dsn, settings.database)
        try:
            return await _migrate_on(conn, check_only=check_only)
        finally:
            await conn.close()


async def _migrate_on(conn: db.Connection, *, check_only: bool) -> int:
    from syncd import migrate

    if check_only:
        status = await migrate.check(conn)
        if status.current:
            print(f"schema is current (version {status.version})")
            return EXIT_OK
        for line in status.problems():
            print(line)
        return EXIT_FAILED
    applied = await migrate.apply(conn)
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")
    status = await migrate.check(conn)
    print(f"schema is current (version {status.version})" + ("" if applied else ", nothing to do"))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from syncd.check import run_checks

    settings = _settings(args)
    results = asyncio.run(run_checks(settings))
    width = max(len(r.name) for r in results)
    print(f"{'CHECK':<{width}}  RESULT  DETAIL")
    for r in results:
        result = "FAIL" if not r.ok else "warn" if r.warning else "ok"
        print(f"{r.name:<{width}}  {result:<6}  {r.detail}")
    if any(r.unreachable for r in results):
        return EXIT_UNAVAILABLE
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def cmd_fake_odoo(args: argparse.Namespace) -> int:
    from syncd.config import parse_listen
    from syncd.testing import FakeOdooServer, serve_forever

    try:
        parse_listen(args.listen)
    except ValueError as e:
        raise ConfigError(f"--listen {args.listen!r}: {e}") from None

    def announce(server: FakeOdooServer) -> None:
        # One line on stdout that scripts (and the tests) wait for.
        print(
            f"fake Odoo 19 listening on {server.url} database={args.database} login=admin password=admin"
            " api_key=admin",
            flush=True,
        )

    started = False

    def ready(server: FakeOdooServer) -> None:
        nonlocal started
        started = True
        announce(server)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_forever(args.listen, args.database, args.demo_data, on_ready=ready))
    except OSError as e:
        if started:
            raise
        # The wording of `syncd run` on a taken http.listen (syncd.http.HttpServer.start).
        why = "the address is already in use" if e.errno == errno.EADDRINUSE else e.strerror or str(e)
        raise SyncdError(
            f"--listen {args.listen}: cannot listen: {why} "
            "(is another fake Odoo running? choose another port with --listen HOST:PORT)"
        ) from None
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from syncd import loop
    from syncd.demo import run_demo

    return loop.run(run_demo(sys.stdout, args.seconds))


def cmd_run(args: argparse.Namespace) -> int:
    from syncd import daemon, loop

    settings = _settings(args)
    once = bool(getattr(args, "once", False))
    dry_run = bool(getattr(args, "dry_run", False))
    migrate_first = bool(getattr(args, "migrate", False))
    if dry_run and not once:
        raise ConfigError("--dry-run goes with --once")
    if not once:
        clean = loop.run(daemon.run_forever(settings, migrate_first=migrate_first))
        return EXIT_OK if clean else EXIT_FAILED
    result = loop.run(daemon.run_once(settings, dry_run=dry_run, migrate_first=migrate_first))
    report = result.cdc
    for name, poll in report.polls.items():
        rec = report.reconciles.get(name)
        extra = (
            f", reconciled: {rec.marked_deleted} marked deleted, {rec.refreshed} re-read"
            if rec
            else ", no reconciliation due"
        )
        print(f"{name}: {poll.rows_read} records read, {poll.rows_written} written{extra}")
    for name in report.skipped:
        print(f"{name}: skipped (another syncd is polling it)")
    for name, error in report.errors.items():
        print(f"{name}: FAILED: {error}")
    if result.outbox is not None:
        ob = result.outbox
        dead = f" (ids {', '.join(map(str, ob.dead_ids[:20]))})" if ob.dead_ids else ""
        held = (
            f"; {len(ob.held_ids)} of them with fields held as conflicts (ids {', '.join(map(str, ob.held_ids[:20]))}:"
            " `syncd outbox resolve ID --take app|odoo`)"
            if ob.held_ids
            else ""
        )
        print(f"outbox: {ob.done} delivered, {ob.retried} to retry later, {ob.dead} dead{dead}{held}")
    return EXIT_FAILED if result.failed else EXIT_OK


def cmd_resync(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.model not in {m.model for m in settings.cdc.models}:
        configured = ", ".join(m.model for m in settings.cdc.models) or "none"
        raise ConfigError(f"model {args.model!r} is not in [[cdc.models]] (configured: {configured})")
    return asyncio.run(_resync(settings, args.model))


async def _resync(settings: Settings, model: str) -> int:
    async with _existing_database(settings, "resync") as dsn:
        conn = await db.connect(dsn, settings.database)
        try:
            with db.translate_errors("resetting the cursor"):
                await conn.execute(db.queries["cdc_state_ensure"], model)
                await conn.execute(db.queries["cdc_state_reset"], model)
        finally:
            await conn.close()
    print(f"{model}: cursor reset; the next poll reads it again from the beginning (the mirror is kept)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    status = asyncio.run(_status(settings))
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return EXIT_OK
    rows = [("MODEL", "PHASE", "CURSOR", "SINCE OK", "RECONCILED", "ROWS", "LAST ERROR")]
    for m in status["models"]:
        rows.append(
            (
                m["model"] + ("" if m["configured"] else " (not configured)"),
                m["phase"],
                m["cursor"] or "-",
                _ago(m["lag_seconds"]),
                _ago(m["reconcile_age_seconds"]),
                str(m["rows_mirrored"]),
                (m["last_error"] or "").splitlines()[0][:80] if m["last_error"] else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i != 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))
            )
            + "  "
            + r[-1]
        )
    if not any(m["configured"] for m in status["models"]):
        print("(no [[cdc.models]] configured)")
    stale = [m["model"] for m in status["models"] if not m["configured"]]
    if stale:
        print(
            f"not in [[cdc.models]]: {', '.join(stale)} — nothing polls them here; their state and "
            "mirror tables are kept (add them back to [[cdc.models]], or drop what you no longer need)"
        )
    ob = status["outbox"]
    counts = ", ".join(f"{k} {v}" for k, v in ob["events"].items())
    print(f"\noutbox: {counts}; oldest pending {_ago(ob['oldest_pending_age_seconds'])}")
    if ob["events"]["dead"]:
        print(
            f"dead letters: {ob['events']['dead']} — inspect with `syncd outbox list --status dead`, "
            "redrive with `syncd outbox retry ID…|--all-dead`"
        )
    for held in ob["conflicts_held"]:
        print(
            f"held conflicts of {held['model']}: {held['events']} (oldest {_ago(held['oldest_seconds'])}) — "
            "inspect with `syncd outbox list --status conflict`, decide with "
            "`syncd outbox resolve ID… --take app|odoo`"
        )
    failing = [m["model"] for m in status["models"] if m["last_error"]]
    if failing:
        print(f"models with errors: {', '.join(failing)} — see the LAST ERROR column and the daemon's log")
    return EXIT_OK


def _ago(seconds: float | None) -> str:
    """A duration at a glance: 42s, 7m, 3h, 2d (``-`` when unknown)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


async def _status(settings: Settings) -> dict[str, Any]:
    from syncd.outbox.consumer import read_counts

    async with _existing_database(settings, "status") as dsn:
        conn = await db.connect(dsn, settings.database)
        try:
            with db.translate_errors("reading status"):
                states = {r["model"]: r for r in await conn.fetch(db.queries["cdc_state_list"])}
                counts = await read_counts(conn)
                oldest = await conn.fetchval(db.queries["outbox_oldest_pending_age"])
                held = await conn.fetch(db.queries["outbox_conflicts_held"])
                now = await conn.fetchval("select now()")
        finally:
            await conn.close()
    models = []
    configured = [m.model for m in settings.cdc.models]
    # Then the models the database has state for that the config no longer lists (a model removed
    # from it, or another replica's config): their mirror is still there, and no longer kept up.
    for model in [*configured, *sorted(set(states) - set(configured))]:
        st = states.get(model)
        last = st["last_success_at"] if st else None
        models.append(
            {
                "model": model,
                "configured": model in configured,
                "phase": st["phase"] if st else "not started",
                "cursor": st["cursor_write_date"].isoformat(sep=" ")
                if st and st["cursor_write_date"]
                else None,
                "lag_seconds": (now - last).total_seconds() if last else None,
                "rows_mirrored": st["rows_mirrored"] if st else 0,
                "last_success_at": last,
                "last_reconcile_at": st["last_reconcile_at"] if st else None,
                "reconcile_age_seconds": (now - st["last_reconcile_at"]).total_seconds()
                if st and st["last_reconcile_at"]
                else None,
                "last_error": st["last_error"] if st else None,
            }
        )
    conflicts = [{"model": r["model"], "events": r["n"], "oldest_seconds": r["oldest_seconds"]} for r in held]
    return {
        "models": models,
        "outbox": {"events": counts, "oldest_pending_age_seconds": oldest, "conflicts_held": conflicts},
    }


def cmd_odoo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    command = args.webhooks_command
    url = None if command == "remove" else settings.http.webhook_url()
    if command != "remove" and not settings.cdc.models:
        raise ConfigError("no [[cdc.models]] configured: there is no model to post hints for")
    changes, statuses = asyncio.run(_odoo_webhooks(settings, command, url))
    for c in changes:
        what = {"absent": "no rules in Odoo"}.get(c.outcome, c.outcome)
        print(f"{c.model}: {what}" + (f" ({', '.join(c.details)})" if c.details else ""))
    if command != "status":
        return EXIT_OK
    hints = asyncio.run(_last_hints(settings, [s.model for s in statuses]))
    if args.json:
        models = [
            {**s.as_json(), "last_hint_at": hints[1].get(s.model) if isinstance(hints, tuple) else None}
            for s in statuses
        ]
        print(json.dumps({"models": models}, indent=2, default=str))
    else:
        for s in statuses:
            print(_webhook_line(s, hints))
        if isinstance(hints, str):
            print(f"(last hints unknown: {hints})")
    return EXIT_FAILED if any(not s.ok for s in statuses) else EXIT_OK


async def _odoo_webhooks(
    settings: Settings, command: str, url: str | None
) -> tuple[list[Change], list[ModelStatus]]:
    from syncd.cdc.schema import select_fields
    from syncd.odoo import OdooClient
    from syncd.odoo.webhooks import WebhookRules

    async with OdooClient(settings.odoo) as client:
        rules = WebhookRules(client, settings.cdc.models, url=url, select_fields=select_fields)
        if command == "install":
            return await rules.install(), []
        if command == "remove":
            return await rules.remove(), []
        return [], await rules.status()


async def _last_hints(settings: Settings, models: list[str]) -> tuple[datetime, dict[str, Any]] | str:
    """PostgreSQL's now() and when each model's last hint arrived (None: never), or why it could not say."""
    try:
        async with _existing_database(settings, "odoo webhooks status") as dsn:
            conn = await db.connect(dsn, settings.database)
            try:
                with db.translate_errors("reading the last hints"):
                    rows = await conn.fetch(db.queries["cdc_state_hints"], models)
                    now = await conn.fetchval("select now()")
            finally:
                await conn.close()
    except SyncdError as e:
        return str(e).splitlines()[0]
    return now, {r["model"]: r["last_hint_at"] for r in rows}


def _webhook_line(status: ModelStatus, hints: tuple[datetime, dict[str, Any]] | str) -> str:
    """``res.partner: ok (3 trigger fields, posting to https://…/odoo/webhook/…); last hint 42s ago``."""
    if not status.configured:
        return (
            f"{status.model}: {status.problems()[0]}; `syncd odoo webhooks install` or `remove` deletes them"
        )
    if isinstance(hints, str):
        hint = "?"
    else:
        now, last = hints
        at = last.get(status.model)
        hint = "never" if at is None else f"{_ago((now - at).total_seconds())} ago"
    if status.ok:
        url = next((r.url for r in status.rules if r.url), "?")
        head = f"ok ({len(status.trigger_fields)} trigger fields, posting to {url})"
    else:
        head = "; ".join(status.problems()) + " — run `syncd odoo webhooks install`"
    return f"{status.model}: {head}; last hint {hint}"


def cmd_outbox(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return asyncio.run(_outbox(settings, args))


async def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    from syncd.outbox.consumer import discard_events

    async with _existing_database(settings, f"outbox {args.outbox_command}") as dsn:
        conn = await db.connect(dsn, settings.database)
        try:
            with db.translate_errors("outbox"):
                if args.outbox_command == "list":
                    rows = await conn.fetch(db.queries["outbox_list"], args.status, args.limit)
                    print(
                        f"{'ID':>8}  {'STATUS':<8} {'OP':<6} {'MODEL':<22} {'TARGET':<24} {'TRIES':>5}  LAST ERROR"
                    )
                    for r in rows:
                        target = r["key"] if r["key"] is not None else f"#{r['odoo_id']}"
                        error = (r["last_error"] or "").replace("\n", " ")[:80]
                        print(
                            f"{r['id']:>8}  {r['status']:<8} {r['op']:<6} {r['model']:<22} {target[:24]:<24} "
                            f"{r['attempts']:>5}  {error}"
                        )
                    return EXIT_OK
                if args.outbox_command == "resolve":
                    return await _outbox_resolve(conn, args.ids, args.take)
                if args.outbox_command == "retry":
                    if not args.ids and not args.all_dead:
                        raise ConfigError("syncd outbox retry: give event ids or --all-dead")
                    return await _outbox_retry(conn, None if args.all_dead else args.ids, force=args.force)
                gone = await discard_events(conn, args.ids)
                print(f"{len(gone)} events discarded")
                kept = sorted(set(args.ids) - set(gone))
                if kept:
                    print(f"in flight (or unknown), left alone: {', '.join(map(str, kept))}")
                return EXIT_OK
        finally:
            await conn.close()


async def _outbox_resolve(conn: db.Connection, ids: list[int], take: str) -> int:
    """``syncd outbox resolve``: exit 1 when an id was not a held conflict."""
    import asyncpg

    resolved: list[int] = []
    refused: list[str] = []
    for event_id in ids:
        try:
            async with conn.transaction():
                await conn.fetchval(db.queries["outbox_resolve"], event_id, take)
            resolved.append(event_id)
        except asyncpg.InvalidParameterValueError as e:
            refused.append(f"{event_id}: {str(e).removeprefix('syncd.outbox_resolve: ')}")
    what = "the app's held values will be written" if take == "app" else "Odoo's values kept"
    print(f"{len(resolved)} held conflicts resolved ({what})")
    for line in refused:
        print(f"left alone: {line}")
    return EXIT_FAILED if refused else EXIT_OK


async def _outbox_retry(conn: db.Connection, ids: list[int] | None, *, force: bool) -> int:
    """``syncd outbox retry``: exit 1 when a dead event was refused (see syncd.outbox.redrive)."""
    from syncd.outbox.redrive import retry_dead

    result = await retry_dead(conn, ids, force=force)
    print(f"{len(result.retried)} dead events made pending again")
    for s in result.forced:
        print(
            f"forced {s.id} ({s.model} {s.target}): its values overwrite what later events applied: "
            + _later_events(s)
        )
    for s in result.refused:
        print(f"refused {s.id} ({s.model} {s.target}): later events of this record: {_later_events(s)}")
    handled = set(result.retried) | {s.id for s in result.refused}
    missing = sorted(set(ids or []) - handled)
    if missing:
        print(f"not dead (or unknown), left alone: {', '.join(map(str, missing))}")
    if not result.refused:
        return EXIT_OK
    refused = " ".join(str(s.id) for s in result.refused)
    print(
        f"{len(result.refused)} dead events left dead: retrying them would set their records back to "
        "values that the later events above replaced. Check the record in Odoo, then either "
        f"`syncd outbox discard {refused}` (and enqueue a new event for any value still missing), or "
        f"`syncd outbox retry --force {refused}` to apply the older values anyway."
    )
    return EXIT_FAILED


def _later_events(s: Superseded, limit: int = 5) -> str:
    """``14 upsert done 2026-01-31 10:00:03+00:00, 15 write in flight`` (the first ``limit``)."""
    parts = [
        f"{e.id} {e.op} "
        + (f"done {e.done_at.isoformat(sep=' ', timespec='seconds')}" if e.done_at else "in flight")
        for e in s.later[:limit]
    ]
    if len(s.later) > limit:
        parts.append(f"and {len(s.later) - limit} more")
    return ", ".join(parts)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "migrate": cmd_migrate,
    "check": cmd_check,
    "fake-odoo": cmd_fake_odoo,
    "run": cmd_run,
    "status": cmd_status,
    "outbox": cmd_outbox,
    "resync": cmd_resync,
    "odoo": cmd_odoo,
    "demo": cmd_demo,
}


# ------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stray = [flag for flag, given in (("--once", args.once), ("--dry-run", args.dry_run)) if given]
    if args.command is None and args.once:
        args.command = "run"
    elif args.command is None and args.dry_run:
        print("syncd: --dry-run goes with --once: `syncd --once --dry-run` reads and plans, writes nothing",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    elif args.command is None:
        parser.print_help()
        return EXIT_USAGE
    elif stray and args.command != "run":
        print(
            f"syncd: {' and '.join(stray)} {'go' if len(stray) > 1 else 'goes'} with `syncd run` "
            f"(or alone: `syncd {' '.join(stray)}`), not with `syncd {args.command}`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    setup_logging(args.log_format or "text", args.log_level or "info")
    try:
        return COMMANDS[args.command](args)
    except SyncdError as e:
        code, message = _failure(e)
        print(f"syncd: {message}", file=sys.stderr)
        if getattr(args, "json", False):
            # The caller parses stdout: one JSON object it can read instead of nothing.
            print(json.dumps({"error": message, "exit_code": code}, indent=2))
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `syncd status --json | head`: the reader left; not an error of ours
        _quiet_stdout()
        return EXIT_OK


def _failure(error: SyncdError) -> tuple[int, str]:
    """The exit code and the one message of a command that raised ``error``."""
    if isinstance(error, ConfigError):
        return EXIT_USAGE, str(error)
    if isinstance(error, DatabaseUnavailable):
        return EXIT_UNAVAILABLE, f"PostgreSQL is unreachable: {error}"
    if isinstance(error, SchemaError):
        return EXIT_FAILED, str(error)
    return (EXIT_UNAVAILABLE if error.transient else EXIT_FAILED), str(error)


def _quiet_stdout() -> None:
    """After EPIPE on stdout: point it at /dev/null, so that the interpreter's final flush of what
    is still buffered does not print "Exception ignored … BrokenPipeError" (Python's signal docs)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
