"""Value conversions of the fake Odoo: what ``create``/``write`` store and what ``read`` answers.

Records hold Python values: ``str``/``None`` for text-like fields, ``int``/``float``/``bool``, ``date`` and
naive UTC ``datetime`` objects (microseconds kept), the id for a many2one, a list of ids for a many2many.
One2many fields are not stored: they are the inverse of a many2one.

``write``/``create`` convert JSON values the way Odoo 19 does, including its lossy corners (see
``odoo-wire/write/SUMMARY.md`` §2): a many2one given as ``"20"``, ``20.0`` or ``true`` is stored as NULL,
any non-empty string is a true boolean, datetimes are parsed with ``strptime`` and never shifted by a tz.
The conversions run the same Python operations Odoo runs, so failures carry Python's own messages.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.testing import errors
from syncd.testing.fields import FieldSpec

if TYPE_CHECKING:
    from syncd.testing.store import View

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ONE_SECOND = timedelta(seconds=1)
ONE_DAY = timedelta(days=1)


def format_datetime(value: datetime) -> str:
    """Odoo's wire format: naive UTC, microseconds truncated."""
    return value.isoformat(" ", "seconds")


def format_date(value: date) -> str:
    return value.strftime(DATE_FORMAT)


def truncate_to_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def float_round(value: float, digits: int) -> float:
    """Odoo's ``float_round`` (half-up with an epsilon); NaN and infinity fail like Odoo's do."""
    normalized = value * (10**digits)
    if normalized:
        epsilon = 2 ** (math.log2(abs(normalized)) - 52)
        normalized += math.copysign(epsilon, normalized)
    return float(round(normalized) / (10**digits))


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_EVENT_ATTR = re.compile(r"""\s+on[a-z]+\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z][^>]*>")


def sanitize_html(value: str) -> str:
    """A small version of Odoo's sanitizer: scripts and event handlers go, plain text gets a ``<p>``."""
    if not value:
        return value
    value = _EVENT_ATTR.sub("", _SCRIPT.sub("", value))
    if not _TAG.search(value):
        value = f"<p>{value}</p>"
    return value


def parse_write_date(value: Any) -> date | None:
    """``fields.Date.to_date``: the first 10 characters through ``strptime``."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.strptime(value[:10], DATE_FORMAT).date()
    except (TypeError, ValueError) as exc:
        raise errors.python_error(exc) from None


def parse_write_datetime(value: Any) -> datetime | None:
    """``fields.Datetime.to_datetime``: ``strptime`` with the format cut to the value's length."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    try:
        if len(value) == 10:
            return datetime.strptime(value, DATE_FORMAT)
        return datetime.strptime(value, DATETIME_FORMAT[: len(value) - 2])
    except (TypeError, ValueError) as exc:
        raise errors.python_error(exc) from None


def parse_domain_datetime(value: Any) -> tuple[datetime, timedelta]:
    """A datetime value in a domain, with the unit it designates (a whole second or a whole day).

    Odoo accepts ``"YYYY-MM-DD HH:MM:SS"``, a ``T`` separator, microseconds (dropped: comparisons work on
    whole seconds) and a bare date; a timezone suffix is a ValueError.
    """
    if not isinstance(value, str):
        raise errors.value_error(f"Failed to cast {value!r} into a datetime")
    try:
        if len(value) <= 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time()), ONE_DAY
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise errors.python_error(exc) from None
    if parsed.tzinfo is not None:
        raise errors.value_error(f"expecting only datetimes with no timezone: {value!r}")
    return truncate_to_second(parsed), ONE_SECOND


def parse_domain_date(value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10]) if len(value) > 10 else date.fromisoformat(value)
        except ValueError as exc:
            raise errors.python_error(exc) from None
    raise errors.value_error(f"Failed to cast {value!r} into a date")


def check_integer_range(value: int | None) -> int | None:
    if value is not None and not INT_MIN <= value <= INT_MAX:
        raise errors.integer_out_of_range()
    return value


def convert_scalar(model: str, spec: FieldSpec, value: Any) -> Any:
    """Convert a JSON value given to ``create``/``write`` for a non-relational field."""
    kind = spec.type
    try:
        if kind == "boolean":
            return bool(value)
        if kind == "integer":
            return check_integer_range(int(value or 0))
        if kind in ("float", "monetary"):
            number = float(value or 0.0)
            if kind == "monetary":
                return float_round(number, 2)
            return float_round(number, spec.digits[1]) if spec.digits else number
    except (TypeError, ValueError, OverflowError) as exc:
        raise errors.python_error(exc) from None
    if value is None or value is False:
        return None
    if kind in ("char", "text"):
        text = str(value)
        return text[: spec.size] if spec.size else text
    if kind == "html":
        return sanitize_html(str(value))
    if kind == "selection":
        if not value:
            return None
        if spec.dynamic_selection or value in spec.selection_values():
            return value
        raise errors.value_error(f"Wrong value for {model}.{spec.name}: {value!r}")
    if kind == "date":
        return parse_write_date(value)
    if kind == "datetime":
        return parse_write_datetime(value)
    return value  # binary (base64 text), json, properties


def convert_many2one(view: View, spec: FieldSpec, value: Any, *, creating: bool) -> int | None:
    """A many2one value: an int id; ``false``/``0`` clear; strings, ``true`` and floats silently clear.

    ``create`` accepts an integral float (``20.0`` stores 20), ``write`` does not (it stores NULL), as
    recorded. An id that does not exist is a MissingError naming the *referenced* record.
    """
    if isinstance(value, bool) or not value:
        return None
    if isinstance(value, float) and creating and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    assert spec.relation is not None
    if view.get(spec.relation, value) is None:
        raise errors.missing_error(spec.relation, (value,), view.uid)
    return value


def empty_output(spec: FieldSpec) -> Any:
    """What ``read`` answers for an empty value of this field."""
    kind = spec.type
    if kind == "integer":
        return 0
    if kind in ("float", "monetary"):
        return 0.0
    if kind in ("one2many", "many2many", "properties"):
        return []
    return False


def output_scalar(spec: FieldSpec, value: Any) -> Any:
    """The JSON form of a stored non-relational value."""
    if value is None:
        return empty_output(spec)
    kind = spec.type
    if kind == "datetime":
        return format_datetime(value)
    if kind == "date":
        return format_date(value)
    if kind == "boolean":
        return bool(value)
    if kind in ("float", "monetary"):
        return float(value)
    return value


def to_utc(naive: datetime, tz_name: str) -> datetime:
    """Read a wall-clock time in ``tz_name`` (unknown names: UTC) and give it back as naive UTC.

    Like pytz's ``localize(is_dst=False)``: in a DST gap or overlap the standard-time offset wins.
    """
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return naive
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    chosen = first if first.dst() == timedelta(0) or second.dst() != timedelta(0) else second
    return chosen.astimezone(UTC).replace(tzinfo=None)
