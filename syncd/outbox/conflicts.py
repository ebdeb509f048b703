"""Conflict detection for writes that carry a base (the values the app last saw). Pure.

Before such a write is applied, Odoo's current values of its fields are read, and each field is
compared in the mirror's value shapes (many2one as an id, x2many as a sorted id list, dates and
datetimes as Odoo stores them, floats at the field's digits, Odoo's ``false`` as empty):

* Odoo still has the base value: the app's value is written;
* Odoo has the app's value already: nothing to write (a replay, or the same edit made twice);
* anything else is a **conflict**: with ``hold`` the field is held (not written) until resolved,
  with ``odoo_wins`` it is dropped, with ``app_wins`` it is written anyway. Every conflict is
  recorded with its base, app and Odoo values.

A field of the payload without a base value is written as it is. The window between the read and
the write is not closed (Odoo's API has no conditional write): an edit made in Odoo in between is
overwritten, as without a base.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Policy = Literal["hold", "odoo_wins", "app_wins"]
Fields = Mapping[str, Mapping[str, Any]]

_EMPTY_IS_FALSE = ("boolean",)
_NUMBERS = ("integer", "float", "monetary")
_RELATIONS = ("one2many", "many2many")
_TAG = re.compile(r"<[^>]*>")


@dataclass
class Check:
    """What to do with one write: the fields to write, the replays, the conflicts found and, of
    those, the ones held for a decision."""

    write: dict[str, Any] = field(default_factory=dict)
    replays: list[str] = field(default_factory=list)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)

    def held_message(self) -> str | None:
        """The event's last_error while fields are held (None: nothing held)."""
        if not self.held:
            return None
        parts = [
            f"{name}: the app saw {_short(self.conflicts[name]['base'])}, Odoo has "
            f"{_short(self.conflicts[name]['odoo'])}, the app wants {_short(self.conflicts[name]['app'])}"
            for name in self.held
        ]
        return (
            "conflict held (Odoo changed these fields since the app read them; resolve with "
            "`syncd outbox resolve ID --take app|odoo`): " + "; ".join(parts)
        )


def check(
    payload: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    fields: Fields,
    policy: Policy,
) -> Check:
    """Compare ``payload`` (the app's new values) and ``base`` (what it last saw) with ``current``
    (Odoo's record as ``read`` returns it; None when there is none to compare with: then everything
    is written, and a missing record fails the write as it would without a base)."""
    result = Check()
    for name, app in payload.items():
        if base is None or current is None or name not in base or name not in current:
            result.write[name] = app
            continue
        spec = fields.get(name, {})
        odoo, seen, wanted = (comparable(spec, v) for v in (current[name], base[name], app))
        if odoo == seen:
            result.write[name] = app
        elif odoo == wanted:
            result.replays.append(name)
        else:
            result.conflicts[name] = {
                "base": base[name],
                "app": app,
                "odoo": mirror_value(spec, current[name]),
            }
            if policy == "hold":
                result.held.append(name)
            elif policy == "app_wins":
                result.write[name] = app
    return result


def comparable(spec: Mapping[str, Any], value: Any) -> Any:
    """A value of a field as Odoo returns it or as the mirror holds it, in one form that compares
    equal when Odoo stores the same thing."""
    kind = spec.get("type", "")
    if kind in _EMPTY_IS_FALSE:
        return bool(value)
    if kind in _NUMBERS:
        if value is None or value is False:
            return 0
        number = float(value) if not isinstance(value, bool) else float(int(value))
        if not math.isfinite(number):
            return number
        digits = spec.get("digits")
        places = digits[1] if isinstance(digits, list | tuple) and len(digits) == 2 else None
        return round(number, places if isinstance(places, int) else 6 if kind == "monetary" else 10)
    if value is None or value is False or value == "":
        return () if kind in _RELATIONS else None
    if kind == "many2one":
        return int(value[0]) if isinstance(value, list | tuple) else int(value)
    if kind in _RELATIONS:
        return tuple(sorted(int(v) for v in value)) if isinstance(value, list | tuple) else value
    if kind == "date" and isinstance(value, str):
        return value[:10]
    if kind == "html" and isinstance(value, str):
        # Odoo sanitizes what it stores ("x" becomes "<p>x</p>"): compare the text, not the markup.
        return " ".join(html.unescape(_TAG.sub(" ", value)).split()) or None
    if kind == "datetime" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed.replace(microsecond=0)
    return value


def mirror_value(spec: Mapping[str, Any], value: Any) -> Any:
    """Odoo's value as the mirror shows it (JSON): many2one as its id, empty as null."""
    kind = spec.get("type", "")
    if kind == "boolean":
        return bool(value)
    if value is False and kind not in _NUMBERS:
        return None
    if kind == "many2one" and isinstance(value, list | tuple):
        return value[0] if value else None
    if kind == "datetime" and isinstance(value, str):
        return value.replace(" ", "T") + "+00:00" if len(value) == 19 else value
    return value


def merged_base(bases: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]) -> dict[str, Any] | None:
    """The base of events folded into one write (``(payload, base)`` in id order): for each field,
    the base of the first event that wrote it, so that Odoo is compared with what the app saw before
    the first of those changes, never with a value syncd has not applied yet. None when no event had
    one."""
    if all(base is None for _, base in bases):
        return None
    merged: dict[str, Any] = {}
    seen: set[str] = set()
    for payload, base in bases:
        for name in payload:
            if name in seen:
                continue
            seen.add(name)
            if base is not None and name in base:
                merged[name] = base[name]
    return merged


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
