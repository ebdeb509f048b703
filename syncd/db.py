"""PostgreSQL access: the asyncpg pool, codecs, named queries and driver-error translation.

Nothing above this module imports asyncpg's exceptions: :func:`translate_errors` turns them into
:class:`~syncd.errors.DatabaseUnavailable` (reconnect and try again) or
:class:`~syncd.errors.DatabaseError` (the statement itself is wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from syncd.config import DatabaseSettings, redact_dsn
from syncd.errors import DatabaseError, DatabaseUnavailable

log = logging.getLogger("syncd.db")

#: A dedicated connection or one borrowed from the pool; code above this module accepts either.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

APPLICATION_NAME = "syncd"

# ------------------------------------------------------------------------------------ named queries

_QUERY_HEADER = re.compile(r"^-- ([a-z0-9_]+) --\s*$", re.MULTILINE)


def _parse_queries(text: str) -> dict[str, str]:
    """Split ``queries.sql`` into ``{name: sql}`` at ``-- name --`` header lines."""
    parts = _QUERY_HEADER.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(line for line in body.strip().splitlines() if not line.lstrip().startswith("--"))
        if name in out:
            raise RuntimeError(f"query {name!r} is defined twice in queries.sql")
        out[name] = sql.strip()
    return out


queries: dict[str, str] = _parse_queries(
    resources.files("syncd").joinpath("sql/queries.sql").read_text(encoding="utf-8")
)


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (Odoo's names are never trusted to be plain)."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal, for DDL that takes no parameters (standard_conforming_strings is on
    since PostgreSQL 9.1: only quotes are doubled). NUL cannot be in PostgreSQL text at all."""
    if "\x00" in text:
        raise ValueError("PostgreSQL text cannot hold NUL characters")
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------- error handling

_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")  # connection, resources, operator intervention


def is_unavailable(exc: BaseException) -> bool:
    """True for errors where reconnecting and trying again can help."""
    if isinstance(exc, OSError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, asyncpg.exceptions.InternalClientError | asyncpg.ConnectionDoesNotExistError):
        # The protocol lost track of the connection (e.g. the backend was terminated under it).
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed" can be healed by reconnecting; a bad argument (DataError) cannot.
        return "closed" in str(exc)
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES) or state in ("40001", "40P01")
    return False


_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)


@contextlib.contextmanager
def translate_errors(what: str = "database") -> Iterator[None]:
    """Re-raise driver errors as syncd's own, keeping the SQLSTATE and server message."""
    try:
        yield
    except (DatabaseError, asyncio.CancelledError):
        raise
    except Exception as exc:
        if isinstance(exc, _DRIVER_ERRORS):
            state = getattr(exc, "sqlstate", None)
            detail = str(exc) or type(exc).__name__
            message = f"{what}: {detail}" + (f" (SQLSTATE {state})" if state else "")
            if is_unavailable(exc):
                raise DatabaseUnavailable(message) from exc
            raise DatabaseError(message) from exc
        raise


# ------------------------------------------------------------------------------------------ pools


#: The one key of what :func:`loads_json` returns for JSON that Python cannot read. PostgreSQL's json
#: and jsonb cannot hold NUL, so no value read from the database has this key by itself.
UNREADABLE_JSON = "\x00unreadable JSON"


#: Texts up to this long go to orjson (about eight times faster than json for an outbox payload): they
#: cannot nest deeper than Python's recursion limit allows later code to walk (orjson itself has no
#: depth limit). Longer texts, and texts with a run of 19 digits (an integer beyond 64 bits, which
#: orjson reads as a float; json keeps it exact), go to json, so both read every text alike.
FAST_JSON_MAX_LENGTH = 1024
_LONG_DIGITS = re.compile(r"\d{19}")


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` for JSON that PostgreSQL accepted, which Python cannot always read: PostgreSQL
    takes nesting thousands of levels deep and integers of any length, Python's json stops near its
    recursion limit (1000) and at 4300 digits. Such a value reads as ``{UNREADABLE_JSON: reason}``
    instead of raising, so that one value cannot fail every statement that reads it (for the outbox:
    every claim, forever); the outbox dead-letters it with the reason (``syncd.outbox.convert``).
    Short texts are read by orjson, with the same result (see ``FAST_JSON_MAX_LENGTH``)."""
    if isinstance(text, str) and len(text) <= FAST_JSON_MAX_LENGTH and _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # json below says what is wrong
    try:
        return json.loads(text)
    except RecursionError:
        reason = "it nests too deeply for Python (lists or objects about 1000 levels deep)"
    except json.JSONDecodeError:
        raise
    except ValueError:  # int('…') beyond sys.get_int_max_str_digits()
        reason = "it holds a number of more than 4300 digits, more than Python reads"
    return {UNREADABLE_JSON: reason}


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _jsonb_decode(data: bytes) -> Any:
    return loads_json(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in binary format, so that it also works in arrays and binary COPY (mirror writes).
    await conn.set_type_codec("json", encoder=json.dumps, decoder=loads_json, schema="pg_catalog")
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def connect(dsn: str, settings: DatabaseSettings) -> asyncpg.Connection:
    """One dedicated connection (for LISTEN and session-level advisory locks)."""
    with translate_errors(f"connecting to {redact_dsn(dsn)}"):
        conn = await asyncpg.connect(
            dsn,
            timeout=settings.connect_timeout_seconds,
            command_timeout=settings.command_timeout_seconds,
            statement_cache_size=settings.statement_cache_size,
            server_settings={"application_name": APPLICATION_NAME},
        )
        await _init_connection(conn)
        return conn


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pooled connections carry no session state (LISTEN and advisory locks live on dedicated
    connections; settings are transaction-local), so asyncpg's reset query — two round trips on
    every release — is skipped."""


async def create_pool(dsn: str, settings: DatabaseSettings) -> asyncpg.Pool:
    """The shared pool. ``statement_cache_size = 0`` keeps it usable behind a transaction-mode pooler."""
    with translate_errors(f"connecting to {redact_dsn(dsn)}"):
        pool = await asyncpg.create_pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.connect_timeout_seconds,
            command_timeout=settings.command_timeout_seconds,
            statement_cache_size=settings.statement_cache_size,
            server_settings={"application_name": APPLICATION_NAME},
            init=_init_connection,
            reset=_no_reset,
        )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, what: str = "database") -> AsyncIterator[Connection]:
    """A pooled connection inside a transaction, with errors translated."""
    with translate_errors(what):
        async with pool.acquire() as conn, conn.transaction():
            yield conn


# ------------------------------------------------------------------------------- DSN resolution


@contextlib.asynccontextmanager
async def open_dsn(settings: DatabaseSettings) -> AsyncIterator[str]:
    """The configured DSN, or that of the embedded PostgreSQL under ``database.data_dir``.

    An embedded server that this call started is stopped again on exit; one that was already
    running (another syncd process uses it) is left alone. Its data stays in ``data_dir``.
    """
    if settings.dsn is not None:
        yield settings.dsn.get_secret_value()
        return
    from syncd.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    was_running = server.is_running()
    admin_dsn = await asyncio.to_thread(server.start)
    log.info("no database.dsn configured: using the embedded PostgreSQL in %s", server.data_dir)
    try:
        yield await ensure_database(admin_dsn, "syncd")
    finally:
        if not was_running:
            await asyncio.to_thread(server.stop)


async def ensure_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_dsn`` if missing; return its DSN."""
    with translate_errors("creating the syncd database"):
        conn = await asyncpg.connect(admin_dsn)
        try:
            exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
            if not exists:
                await conn.execute(f"create database {quote_ident(name)}")
        finally:
            await conn.close()
    return replace_database(admin_dsn, name)


def replace_database(dsn: str, name: str) -> str:
    """The same DSN pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))
