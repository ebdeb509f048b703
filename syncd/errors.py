"""Every error syncd raises on purpose derives from :class:`SyncdError`.

Driver errors (asyncpg, aiohttp) are translated at the boundary (``syncd.db``, ``syncd.odoo``) so that
nothing above those modules needs to import a driver to decide what to do. The one question callers ask
of a failure is "will trying again help?", so each error class answers it with ``transient``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SyncdError(Exception):
    """Root of syncd's own errors."""

    #: Whether retrying the same operation later may succeed.
    transient: ClassVar[bool] = False


class ConfigError(SyncdError):
    """The configuration is missing, unreadable or invalid (exit code 2)."""


class DatabaseError(SyncdError):
    """PostgreSQL refused a statement (a permanent problem with the statement or the schema)."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL could not be reached or the connection broke (exit code 3)."""

    transient = True


class SchemaError(SyncdError):
    """The ``syncd`` schema is missing, behind, ahead of this version, or its migrations were altered."""


class EmbeddedPostgresError(SyncdError):
    """The embedded PostgreSQL server could not be initialised or started."""


# --------------------------------------------------------------------------------------------- Odoo


class OdooError(SyncdError):
    """An Odoo call failed.

    ``name`` and ``odoo_message`` are Odoo's own (e.g. ``odoo.exceptions.ValidationError`` and its
    text) when the server answered with an error; ``status`` is the HTTP status when there was one.
    The message never contains credentials: transports build it from the server's answer only.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        odoo_message: str | None = None,
        status: int | None = None,
        model: str | None = None,
        method: str | None = None,
        arguments: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.odoo_message = odoo_message
        self.status = status
        self.model = model
        self.method = method
        self.arguments = arguments or []

    def __str__(self) -> str:
        where = f"{self.model}.{self.method}" if self.model and self.method else (self.method or "")
        head = f"{where}: " if where else ""
        return f"{head}{self.args[0]}"


class OdooTransientError(OdooError):
    """Trying again later may succeed: network trouble, timeouts, 429, 502/503/504, serialization conflicts."""

    transient = True


class OdooConnectionError(OdooTransientError):
    """The server could not be reached, or the connection dropped before an answer arrived."""


class OdooTimeoutError(OdooTransientError):
    """No answer within ``odoo.timeout_seconds``."""


class OdooRateLimitedError(OdooTransientError):
    """HTTP 429. ``retry_after`` is the server's hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OdooServerUnavailableError(OdooTransientError):
    """HTTP 502/503/504 or another answer that is not Odoo's (a proxy, a restarting server)."""


class OdooSerializationError(OdooTransientError):
    """``psycopg2.errors.SerializationFailure``: a concurrent update won; Odoo already retried 5 times."""


class OdooPermanentError(OdooError):
    """Trying the same call again will fail the same way."""


class OdooAuthenticationError(OdooPermanentError):
    """Wrong login, password or API key (HTTP 401, ``AccessDenied``, ``authenticate`` answering false)."""


class OdooAccessError(OdooPermanentError):
    """The user lacks the rights for this model or record (HTTP 403, ``AccessError``)."""


class OdooValidationError(OdooPermanentError):
    """Odoo rejected the values (HTTP 422, ``ValidationError``, ``UserError``, a failed constraint)."""


class OdooMissingError(OdooPermanentError):
    """A record does not exist (HTTP 404 ``MissingError``)."""


class OdooUnknownNameError(OdooPermanentError):
    """An unknown model, method or field (HTTP 404 on the route, ``ValueError``/``KeyError`` on a field)."""


class OdooProtocolError(OdooPermanentError):
    """The server answered something that is not a valid answer of the chosen transport."""


class WebhookSetupError(SyncdError):
    """Odoo cannot take syncd's webhook rules: no Automation Rules app, an Odoo before 17, or the user
    lacks the rights. The message says what to change."""
