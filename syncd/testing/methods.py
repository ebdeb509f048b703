"""The public model methods the fake Odoo serves, and how call arguments bind to them.

Both transports end up here: JSON-RPC ``execute_kw`` passes positional ``args`` (``args[0]`` being the ids
for record methods) and ``kwargs``; JSON-2 passes keyword arguments only, plus ``ids`` and ``context``.
Binding errors read like Python's (JSON-RPC: ``TypeError``) or like ``inspect.Signature.bind`` (JSON-2:
HTTP 422), as Odoo 19 produces them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.testing import errors, loader, orm
from syncd.testing.store import Transaction, View

REQUIRED = object()
IMD = "ir.model.data"
CONFIG = "ir.config_parameter"
USERS = "res.users"

#: public-looking names Odoo 19 marks ``@api.private`` (JSON-2 and JSON-RPC answer AccessError)
PRIVATE_NAMES = frozenset(
    {
        "search_fetch", "fetch", "browse", "with_context", "with_user", "with_company", "with_env", "sudo",
        "ensure_one", "filtered", "filtered_domain", "mapped", "sorted", "grouped", "invalidate_recordset",
        "invalidate_model", "flush_model", "flush_recordset", "modified", "init", "new",
    }
)  # fmt: skip


@dataclass
class Invocation:
    """One call of a model method, after authentication and argument binding."""

    model: str
    method: str
    ids: list[Any]
    params: dict[str, Any]
    context: dict[str, Any]
    uid: int
    transport: str  # "jsonrpc", "json2" or "direct"
    args_given_as_dict: bool = False


Handler = Callable[[Invocation, View], Any]


@dataclass(frozen=True)
class Method:
    """A served method: its parameters (name → default or REQUIRED) and what it does."""

    name: str
    record: bool
    params: tuple[tuple[str, Any], ...]
    handler: Callable[[Invocation, Any], Any]
    writes: bool = False
    models: frozenset[str] | None = None
    #: Odoo forwards unknown keyword arguments to this function, which rejects them (500 TypeError)
    varkw_target: str | None = None
    owner: str = field(default="BaseModel")


# ------------------------------------------------------------------------------------------ handlers


def _read(inv: Invocation, view: View) -> Any:
    return orm.read(view, inv.model, inv.ids, inv.params["fields"], inv.params["load"])


def _search_read(inv: Invocation, view: View) -> Any:
    p = inv.params
    return orm.search_read(
        view, inv.model, p["domain"], p["fields"], p["offset"], p["limit"], p["order"], inv.context, p["load"]
    )


def _search(inv: Invocation, view: View) -> Any:
    p = inv.params
    rows = orm.search_rows(
        view,
        inv.model,
        p["domain"],
        offset=p["offset"],
        limit=p["limit"],
        order=p["order"],
        context=inv.context,
    )
    return [rid for rid, _row in rows]


def _search_count(inv: Invocation, view: View) -> Any:
    count = orm.search_count(view, inv.model, inv.params["domain"], inv.context)
    limit = inv.params["limit"]
    return min(count, limit) if limit else count


def _name_search(inv: Invocation, view: View) -> Any:
    p = inv.params
    return orm.name_search(
        view, inv.model, p["name"] or "", p["domain"], p["operator"], p["limit"], inv.context
    )


def _fields_get(inv: Invocation, view: View) -> Any:
    orm.check_access(view, inv.model, "read")
    return view.store.spec(inv.model).fields_get(inv.params["allfields"], inv.params["attributes"])


def _create(inv: Invocation, txn: Transaction) -> Any:
    vals_list = inv.params["vals_list"]
    single = isinstance(vals_list, Mapping)
    ids = orm.create(txn, inv.model, [vals_list] if single else vals_list)
    if single and inv.transport != "json2":
        return ids[0]  # /jsonrpc answers a bare id for a single dict, JSON-2 always a list
    return ids


def _write(inv: Invocation, txn: Transaction) -> Any:
    orm.write(txn, inv.model, inv.ids, inv.params["vals"])
    return True


def _unlink(inv: Invocation, txn: Transaction) -> Any:
    orm.unlink(txn, inv.model, inv.ids)
    return True


def _archive(active: bool) -> Callable[[Invocation, Transaction], Any]:
    def handler(inv: Invocation, txn: Transaction) -> Any:
        orm.set_active(txn, inv.model, inv.ids, active)
        return None

    return handler


def _load(inv: Invocation, txn: Transaction) -> Any:
    return loader.load(txn, inv.model, inv.params["fields"], inv.params["data"])


def _exists(inv: Invocation, view: View) -> Any:
    return [rid for rid in inv.ids if isinstance(rid, int) and view.get(inv.model, rid) is not None]


def _get_external_id(inv: Invocation, view: View) -> Any:
    found: dict[int, str] = {}
    wanted = set(inv.ids)
    for _imd_id, row in view.iter_rows(IMD):
        if row.get("model") == inv.model and row.get("res_id") in wanted and row["res_id"] not in found:
            found[row["res_id"]] = f"{row['module']}.{row['name']}"
    return {str(rid): found.get(rid, "") for rid in inv.ids}


def _check_object_reference(inv: Invocation, view: View) -> Any:
    module, name = inv.params["module"], inv.params["xml_id"]
    imd_id = view.xmlid_lookup(module, name)
    row = view.get(IMD, imd_id) if imd_id is not None else None
    if row is None:
        raise errors.value_error(f"External ID not found in the system: {module}.{name}")
    return [row["model"], row["res_id"]]


def _get_param(inv: Invocation, view: View) -> Any:
    rows = orm.search_rows(view, CONFIG, [("key", "=", inv.params["key"])])
    return rows[0][1]["value"] if rows else inv.params["default"]


def _set_param(inv: Invocation, txn: Transaction) -> Any:
    key, value = inv.params["key"], inv.params["value"]
    rows = orm.search_rows(txn, CONFIG, [("key", "=", key)])
    old = rows[0][1]["value"] if rows else False
    if rows and value in (None, False):
        orm.unlink(txn, CONFIG, [rows[0][0]])
    elif rows:
        orm.write(txn, CONFIG, [rows[0][0]], {"value": str(value)})
    elif value not in (None, False):
        orm.create(txn, CONFIG, [{"key": key, "value": str(value)}])
    return old


def _context_get(inv: Invocation, view: View) -> Any:
    # res.users.context_get(): the calling user's language and timezone; any valid credential may call it.
    user = view.get(USERS, view.uid) or {}
    return {"lang": user.get("lang") or "en_US", "tz": user.get("tz") or False}


_DOMAIN_PAGE = (("domain", None), ("fields", None), ("offset", 0), ("limit", None), ("order", None))

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("read", True, (("fields", None), ("load", "_classic_read")), _read),
        Method("search_read", False, _DOMAIN_PAGE, _search_read, varkw_target="_read_format"),
        Method("search", False, (("domain", REQUIRED), ("offset", 0), ("limit", None), ("order", None)), _search),
        Method("search_count", False, (("domain", REQUIRED), ("limit", None)), _search_count),
        Method("name_search", False, (("name", ""), ("domain", None), ("operator", "ilike"), ("limit", 100)), _name_search),
        Method("fields_get", False, (("allfields", None), ("attributes", None)), _fields_get),
        Method("create", False, (("vals_list", REQUIRED),), _create, writes=True),
        Method("write", True, (("vals", REQUIRED),), _write, writes=True),
        Method("unlink", True, (), _unlink, writes=True),
        Method("action_archive", True, (), _archive(False), writes=True),
        Method("action_unarchive", True, (), _archive(True), writes=True),
        Method("load", False, (("fields", REQUIRED), ("data", REQUIRED)), _load, writes=True),
        Method("exists", True, (), _exists),
        Method("get_external_id", True, (), _get_external_id),
        Method(
            "check_object_reference",
            False,
            (("module", REQUIRED), ("xml_id", REQUIRED), ("raise_on_access_error", False)),
            _check_object_reference,
            models=frozenset({IMD}),
        ),
        Method("context_get", False, (), _context_get, models=frozenset({USERS})),
        Method("get_param", False, (("key", REQUIRED), ("default", False)), _get_param, models=frozenset({CONFIG})),
        Method("set_param", False, (("key", REQUIRED), ("value", REQUIRED)), _set_param, writes=True, models=frozenset({CONFIG})),
    )
}  # fmt: skip


def resolve(view: View, model: str, name: str) -> Method:
    """The method ``name`` of ``model`` (the model is known to exist), or Odoo's error for it."""
    if name.startswith("_") or name in PRIVATE_NAMES:
        raise errors.private_method(model, name)
    method = METHODS.get(name)
    if method is None or (method.models is not None and model not in method.models):
        raise errors.attribute_error(f"The method '{model}.{name}' does not exist")
    if name in ("action_archive", "action_unarchive") and not view.store.spec(model).has_active:
        raise errors.attribute_error(f"The method '{model}.{name}' does not exist")
    return method


def execute_kw_invocation(
    view: View, model: Any, name: str, args: Sequence[Any], kwargs: dict[str, Any], uid: int, transport: str
) -> tuple[Method, Invocation]:
    """Resolve and bind an ``execute_kw``-style call (positional ``args``, ids first for record methods)."""
    if not isinstance(model, str) or model not in view.store.specs:
        raise errors.user_error(f"Object {model} doesn't exist")
    method = resolve(view, model, name)
    context = dict(kwargs.pop("context", None) or {})
    ids: list[Any] = []
    if method.record:
        if not args:
            raise errors.FakeOdooError("builtins.IndexError", "list index out of range")
        first, args = args[0], args[1:]
        ids = list(first) if isinstance(first, list | tuple) else [first]
    params = bind_positional(method, args, kwargs)
    return method, Invocation(model, name, ids, params, context, uid, transport)


def bind_positional(method: Method, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Bind ``execute_kw`` arguments like a Python call would, with Python's TypeError messages."""
    qualified = f"{method.owner}.{method.name}()"
    names = [name for name, _default in method.params]
    if len(args) > len(names):
        raise errors.type_error(
            f"{qualified} takes {len(names) + 1} positional arguments but {len(args) + 1} were given"
        )
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            target = f"{method.owner}.{method.varkw_target}()" if method.varkw_target else qualified
            if method.varkw_target and key == "load":
                bound[key] = value
                continue
            raise errors.type_error(f"{target} got an unexpected keyword argument '{key}'")
        if key in bound:
            raise errors.type_error(f"{qualified} got multiple values for argument '{key}'")
        bound[key] = value
    return _defaults(method, bound, qualified, json2=False)


def bind_keywords(method: Method, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Bind JSON-2 keyword arguments like ``inspect.Signature.bind`` (mismatch → HTTP 422)."""
    names = [name for name, _default in method.params]
    bound: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in names:
            if method.varkw_target and key == "load":
                bound[key] = value
                continue
            if method.varkw_target:
                target = f"{method.owner}.{method.varkw_target}()"
                raise errors.type_error(f"{target} got an unexpected keyword argument '{key}'")
            raise errors.http_error(422, f"got an unexpected keyword argument '{key}'")
        bound[key] = value
    return _defaults(method, bound, "", json2=True)


def _defaults(method: Method, bound: dict[str, Any], qualified: str, *, json2: bool) -> dict[str, Any]:
    for name, default in method.params:
        if name not in bound:
            if default is REQUIRED:
                if json2:
                    raise errors.http_error(422, f"missing a required argument: '{name}'")
                raise errors.type_error(f"{qualified} missing 1 required positional argument: '{name}'")
            bound[name] = default
    bound.setdefault("load", "_classic_read")
    return bound
