"""Turn whatever went wrong with an Odoo call into one of :mod:`syncd.errors`' Odoo classes.

Two pure functions do all the deciding, so that they can be tested with the bodies recorded from a
real server (``odoo-wire/``):

- :func:`classify` reads an HTTP answer: a JSON-2 error (real status, flat body
  ``{name, message, arguments, context, debug}``), a JSON-RPC error envelope (always HTTP 200,
  the class in ``error.data.name``), or something that is not Odoo's at all (an HTML page from a
  proxy or from Odoo's database selector).
- :func:`classify_exception` reads an aiohttp/asyncio failure (no answer at all).
- :func:`classify_load_message` reads one of ``load()``'s in-band messages: ``load()`` does not raise
  for a row it could not save but answers normally (``ids: false``) with the database's text in a
  message of type ``error``, so a conflict with a concurrent transaction is told apart by its text.

Messages are built from the server's answer only, never from the request, and every credential
passed in ``secrets`` is blanked out of them in case a server or proxy echoes it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import aiohttp

from syncd.errors import (
    OdooAccessError,
    OdooAuthenticationError,
    OdooConnectionError,
    OdooError,
    OdooMissingError,
    OdooPermanentError,
    OdooProtocolError,
    OdooRateLimitedError,
    OdooSerializationError,
    OdooServerUnavailableError,
    OdooTimeoutError,
    OdooUnknownNameError,
    OdooValidationError,
)

REDACTED = "***"

#: Longest excerpt of a non-Odoo body (an HTML error page) quoted in a message.
_EXCERPT = 200


class OdooConnectFailedError(OdooConnectionError):
    """The connection could not be established, so the request never left syncd.

    Unlike a dropped connection, this proves the call did not run: even a non-idempotent call
    (``create``) may be retried.
    """


class OdooFault(NamedTuple):
    """The parts of an Odoo error body that matter; ``name`` is None when the body is not Odoo's."""

    name: str | None
    message: str | None
    arguments: list[Any]
    debug: str | None


# Exception classes are compared on their last dotted component so that the module path (which
# moved between Odoo versions, e.g. psycopg2.errors vs psycopg2.extensions) does not matter.
_CONCURRENCY = frozenset(
    {
        "SerializationFailure",
        "TransactionRollbackError",
        "DeadlockDetected",
        "LockNotAvailable",
        "ConcurrencyError",
    }
)
#: PostgreSQL's texts for those conflicts (serialization failure, deadlock, lock timeout or NOWAIT),
#: as they appear in a message when no exception class is named (``load()``'s in-band messages).
_CONCURRENCY_TEXT = re.compile(
    r"could not serialize access"
    r"|deadlock detected"
    r"|lock not available"
    r"|canceling statement due to lock timeout"
    r"|could not obtain lock",
    re.IGNORECASE,
)
_AUTH = frozenset({"AccessDenied", "Unauthorized", "SessionExpiredException"})
_ACCESS = frozenset({"AccessError", "Forbidden"})
_VALIDATION = frozenset(
    {
        "ValidationError",
        "UserError",
        "RedirectWarning",
        "UnprocessableEntity",
        "IntegrityError",
        "UniqueViolation",
        "NotNullViolation",
        "ForeignKeyViolation",
        "CheckViolation",
        "DataError",
        "NumericValueOutOfRange",
        "StringDataRightTruncation",
        "InvalidTextRepresentation",
        "InvalidDatetimeFormat",
    }
)
_UNKNOWN_MODEL = re.compile(r"^Object \S+ doesn't exist")
_UNKNOWN_FIELD = re.compile(r"^Invalid field\b")


def is_concurrency_conflict(name: str | None, message: str | None) -> bool:
    """Whether an error is a conflict with a concurrent transaction, which another attempt resolves:
    by the exception class Odoo names, or else by PostgreSQL's text in the message."""
    return short_name(name) in _CONCURRENCY or bool(_CONCURRENCY_TEXT.search(message or ""))


def short_name(name: str | None) -> str:
    """``odoo.exceptions.MissingError`` → ``MissingError``."""
    return (name or "").rsplit(".", 1)[-1]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def odoo_fault(body: object) -> OdooFault:
    """Find Odoo's error in a JSON-2 body, a JSON-RPC envelope or its ``error`` member."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # the whole JSON-RPC answer
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and "name" in body["data"]:
        body = body["data"]  # the JSON-RPC ``error`` member
    if not isinstance(body, dict):
        return OdooFault(None, None, [], None)
    name = body.get("name")
    message = body.get("message")
    arguments = body.get("arguments")
    debug = body.get("debug")
    return OdooFault(
        name if isinstance(name, str) else None,
        message if isinstance(message, str) else None,
        arguments if isinstance(arguments, list) else [],
        debug if isinstance(debug, str) else None,
    )


def classify(
    status: int | None,
    body: object,
    *,
    model: str | None = None,
    method: str | None = None,
    retry_after: str | None = None,
    secrets: Iterable[str | None] = (),
) -> OdooError:
    """The error for an HTTP answer that is not a success.

    ``body`` is the parsed JSON when the answer was JSON, else its text (or None when empty).
    See the module docstring and the table in ``syncd/odoo/__init__.py``.
    """
    secrets = tuple(secrets)
    fault = odoo_fault(body)
    short = short_name(fault.name)
    odoo_message = redact(fault.message, secrets) if fault.message is not None else None
    where = f" (HTTP {status})" if status is not None and status != 200 else ""
    kw: dict[str, Any] = {
        "name": fault.name,
        "odoo_message": odoo_message,
        "status": status,
        "model": model,
        "method": method,
        "arguments": [redact(a, secrets) if isinstance(a, str) else a for a in fault.arguments],
    }

    if fault.name is None:
        return _not_odoo(status, body, secrets, retry_after, kw)

    text = f"{short}: {odoo_message}{where}" if odoo_message else f"{short}{where}"
    msg = odoo_message or ""
    if is_concurrency_conflict(short, msg):
        return OdooSerializationError(text, **kw)
    if status == 429:
        return OdooRateLimitedError(text, retry_after=parse_retry_after(retry_after), **kw)
    if status in (502, 503, 504):
        return OdooServerUnavailableError(text, **kw)
    if status == 401 or short in _AUTH:
        return OdooAuthenticationError(text, **kw)
    if status == 403 or short in _ACCESS:
        return OdooAccessError(text, **kw)
    if short == "MissingError":
        return OdooMissingError(text, **kw)
    if status == 404 or short == "NotFound":
        return OdooUnknownNameError(text, **kw)
    if short == "UserError" and _UNKNOWN_MODEL.match(msg):
        return OdooUnknownNameError(text, **kw)  # JSON-RPC's way of saying "no such model"
    if short == "AttributeError" and "does not exist" in msg:
        return OdooUnknownNameError(text, **kw)  # JSON-RPC's way of saying "no such method"
    if status == 422 or short in _VALIDATION:
        return OdooValidationError(text, **kw)
    if short == "KeyError" or (short == "ValueError" and _UNKNOWN_FIELD.match(msg)):
        return OdooUnknownNameError(text, **kw)
    if short == "ValueError" and msg.startswith("Wrong value for"):
        return OdooValidationError(text, **kw)
    if short == "OperationalError":
        # Odoo could not reach its own PostgreSQL: transient, unless the database does not exist.
        if "does not exist" in msg:
            return OdooPermanentError(text, **kw)
        return OdooServerUnavailableError(text, **kw)
    if short == "QueryCanceled":
        return OdooTimeoutError(text, **kw)  # a server-side statement timeout
    if status == 400 or short == "BadRequest":
        return OdooProtocolError(text, **kw)
    return OdooPermanentError(text, **kw)


def _not_odoo(
    status: int | None,
    body: object,
    secrets: tuple[str | None, ...],
    retry_after: str | None,
    kw: dict[str, Any],
) -> OdooError:
    """An answer without Odoo's error structure: a proxy, a restarting server, the database selector."""
    excerpt = _excerpt(body, secrets)
    shown = f": {excerpt}" if excerpt else ""
    if status == 429:
        return OdooRateLimitedError(
            f"rate limited (HTTP 429){shown}", retry_after=parse_retry_after(retry_after), **kw
        )
    if status is not None and status >= 500:
        return OdooServerUnavailableError(f"HTTP {status}, not an answer from Odoo{shown}", **kw)
    if status == 401:
        return OdooAuthenticationError(f"HTTP 401 Unauthorized{shown}", **kw)
    if status == 403:
        return OdooAccessError(f"HTTP 403 Forbidden{shown}", **kw)
    if status == 404:
        return OdooPermanentError(
            "HTTP 404, not an answer from Odoo's API (check odoo.url and odoo.database: an unknown "
            f"database gives this page){shown}",
            **kw,
        )
    if status is None or status == 200:
        return OdooProtocolError(f"the answer is not a valid Odoo answer{shown}", **kw)
    return OdooProtocolError(f"unexpected HTTP {status}{shown}", **kw)


def _excerpt(body: object, secrets: tuple[str | None, ...]) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(re.sub(r"<[^>]*>", " ", text).split())  # an HTML page reads better without tags
    text = redact(text, secrets)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def classify_exception(
    exc: BaseException,
    *,
    model: str | None = None,
    method: str | None = None,
    timeout: float | None = None,
    secrets: Iterable[str | None] = (),
) -> OdooError:
    """The error for a request that got no answer: refused, dropped, timed out, bad TLS."""
    secrets = tuple(secrets)
    kw: dict[str, Any] = {"model": model, "method": method}
    detail = redact(str(exc), secrets) or type(exc).__name__
    if isinstance(exc, OdooError):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, aiohttp.ServerTimeoutError
        limit = f" after {timeout:g} s" if timeout is not None else ""
        return OdooTimeoutError(f"no answer from Odoo{limit} (odoo.timeout_seconds)", **kw)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return OdooPermanentError(f"TLS certificate verification failed: {detail}", **kw)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return OdooConnectFailedError(f"cannot connect to Odoo: {detail}", **kw)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return OdooConnectionError(f"the connection dropped before Odoo answered: {detail}", **kw)
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return OdooConnectionError(f"connection to Odoo failed: {detail}", **kw)
    if isinstance(exc, aiohttp.InvalidURL):
        return OdooPermanentError(f"invalid Odoo URL: {detail}", **kw)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return OdooConnectionError(f"HTTP request to Odoo failed: {type(exc).__name__}: {detail}", **kw)
    return OdooPermanentError(f"unexpected failure: {type(exc).__name__}: {detail}", **kw)


def classify_load_message(
    message: Mapping[str, Any], *, model: str | None = None, secrets: Iterable[str | None] = ()
) -> OdooError:
    """The error for one message of type ``error`` in a ``load()`` answer (``ids: false``).

    A conflict with a concurrent transaction (``could not serialize access due to concurrent
    update``, a deadlock, a lock timeout) is :class:`OdooSerializationError`, transient like the same
    conflict raised as an error answer; anything else is the row's values being refused:
    :class:`OdooValidationError`, permanent.
    """
    raw = message.get("message")
    text = redact(raw if isinstance(raw, str) else repr(message), secrets).strip()
    field = message.get("field")
    where = f"field {field!r}: " if isinstance(field, str) and field else ""
    kw: dict[str, Any] = {"odoo_message": text, "model": model, "method": "load"}
    if is_concurrency_conflict(None, text):
        return OdooSerializationError(f"load() reported a conflict: {where}{text}", **kw)
    return OdooValidationError(f"load() rejected the row: {where}{text}", **kw)


def may_land_later(error: BaseException) -> bool:
    """True when Odoo may still carry out a call that failed with ``error``: the request went out and
    no answer came back, so it may be running (or waiting for a worker) and commit later, until
    Odoo's ``limit_time_real`` kills it.

    - syncd's own timeout (no answer within ``odoo.timeout_seconds``; not ``QueryCanceled``, which
      is Odoo's answer that the statement was cancelled);
    - a connection dropped after it was opened (the request may have been sent);
    - HTTP 504 (a proxy gave up waiting while Odoo may still be working on it).
    """
    if isinstance(error, OdooTimeoutError):
        return error.name is None and error.status is None
    if isinstance(error, OdooConnectionError):
        return not isinstance(error, OdooConnectFailedError)
    return isinstance(error, OdooServerUnavailableError) and error.status == 504


def proves_not_executed(error: BaseException) -> bool:
    """True when ``error`` shows that Odoo did not carry out the call, so repeating it cannot duplicate.

    - a connection that never opened; 429 (rejected before dispatch); 503 (server or proxy refusing
      work); a serialization failure (Odoo rolled the transaction back).
    - not a timeout, a dropped connection, 502 or 504: the call may have run and committed.
    """
    if isinstance(error, OdooConnectFailedError | OdooRateLimitedError | OdooSerializationError):
        return True
    return isinstance(error, OdooServerUnavailableError) and error.status == 503
