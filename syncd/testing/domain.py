"""Odoo domains for the fake: parsing, compiling to predicates, and ordering.

A domain is parsed like Odoo 19's ``Domain()`` (prefix ``&``, ``|``, ``!``, implicit AND), validated against
the model (unknown field or operator → the ValueError Odoo raises) and compiled once into a predicate
``(record_id, row) -> bool``. Compilation also extracts bounds on ``write_date`` and ``id`` implied by the
domain, so a keyset query can start from a sorted index instead of scanning every record.

Datetime comparisons use Odoo's whole-second semantics (recorded in ``odoo-wire/c.txt``): the value is
truncated to the second, ``= X`` matches ``[X, X+1s)``, ``> X`` means ``>= X+1s``, ``<= X`` means
``< X+1s``; ordering still uses the microseconds. A bare date is its midnight in the user's timezone
(the context's ``tz``, else the user's): a whole day for ``>`` and ``<=`` (``> D`` means from the next
day on) but one second for ``=`` and ``!=``, as in Odoo 19's ``_optimize_type_datetime`` (checked
against the real server by ``tests/integration/test_fake_vs_real.py``, which once failed only after
23:00 UTC, when Brussels, the demo admin's timezone, is already on the next day).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncd.testing import errors
from syncd.testing.fields import RELATIONAL, X2MANY, FieldSpec, ModelSpec
from syncd.testing.store import Row, View
from syncd.testing.values import ONE_DAY, ONE_SECOND, parse_domain_date, parse_domain_datetime, to_utc

Pred = Callable[[int, Row], bool]
Getter = Callable[[int, Row], Any]
Bounds = tuple[Any, Any]  # (inclusive low, exclusive high); None = unbounded

OPERATORS = frozenset(
    {
        "=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "not like", "ilike", "not ilike",
        "=like", "=ilike", "child_of", "parent_of", "any", "not any", "=?", "<>", "==",
    }
)  # fmt: skip
_NEGATIVE = {"!=": "=", "not in": "in", "not like": "like", "not ilike": "ilike", "not any": "any"}
_UNBOUNDED: Bounds = (None, None)
INDEXED = ("write_date", "id")


def _always(_rid: int, _row: Row) -> bool:
    return True


def _never(_rid: int, _row: Row) -> bool:
    return False


@dataclass
class Compiled:
    """A compiled domain: a Python expression over ``rid``/``row`` and the bounds it implies.

    ``pred`` is set on the top-level result: the expression compiled into one function, so evaluating a
    domain costs one call per record instead of a call per node.
    """

    expr: str
    bounds: dict[str, Bounds]
    pred: Pred = _always

    def bound(self, field: str) -> Bounds:
        return self.bounds.get(field, _UNBOUNDED)


def _cond_repr(leaf: Sequence[Any]) -> str:
    return repr(tuple(leaf))


def parse(domain: Any) -> Any:
    """Parse a domain list into a nested ``("&"|"|", children) / ("!", child) / ("leaf", triple)`` tree."""
    if domain is None or domain is True or domain == []:
        return ("const", True)
    if domain is False:
        return ("const", False)
    if not isinstance(domain, list | tuple):
        raise errors.type_error(f"Domain() invalid argument type for domain: {domain!r}")
    stack: list[Any] = []
    try:
        for item in reversed(domain):
            if isinstance(item, list | tuple) and len(item) == 3:
                stack.append(("leaf", tuple(item)))
            elif item == "&":
                stack.append(("&", [stack.pop(), stack.pop()]))
            elif item == "|":
                stack.append(("|", [stack.pop(), stack.pop()]))
            elif item == "!":
                stack.append(("!", stack.pop()))
            else:
                raise errors.value_error(f"Domain() invalid item in domain: {item!r}")
    except IndexError:
        raise errors.value_error(f"Domain() malformed domain {domain!r}") from None
    if len(stack) == 1:
        return stack[0]
    return ("&", list(reversed(stack)))


def mentions(tree: Any, field: str) -> bool:
    kind = tree[0]
    if kind == "leaf":
        return bool(tree[1][0] == field)
    if kind == "!":
        return mentions(tree[1], field)
    if kind in ("&", "|"):
        return any(mentions(child, field) for child in tree[1])
    return False


def _like_regex(pattern: str, operator: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    body = "".join(parts)
    if not operator.startswith("="):
        body = f".*{body}.*"
    return re.compile(body, re.DOTALL | (re.IGNORECASE if "ilike" in operator else 0))


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == []


class Compiler:
    """Compiles domains of one model against a view (committed rows or a transaction)."""

    def __init__(self, view: View, model: str, tz: str | None = None) -> None:
        self.view = view
        self.spec: ModelSpec = view.store.spec(model)
        self.model = model
        #: The timezone a bare date in a datetime condition is read in (the user's: Odoo's env.tz).
        self.tz = tz
        self._consts: dict[str, Any] = {}

    def _datetime(self, value: Any) -> tuple[datetime, timedelta]:
        low, unit = parse_domain_datetime(value)
        if unit == ONE_DAY and self.tz:
            low = to_utc(low, self.tz)  # a bare date: its midnight where the user is
        return low, unit

    def compile(self, domain: Any) -> Compiled:
        return self.compile_tree(parse(domain))

    def compile_tree(self, tree: Any) -> Compiled:
        compiled = self._node(tree)
        source = f"def _pred(rid, row):\n    return {compiled.expr}\n"
        namespace = dict(self._consts)
        # The source only holds field names checked against the model (quoted with repr) and references to
        # constants in ``namespace``: no value from the caller is ever pasted into it.
        exec(source, namespace)  # noqa: S102
        compiled.pred = namespace["_pred"]
        return compiled

    # ------------------------------------------------------------------ expression building

    def _const(self, value: Any) -> str:
        name = f"_c{len(self._consts)}"
        self._consts[name] = value
        return name

    def _call(self, pred: Pred, bounds: dict[str, Bounds] | None = None) -> Compiled:
        return Compiled(f"{self._const(pred)}(rid, row)", bounds or {})

    def _value_expr(self, spec: FieldSpec) -> str:
        """An expression reading the field's value from ``rid``/``row``."""
        if spec.name == "id":
            return "rid"
        if spec.compute is not None or spec.name == "display_name" or spec.type == "one2many":
            return f"{self._const(self.getter(spec))}(rid, row)"
        if spec.type in ("integer", "float", "monetary"):
            return f"(row.get({spec.name!r}) or 0)"
        if spec.type == "boolean":
            return f"bool(row.get({spec.name!r}))"
        return f"row.get({spec.name!r})"

    # ------------------------------------------------------------------ boolean structure

    def _node(self, tree: Any) -> Compiled:
        kind = tree[0]
        if kind == "const":
            return Compiled("True" if tree[1] else "False", {})
        if kind == "leaf":
            return self._leaf(tree[1])
        if kind == "!":
            return Compiled(f"(not {self._node(tree[1]).expr})", {})
        children = [self._node(child) for child in tree[1]]
        joiner = " and " if kind == "&" else " or "
        expr = "(" + joiner.join(child.expr for child in children) + ")"
        return Compiled(expr, self._merge(children, conjunction=kind == "&"))

    @staticmethod
    def _merge(children: list[Compiled], *, conjunction: bool) -> dict[str, Bounds]:
        merged: dict[str, Bounds] = {}
        for field in INDEXED:
            bounds = [child.bound(field) for child in children]
            if conjunction:
                lows = [lo for lo, _ in bounds if lo is not None]
                highs = [hi for _, hi in bounds if hi is not None]
                merged[field] = (max(lows) if lows else None, min(highs) if highs else None)
            else:
                lows_or_none = [lo for lo, _ in bounds]
                highs_or_none = [hi for _, hi in bounds]
                merged[field] = (
                    None if None in lows_or_none else min(lows_or_none),
                    None if None in highs_or_none else max(highs_or_none),
                )
        return merged

    # ------------------------------------------------------------------ conditions

    def _leaf(self, leaf: tuple[Any, Any, Any]) -> Compiled:
        path, operator, value = leaf
        if leaf == (1, "=", 1):
            return Compiled("True", {})
        if leaf == (0, "=", 1):
            return Compiled("False", {})
        if not isinstance(path, str) or not isinstance(operator, str):
            raise errors.type_error(f"Domain() invalid arguments: {leaf!r}")
        operator = {"<>": "!=", "==": "="}.get(operator, operator.lower())
        if operator not in OPERATORS:
            raise errors.value_error(f"Invalid operator in condition {_cond_repr(leaf)}")
        name, _, rest = path.partition(".")
        spec = self.spec.fields.get(name)
        if spec is None:
            raise errors.value_error(f"Invalid field {self.model}.{name} in condition {_cond_repr(leaf)}")
        if operator == "=?":
            if not value:
                return Compiled("True", {})
            operator = "="
        if rest:
            if spec.type not in RELATIONAL:
                raise errors.value_error(f"Invalid field {self.model}.{path} in condition {_cond_repr(leaf)}")
            return self._relational(spec, "any", [(rest, operator, value)])
        if spec.type in RELATIONAL or operator in ("child_of", "parent_of", "any", "not any"):
            return self._relational(spec, operator, value)
        return self._scalar(spec, operator, value)

    def getter(self, spec: FieldSpec) -> Getter:
        name = spec.name
        if name == "id":
            return lambda rid, _row: rid
        if name == "display_name":
            model_spec, view = self.spec, self.view
            return lambda rid, row: model_spec.display_name_of(view, rid, row)
        if spec.compute is not None:
            compute, view = spec.compute, self.view
            return lambda rid, row: compute(view, rid, row)
        if spec.type == "one2many":
            inverse = self._one2many_map(spec)
            return lambda rid, _row: inverse.get(rid, [])
        if spec.type in ("integer", "float", "monetary"):
            return lambda _rid, row: row.get(name) or 0
        if spec.type == "boolean":
            return lambda _rid, row: bool(row.get(name))
        return lambda _rid, row: row.get(name)

    def _one2many_map(self, spec: FieldSpec) -> dict[int, list[int]]:
        assert spec.relation is not None and spec.relation_field is not None
        inverse: dict[int, list[int]] = {}
        for rid, row in self.view.iter_rows(spec.relation):
            parent = row.get(spec.relation_field)
            if parent:
                inverse.setdefault(parent, []).append(rid)
        return inverse

    def _scalar(self, spec: FieldSpec, operator: str, value: Any) -> Compiled:
        kind = spec.type
        if operator.endswith("like"):
            return self._call(self._like(self.getter(spec), operator, value))
        if operator in ("in", "not in"):
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            if not values:
                return Compiled("False" if operator == "in" else "True", {})
            if kind in ("datetime", "date") or any(_is_empty(item) for item in values):
                expr = "(" + " or ".join(self._equality(spec, item).expr for item in values) + ")"
            else:
                normalized = {bool(item) if kind == "boolean" else item for item in values if _hashable(item)}
                expr = f"({self._value_expr(spec)} in {self._const(frozenset(normalized))})"
            return Compiled(expr if operator == "in" else f"(not {expr})", {})
        if operator in ("=", "!="):
            equality = self._equality(spec, value)
            if operator == "=":
                return equality
            return Compiled(f"(not {equality.expr})", {})
        # inequalities
        if value is False or value is None:
            return Compiled("False", {})
        if kind == "datetime":
            low, unit = self._datetime(value)
            return self._range(spec, *_datetime_range(operator, low, unit))
        if kind == "date":
            value = parse_domain_date(value)
        expr = (
            f"((_v := {self._value_expr(spec)}) is not None and "
            f"{self._const(_safe_compare(operator, value))}(_v))"
        )
        return Compiled(expr, self._bounds(spec, operator, value))

    def _equality(self, spec: FieldSpec, value: Any) -> Compiled:
        if _is_empty(value) and spec.type not in ("boolean", "integer", "float", "monetary"):
            get = self.getter(spec)
            return self._call(lambda rid, row: _is_empty(get(rid, row)))
        if spec.type == "datetime":  # the whole second; a bare date is its midnight's second, not its day
            low, _ = self._datetime(value)
            return self._range(spec, low, low + ONE_SECOND)
        if spec.type == "date":
            value = parse_domain_date(value)
        elif spec.type == "boolean":
            value = bool(value)
        return Compiled(f"({self._value_expr(spec)} == {self._const(value)})", self._bounds(spec, "=", value))

    def _range(self, spec: FieldSpec, low: datetime | None, high: datetime | None) -> Compiled:
        checks = [f"(_v := {self._value_expr(spec)}) is not None"]
        if low is not None:
            checks.append(f"_v >= {self._const(low)}")
        if high is not None:
            checks.append(f"_v < {self._const(high)}")
        bounds = {spec.name: (low, high)} if spec.name in INDEXED else {}
        return Compiled("(" + " and ".join(checks) + ")", bounds)

    def _bounds(self, spec: FieldSpec, operator: str, value: Any) -> dict[str, Bounds]:
        if spec.name == "id" and isinstance(value, int) and not isinstance(value, bool):
            ranges: dict[str, Bounds] = {"=": (value, value + 1), ">": (value + 1, None), ">=": (value, None)}
            ranges.update({"<": (None, value), "<=": (None, value + 1)})
            return {"id": ranges[operator]}
        return {}

    @staticmethod
    def _like(get: Getter, operator: str, value: Any) -> Pred:
        negative = operator.startswith("not")
        if _is_empty(value):
            return _never if negative else _always
        regex = _like_regex(str(value), operator.removeprefix("not "))

        def matches(rid: int, row: Row) -> bool:
            current = get(rid, row)
            if current is None or current is False:
                return negative
            return (regex.fullmatch(str(current)) is not None) != negative

        return matches

    # ------------------------------------------------------------------ relations

    def _relational(self, spec: FieldSpec, operator: str, value: Any) -> Compiled:
        if operator in ("child_of", "parent_of"):
            return self._hierarchy(spec, operator, value)
        get = self.getter(spec)
        many = spec.type in X2MANY
        comodel = spec.relation or self.model
        positive = _NEGATIVE.get(operator, operator)
        negative = positive != operator
        if positive == "any":
            sub = Compiler(self.view, comodel, self.tz).compile(value)
            ids = {rid for rid, row in self.view.iter_rows(comodel) if sub.pred(rid, row)}
        elif positive in ("like", "ilike", "=like", "=ilike") or _has_text(value):
            if _is_empty(value) and positive in ("like", "ilike"):
                return Compiled("False" if negative else "True", {})
            ids = self._ids_by_name(comodel, positive, value)
        elif positive in ("=", "in"):
            values = list(value) if isinstance(value, list | tuple) else [value]
            if positive == "in" and not values:
                return Compiled("True" if negative else "False", {})
            if any(_is_empty(item) for item in values):
                real = {
                    item for item in values if isinstance(item, int) and not isinstance(item, bool) and item
                }
                return self._call(_membership(get, real, many, negative, allow_empty=True))
            ids = {item for item in values if isinstance(item, int)}
        else:
            return self._scalar(spec, operator, value)  # inequality on the id of a many2one
        return self._call(_membership(get, ids, many, negative, allow_empty=False))

    def _ids_by_name(self, comodel: str, operator: str, value: Any) -> set[int]:
        spec = self.view.store.spec(comodel)
        names = value if isinstance(value, list | tuple) else [value]
        regexes = [_like_regex(str(name), operator) for name in names if isinstance(name, str)]
        exact = operator in ("=", "in")
        wanted = {name for name in names if isinstance(name, str)}
        found = {name for name in names if isinstance(name, int) and not isinstance(name, bool)}
        for rid, row in self.view.iter_rows(comodel):
            label = spec.display_name_of(self.view, rid, row)
            if (label in wanted) if exact else any(rx.fullmatch(label) for rx in regexes):
                found.add(rid)
        return found

    def _hierarchy(self, spec: FieldSpec, operator: str, value: Any) -> Compiled:
        if spec.name != "id" and spec.relation != self.model:
            raise errors.value_error(f"Cannot execute {operator} for {self.model}.{spec.name}")
        parent_field = spec.name if spec.name != "id" else self.spec.parent_name
        if parent_field is None:
            raise errors.value_error(f"Cannot execute {operator} on {self.model}: no parent field")
        start: set[Any] = set(value) if isinstance(value, list | tuple) else {value}
        if any(isinstance(item, str) for item in start):
            start = self._ids_by_name(self.model, "ilike", [item for item in start if isinstance(item, str)])
        parents: dict[int, Any] = {rid: row.get(parent_field) for rid, row in self.view.iter_rows(self.model)}
        found: set[int] = set()
        frontier: set[int] = {item for item in start if isinstance(item, int) and item in parents}
        while frontier:
            found |= frontier
            if operator == "child_of":
                frontier = {rid for rid, parent in parents.items() if parent in frontier} - found
            else:
                frontier = {int(parents[rid]) for rid in frontier if parents.get(rid)} - found
        return Compiled(f"(rid in {self._const(frozenset(found))})", {})


def _membership(get: Getter, ids: set[int], many: bool, negative: bool, *, allow_empty: bool) -> Pred:
    def member(rid: int, row: Row) -> bool:
        current = get(rid, row)
        if many:
            hit = bool(ids.intersection(current or ())) or (allow_empty and not current)
        else:
            hit = (current in ids) if current else allow_empty
        return hit != negative

    return member


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _safe_compare(operator: str, value: Any) -> Callable[[Any], bool]:
    compare = _COMPARE[operator]

    def check(current: Any) -> bool:
        try:
            return bool(compare(current, value))
        except TypeError:
            return False

    return check


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list | tuple) and any(isinstance(item, str) for item in value)


def _datetime_range(operator: str, low: datetime, unit: timedelta) -> tuple[datetime | None, datetime | None]:
    return {
        "=": (low, low + unit),
        ">": (low + unit, None),
        ">=": (low, None),
        "<": (None, low),
        "<=": (None, low + unit),
    }[operator]


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# ---------------------------------------------------------------------------------------- ordering

OrderItem = tuple[str, bool, str | None]  # field, descending, "first"/"last"/None


def parse_order(spec: ModelSpec, order: str | None) -> list[OrderItem]:
    text = order if order else spec.order
    items: list[OrderItem] = []
    for part in text.split(","):
        words = part.strip().split()
        if not words:
            continue
        name = words[0]
        if name not in spec.fields:
            raise errors.value_error(f"Invalid field {name!r} on model {spec.name!r}")
        rest = [word.lower() for word in words[1:]]
        descending = False
        nulls: str | None = None
        if rest and rest[0] in ("asc", "desc"):
            descending = rest.pop(0) == "desc"
        if rest[:1] == ["nulls"] and len(rest) == 2 and rest[1] in ("first", "last"):
            nulls = rest[1]
            rest = []
        if rest:
            raise errors.value_error(f"Invalid order {text!r} for model {spec.name!r}")
        items.append((name, descending, nulls))
    return items


def sort_rows(compiler: Compiler, rows: list[tuple[int, Row]], order: list[OrderItem]) -> None:
    """Sort ``(id, row)`` pairs in place like PostgreSQL would (NULLS LAST ascending, FIRST descending)."""
    spec = compiler.spec
    for name, descending, nulls in reversed(order):
        field = spec.fields[name]
        get = _sort_getter(compiler, field)
        null_high = nulls != "first" if not descending else nulls != "last"
        null_key = (1 if null_high else -1, 0)
        boolean = field.type == "boolean"

        def key(
            item: tuple[int, Row],
            get: Getter = get,
            null_key: tuple[int, int] = null_key,
            boolean: bool = boolean,
        ) -> Any:
            value = get(*item)
            if value is None or (value is False and not boolean):
                return null_key
            return (0, value)

        rows.sort(key=key, reverse=descending)


def _sort_getter(compiler: Compiler, field: FieldSpec) -> Getter:
    if field.type == "many2one":
        assert field.relation is not None
        view, comodel = compiler.view, compiler.view.store.spec(field.relation)

        def label(_rid: int, row: Row) -> Any:
            target = row.get(field.name)
            if not target:
                return None
            target_row = view.get(comodel.name, target)
            return comodel.display_name_of(view, target, target_row) if target_row is not None else None

        return label
    if field.type in X2MANY:
        return lambda _rid, _row: None
    return compiler.getter(field)
