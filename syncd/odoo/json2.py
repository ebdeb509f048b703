"""The JSON-2 transport: ``POST /json/2/<model>/<method>`` (Odoo 19+), authenticated by an API key.

The body is the method's keyword arguments plus ``ids`` (record methods only: a model method given
``ids`` answers 422) and ``context``; the answer is the bare JSON result. Errors carry real HTTP
statuses and a flat ``{name, message, arguments, context, debug}`` body, except an unknown
``X-Odoo-Database``, which gives an HTML 404 page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from syncd.odoo.classify import classify
from syncd.odoo.transport import HttpEndpoint, Protocol_


class Json2Transport:
    """Calls Odoo through ``/json/2``; every request carries the API key and the database name."""

    def __init__(self, http: HttpEndpoint, *, database: str, api_key: str) -> None:
        self._http = http
        self.database = database
        self._headers = {"Authorization": f"bearer {api_key}", "X-Odoo-Database": database}

    def __repr__(self) -> str:
        return f"Json2Transport(database={self.database!r})"

    @property
    def protocol(self) -> Protocol_:
        """Always ``"json2"``."""
        return "json2"

    async def execute(self, model: str, method: str, ids: list[int] | None, kwargs: dict[str, Any]) -> Any:
        """POST the keyword arguments (and ``ids``) to ``/json/2/<model>/<method>``."""
        body = dict(kwargs)
        if ids is not None:
            body["ids"] = ids
        path = f"/json/2/{quote(model, safe='')}/{quote(method, safe='')}"
        answer = await self._http.post(path, body, headers=self._headers, model=model, method=method)
        if answer.status == 200 and answer.is_json:
            return answer.body
        self._http.log_fault(path, answer.body)
        raise classify(
            answer.status,
            answer.body,
            model=model,
            method=method,
            retry_after=answer.retry_after,
            secrets=self._http.secrets,
        )
