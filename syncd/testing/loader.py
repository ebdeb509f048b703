"""``load(fields, data)``: Odoo's import, as recorded in ``odoo-wire/write/SUMMARY.md`` §1 and ``f.txt``.

Cells are strings converted per field type with Odoo's messages; a falsy cell clears the field; relations
go by database id (``field/.id``), external id (``field/id``) or name (``field``); an ``id`` column holding
an external id creates the record the first time and updates it afterwards (through ``ir.model.data``).
Row errors come back in ``messages`` with ``ids: false`` and the whole batch rolled back (the transaction is
marked ``rollback_only``); only malformed calls raise (unknown column, non-string cells where Odoo calls
string methods on them).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from syncd.testing import errors, orm
from syncd.testing.fields import FieldSpec, ModelSpec
from syncd.testing.store import Transaction
from syncd.testing.values import DATE_FORMAT, DATETIME_FORMAT, INT_MAX, INT_MIN, float_round, to_utc

IMD = "ir.model.data"
_FALSE_REFS = frozenset({"0", "false", "no", "off", "f", "n"})
_TRUES = frozenset({"1", "true", "yes"})
_FALSES = frozenset({"0", "false", "no"})
_ABSENT = object()
_INDEX_LIMIT = 2704


class RowError(Exception):
    """A conversion problem reported in ``messages`` for one row (does not abort the call)."""

    def __init__(
        self, message: str, field: str | None, *, moreinfo: Any = _ABSENT, field_name: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.moreinfo = moreinfo
        self.field_name = field_name

    def entry(self, index: int, kind: str = "error") -> dict[str, Any]:
        if self.field is None:
            entry: dict[str, Any] = {"rows": {"from": index, "to": index}, "record": index, "type": kind}
            entry["message"] = self.message
        else:
            entry = {"rows": {"from": index, "to": index}, "type": kind, "record": index, "field": self.field}
            entry["message"] = self.message
        if self.moreinfo is not _ABSENT:
            entry["moreinfo"] = self.moreinfo
        if self.field_name is not None:
            entry["field_name"] = self.field_name
        return entry


def _possible_values(comodel: str, *, by_name: bool) -> dict[str, Any]:
    action: dict[str, Any] = {
        "name": "Possible Values",
        "type": "ir.actions.act_window",
        "target": "new",
        "view_mode": "list,form",
        "views": [[False, "list"], [False, "form"]],
        "context": {"create": False},
        "help": "See all possible values",
        "res_model": comodel if by_name else IMD,
    }
    if not by_name:
        action["domain"] = [["model", "=", comodel]]
    return action


def split_xmlid(xmlid: str) -> tuple[str, str]:
    """Odoo splits an external id at the first dot; without a dot it belongs to module ``__import__``."""
    if "." in xmlid:
        module, name = xmlid.split(".", 1)
        return module, name
    return "__import__", xmlid


# ------------------------------------------------------------------------------------------ columns


def _parse_columns(spec: ModelSpec, fields: Sequence[Any]) -> list[tuple[str, str | None]]:
    """``[(field, sub)]``: sub is ``None`` (by value/name), ``"id"``, ``".id"`` or another subfield."""
    columns: list[tuple[str, str | None]] = []
    for raw in fields:
        if not isinstance(raw, str):
            raise errors.type_error(f"expected string or bytes-like object, got '{type(raw).__name__}'")
        if raw in ("id", ".id"):
            columns.append((raw, None))
            continue
        path = raw.replace(":id", "/id")
        name, _, sub = path.partition("/")
        if not sub and name.endswith(".id") and name[:-3] in spec.fields:
            name, sub = name[:-3], ".id"
        if name not in spec.fields:
            raise errors.value_error(f"Invalid field name {raw!r}")
        columns.append((name, sub or None))
    return columns


# ------------------------------------------------------------------------------------------ cells


class _Converter:
    def __init__(self, txn: Transaction, spec: ModelSpec) -> None:
        self.txn = txn
        self.spec = spec
        self.warnings: list[RowError] = []
        self.update_many2many = bool(txn.context.get("update_many2many"))

    def convert(self, field: FieldSpec, sub: str | None, cell: Any) -> Any:
        try:
            return self._convert(field, sub, cell)
        except (AttributeError, TypeError) as exc:
            raise errors.python_error(exc) from None

    def _convert(self, field: FieldSpec, sub: str | None, cell: Any) -> Any:
        kind = field.type
        if kind == "many2one" and sub not in (None, "id", ".id"):
            raise RowError(
                "Can not create Many-To-One records indirectly, import the field separately", field.name
            )
        if not cell:
            return [(5,)] if kind in ("many2many", "one2many") else False
        if kind == "many2one":
            return self._reference(field, sub, cell)
        if kind in ("many2many", "one2many"):
            ids = [self._reference(field, sub, piece, in_list=True) for piece in cell.split(",")]
            ids = list(dict.fromkeys(rid for rid in ids if rid))
            if kind == "one2many" or self.update_many2many:
                return [(4, rid) for rid in ids]
            return [(6, 0, ids)]
        if kind == "boolean":
            lowered = cell.lower()
            if lowered in _TRUES or lowered in _FALSES:
                return lowered in _TRUES
            raise self._error(
                field,
                f"Unknown value '{cell}' for boolean field '{field.label}'",
                "Use '1' for yes and '0' for no",
            )
        if kind == "selection":
            lowered = cell.lower()
            for value, label in field.selection or ():
                if lowered in (value.lower(), label.lower()):
                    return value
            labels = [label for _value, label in field.selection or ()]
            raise self._error(field, f"Value '{cell}' not found in selection field '{field.label}'", labels)
        if kind == "integer":
            return self._integer(field, cell)
        if kind in ("float", "monetary"):
            return self._float(field, cell)
        if kind == "date":
            try:
                return datetime.strptime(cell[:10], DATE_FORMAT).date()
            except ValueError:
                message = f"'{cell}' does not seem to be a valid date for field '{field.label}'"
                raise self._error(field, message, "Use the format '2012-12-31'") from None
        if kind == "datetime":
            return self._datetime(field, cell)
        if kind in ("char", "text", "html"):
            return cell if isinstance(cell, str) else str(cell)
        return cell

    @staticmethod
    def _error(field: FieldSpec, message: str, moreinfo: Any = _ABSENT) -> RowError:
        return RowError(message, field.name, moreinfo=moreinfo, field_name=field.label)

    def _integer(self, field: FieldSpec, cell: Any) -> int:
        try:
            value = int(cell)
        except ValueError:
            raise self._error(
                field, f"'{cell}' does not seem to be an integer for field '{field.label}'"
            ) from None
        if not INT_MIN <= value <= INT_MAX:
            raise RowError("integer out of range\n", None)
        return value

    def _float(self, field: FieldSpec, cell: Any) -> float:
        try:
            value = float(cell)
        except ValueError:
            raise self._error(
                field, f"'{cell}' does not seem to be a number for field '{field.label}'"
            ) from None
        digits = 2 if field.type == "monetary" else field.digits[1] if field.digits else None
        if digits is not None:
            try:
                return float_round(value, digits)
            except (ValueError, OverflowError) as exc:
                message = f"Unknown error during import: {type(exc)}: {exc}"
                raise RowError(message, None, moreinfo="Resolve other errors first") from None
        return value

    def _datetime(self, field: FieldSpec, cell: Any) -> datetime:
        try:
            if len(cell) == 10:
                naive = datetime.strptime(cell, DATE_FORMAT)
            else:
                naive = datetime.strptime(cell, DATETIME_FORMAT[: len(cell) - 2])
        except ValueError:
            message = f"'{cell}' does not seem to be a valid datetime for field '{field.label}'"
            raise self._error(field, message, "Use the format '2012-12-31 23:59:59'") from None
        return to_utc(naive, self._timezone())

    def _timezone(self) -> str:
        return orm.user_tz(self.txn, self.txn.context) or "UTC"

    def _reference(
        self, field: FieldSpec, sub: str | None, value: Any, *, in_list: bool = False
    ) -> int | None:
        assert field.relation is not None
        comodel = field.relation
        label = field.label
        if sub == ".id":
            if not in_list and value.lower() in _FALSE_REFS:
                return None
            if in_list and value == "":
                raise RowError(
                    f'column "{field.column2 or field.name}" is of type integer but expression is of type boolean\n',
                    None,
                )
            try:
                rid = int(value)
            except ValueError:
                raise self._error(
                    field,
                    f"Invalid database id '{value}' for the field '{label}'",
                    _possible_values(comodel, by_name=False),
                ) from None
            if self.txn.get(comodel, rid) is None:
                message = f"No matching record found for database id '{value}' in field '{label}'"
                raise self._error(field, message, _possible_values(comodel, by_name=False))
            return rid
        if sub == "id":
            if not in_list and value.lower() in _FALSE_REFS:
                return None
            module, name = split_xmlid(value)
            imd_id = self.txn.xmlid_lookup(module, name)
            imd = self.txn.get(IMD, imd_id) if imd_id is not None else None
            if imd is not None and imd["model"] != comodel:
                message = f"Invalid external ID {value}: expected model '{comodel}', found '{imd['model']}'"
                raise RowError(message, field.name)
            if imd is None or self.txn.get(comodel, imd["res_id"]) is None:
                message = f"No matching record found for external id '{value}' in field '{label}'"
                raise self._error(field, message, _possible_values(comodel, by_name=False))
            return int(imd["res_id"])
        matches = orm.name_search(
            self.txn, comodel, value, operator="=", limit=None, context=self.txn.context
        )
        if not matches:
            message = f"No matching record found for name '{value}' in field '{label}'"
            raise self._error(field, message, _possible_values(comodel, by_name=True))
        if len(matches) > 1:
            message = (
                f'Found multiple matches for value "{value}" in field "{label}" ({len(matches)} matches)'
            )
            self.warnings.append(RowError(message, field.name))
        return int(matches[0][0])


# ------------------------------------------------------------------------------------------ rows


def _check_xmlid(module: str, name: str) -> None:
    if " " in name:
        raise errors.ConstraintViolation(
            'new row for relation "ir_model_data" violates check constraint "ir_model_data_name_nospaces"\n'
            f"DETAIL:  Failing row contains ({module}.{name}).\n",
            wrap=False,
        )
    size = len(zlib.compress(f"{module}{name}".encode()))
    if size > _INDEX_LIMIT:
        raise errors.ConstraintViolation(
            f'index row size {size + 32} exceeds btree version 4 maximum {_INDEX_LIMIT} for index "ir_model_data_module_name_uniq_index"\n'
            'DETAIL:  Index row references tuple (0,1) in relation "ir_model_data".\n'
            "HINT:  Values larger than 1/3 of a buffer page cannot be indexed.\n"
            "Consider a function index of an MD5 hash of the value, or use full text indexing.\n",
            wrap=False,
        )


class _WrongModel(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _save(txn: Transaction, model: str, xmlid: str | None, db_id: int | None, vals: dict[str, Any]) -> int:
    if xmlid:
        module, name = split_xmlid(xmlid)
        imd_id = txn.xmlid_lookup(module, name)
        imd = txn.get(IMD, imd_id) if imd_id is not None else None
        if imd is not None and imd_id is not None:
            if imd["model"] != model:
                raise _WrongModel(
                    f"For external id {xmlid} when trying to create/update a record of model {model} "
                    f"found record of different model {imd['model']} ({imd_id})"
                )
            if txn.get(model, imd["res_id"]) is not None:  # archived records are updated in place
                orm.write(txn, model, [imd["res_id"]], vals)
                return int(imd["res_id"])
            orm.unlink(txn, IMD, [imd_id])  # dangling external id: drop it, create afresh
        _check_xmlid(module, name)
        (rid,) = orm.create(txn, model, [vals])
        orm.create(txn, IMD, [{"module": module, "name": name, "model": model, "res_id": rid}])
        return rid
    if db_id is not None:
        orm.write(txn, model, [db_id], vals)
        return db_id
    (rid,) = orm.create(txn, model, [vals])
    return rid


def load(txn: Transaction, model: str, fields: Sequence[Any], data: Sequence[Any]) -> dict[str, Any]:
    """Import ``data`` rows into ``model``; see the module docstring."""
    spec = txn.store.spec(model)
    columns = _parse_columns(spec, fields)
    converter = _Converter(txn, spec)
    messages: list[dict[str, Any]] = []
    ids: list[int] = []
    failed_rows = 0
    wrong_model_noted = False
    for index, raw_row in enumerate(data):
        cells = list(raw_row) if isinstance(raw_row, dict | list | tuple) else []
        by_field: dict[str, dict[str | None, Any]] = {}
        xmlid: Any = None
        db_cell: Any = None
        for (name, sub), cell in zip(columns, cells, strict=False):
            if name == "id":
                xmlid = cell
            elif name == ".id":
                db_cell = cell
            else:
                by_field.setdefault(name, {})[sub] = cell
        if xmlid and not isinstance(xmlid, str):
            raise errors.type_error(f"argument of type '{type(xmlid).__name__}' is not iterable")
        row_errors: list[RowError] = []
        vals: dict[str, Any] = {}
        for name, cells_by_sub in by_field.items():
            field = spec.fields[name]
            refs = [sub for sub in cells_by_sub if sub in (None, "id", ".id")]
            if field.type in ("many2one", "many2many", "one2many") and len(refs) > 1:
                message = (
                    f"Ambiguous specification for field '{field.label}', "
                    "only provide one of name, external id or database id"
                )
                row_errors.append(RowError(message, name))
                continue
            for sub, cell in cells_by_sub.items():
                try:
                    vals[name] = converter.convert(field, sub, cell)
                except RowError as exc:
                    row_errors.append(exc)
        for warning in converter.warnings:
            messages.append(warning.entry(index, "warning"))
        converter.warnings.clear()
        db_id: int | None = None
        if db_cell and not xmlid:
            candidate = int(db_cell) if str(db_cell).strip().isdigit() else None
            visible = candidate is not None and bool(
                orm.search_rows(txn, model, [("id", "=", candidate)], context=txn.context)
            )
            if visible:
                db_id = candidate
            else:
                row_errors.append(RowError(f"Unknown database identifier '{db_cell}'", ".id"))
        conversion_failed = any(error.field != ".id" for error in row_errors)
        messages.extend(error.entry(index) for error in row_errors)
        if not conversion_failed:
            try:
                ids.append(_save(txn, model, xmlid or None, db_id, vals))
            except _WrongModel as exc:
                note = RowError(exc.message, None)
                if not wrong_model_noted and index != 0:
                    messages.insert(0, note.entry(0))
                    wrong_model_noted = True
                messages.append(note.entry(index))
                row_errors.append(note)
            except errors.ConstraintViolation as exc:
                row_errors.append(RowError(exc.raw, exc.field))
                messages.append(row_errors[-1].entry(index))
            except errors.FakeOdooError as exc:
                row_errors.append(RowError(exc.message, None))
                messages.append(row_errors[-1].entry(index))
        if row_errors:
            failed_rows += 1
            if failed_rows >= 10 and failed_rows >= index / 10:
                messages.append(
                    {
                        "type": "warning",
                        "message": "Found more than 10 errors and more than one error per 10 records, "
                        "interrupted to avoid showing too many errors.",
                    }
                )
                break
    if any(message["type"] == "error" for message in messages):
        txn.rollback_only = True
        return {"ids": False, "messages": messages, "nextrow": 0}
    return {"ids": ids, "messages": messages, "nextrow": 0}


def with_conflict(
    handler: Callable[[Any, Transaction], Any], row: int, message: str
) -> Callable[[Any, Transaction], Any]:
    """``load``'s handler, answering as Odoo 19 does when saving row ``row`` (capped at the last row) hit
    a conflict with a concurrent transaction (``Faults.load_conflict_next``).

    Odoo catches the psycopg2 error while it saves rows one by one, adds ``dict(info, type='error',
    message=str(error))`` to ``messages`` and rolls the whole batch back: a normal answer, ``ids: false``.
    """

    def run(inv: Any, txn: Transaction) -> Any:
        result = handler(inv, txn)
        data = inv.params.get("data")
        count = len(data) if isinstance(data, list | tuple) else 0
        if not isinstance(result, dict) or count == 0:
            return result
        at = min(max(row, 0), count - 1)
        messages = list(result["messages"])
        if not any(m["type"] == "error" and m.get("rows", {}).get("from") == at for m in messages):
            # (a row refused for its values never reaches the save that conflicts)
            messages.append(RowError(message, None).entry(at))
            messages.sort(key=lambda m: m.get("rows", {}).get("from", -1))
        txn.rollback_only = True
        return {"ids": False, "messages": messages, "nextrow": 0}

    return run
