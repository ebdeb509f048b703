"""What a transport is, and the HTTP plumbing both transports share.

A transport turns one Odoo method call into exactly one HTTP request and its answer into a result
or an :class:`~syncd.errors.OdooError`. It does not retry, limit concurrency or measure anything:
:class:`~syncd.odoo.client.OdooClient` does that around it, the same way for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from syncd.odoo.classify import classify_exception, odoo_fault, redact

log = logging.getLogger("syncd.odoo")

Protocol_ = Literal["json2", "jsonrpc"]

#: How much of Odoo's traceback (``debug``) is logged at DEBUG level.
DEBUG_EXCERPT = 2000


class Transport(Protocol):
    """One way of calling Odoo's model methods (``json2`` or ``jsonrpc``)."""

    @property
    def protocol(self) -> Protocol_:
        """The transport's name, as in ``odoo.protocol``."""

    async def execute(self, model: str, method: str, ids: list[int] | None, kwargs: dict[str, Any]) -> Any:
        """Call ``model.method``: on the records ``ids`` (a record method) or on the model (``ids=None``).

        ``kwargs`` are the method's keyword arguments, ``context`` included.
        """


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer, read in full. ``body`` is the parsed JSON, or the text when it is not JSON."""

    status: int
    body: Any
    is_json: bool
    retry_after: str | None = None


class HttpEndpoint:
    """POSTs JSON to one Odoo server; turns aiohttp failures into OdooErrors.

    Every request is bounded by ``timeout`` seconds in total (connect, send, wait, read). ``secrets``
    are blanked out of anything this class logs or raises.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float,
        verify_tls: bool = True,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = verify_tls
        self._secrets = tuple(s for s in secrets if s)

    def __repr__(self) -> str:
        return f"HttpEndpoint({safe_url(self.base_url)!r}, timeout={self.timeout:g})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credentials to keep out of messages and logs."""
        return self._secrets

    async def post(
        self,
        path: str,
        payload: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        model: str | None = None,
        method: str | None = None,
    ) -> HttpAnswer:
        """POST ``payload`` as JSON to ``path``; raise an OdooError when no answer arrives."""
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        all_headers.update(headers or {})
        return await self._request("POST", path, data, all_headers, model=model, method=method)

    async def get(self, path: str) -> HttpAnswer:
        """GET ``path`` (no credentials); raise an OdooError when no answer arrives."""
        return await self._request("GET", path, None, {}, model=None, method=path)

    async def _request(
        self,
        verb: str,
        path: str,
        data: bytes | None,
        headers: Mapping[str, str],
        *,
        model: str | None,
        method: str | None,
    ) -> HttpAnswer:
        try:
            async with self._session.request(
                verb,
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=self._client_timeout,
                ssl=self._ssl,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except Exception as exc:
            # aiohttp's exceptions carry the URL but neither headers nor body; chaining them keeps
            # the low-level cause visible without exposing credentials.
            error = classify_exception(
                exc, model=model, method=method, timeout=self.timeout, secrets=self._secrets
            )
            if error is exc:
                raise
            log.debug("%s %s failed: %s", verb, path, error)
            raise error from exc
        body, is_json = _parse(raw)
        log.debug("%s %s -> HTTP %d (%d bytes)", verb, path, status, len(raw))
        return HttpAnswer(status, body, is_json, retry_after)

    def log_fault(self, path: str, body: object) -> None:
        """Log Odoo's traceback for an error answer at DEBUG, shortened and without credentials."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        debug = odoo_fault(body).debug
        if debug:
            text = redact(debug, self._secrets)
            if len(text) > DEBUG_EXCERPT:
                text = "..." + text[-DEBUG_EXCERPT:]
            log.debug("Odoo traceback for POST %s:\n%s", path, text)


def safe_url(url: str) -> str:
    """``url`` without a password in its user-info part (``https://user:***@host``), fit to show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _parse(raw: bytes) -> tuple[Any, bool]:
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace"), False
