"""Model and field definitions of the fake Odoo, and their ``fields_get`` descriptions.

A model is a :class:`ModelSpec` holding :class:`FieldSpec` values by name. Every model gets Odoo's magic
fields (``id``, ``display_name``, ``create_date``, ``create_uid``, ``write_date``, ``write_uid``) on top of
the declared ones.

Field kinds, as the fake stores them:

- a *plain* field (no ``compute``) is stored in the record and can be written, even when ``store=False``
  (Odoo's non-stored fields with an inverse, like ``product.product.list_price``); ``store`` only shapes
  what ``fields_get`` reports;
- a *computed* field (``compute`` set) is never stored; it is evaluated on read and search, and writes to it
  are silently ignored, as Odoo does for computed fields without an inverse;
- ``inverse`` turns a written value into values for other fields (``company_type`` → ``is_company``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.testing.store import Transaction, View

FIELD_TYPES = frozenset(
    {
        "binary", "boolean", "char", "date", "datetime", "float", "html", "integer", "json",
        "many2many", "many2one", "monetary", "one2many", "properties", "selection", "text",
    }
)  # fmt: skip
RELATIONAL = frozenset({"many2one", "one2many", "many2many"})
X2MANY = frozenset({"one2many", "many2many"})
MAGIC_FIELDS = ("id", "display_name", "create_date", "create_uid", "write_date", "write_uid")

#: ``compute(view, record_id, row) -> value`` in the fake's internal representation.
ComputeFn = Callable[["View", int, Mapping[str, Any]], Any]
#: ``inverse(value) -> {other_field: value}`` applied before the other values are converted.
InverseFn = Callable[[Any], dict[str, Any]]
#: ``constraint(view, model, record_id, row)`` raises a FakeOdooError when the row is invalid.
ConstraintFn = Callable[["View", str, int, Mapping[str, Any]], None]
#: ``check(vals)`` inspects raw (JSON) values before conversion; raises to reject them.
ValsCheckFn = Callable[[Mapping[str, Any]], None]
#: ``prepare(txn, vals) -> vals`` completes the values of a record about to be created.
PrepareFn = Callable[["Transaction", dict[str, Any]], dict[str, Any]]
#: ``check(view, model, record_id, row)`` raises to refuse deleting the record.
UnlinkCheckFn = Callable[["View", str, int, Mapping[str, Any]], None]


def default_string(name: str) -> str:
    """Odoo's label for a field declared without ``string``: ``partner_id`` → ``Partner``."""
    base = name[:-4] if name.endswith("_ids") else name[:-3] if name.endswith("_id") else name
    return base.replace("_", " ").title()


@dataclass(frozen=True)
class FieldSpec:
    """One field of a fake model, with the attributes ``fields_get`` reports.

    ``FieldSpec("many2one", relation="res.partner")`` is all a test usually needs. ``selection`` is a list
    of ``(value, label)`` pairs; ``digits`` rounds floats like Odoo; ``ondelete`` applies to many2one fields
    when the referenced record is deleted (``"set null"``, ``"restrict"`` or ``"cascade"``; required
    many2one fields restrict). ``default`` is a value or a zero-argument callable.
    """

    type: str
    string: str | None = None
    relation: str | None = None
    relation_field: str | None = None
    #: the path of a related field (``product_tmpl_id.name``), reported by ``fields_get`` as Odoo does;
    #: the fake stores the value on the record itself
    related: str | None = None
    selection: Sequence[tuple[str, str]] | None = None
    store: bool = True
    readonly: bool = False
    required: bool = False
    company_dependent: bool = False
    currency_field: str | None = None
    digits: tuple[int, int] | None = None
    translate: bool = False
    size: int | None = None
    default: Any = None
    ondelete: str = "set null"
    compute: ComputeFn | None = None
    inverse: InverseFn | None = None
    #: selection values are not validated on write (Odoo's dynamic selections such as ``lang``)
    dynamic_selection: bool = False
    #: many2many relation table and its column for the comodel (used in foreign-key error messages)
    relation_table: str | None = None
    column2: str | None = None
    #: set by :class:`ModelSpec`; not meant to be passed by hand
    name: str = ""

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.type!r}")
        if self.type in RELATIONAL and not self.relation:
            raise ValueError(f"a {self.type} field needs a relation")
        if self.type == "one2many" and not self.relation_field:
            raise ValueError("a one2many field needs a relation_field (the inverse many2one)")

    @property
    def label(self) -> str:
        return self.string or default_string(self.name)

    @property
    def computed(self) -> bool:
        return self.compute is not None

    @property
    def writable(self) -> bool:
        """Whether ``write``/``create`` store a value given for this field (others are silently dropped)."""
        return self.name not in MAGIC_FIELDS and (self.compute is None or self.inverse is not None)

    @property
    def effective_ondelete(self) -> str:
        if self.required and self.ondelete == "set null":
            return "restrict"
        return self.ondelete

    def selection_values(self) -> list[str]:
        return [value for value, _label in self.selection or ()]

    def describe(self, model: str) -> dict[str, Any]:
        """The full ``fields_get`` description (as returned when no ``attributes`` are asked for)."""
        relational = self.type in RELATIONAL
        desc: dict[str, Any] = {
            "change_default": False,
            "company_dependent": self.company_dependent,
            "default_export_compatible": self.store and not self.readonly and not relational,
            "depends": [],
            "exportable": True,
            "groupable": self.store,
            "manual": False,
            "name": self.name,
            "readonly": self.readonly,
            "required": self.required,
            "searchable": True,
            "sortable": self.store,
            "store": self.store,
            "string": self.label,
            "type": self.type,
        }
        if self.type in ("char", "text", "html"):
            desc["translate"] = self.translate
        if self.type == "char":
            desc["trim"] = True
        if self.size is not None:
            desc["size"] = self.size
        if self.type == "float":
            desc["digits"] = list(self.digits) if self.digits else False
        if self.type == "monetary":
            desc["currency_field"] = self.currency_field or "currency_id"
        if self.type == "selection":
            desc["selection"] = [[value, label] for value, label in self.selection or ()]
        if relational:
            desc["relation"] = self.relation
            desc["context"] = {}
            desc["domain"] = []
        if self.type == "one2many":
            desc["relation_field"] = self.relation_field
        if self.related:
            desc["related"] = self.related
        if self.type == "many2one" and self.relation == model:
            desc["allow_hierachy_operators"] = True
        return desc


def _magic_fields() -> dict[str, FieldSpec]:
    return {
        "id": FieldSpec("integer", string="ID", readonly=True),
        "display_name": FieldSpec("char", string="Display Name", store=False, readonly=True),
        "create_date": FieldSpec("datetime", string="Created on", readonly=True),
        "create_uid": FieldSpec("many2one", string="Created by", relation="res.users", readonly=True),
        "write_date": FieldSpec("datetime", string="Last Updated on", readonly=True),
        "write_uid": FieldSpec("many2one", string="Last Updated by", relation="res.users", readonly=True),
    }


@dataclass
class ModelSpec:
    """A model of the fake Odoo: its fields and the few behaviours Odoo attaches to it.

    ``order`` is Odoo's ``_order`` (default sort of ``search``); ``rec_name`` the field shown as display
    name unless ``display_name`` computes it; ``name_search_fields`` the fields ``name_search`` and
    ``load()`` name lookups match (default: ``rec_name``); ``parent_name`` the many2one ``child_of``
    follows. ``access_group`` restricts the model to admins (non-admins get AccessError naming that group);
    ``write_group`` restricts only create/write/unlink.
    """

    name: str
    description: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    order: str = "id"
    rec_name: str | None = "name"
    name_search_fields: tuple[str, ...] = ()
    display_name: ComputeFn | None = None
    parent_name: str | None = None
    access_group: str | None = None
    write_group: str | None = None
    constraints: list[ConstraintFn] = field(default_factory=list)
    vals_check: ValsCheckFn | None = None
    prepare_create: PrepareFn | None = None
    unlink_check: UnlinkCheckFn | None = None

    def __post_init__(self) -> None:
        declared = self.fields
        self.fields = {}
        for name, spec in _magic_fields().items():
            self.fields[name] = dataclasses.replace(spec, name=name)
        self.add_fields(declared)

    def add_fields(self, fields: Mapping[str, FieldSpec]) -> None:
        for name, spec in fields.items():
            if name in MAGIC_FIELDS:
                raise ValueError(f"{name!r} is a magic field every model already has")
            self.fields[name] = dataclasses.replace(spec, name=name)

    @property
    def table(self) -> str:
        return self.name.replace(".", "_")

    @property
    def has_active(self) -> bool:
        return "active" in self.fields

    def display_name_of(self, view: View, rid: int, row: Mapping[str, Any]) -> str:
        """The record's display name: the ``display_name`` hook, else the ``rec_name`` field's value."""
        if self.display_name is not None:
            return str(self.display_name(view, rid, row))
        if not self.rec_name:
            return f"{self.name},{rid}"
        spec = self.fields[self.rec_name]
        value = spec.compute(view, rid, row) if spec.compute is not None else row.get(self.rec_name)
        return str(value) if value else ""

    def search_fields(self) -> tuple[str, ...]:
        if self.name_search_fields:
            return self.name_search_fields
        return (self.rec_name,) if self.rec_name else ("display_name",)

    def stored_fields(self) -> Iterator[FieldSpec]:
        """Fields held in a record row (plain fields, magic ones included, except id/display_name)."""
        for spec in self.fields.values():
            if spec.compute is None and spec.name not in ("id", "display_name") and spec.type != "one2many":
                yield spec

    def fields_get(self, allfields: Sequence[str] | None, attributes: Sequence[str] | None) -> dict[str, Any]:
        wanted = set(allfields) if allfields else None
        result: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if wanted is not None and name not in wanted:
                continue
            desc = spec.describe(self.name)
            if attributes:
                desc = {key: desc[key] for key in attributes if key in desc}
            result[name] = desc
        return result
