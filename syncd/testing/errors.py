"""Errors the fake Odoo answers with, shaped like a real Odoo 19's.

Every failure the fake produces on purpose is a :class:`FakeOdooError`. It carries what both transports
need to render it: Odoo's qualified exception name (``odoo.exceptions.MissingError``, ``builtins.ValueError``,
``werkzeug.exceptions.NotFound``…), the message, the ``arguments`` list and the HTTP status JSON-2 answers
with. JSON-RPC always answers HTTP 200 and puts the same data in its error envelope.

The same exceptions are raised by the direct (in-process) API of :class:`~syncd.testing.FakeOdoo`, so a
test can assert ``excinfo.value.name == "odoo.exceptions.MissingError"`` without going through HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SERIALIZATION_MESSAGE = "could not serialize access due to concurrent update\n"


class FakeOdooError(Exception):
    """An error as Odoo would report it: ``name``, ``message``, ``arguments`` and the JSON-2 ``status``."""

    def __init__(
        self,
        name: str,
        message: str,
        *,
        status: int = 500,
        arguments: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status
        self.arguments: list[Any] = [message] if arguments is None else arguments

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    @property
    def debug(self) -> str:
        """A short stand-in for Odoo's traceback; its last line reads like Python's own."""
        short = self.name.removeprefix("builtins.")
        return (
            "Traceback (most recent call last):\n"
            '  File "syncd/testing (fake Odoo 19.0)", line 1, in <rpc>\n'
            f"{short}: {self.message}"
        )

    def data(self) -> dict[str, Any]:
        """The ``{name, message, arguments, context, debug}`` object both transports serialise."""
        return {
            "name": self.name,
            "message": self.message,
            "arguments": self.arguments,
            "context": {},
            "debug": self.debug,
        }


class ConstraintViolation(FakeOdooError):
    """A database constraint failed (CHECK, NOT NULL, foreign key, index size…).

    Through ``create``/``write`` Odoo wraps it as a ValidationError prefixed with "The operation cannot be
    completed: "; ``load`` reports the raw text in its ``messages`` instead, hence ``raw`` and ``field``.
    """

    def __init__(self, raw: str, *, field: str | None = None, wrap: bool = True) -> None:
        if wrap:
            super().__init__(
                "odoo.exceptions.ValidationError",
                f"The operation cannot be completed: {raw}",
                status=422,
            )
        else:
            super().__init__("psycopg2.errors.CheckViolation", raw, status=500)
        self.raw = raw
        self.field = field


class RowLocked(Exception):
    """Internal: a row is locked by another open transaction (the caller may wait and retry)."""

    def __init__(self, holder: object) -> None:
        super().__init__("row locked by another transaction")
        self.holder = holder


# --------------------------------------------------------------------------- odoo.exceptions


def access_denied() -> FakeOdooError:
    return FakeOdooError("odoo.exceptions.AccessDenied", "Access Denied", status=401)


def access_error(message: str) -> FakeOdooError:
    return FakeOdooError("odoo.exceptions.AccessError", message, status=403)


def private_method(model: str, method: str) -> FakeOdooError:
    return access_error(f"Private methods (such as '{model}.{method}') cannot be called remotely.")


def model_access_error(operation: str, description: str, model: str, group: str) -> FakeOdooError:
    return access_error(
        f"You are not allowed to {operation} '{description}' ({model}) records.\n\n"
        f"This operation is allowed for the following groups:\n\t- {group}\n\n"
        "Contact your administrator to request access if necessary."
    )


def validation_error(message: str) -> FakeOdooError:
    return FakeOdooError("odoo.exceptions.ValidationError", message, status=422)


def user_error(message: str) -> FakeOdooError:
    return FakeOdooError("odoo.exceptions.UserError", message, status=422)


def missing_error(model: str, ids: Iterable[Any], uid: int) -> FakeOdooError:
    return FakeOdooError(
        "odoo.exceptions.MissingError",
        f"Record does not exist or has been deleted.\n(Record: {model}{tuple(ids)!r}, User: {uid})",
        status=404,
    )


def restrict_error(troublemaker: str, constraint: str) -> ConstraintViolation:
    return ConstraintViolation(
        "Another model is using the record you are trying to delete.\n\n"
        f"The troublemaker is: {troublemaker}\n"
        f"Thanks to the following constraint: {constraint}\n"
        "How about archiving the record instead?"
    )


def required_error(string: str, field: str, description: str, model: str) -> ConstraintViolation:
    return ConstraintViolation(
        f"Missing required value for the field '{string}' ({field}).\n"
        f"Model: '{description}' ({model})\n"
        "- create/update: a mandatory field is not set\n"
        "- delete: another model requires the record being deleted, you can archive it instead\n",
        field=field,
    )


# --------------------------------------------------------------------------- Python builtins


def value_error(message: str) -> FakeOdooError:
    return FakeOdooError("builtins.ValueError", message)


def key_error(key: str) -> FakeOdooError:
    return FakeOdooError("builtins.KeyError", key)


def type_error(message: str) -> FakeOdooError:
    return FakeOdooError("builtins.TypeError", message)


def attribute_error(message: str) -> FakeOdooError:
    return FakeOdooError("builtins.AttributeError", message)


def python_error(exc: Exception) -> FakeOdooError:
    """Wrap an exception raised by Python itself while converting a value (``int('abc')``…)."""
    return FakeOdooError(f"builtins.{type(exc).__name__}", str(exc))


# --------------------------------------------------------------------------- psycopg2


def serialization_failure() -> FakeOdooError:
    return FakeOdooError("psycopg2.errors.SerializationFailure", SERIALIZATION_MESSAGE)


def integer_out_of_range() -> FakeOdooError:
    return FakeOdooError("psycopg2.errors.NumericValueOutOfRange", "integer out of range\n")


def unknown_database(name: str) -> FakeOdooError:
    return FakeOdooError(
        "psycopg2.OperationalError",
        f'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "{name}" does not exist\n',
    )


# --------------------------------------------------------------------------- werkzeug (JSON-2 routing)


def http_error(status: int, message: str) -> FakeOdooError:
    names = {
        400: "werkzeug.exceptions.BadRequest",
        401: "werkzeug.exceptions.Unauthorized",
        404: "werkzeug.exceptions.NotFound",
        422: "werkzeug.exceptions.UnprocessableEntity",
    }
    return FakeOdooError(names[status], message, status=status, arguments=[message, status])
