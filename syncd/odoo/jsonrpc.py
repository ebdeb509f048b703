"""The JSON-RPC transport: ``POST /jsonrpc`` with ``execute_kw`` (Odoo 14–19; deprecated in 19).

Every answer is HTTP 200; an error is ``{"error": {"code": 0, "message": "Odoo Server Error",
"data": {"name", "message", ...}}}`` and a method returning None gives an answer with neither
``result`` nor ``error``. The credential travels in the body, so it is in no header and no URL.
"""

from __future__ import annotations

import itertools
from typing import Any

from syncd.errors import OdooAuthenticationError, OdooProtocolError
from syncd.odoo.classify import classify
from syncd.odoo.transport import HttpEndpoint, Protocol_

PATH = "/jsonrpc"

#: Model methods whose first argument is sent positionally. Odoo 14–16 name ``search``'s and
#: ``search_count``'s domain ``args``, and Odoo ≤ 17 dispatch ``create`` by looking at ``args[0]``,
#: so keyword-only calls of these break on older servers. Positional works on every version.
_FIRST_POSITIONAL = {
    "create": "vals_list",
    "search": "domain",
    "search_count": "domain",
    "search_read": "domain",
}


class JsonRpcTransport:
    """Calls Odoo through ``/jsonrpc``. :meth:`authenticate` must succeed before :meth:`execute`."""

    def __init__(self, http: HttpEndpoint, *, database: str, username: str, secret: str | None) -> None:
        self._http = http
        self.database = database
        self.username = username
        self._secret = secret
        self.uid: int | None = None
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"JsonRpcTransport(database={self.database!r}, username={self.username!r}, uid={self.uid})"

    @property
    def protocol(self) -> Protocol_:
        """Always ``"jsonrpc"``."""
        return "jsonrpc"

    async def rpc(
        self,
        service: str,
        method: str,
        args: list[Any],
        *,
        model: str | None = None,
        label: str | None = None,
    ) -> Any:
        """One JSON-RPC ``call`` of ``service.method(*args)``; ``model`` and ``label`` name errors."""
        odoo_method = label or method
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        answer = await self._http.post(PATH, payload, model=model, method=odoo_method)
        body = answer.body
        if answer.status != 200 or not isinstance(body, dict) or "error" in body:
            if isinstance(body, dict) and "error" in body:
                self._http.log_fault(PATH, body)
            raise classify(
                answer.status,
                body,
                model=model,
                method=odoo_method,
                retry_after=answer.retry_after,
                secrets=self._http.secrets,
            )
        return body.get("result")

    async def version(self) -> dict[str, Any]:
        """``common.version``: needs no credentials and works on every Odoo version."""
        result = await self.rpc("common", "version", [])
        if not isinstance(result, dict):
            raise OdooProtocolError("common.version did not answer an object", method="version")
        return result

    async def authenticate(self) -> int:
        """``common.authenticate``: the user id, or OdooAuthenticationError when Odoo answers false."""
        result = await self.rpc("common", "authenticate", [self.database, self.username, self._secret, {}])
        if isinstance(result, bool) or not isinstance(result, int):
            raise OdooAuthenticationError(
                f"Odoo refused login {self.username!r} on database {self.database!r} "
                "(wrong password or API key, or the user is inactive)",
                method="authenticate",
            )
        self.uid = result
        return result

    async def execute(self, model: str, method: str, ids: list[int] | None, kwargs: dict[str, Any]) -> Any:
        """``object.execute_kw``: record methods get ``args=[ids]``, model methods keyword arguments."""
        if self.uid is None:
            raise RuntimeError("JsonRpcTransport.execute called before authenticate()")
        kwargs = dict(kwargs)
        args: list[Any]
        if ids is not None:
            args = [ids]
        elif (first := _FIRST_POSITIONAL.get(method)) is not None and first in kwargs:
            args = [kwargs.pop(first)]
        else:
            args = []
        return await self.rpc(
            "object",
            "execute_kw",
            [self.database, self.uid, self._secret, model, method, args, kwargs],
            model=model,
            label=method,
        )
