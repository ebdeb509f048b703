"""The model methods of the fake Odoo, over a :class:`~syncd.testing.store.View` or ``Transaction``.

``search``/``read`` work on any view (committed rows, or a transaction's own view); ``create``, ``write``,
``unlink`` and ``set_active`` need a transaction. Each reproduces the behaviour recorded from Odoo 19 in
``odoo-wire/`` (errors, silent conversions, ``active_test``, ``write_date`` = transaction stamp, x2many
commands, ``ondelete`` handling, external ids removed with their record).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from syncd.testing import errors
from syncd.testing.domain import Compiled, Compiler, OrderItem, mentions, parse, parse_order, sort_rows
from syncd.testing.fields import X2MANY, FieldSpec, ModelSpec
from syncd.testing.store import CommittedView, Row, Transaction, View
from syncd.testing.values import convert_many2one, convert_scalar, format_datetime, output_scalar

IMD = "ir.model.data"
_OPERATION_WORDS = {"read": "access", "write": "modify", "create": "create", "unlink": "delete"}


def check_access(view: View, model: str, operation: str) -> None:
    spec = view.store.spec(model)
    group = spec.access_group or (spec.write_group if operation != "read" else None)
    if group and view.uid not in view.store.admin_uids:
        raise errors.model_access_error(_OPERATION_WORDS[operation], spec.description, model, group)


# ---------------------------------------------------------------------------------------- reading


class Reader:
    """Formats rows for ``read``/``search_read``, caching one2many inverses for the whole batch."""

    def __init__(self, view: View, model: str, load: str | None = "_classic_read") -> None:
        self.view = view
        self.spec = view.store.spec(model)
        self.load = load
        self._inverse: dict[str, dict[int, list[int]]] = {}
        self._formatters: dict[tuple[str, ...], list[tuple[str, Callable[[int, Row], Any]]]] = {}

    def field_names(self, fields: Sequence[str] | None) -> list[str]:
        if not fields:
            return [name for name in self.spec.fields if name != "id"]
        for name in fields:
            if name not in self.spec.fields:
                raise errors.value_error(f"Invalid field {name!r} on {self.spec.name!r}")
        return [name for name in dict.fromkeys(fields) if name != "id"]

    def record(self, rid: int, row: Row, names: Sequence[str]) -> dict[str, Any]:
        formatters = self._formatters.get(tuple(names))
        if formatters is None:
            formatters = [(name, self._formatter(self.spec.fields[name])) for name in names]
            self._formatters[tuple(names)] = formatters
        result: dict[str, Any] = {"id": rid}
        for name, formatter in formatters:
            result[name] = formatter(rid, row)
        return result

    def _formatter(self, field: FieldSpec) -> Callable[[int, Row], Any]:
        """A per-field function turning a row into the field's JSON value (fast paths for plain fields)."""
        name, kind = field.name, field.type
        if (
            field.compute is not None
            or name == "display_name"
            or kind in ("many2one", "one2many", "many2many")
        ):
            return lambda rid, row: self.value(rid, row, field)
        if kind == "datetime":
            return lambda _rid, row: False if (v := row.get(name)) is None else format_datetime(v)
        if kind in ("char", "text", "html", "selection", "binary"):
            return lambda _rid, row: False if (v := row.get(name)) is None else v
        return lambda _rid, row: output_scalar(field, row.get(name))

    def value(self, rid: int, row: Row, field: FieldSpec) -> Any:
        if field.name == "display_name":
            return self.spec.display_name_of(self.view, rid, row)
        if field.type == "one2many":
            return self._order(field, self._children(field).get(rid, []))
        value = field.compute(self.view, rid, row) if field.compute is not None else row.get(field.name)
        if field.type == "many2many":
            return self._order(field, list(value or ()))
        if field.type == "many2one":
            return self._many2one(field, value)
        return output_scalar(field, value)

    def _many2one(self, field: FieldSpec, value: Any) -> Any:
        if not value:
            return False
        if self.load is None:
            return value
        assert field.relation is not None
        comodel = self.view.store.spec(field.relation)
        target = self.view.get(field.relation, value)
        return [value, comodel.display_name_of(self.view, value, target) if target is not None else ""]

    def _children(self, field: FieldSpec) -> dict[int, list[int]]:
        if field.name not in self._inverse:
            assert field.relation is not None and field.relation_field is not None
            comodel = self.view.store.spec(field.relation)
            inverse: dict[int, list[int]] = {}
            for cid, crow in self.view.iter_rows(field.relation):
                parent = crow.get(field.relation_field)
                if parent and (not comodel.has_active or crow.get("active")):
                    inverse.setdefault(parent, []).append(cid)
            self._inverse[field.name] = inverse
        return self._inverse[field.name]

    def _order(self, field: FieldSpec, ids: list[int]) -> list[int]:
        if len(ids) < 2:
            return ids
        assert field.relation is not None
        compiler = Compiler(self.view, field.relation)
        pairs = [(cid, row) for cid in ids if (row := self.view.get(field.relation, cid)) is not None]
        sort_rows(compiler, pairs, parse_order(compiler.spec, None))
        return [cid for cid, _row in pairs]


def read(
    view: View,
    model: str,
    ids: Sequence[int],
    fields: Sequence[str] | None = None,
    load: str | None = "_classic_read",
) -> list[dict[str, Any]]:
    """``read``: missing ids are left out (no error), archived records are returned."""
    check_access(view, model, "read")
    reader = Reader(view, model, load)
    names = reader.field_names(fields)
    result = []
    for rid in dict.fromkeys(ids):
        row = view.get(model, rid) if isinstance(rid, int) else None
        if row is not None:
            result.append(reader.record(rid, row, names))
    return result


def _with_active_test(spec: ModelSpec, tree: Any, context: Mapping[str, Any] | None) -> Any:
    active_test = (context or {}).get("active_test", True)
    if spec.has_active and active_test is not False and not mentions(tree, "active"):
        return ("&", [tree, ("leaf", ("active", "=", True))])
    return tree


def _candidates(
    view: View, model: str, compiled: Compiled, order: list[OrderItem]
) -> tuple[Iterator[tuple[int, Row]], bool]:
    """Rows worth testing, and whether they already come in the requested order.

    On committed rows, the sorted ``(write_date, id)`` index serves keyset queries from the cursor on
    instead of scanning (and sorting) the whole table.
    """
    if not isinstance(view, CommittedView):
        return view.iter_rows(model), False
    table = view.store.tables[model]
    rows = table.rows
    keys = [(name, descending) for name, descending, _nulls in order]
    low, high = compiled.bound("write_date")
    ascending = keys in ([("write_date", False), ("id", False)], [("write_date", False)])
    descending = keys in ([("write_date", True), ("id", True)], [("write_date", True)])
    if ascending or descending or low is not None or high is not None:
        index = table.by_write_date()
        start = bisect_left(index, (low,)) if low is not None else 0
        stop = bisect_left(index, (high,)) if high is not None else len(index)
        # Walk the index by position: slicing would copy the rest of a 100k-entry index on every page.
        positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
        return ((index[pos][1], rows[index[pos][1]]) for pos in positions), ascending or descending
    if keys in ([("id", False)], [("id", True)]):
        id_low, id_high = compiled.bound("id")
        ids = table.by_id()
        start = bisect_left(ids, id_low) if id_low is not None else 0
        stop = bisect_left(ids, id_high) if id_high is not None else len(ids)
        window = ids[start:stop] if keys[0][1] is False else ids[start:stop][::-1]
        return ((rid, rows[rid]) for rid in window), True
    return iter(rows.items()), False


def search_rows(
    view: View,
    model: str,
    domain: Any,
    *,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[tuple[int, Row]]:
    check_access(view, model, "read")
    spec = view.store.spec(model)
    compiler = Compiler(view, model, user_tz(view, context))
    compiled = compiler.compile_tree(_with_active_test(spec, parse(domain), context))
    order_items = parse_order(spec, order)
    candidates, in_order = _candidates(view, model, compiled, order_items)
    pred = compiled.pred
    offset = offset or 0
    if in_order:
        found: list[tuple[int, Row]] = []
        skipped = 0
        for rid, row in candidates:
            if pred(rid, row):
                if skipped < offset:
                    skipped += 1
                    continue
                found.append((rid, row))
                if limit and len(found) >= limit:
                    break
        return found
    matching = [(rid, row) for rid, row in candidates if pred(rid, row)]
    sort_rows(compiler, matching, order_items)
    return matching[offset : offset + limit] if limit else matching[offset:]


def user_tz(view: View, context: Mapping[str, Any] | None) -> str | None:
    """Odoo's ``env.tz``: the context's ``tz``, else the calling user's (None: UTC)."""
    if context and context.get("tz"):
        return str(context["tz"])
    user = view.get("res.users", view.uid) or {}
    return str(user["tz"]) if user.get("tz") else None


def search_count(view: View, model: str, domain: Any, context: Mapping[str, Any] | None = None) -> int:
    check_access(view, model, "read")
    spec = view.store.spec(model)
    compiled = Compiler(view, model, user_tz(view, context)).compile_tree(
        _with_active_test(spec, parse(domain), context)
    )
    candidates, _ = _candidates(view, model, compiled, [])
    pred = compiled.pred
    return sum(1 for rid, row in candidates if pred(rid, row))


def search_read(
    view: View,
    model: str,
    domain: Any = None,
    fields: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
    order: str | None = None,
    context: Mapping[str, Any] | None = None,
    load: str | None = "_classic_read",
) -> list[dict[str, Any]]:
    reader = Reader(view, model, load)
    names = reader.field_names(fields)
    rows = search_rows(view, model, domain, offset=offset, limit=limit, order=order, context=context)
    return [reader.record(rid, row, names) for rid, row in rows]


def name_search(
    view: View,
    model: str,
    name: str = "",
    domain: Any = None,
    operator: str = "ilike",
    limit: int | None = 100,
    context: Mapping[str, Any] | None = None,
) -> list[list[Any]]:
    spec = view.store.spec(model)
    tree = parse(domain)
    if name:
        fields = spec.search_fields()
        name_tree: Any = ("leaf", (fields[0], operator, name))
        if len(fields) > 1:
            name_tree = ("|", [("leaf", (field, operator, name)) for field in fields])
        tree = ("&", [tree, name_tree])
    compiler = Compiler(view, model, user_tz(view, context))
    compiled = compiler.compile_tree(_with_active_test(spec, tree, context))
    matching = [(rid, row) for rid, row in view.iter_rows(model) if compiled.pred(rid, row)]
    sort_rows(compiler, matching, parse_order(spec, None))
    if limit:
        matching = matching[:limit]
    return [[rid, spec.display_name_of(view, rid, row)] for rid, row in matching]


# ---------------------------------------------------------------------------------------- writing


def _expand_inverses(spec: ModelSpec, vals: Mapping[str, Any]) -> dict[str, Any]:
    """Values written to a computed field with an inverse become values of the fields it drives."""
    expanded = dict(vals)
    for name, value in vals.items():
        field = spec.fields.get(name)
        if field is not None and field.inverse is not None:
            if field.type == "selection":
                value = convert_scalar(spec.name, field, value)  # "Wrong value for …" like a stored selection
            for key, extra in field.inverse(value).items():
                expanded.setdefault(key, extra)
    return expanded


def _convert(
    txn: Transaction, spec: ModelSpec, vals: Mapping[str, Any], *, creating: bool
) -> tuple[Row, dict[str, Any]]:
    """Split ``vals`` into converted plain values and raw x2many values; drop what Odoo ignores."""
    plain: Row = {}
    x2many: dict[str, Any] = {}
    for name, value in vals.items():
        field = spec.fields[name]
        if not field.writable or field.compute is not None:
            continue
        if field.type in X2MANY:
            x2many[name] = value
        elif field.type == "many2one":
            plain[name] = convert_many2one(txn, field, value, creating=creating)
        else:
            plain[name] = convert_scalar(spec.name, field, value)
    return plain, x2many


def _validate(txn: Transaction, spec: ModelSpec, rid: int) -> None:
    row = txn.get(spec.name, rid)
    if row is None:
        return
    for field in spec.stored_fields():
        if field.required and field.type != "boolean" and row.get(field.name) is None:
            raise errors.required_error(field.label, field.name, spec.description, spec.name)
    for constraint in spec.constraints:
        constraint(txn, spec.name, rid, row)


def create(txn: Transaction, model: str, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
    check_access(txn, model, "create")
    spec = txn.store.spec(model)
    ids: list[int] = []
    for vals in vals_list:
        if not isinstance(vals, Mapping):
            raise errors.attribute_error(f"'{type(vals).__name__}' object has no attribute 'items'")
        for name in vals:
            if name not in spec.fields:
                raise errors.value_error(f"Invalid field {name!r} in {model!r}")
        if spec.vals_check is not None:
            spec.vals_check(vals)
        given = _expand_inverses(spec, vals)
        if spec.prepare_create is not None:
            given = spec.prepare_create(txn, given)
        full = {
            field.name: field.default() if callable(field.default) else field.default
            for field in spec.fields.values()
            if field.default is not None and field.name not in given
        }
        full.update(given)
        plain, x2many = _convert(txn, spec, full, creating=True)
        rid = txn.new_id(model)
        row: Row = {field.name: None for field in spec.stored_fields()}
        row.update(plain)
        row.update(create_date=txn.stamp, write_date=txn.stamp, create_uid=txn.uid, write_uid=txn.uid)
        for field in spec.fields.values():
            if field.type == "many2many":
                row[field.name] = []
        txn.insert(model, rid, row)
        for name, value in x2many.items():
            _apply_x2many(txn, spec, spec.fields[name], rid, value)
        if model == IMD:
            _index_xmlid(txn, rid, None, row)
        ids.append(rid)
    for rid in ids:
        _validate(txn, spec, rid)
    return ids


def _existing(txn: View, model: str, ids: Sequence[Any]) -> list[int]:
    missing = [rid for rid in ids if not isinstance(rid, int) or txn.get(model, rid) is None]
    if missing:
        raise errors.missing_error(model, missing, txn.uid)
    return list(dict.fromkeys(ids))


def write(txn: Transaction, model: str, ids: Sequence[int], vals: Mapping[str, Any]) -> None:
    """``write``: every record gets the transaction's ``write_date``, even when nothing changed."""
    check_access(txn, model, "write")
    spec = txn.store.spec(model)
    if not isinstance(vals, Mapping):
        raise errors.attribute_error(f"'{type(vals).__name__}' object has no attribute 'items'")
    for name in vals:
        if name not in spec.fields:
            raise errors.key_error(name)
    ids = _existing(txn, model, ids)
    if spec.vals_check is not None:
        spec.vals_check(vals)
    plain, x2many = _convert(txn, spec, _expand_inverses(spec, vals), creating=False)
    for rid in ids:
        row = txn.writable(model, rid)
        old = dict(row) if model == IMD else None
        row.update(plain)
        row.update(write_date=txn.stamp, write_uid=txn.uid)
        for name, value in x2many.items():
            _apply_x2many(txn, spec, spec.fields[name], rid, value)
        if old is not None:
            _index_xmlid(txn, rid, old, row)
    for rid in ids:
        _validate(txn, spec, rid)


def set_active(txn: Transaction, model: str, ids: Sequence[int], active: bool) -> None:
    """``action_archive``/``action_unarchive``: only records whose state changes are written."""
    ids = _existing(txn, model, ids)
    changing = [rid for rid in ids if bool((txn.get(model, rid) or {}).get("active")) != active]
    if changing:
        write(txn, model, changing, {"active": active})


def _index_xmlid(txn: Transaction, rid: int, old: Row | None, new: Row | None) -> None:
    if old is not None:
        txn.set_xmlid(old["module"], old["name"], None)
    if new is not None:
        txn.set_xmlid(new["module"], new["name"], rid)


# ---------------------------------------------------------------------------------------- x2many


def _relation_constraint(spec: ModelSpec, field: FieldSpec, comodel: ModelSpec) -> str:
    table = field.relation_table or "_".join(sorted((spec.table, comodel.table))) + "_rel"
    column = field.column2 or f"{comodel.table}_id"
    return f"{table}_{column}_fkey"


def _commands(model: str, field: FieldSpec, value: Any, uid: int) -> list[Sequence[Any]]:
    if value is None or value is False:
        return [(5,)]
    if not isinstance(value, list):
        raise errors.value_error(f"Wrong value for {model}.{field.name}: {value}")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return [(6, 0, value)] if value else []
    commands = [isinstance(item, list | tuple) for item in value]
    if any(commands) and not all(commands):
        raise errors.type_error("unhashable type: 'list'")
    for item, is_command in zip(value, commands, strict=True):
        if not is_command:
            assert field.relation is not None
            raise errors.missing_error(field.relation, (item,), uid)
    return value


def _apply_x2many(txn: Transaction, spec: ModelSpec, field: FieldSpec, rid: int, value: Any) -> None:
    assert field.relation is not None
    comodel = txn.store.spec(field.relation)
    for command in _commands(spec.name, field, value, txn.uid):
        code = command[0] if command else None
        ref = command[1] if len(command) > 1 else 0
        if code == 0:
            sub_vals = dict(command[2]) if len(command) > 2 and command[2] else {}
            if field.type == "one2many":
                assert field.relation_field is not None
                sub_vals[field.relation_field] = rid
            (new_id,) = create(txn, comodel.name, [sub_vals])
            if field.type == "many2many":
                _link(txn, spec, field, comodel, rid, [new_id])
        elif code == 1:
            write(txn, comodel.name, [ref], command[2] if len(command) > 2 else {})
        elif code == 2:
            unlink(txn, comodel.name, [ref])
        elif code == 3:
            _unlink_ids(txn, spec, field, rid, [ref])
        elif code == 4:
            _link(txn, spec, field, comodel, rid, [ref])
        elif code == 5:
            _unlink_ids(txn, spec, field, rid, None)
        elif code == 6:
            ids = list(dict.fromkeys(command[2] if len(command) > 2 else ()))
            current = _current(txn, spec, field, rid)
            _unlink_ids(txn, spec, field, rid, [cid for cid in current if cid not in ids])
            _link(txn, spec, field, comodel, rid, ids)
        else:
            raise errors.value_error(f"Unknown command {command!r} for {spec.name}.{field.name}")


def _current(txn: Transaction, spec: ModelSpec, field: FieldSpec, rid: int) -> list[int]:
    if field.type == "many2many":
        return list((txn.get(spec.name, rid) or {}).get(field.name) or ())
    assert field.relation is not None and field.relation_field is not None
    return [cid for cid, row in txn.iter_rows(field.relation) if row.get(field.relation_field) == rid]


def _link(
    txn: Transaction, spec: ModelSpec, field: FieldSpec, comodel: ModelSpec, rid: int, ids: list[int]
) -> None:
    for cid in ids:
        if not isinstance(cid, int) or txn.get(comodel.name, cid) is None:
            if field.type == "many2many":
                raise errors.restrict_error("Unknown", _relation_constraint(spec, field, comodel))
            raise errors.missing_error(comodel.name, (cid,), txn.uid)
    if field.type == "many2many":
        row = txn.writable(spec.name, rid)
        current = row.get(field.name) or []
        row[field.name] = current + [cid for cid in ids if cid not in current]
        return
    assert field.relation_field is not None
    linked = [cid for cid in ids if (txn.get(comodel.name, cid) or {}).get(field.relation_field) != rid]
    if linked:
        write(txn, comodel.name, linked, {field.relation_field: rid})


def _unlink_ids(txn: Transaction, spec: ModelSpec, field: FieldSpec, rid: int, ids: list[int] | None) -> None:
    if field.type == "many2many":
        row = txn.writable(spec.name, rid)
        row[field.name] = [] if ids is None else [cid for cid in row.get(field.name) or [] if cid not in ids]
        return
    assert field.relation_field is not None and field.relation is not None
    current = _current(txn, spec, field, rid)
    detach = current if ids is None else [cid for cid in ids if cid in current]
    if detach:
        write(txn, field.relation, detach, {field.relation_field: False})


# ---------------------------------------------------------------------------------------- unlink


def unlink(txn: Transaction, model: str, ids: Sequence[int]) -> None:
    """``unlink``: restricting references fail, ``set null`` ones are cleared (write_date untouched, as a
    foreign key does it), cascades follow, and the records' external ids go with them."""
    check_access(txn, model, "unlink")
    ids = _existing(txn, model, ids)
    spec = txn.store.spec(model)
    if spec.unlink_check is not None:
        for rid in ids:
            spec.unlink_check(txn, model, rid, txn.get(model, rid) or {})
    _delete(txn, model, set(ids))


def _delete(txn: Transaction, model: str, ids: set[int]) -> None:
    if not ids:
        return
    store = txn.store
    cascades: list[tuple[str, set[int]]] = []
    for other in store.specs.values():
        refs = [f for f in other.fields.values() if f.relation == model and f.compute is None]
        if not refs:
            continue
        for rid, row in list(txn.iter_rows(other.name)):
            if other.name == model and rid in ids:
                continue
            for field in refs:
                value = row.get(field.name)
                if field.type == "many2one" and value in ids:
                    rule = field.effective_ondelete
                    if rule == "restrict":
                        raise errors.restrict_error(
                            f"'{other.description}' ({other.name})", f"'{field.label}' ({field.name})"
                        )
                    if rule == "cascade":
                        cascades.append((other.name, {rid}))
                    else:
                        txn.writable(other.name, rid)[field.name] = None
                elif field.type == "many2many" and value and ids.intersection(value):
                    writable = txn.writable(other.name, rid)
                    writable[field.name] = [cid for cid in value if cid not in ids]
    for rid in ids:
        if model == IMD:
            _index_xmlid(txn, rid, txn.get(model, rid), None)
        txn.delete(model, rid)
    if model != IMD:
        stale = {
            rid for rid, row in txn.iter_rows(IMD) if row.get("model") == model and row.get("res_id") in ids
        }
        _delete(txn, IMD, stale)
    for other_model, other_ids in cascades:
        _delete(txn, other_model, {rid for rid in other_ids if txn.get(other_model, rid) is not None})
