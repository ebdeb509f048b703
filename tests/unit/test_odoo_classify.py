"""Error classification, fed with the bodies recorded from a real Odoo 19 (``odoo-wire/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from syncd import errors
from syncd.odoo import (
    OdooConnectFailedError,
    classify,
    classify_exception,
    classify_load_message,
    may_land_later,
    parse_retry_after,
    proves_not_executed,
)

pytestmark = pytest.mark.unit

TRACEBACK = 'Traceback (most recent call last):\n  File "odoo/odoo/http.py", line 2273, in _serve_db\n'


def flat(name: str, message: str, extra_args: list[Any] | None = None) -> dict[str, Any]:
    """A JSON-2 error body as recorded (g.txt)."""
    return {
        "name": name,
        "message": message,
        "arguments": [message, *(extra_args or [])],
        "context": {},
        "debug": TRACEBACK + f"{name}: {message}",
    }


def envelope(name: str, message: str, rpc_id: int = 1) -> dict[str, Any]:
    """A whole JSON-RPC error answer as recorded (h.txt): HTTP 200, code 0, the class in data.name."""
    return {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "error": {"code": 0, "message": "Odoo Server Error", "data": flat(name, message)},
    }


MISSING = "Record does not exist or has been deleted.\n(Record: res.partner(999999,), User: 2)"
ACCESS = (
    "You are not allowed to access 'System Parameter' (ir.config_parameter) records.\n\n"
    "This operation is allowed for the following groups:\n\t- Role / Administrator\n\n"
    "Contact your administrator to request access if necessary."
)
IN_USE = (
    "The operation cannot be completed: Another model is using the record you are trying to delete.\n\n"
    "The troublemaker is: 'Companies' (res.company)\nThanks to the following constraint: 'Partner' "
    "(partner_id)\nHow about archiving the record instead?"
)
SERIALIZATION = "could not serialize access due to concurrent update\n"
HTML_404 = (
    "<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>No database is selected and "
    "the requested URL was not found in the server-wide controllers.</p>\n"
)

# (status, body, expected class) for the JSON-2 answers of g.txt and h_conc.txt.
JSON2_CASES = [
    pytest.param(
        500,
        flat("builtins.ValueError", "Invalid field 'no_such_field' on 'res.partner'"),
        errors.OdooUnknownNameError,
        id="g.E1-unknown-field",
    ),
    pytest.param(
        500,
        flat(
            "builtins.ValueError",
            "Invalid field res.partner.no_such_field in condition ('no_such_field', '=', 1)",
        ),
        errors.OdooUnknownNameError,
        id="g.E2-unknown-field-in-domain",
    ),
    pytest.param(
        500, flat("builtins.KeyError", "no_such_field"), errors.OdooUnknownNameError, id="g.E3-keyerror"
    ),
    pytest.param(404, flat("odoo.exceptions.MissingError", MISSING), errors.OdooMissingError, id="g.E4"),
    pytest.param(403, flat("odoo.exceptions.AccessError", ACCESS), errors.OdooAccessError, id="g.E6"),
    pytest.param(
        401,
        flat("werkzeug.exceptions.Unauthorized", "Invalid apikey", [401]),
        errors.OdooAuthenticationError,
        id="g.E7",
    ),
    pytest.param(
        404,
        flat("werkzeug.exceptions.NotFound", "the model 'res.nothing' does not exist", [404]),
        errors.OdooUnknownNameError,
        id="g.E8-unknown-model",
    ),
    pytest.param(
        404,
        flat("werkzeug.exceptions.NotFound", "The method 'res.partner.no_such_method' does not exist", [404]),
        errors.OdooUnknownNameError,
        id="g.E8-unknown-method",
    ),
    pytest.param(
        403,
        flat(
            "odoo.exceptions.AccessError",
            "Private methods (such as 'res.partner._search') cannot be called remotely.",
        ),
        errors.OdooAccessError,
        id="g.E8-private-method",
    ),
    pytest.param(
        500,
        flat(
            "builtins.TypeError",
            "BaseModel._read_format() got an unexpected keyword argument 'args'",
        ),
        errors.OdooPermanentError,
        id="g.E8-bad-kwarg",
    ),
    pytest.param(
        422,
        flat("werkzeug.exceptions.UnprocessableEntity", "cannot call res.partner.create with ids", [422]),
        errors.OdooValidationError,
        id="g.E8-ids-to-model-method",
    ),
    pytest.param(422, flat("odoo.exceptions.ValidationError", IN_USE), errors.OdooValidationError, id="g.E9"),
    pytest.param(
        400,
        flat("werkzeug.exceptions.BadRequest", "could not parse the body as json: Expecting property", [400]),
        errors.OdooProtocolError,
        id="g.E10",
    ),
    pytest.param(
        500,
        flat("psycopg2.errors.SerializationFailure", SERIALIZATION),
        errors.OdooSerializationError,
        id="h.9c",
    ),
]


@pytest.mark.parametrize(("status", "body", "expected"), JSON2_CASES)
def test_json2_error_bodies(status: int, body: dict[str, Any], expected: type[errors.OdooError]) -> None:
    err = classify(status, body, model="res.partner", method="write")

    assert type(err) is expected
    assert err.name == body["name"]
    assert err.odoo_message == body["message"]
    assert err.status == status
    assert (err.model, err.method) == ("res.partner", "write")
    assert err.arguments == body["arguments"]
    assert str(err).startswith("res.partner.write: ")
    assert body["message"].strip() in str(err)
    assert "Traceback" not in str(err)
    assert err.transient is (expected is errors.OdooSerializationError)


# (whole JSON-RPC answer, expected class) for h.txt, h_conc.txt, a.txt and f.txt.
JSONRPC_CASES = [
    pytest.param(
        envelope("odoo.exceptions.AccessDenied", "Access Denied"), errors.OdooAuthenticationError, id="h.2"
    ),
    pytest.param(
        envelope(
            "odoo.exceptions.MissingError",
            "Record does not exist or has been deleted.\n(Record: res.users(999,), User: 999)",
        ),
        errors.OdooMissingError,
        id="h.2c-wrong-uid",
    ),
    pytest.param(
        envelope(
            "psycopg2.OperationalError",
            'connection to server at "127.0.0.1", port 55432 failed: FATAL:  database "nodb" does not exist\n',
        ),
        errors.OdooPermanentError,
        id="h.2c-no-database",
    ),
    pytest.param(
        envelope("odoo.exceptions.UserError", "Object res.nothing doesn't exist"),
        errors.OdooUnknownNameError,
        id="h.3-unknown-model",
    ),
    pytest.param(envelope("builtins.KeyError", "no_such_field"), errors.OdooUnknownNameError, id="h.4-write"),
    pytest.param(
        envelope(
            "builtins.ValueError",
            "Invalid field res.partner.no_such_field in condition ('no_such_field', '=', 1)",
        ),
        errors.OdooUnknownNameError,
        id="h.4-domain",
    ),
    pytest.param(
        envelope("odoo.exceptions.MissingError", MISSING), errors.OdooMissingError, id="h.5-write-missing"
    ),
    pytest.param(
        envelope("builtins.AttributeError", "The method 'res.partner.no_such_method' does not exist"),
        errors.OdooUnknownNameError,
        id="h.6-unknown-method",
    ),
    pytest.param(
        envelope(
            "odoo.exceptions.AccessError",
            "Private methods (such as 'res.partner._search') cannot be called remotely.",
        ),
        errors.OdooAccessError,
        id="h.6-private",
    ),
    pytest.param(
        envelope("builtins.ValueError", "Invalid operator in condition ('name', 'bogus_op', 1)"),
        errors.OdooPermanentError,
        id="h.6-bad-operator",
    ),
    pytest.param(
        envelope("odoo.exceptions.ValidationError", IN_USE), errors.OdooValidationError, id="h.7-in-use"
    ),
    pytest.param(
        envelope("odoo.exceptions.ValidationError", "You cannot create recursive Partner hierarchies."),
        errors.OdooValidationError,
        id="h.7-recursion",
    ),
    pytest.param(envelope("odoo.exceptions.AccessError", ACCESS), errors.OdooAccessError, id="h.7-access"),
    pytest.param(
        envelope("builtins.ValueError", "Wrong value for res.partner.company_type: 'alien'"),
        errors.OdooValidationError,
        id="h.7-wrong-selection",
    ),
    pytest.param(
        envelope("psycopg2.errors.SerializationFailure", SERIALIZATION),
        errors.OdooSerializationError,
        id="h.9b",
    ),
    pytest.param(
        envelope(
            "builtins.ValueError", "expecting only datetimes with no timezone: '2000-01-01 00:00:00+00:00'"
        ),
        errors.OdooPermanentError,
        id="a.3b-timezone",
    ),
    pytest.param(
        envelope("builtins.ValueError", "Invalid field name 'no_such_field'"),
        errors.OdooUnknownNameError,
        id="f.5-load-unknown-column",
    ),
    pytest.param(
        envelope("odoo.exceptions.UserError", "You cannot delete the company partner"),
        errors.OdooValidationError,
        id="user-error",
    ),
]


@pytest.mark.parametrize(("answer", "expected"), JSONRPC_CASES)
def test_jsonrpc_error_envelopes(answer: dict[str, Any], expected: type[errors.OdooError]) -> None:
    data = answer["error"]["data"]

    for body in (answer, answer["error"]):  # the whole answer or its ``error`` member
        err = classify(200, body, model="res.partner", method="search_read")
        assert type(err) is expected
        assert err.name == data["name"]
        assert err.odoo_message == data["message"]
        assert err.status == 200
        assert "(HTTP" not in str(err)
        assert "Traceback" not in str(err)
        assert "Odoo Server Error" not in str(err)


def test_message_names_the_class_model_and_method() -> None:
    err = classify(404, flat("odoo.exceptions.MissingError", MISSING), model="res.partner", method="write")

    assert str(err) == f"res.partner.write: MissingError: {MISSING} (HTTP 404)"


def test_html_404_from_an_unknown_database_is_permanent_and_readable() -> None:
    err = classify(404, HTML_404, model="res.partner", method="search_count")

    assert type(err) is errors.OdooPermanentError
    assert err.name is None
    assert err.status == 404
    assert "odoo.database" in str(err)
    assert "No database is selected" in str(err)
    assert "<" not in str(err)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_statuses_are_transient(status: int) -> None:
    err = classify(status, "<html><body>Bad Gateway</body></html>", method="read")

    assert isinstance(err, errors.OdooServerUnavailableError)
    assert err.transient
    assert err.status == status


def test_5xx_that_is_not_odoo_is_server_unavailable_but_odoo_500_is_not() -> None:
    assert isinstance(classify(500, "Internal Server Error"), errors.OdooServerUnavailableError)
    assert isinstance(classify(500, None), errors.OdooServerUnavailableError)
    odoo_500 = classify(500, flat("builtins.RuntimeError", "boom"))
    assert type(odoo_500) is errors.OdooPermanentError


def test_503_with_an_odoo_body_is_still_transient() -> None:
    err = classify(503, flat("werkzeug.exceptions.ServiceUnavailable", "try again", [503]))

    assert isinstance(err, errors.OdooServerUnavailableError)


def test_429_keeps_retry_after() -> None:
    err = classify(429, "Too Many Requests", retry_after="7")

    assert isinstance(err, errors.OdooRateLimitedError)
    assert err.retry_after == 7.0
    assert err.transient
    json_429 = classify(429, flat("werkzeug.exceptions.TooManyRequests", "slow down", [429]), retry_after="2")
    assert isinstance(json_429, errors.OdooRateLimitedError)
    assert json_429.retry_after == 2.0


@pytest.mark.parametrize(
    ("name", "transient"),
    [
        ("psycopg2.OperationalError", True),  # Odoo lost its PostgreSQL (restarting)
        ("psycopg2.errors.DeadlockDetected", True),
        ("psycopg2.errors.LockNotAvailable", True),
        ("odoo.exceptions.ConcurrencyError", True),
        ("psycopg2.errors.UniqueViolation", False),
        ("psycopg2.errors.NumericValueOutOfRange", False),
        ("psycopg2.errors.QueryCanceled", True),
    ],
)
def test_database_trouble(name: str, transient: bool) -> None:
    err = classify(200, envelope(name, "connection to server lost"))

    assert err.transient is transient
    if name.endswith(("Violation", "OutOfRange")):
        assert isinstance(err, errors.OdooValidationError)
    if name.endswith("QueryCanceled"):
        assert isinstance(err, errors.OdooTimeoutError)


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, "<html>captive portal</html>"), (200, None), (200, {"unexpected": 1}), (418, "teapot")],
)
def test_answers_that_are_not_the_transports_format(status: int, body: object) -> None:
    err = classify(status, body)

    assert isinstance(err, errors.OdooProtocolError)
    assert not err.transient


def test_non_odoo_401_and_403() -> None:
    assert isinstance(classify(401, "Unauthorized"), errors.OdooAuthenticationError)
    assert isinstance(classify(403, "Forbidden by proxy"), errors.OdooAccessError)


def test_secrets_echoed_by_the_server_are_blanked() -> None:
    secret = "k3y-0123456789abcdef"
    body = flat("odoo.exceptions.AccessDenied", f"bad key {secret}")
    body["debug"] = f"... {secret} ..."

    err = classify(401, body, secrets=[secret, None, ""])

    assert secret not in str(err)
    assert secret not in (err.odoo_message or "")
    assert secret not in repr(err.arguments)
    assert "bad key ***" in str(err)
    html = classify(502, f"<p>upstream said {secret}</p>", secrets=[secret])
    assert secret not in str(html)


# ------------------------------------------------------------------------------------ Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)

    assert parse_retry_after(value, now=now) == expected


# ------------------------------------------------------------------------- failures without answer


def connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = SimpleNamespace(host="127.0.0.1", port=1, ssl=True)
    return aiohttp.ClientConnectorError(key, os_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), errors.OdooTimeoutError),
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), errors.OdooTimeoutError),
        (connector_error(ConnectionRefusedError(111, "Connection refused")), OdooConnectFailedError),
        (aiohttp.ServerDisconnectedError(), errors.OdooConnectionError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), errors.OdooConnectionError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), errors.OdooConnectionError),
        (ConnectionResetError(104, "reset"), errors.OdooConnectionError),
        (aiohttp.InvalidURL("not a url"), errors.OdooPermanentError),
    ],
)
def test_classify_exception(exc: BaseException, expected: type[errors.OdooError]) -> None:
    err = classify_exception(exc, model="res.partner", method="read", timeout=0.2)

    assert type(err) is expected
    assert (err.model, err.method) == ("res.partner", "read")


def test_timeout_message_says_how_long() -> None:
    err = classify_exception(TimeoutError(), method="read", timeout=0.2)

    assert "0.2 s" in str(err)
    assert "odoo.timeout_seconds" in str(err)


def test_proves_not_executed() -> None:
    assert proves_not_executed(OdooConnectFailedError("refused"))
    assert proves_not_executed(classify(429, "slow down"))
    assert proves_not_executed(classify(503, "maintenance"))
    assert proves_not_executed(classify(500, flat("psycopg2.errors.SerializationFailure", SERIALIZATION)))
    assert not proves_not_executed(classify(502, "bad gateway"))
    assert not proves_not_executed(classify(504, "gateway timeout"))
    assert not proves_not_executed(classify_exception(TimeoutError()))
    assert not proves_not_executed(classify_exception(aiohttp.ServerDisconnectedError()))


def load_message(message: str, row: int = 0, **extra: Any) -> dict[str, Any]:
    """An in-band error of a ``load()`` answer, shaped as Odoo 19 builds it for a row it could not
    save (``dict(info, type='error', message=…)``, f.txt)."""
    return {"rows": {"from": row, "to": row}, "record": row, "type": "error", "message": message, **extra}


@pytest.mark.parametrize(
    "text",
    [
        SERIALIZATION,
        "deadlock detected\nDETAIL:  Process 4242 waits for ShareLock on transaction 1234; blocked by "
        "process 4243.\nHINT:  See server log for query details.\nCONTEXT:  while updating tuple (0,7) "
        'in relation "res_partner"\n',
        "lock not available\n",
        "canceling statement due to lock timeout\n",
        'could not obtain lock on row in relation "res_partner"\n',
    ],
)
def test_a_conflict_reported_in_band_by_load_is_transient(text: str) -> None:
    """load() answers a row it could not save with PostgreSQL's text, not with an error answer; a
    conflict with a concurrent transaction is as transient there as when it is raised."""
    err = classify_load_message(load_message(text), model="res.partner")

    assert type(err) is errors.OdooSerializationError
    assert err.transient
    assert (err.model, err.method) == ("res.partner", "load")
    assert text.splitlines()[0] in str(err)
    # the same text as an error answer is classified the same way, whatever class it is wrapped in
    assert (
        type(classify(200, envelope("psycopg2.errors.InternalError", text))) is errors.OdooSerializationError
    )


@pytest.mark.parametrize(
    "message",
    [
        load_message("Contacts require a name"),  # f.txt
        load_message(
            "No matching record found for name 'Atlantis' in field 'Country'", field="country_id"
        ),  # f.txt
        load_message("Value 'alien' not found in selection field 'Company Type'", field="company_type"),
        {"rows": {"from": 0, "to": 0}, "type": "error"},  # no text at all
    ],
)
def test_a_refused_row_reported_in_band_by_load_is_permanent(message: dict[str, Any]) -> None:
    err = classify_load_message(message, model="res.partner")

    assert type(err) is errors.OdooValidationError
    assert not err.transient
    if message.get("field"):
        assert repr(message["field"]) in str(err)


def test_may_land_later() -> None:
    """A call that went out and got no answer may still be carried out by Odoo (the outbox then
    holds the record's events back for ``outbox.timeout_fence_seconds``); a refusal, or Odoo's own
    answer that the call failed, may not."""
    assert may_land_later(classify_exception(TimeoutError(), timeout=30))
    assert may_land_later(classify_exception(aiohttp.ServerDisconnectedError()))
    assert may_land_later(classify_exception(aiohttp.ClientPayloadError("Response payload is not completed")))
    assert may_land_later(classify(504, "gateway timeout"))
    assert not may_land_later(classify_exception(connector_error(ConnectionRefusedError(111, "refused"))))
    assert not may_land_later(classify(503, "maintenance"))
    assert not may_land_later(classify(429, "slow down"))
    assert not may_land_later(classify(500, flat("psycopg2.errors.SerializationFailure", SERIALIZATION)))
    assert not may_land_later(classify(200, envelope("psycopg2.errors.QueryCanceled", "canceling statement")))
    assert not may_land_later(classify(422, flat("odoo.exceptions.ValidationError", "bad")))
