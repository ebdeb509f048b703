"""The Odoo client: one interface (:class:`OdooClient`), two transports (JSON-2 and JSON-RPC).

Errors are :mod:`syncd.errors` classes; :func:`~syncd.odoo.classify.classify` decides which:

============================================================  ==============================
answer / failure                                              error ((T) = transient)
============================================================  ==============================
connect refused, DNS failure                                  OdooConnectFailedError  (T)
dropped connection, ServerDisconnected, ClientPayloadError    OdooConnectionError     (T)
no answer within ``odoo.timeout_seconds``; QueryCanceled      OdooTimeoutError        (T)
HTTP 429 (``Retry-After`` parsed)                             OdooRateLimitedError    (T)
HTTP 502/503/504, a 5xx that is not Odoo's,
``psycopg2.OperationalError`` (Odoo lost its PostgreSQL)      OdooServerUnavailableError (T)
SerializationFailure, DeadlockDetected, LockNotAvailable,
ConcurrencyError (any status, either transport), or their
PostgreSQL text ("could not serialize access …", "deadlock
detected", "lock not available", "… due to lock timeout")     OdooSerializationError  (T)
HTTP 401, AccessDenied, ``authenticate`` answering false      OdooAuthenticationError
HTTP 403, AccessError (private methods too)                   OdooAccessError
MissingError (JSON-2: 404)                                    OdooMissingError
JSON-2 404 NotFound (model/method), UserError "Object … doesn't
exist", AttributeError "method … does not exist", KeyError,
ValueError "Invalid field …"                                  OdooUnknownNameError
HTTP 422, ValidationError, other UserError, psycopg2 integrity
and data errors (UniqueViolation, NumericValueOutOfRange, …),
ValueError "Wrong value for …"                                OdooValidationError
HTTP 400, other 4xx, an answer not in the transport's format  OdooProtocolError
a non-Odoo 404 (unknown X-Odoo-Database), OperationalError
"database … does not exist", TLS certificate, TypeError (bad
keyword), any other ValueError, anything else                 OdooPermanentError
============================================================  ==============================

``load()`` reports rows it could not save in its answer, not as errors:
:func:`~syncd.odoo.classify.classify_load_message` reads such a message the same way (a conflict's
text: OdooSerializationError (T); anything else: OdooValidationError).

Only transient errors are retried, and a non-idempotent call (``create``, ``load`` without an ``id``
column) only after one that proves it did not run: see :mod:`syncd.odoo.retry`.
"""

from syncd.odoo.classify import (
    OdooConnectFailedError,
    classify,
    classify_exception,
    classify_load_message,
    may_land_later,
    parse_retry_after,
    proves_not_executed,
)
from syncd.odoo.client import LoadResult, OdooClient, ServerInfo
from syncd.odoo.retry import RetryPolicy, is_idempotent

__all__ = [
    "LoadResult",
    "OdooClient",
    "OdooConnectFailedError",
    "RetryPolicy",
    "ServerInfo",
    "classify",
    "classify_exception",
    "classify_load_message",
    "is_idempotent",
    "may_land_later",
    "parse_retry_after",
    "proves_not_executed",
]
