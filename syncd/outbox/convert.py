"""Outbox payloads (JSON in the mirror's shapes) → what Odoo's ``load`` and ``write`` accept. Pure.

Payloads look like mirror rows: many2one as an id, x2many as id lists, dates and datetimes as ISO
strings, ``null`` to clear. Odoo is unforgiving in both directions (``odoo-wire/write/SUMMARY.md``):
``load`` wants every cell as a string and reads datetimes in the user's timezone (syncd sends
``tz=UTC``); ``write`` wants real JSON types and *silently* drops a many2one given as ``"20"``,
takes any non-empty string as a true boolean and ignores read-only fields. So every value is checked
against ``fields_get`` first, and a field that does not exist or a value of the wrong type is a
:class:`PayloadError` naming the field — a permanent failure of that one event. Messages show names
and values shortened (a payload may hold a megabyte of text, or lists nested hundreds deep).
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from syncd.db import UNREADABLE_JSON
from syncd.errors import SyncdError

Fields = Mapping[str, Mapping[str, Any]]

#: The context every load() gets: datetimes are UTC, as in the mirror.
LOAD_CONTEXT = {"tz": "UTC"}
#: Odoo's ids are PostgreSQL ``integer`` (serial) columns.
MAX_ID = 2**31 - 1
#: Deepest nesting taken for a json/properties field: recursive encoders and decoders (Python's json
#: here and in Odoo) fail somewhere below 1000 levels, and real values are a few levels deep.
MAX_JSON_DEPTH = 100


class PayloadError(SyncdError, ValueError):
    """An event's payload cannot be applied: unknown field, wrong type, read-only field."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 3, 6, 4, 40


def _show(value: Any, limit: int = 60) -> str:
    """A value or name for a message: its repr, at most ``limit`` characters (containers shortened
    level by level, so that deep nesting cannot recurse either)."""
    try:
        shown = _SHORT.repr(value) if isinstance(value, list | dict) else repr(value)
    except ValueError:  # an integer beyond Python's str conversion limit
        return "a number of more than 4300 digits"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _check_field(model: str, name: str, value: Any, fields: Fields) -> Mapping[str, Any]:
    if name == UNREADABLE_JSON:  # see syncd.db.loads_json
        raise PayloadError(f"{model}: the payload cannot be read: {value}")
    spec = fields.get(name)
    if name == "id":
        raise PayloadError(f"{model}: 'id' cannot be set; use odoo_id with op 'write' to target a record")
    if spec is None:
        raise PayloadError(f"{model}: field {_show(name)} does not exist")
    if not spec.get("store", True) or spec.get("readonly", False):
        raise PayloadError(
            f"{model}: field {_show(name)} is read-only or computed in Odoo and cannot be written"
        )
    if spec.get("type") == "one2many":
        raise PayloadError(
            f"{model}: field {_show(name)} is a one2many; write the child records (with their many2one) instead"
        )
    return spec


def _wrong(model: str, name: str, kind: str, value: Any, expected: str) -> PayloadError:
    return PayloadError(
        f"{model}: field {_show(name)} ({kind}) cannot take {_show(value)}: expected {expected}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _datetime_utc(model: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(model, name, "datetime", value, "an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _wrong(
            model, name, "datetime", value, "an ISO 8601 datetime such as 2026-01-31T10:00:00Z"
        ) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
            raise _wrong(
                model, name, "datetime", value, "a datetime within the years 1 to 9999 in UTC"
            ) from None
    # isoformat, not strftime: strftime writes the year 1 as "1", which Odoo cannot read back
    return parsed.isoformat(sep=" ", timespec="seconds")


def _date(model: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(model, name, "date", value, "an ISO date string such as 2026-01-31")
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        raise _wrong(model, name, "date", value, "an ISO date such as 2026-01-31") from None


def _selection(model: str, name: str, spec: Mapping[str, Any], value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong(model, name, "selection", value, "one of its technical values as a string")
    allowed = [str(option[0]) for option in spec.get("selection") or [] if option]
    if allowed and value not in allowed:
        shown = ", ".join(repr(a) for a in allowed[:12]) + (", ..." if len(allowed) > 12 else "")
        raise PayloadError(
            f"{model}: field {_show(name)} (selection) has no value {_show(value)}; allowed: {shown}"
        )
    return value


def _is_id(value: Any) -> bool:
    return _is_int(value) and 0 < value <= MAX_ID


def _ids(model: str, name: str, kind: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not all(_is_id(v) for v in value):
        raise _wrong(model, name, kind, value, "a list of positive record ids")
    return list(value)


def _finite(value: Any) -> bool:
    """A JSON number that fits a double. jsonb reads ``1e309`` back as an integer of 310 digits,
    which Odoo's ``float()`` would turn into infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)  # converts an int to float: OverflowError beyond the double range
    except OverflowError:
        return False


def _json_depth(value: Any) -> int:
    """How deep lists and objects nest in ``value``, counted level by level (the value may nest deeper
    than Python can recurse); counting stops past MAX_JSON_DEPTH."""
    depth, level = 0, [value]
    while depth <= MAX_JSON_DEPTH:
        containers = [item for item in level if isinstance(item, list | dict)]
        if not containers:
            return depth
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def load_header(name: str, fields: Fields) -> str:
    """The ``load`` column of a field: relations by database id (``field/.id``)."""
    return f"{name}/.id" if fields[name].get("type") in ("many2one", "many2many") else name


def load_cell(model: str, name: str, value: Any, fields: Fields) -> str:
    """One ``load`` cell. Every cell is a string; ``""`` clears the field."""
    spec = _check_field(model, name, value, fields)
    kind = spec.get("type", "")
    if value is None:
        return ""
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong(model, name, kind, value, "true or false")
        return "1" if value else "0"
    if kind == "integer":
        if not _is_int(value) or not -(2**31) <= value < 2**31:
            raise _wrong(model, name, kind, value, "a whole number within ±2147483647")
        return str(value)
    if kind in ("float", "monetary"):
        if not _finite(value):
            raise _wrong(model, name, kind, value, "a finite number")
        return repr(float(value)) if isinstance(value, float) else str(value)
    if kind in ("char", "text", "html"):
        if not isinstance(value, str):
            raise _wrong(model, name, kind, value, "a string")
        return value
    if kind == "selection":
        return _selection(model, name, spec, value)
    if kind == "date":
        return _date(model, name, value)
    if kind == "datetime":
        return _datetime_utc(model, name, value)
    if kind == "many2one":
        if not _is_id(value):
            raise _wrong(model, name, kind, value, "a record id (a positive whole number below 2^31) or null")
        return str(value)
    if kind == "many2many":
        return ",".join(str(i) for i in _ids(model, name, kind, value))
    if kind == "binary":
        if not isinstance(value, str):
            raise _wrong(model, name, kind, value, "a base64 string")
        return value
    raise PayloadError(f"{model}: field {name!r} has type {kind!r}, which upserts cannot set; use op 'write'")


def write_value(model: str, name: str, value: Any, fields: Fields) -> Any:
    """One value for ``write``/``create``, in the JSON type Odoo needs (``false`` clears)."""
    spec = _check_field(model, name, value, fields)
    kind = spec.get("type", "")
    if value is None:
        return [(6, 0, [])] if kind == "many2many" else False
    if kind in ("json", "properties"):
        if _json_depth(value) > MAX_JSON_DEPTH:
            raise PayloadError(
                f"{model}: field {_show(name)} ({kind}) is nested deeper than {MAX_JSON_DEPTH} levels"
            )
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise _wrong(model, name, kind, value, "JSON without NaN or infinite numbers") from None
        return value
    if kind == "many2many":
        return [(6, 0, _ids(model, name, kind, value))]
    if kind in ("float", "monetary"):
        load_cell(model, name, value, fields)  # same checks
        return value
    cell = load_cell(model, name, value, fields)
    if kind == "boolean":
        return bool(value)
    if kind in ("integer", "many2one"):
        return int(value)
    return cell  # strings: char, text, html, selection, date, datetime (UTC), binary
