"""The Odoo client: one interface over the JSON-2 and JSON-RPC transports.

:class:`OdooClient` picks the transport, authenticates, and wraps every HTTP request the same way:
a semaphore bounds the requests in flight (``odoo.max_concurrency``), each request is bounded by
``odoo.timeout_seconds``, transient errors are retried by :class:`~syncd.odoo.retry.RetryPolicy`
(through tenacity), and ``observe(method, seconds, error)`` is told how long each request took and
what it raised.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from syncd.config import OdooSettings
from syncd.errors import (
    ConfigError,
    OdooAuthenticationError,
    OdooError,
    OdooPermanentError,
    OdooProtocolError,
)
from syncd.odoo.classify import classify, short_name
from syncd.odoo.json2 import Json2Transport
from syncd.odoo.jsonrpc import JsonRpcTransport
from syncd.odoo.retry import RetryPolicy, is_idempotent
from syncd.odoo.transport import HttpEndpoint, Protocol_, Transport, safe_url

log = logging.getLogger("syncd.odoo")

T = TypeVar("T")

#: ``observe(method, seconds, error)``: ``error`` is the exception the request raised, None on success.
Observer = Callable[[str, float, Exception | None], None]
#: The older two-argument form, ``observe(method, seconds)``, still accepted.
DurationObserver = Callable[[str, float], None]

#: The first Odoo version that has JSON-2.
JSON2_SINCE = 19


@dataclass(frozen=True)
class ServerInfo:
    """What ``common.version`` says about the server."""

    server_version: str
    server_version_info: tuple[Any, ...]
    serie: str
    protocol_version: int | None = None

    @classmethod
    def from_version(cls, data: Mapping[str, Any]) -> ServerInfo:
        """Build from the ``common.version`` answer."""
        info = data.get("server_version_info")
        protocol_version = data.get("protocol_version")
        return cls(
            server_version=str(data.get("server_version", "")),
            server_version_info=tuple(info) if isinstance(info, list | tuple) else (),
            serie=str(data.get("server_serie", "")),
            protocol_version=protocol_version if isinstance(protocol_version, int) else None,
        )

    @property
    def major(self) -> int:
        """The major version (17 for ``17.0`` and for ``saas~17.4``); 0 when it cannot be told."""
        first = self.server_version_info[0] if self.server_version_info else None
        if isinstance(first, int) and not isinstance(first, bool):
            return first
        match = re.search(r"\d+", str(first) if first is not None else self.server_version)
        return int(match.group()) if match else 0


@dataclass(frozen=True)
class LoadResult:
    """What ``load()`` answers. Row errors are in ``messages``; ``ids`` is None when the batch failed.

    A failed batch is rolled back as a whole: no row of it was written.
    """

    ids: list[int | None] | None
    messages: list[dict[str, Any]]
    nextrow: int = 0

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The messages of type ``error``."""
        return [m for m in self.messages if m.get("type") == "error"]

    @property
    def ok(self) -> bool:
        """True when every row was written."""
        return self.ids is not None and not self.errors


class OdooClient:
    """Talks to one Odoo database as one user, over JSON-2 or JSON-RPC.

    Use it as ``async with OdooClient(settings) as client:``; entering opens an aiohttp session
    (unless one is given, which the client then never closes), chooses the transport and
    authenticates.

    ``observe(method, seconds, error)`` is called after each HTTP request (each retry is one), failed
    ones too: ``error`` is the exception it raised (an :class:`~syncd.errors.OdooError`, whose
    ``transient`` says whether retrying may help), None when it succeeded. A cancelled request is
    reported with ``error=None``: it did not fail. A callback that takes only ``(method, seconds)``
    is still accepted and told the duration only.
    """

    def __init__(
        self,
        settings: OdooSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        observe: Observer | DurationObserver | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._own_session = session is None
        self._observe = _as_observer(observe)
        self.retry_policy = retry_policy or RetryPolicy(retries=settings.retries)
        # Bounds the HTTP requests in flight, not the callers: a call waiting for its retry
        # backoff holds no slot.
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._rpc: JsonRpcTransport | None = None
        self._transport: Transport | None = None
        self._info: ServerInfo | None = None
        self._http: HttpEndpoint | None = None
        #: When a call of the daemon's work last succeeded with no transient failure since (monotonic;
        #: the probes do not count), and the authentication error of the
        #: last request when it failed on one: the readiness probe answers from them when it can.
        self._last_ok: float | None = None
        self._auth_error: OdooAuthenticationError | None = None
        #: False once Odoo answered /web/health with 404 (before Odoo 16): the probe logs in instead.
        self._has_health = True
        self.protocol: Protocol_ | None = None
        self.uid: int | None = None

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"OdooClient(url={safe_url(s.url)!r}, database={s.database!r}, username={s.username!r}, "
            f"protocol={self.protocol or s.protocol!r})"
        )

    # ---------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> OdooClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the session, choose the transport and authenticate. Closes everything if it fails."""
        if self._transport is not None:
            return
        s = self._settings
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        api_key = s.api_key.get_secret_value() if s.api_key is not None else None
        password = s.password.get_secret_value() if s.password is not None else None
        http = HttpEndpoint(
            self._session,
            s.url,
            timeout=s.timeout_seconds,
            verify_tls=s.verify_tls,
            secrets=(api_key, password),
        )
        self._rpc = JsonRpcTransport(http, database=s.database, username=s.username, secret=s.secret)
        self._http = http
        try:
            protocol, reason = await self._negotiate()
            if protocol == "json2":
                if api_key is None:
                    raise ConfigError("odoo.protocol 'json2' needs odoo.api_key")
                self._transport = Json2Transport(http, database=s.database, api_key=api_key)
            else:
                if s.secret is None:
                    raise ConfigError("odoo.api_key or odoo.password is needed to log in to Odoo")
                self.uid = await self._retrying("authenticate", None, True, self._rpc.authenticate)
                self._transport = self._rpc
            self.protocol = protocol
        except BaseException:
            await self.close()
            raise
        log.info(
            "Odoo at %s, database %r: using %s (%s)%s",
            safe_url(s.url),
            s.database,
            protocol,
            reason,
            f", uid {self.uid}" if self.uid is not None else "",
        )

    async def _negotiate(self) -> tuple[Protocol_, str]:
        s = self._settings
        if s.protocol != "auto":
            return s.protocol, "configured"
        try:
            info = await self.version()
        except OdooPermanentError as e:
            # A server without /jsonrpc (a future Odoo) still has JSON-2.
            if e.status == 404 and s.api_key is not None:
                return "json2", "no /jsonrpc on this server and an API key is configured"
            raise
        if info.major >= JSON2_SINCE and s.api_key is not None:
            return "json2", f"Odoo {info.server_version} and an API key is configured"
        if info.major < JSON2_SINCE:
            return "jsonrpc", f"Odoo {info.server_version} has no JSON-2"
        return "jsonrpc", f"Odoo {info.server_version} but no API key is configured (JSON-2 needs one)"

    async def close(self) -> None:
        """Close the session if the client opened it. The client can be connected again afterwards."""
        session, self._session = self._session, (None if self._own_session else self._session)
        self._transport = None
        self._rpc = None
        self._http = None
        self.protocol = None
        self.uid = None
        if self._own_session and session is not None and not session.closed:
            await session.close()

    # ------------------------------------------------------------------------------- the machinery

    async def version(self) -> ServerInfo:
        """The server's version (``common.version`` over JSON-RPC; asked once, then remembered)."""
        if self._info is None:
            rpc = self._rpc_or_raise()
            self._info = ServerInfo.from_version(await self._retrying("version", None, True, rpc.version))
        return self._info

    async def call(self, model: str, method: str, ids: list[int] | None = None, **kwargs: Any) -> Any:
        """Call any public method: on the records ``ids``, or on the model when ``ids`` is None.

        Keyword arguments are passed by name (``context=`` too). Whether a failed call is repeated
        after a timeout depends on the method (:func:`~syncd.odoo.retry.is_idempotent`).
        """
        return await self._execute(model, method, ids, kwargs, idempotent=is_idempotent(method, kwargs))

    async def check_credentials(self) -> None:
        """One authenticated request (``res.users.context_get``), no retries, outside the
        concurrency limit: JSON-2 connects without logging in, so the daemon proves its API key
        with this at start. Raises the classified error."""
        transport = self._transport
        if transport is None:
            raise RuntimeError("OdooClient is not connected: use 'async with OdooClient(...)'")
        await transport.execute("res.users", "context_get", None, {})

    async def ping(self, *, fresh: float = 0.0) -> None:
        """The daemon's readiness probe, cheap for Odoo: no request at all when a call of the
        daemon's own work succeeded within ``fresh`` seconds and none failed since; else ``GET /web/health`` (no login, no registry; on an Odoo
        without it, one authenticated ``res.users.context_get``). No retries, outside the
        concurrency limit. Raises the classified error, and the authentication error of the last
        request when it failed on one (a revoked API key is not "ready")."""
        http, transport = self._http, self._transport
        if http is None or transport is None:
            raise RuntimeError("OdooClient is not connected: use 'async with OdooClient(...)'")
        if self._auth_error is not None:
            raise self._auth_error
        if fresh > 0 and self._last_ok is not None and time.monotonic() - self._last_ok < fresh:
            return
        if self._has_health:
            # db_server_status: Odoo also checks that it reaches its PostgreSQL.
            answer = await http.get("/web/health?db_server_status=1")
            if answer.status == 200:
                return
            if answer.status != 404:
                raise classify(answer.status, answer.body, model=None, method="/web/health",
                               retry_after=answer.retry_after, secrets=http.secrets)  # fmt: skip
            self._has_health = False
        await self.check_credentials()

    async def _execute(
        self, model: str, method: str, ids: list[int] | None, kwargs: dict[str, Any], *, idempotent: bool
    ) -> Any:
        transport = self._transport
        if transport is None:
            raise RuntimeError("OdooClient is not connected: use 'async with OdooClient(...)'")
        ids = list(ids) if ids is not None else None
        return await self._retrying(
            method, model, idempotent, lambda: transport.execute(model, method, ids, kwargs)
        )

    async def _retrying(
        self, method: str, model: str | None, idempotent: bool, request: Callable[[], Awaitable[T]]
    ) -> T:
        policy = self.retry_policy

        def retry(state: RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None or not outcome.failed:
                return False
            error = outcome.exception()
            return policy.should_retry(error, attempt=state.attempt_number, idempotent=idempotent)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return policy.delay(error, state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            # Debug only: a retry is not news. The caller reports the call that finally fails, and
            # the daemon logs once when Odoo becomes unreachable and once when it is back.
            log.debug(
                "Odoo %s failed (%s); retry %d of %d in %.2f s",
                f"{model}.{method}" if model else method,
                error if isinstance(error, OdooError) else type(error).__name__,
                state.attempt_number,
                policy.retries,
                delay,
            )

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(policy.retries + 1),
            retry=retry,
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                return await self._request(method, request)
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    async def _request(self, method: str, request: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            start = time.perf_counter()
            error: Exception | None = None
            try:
                result = await request()
                self._last_ok = time.monotonic()
                self._auth_error = None
                return result
            except Exception as e:
                error = e
                if isinstance(e, OdooAuthenticationError):
                    self._auth_error = e
                if isinstance(e, OdooError) and e.transient:
                    self._last_ok = None  # Odoo may be going down: the next probe asks it
                raise
            finally:
                if self._observe is not None:
                    try:
                        self._observe(method, time.perf_counter() - start, error)
                    except Exception:
                        log.exception("the observe callback failed")

    def _rpc_or_raise(self) -> JsonRpcTransport:
        if self._rpc is None:
            raise RuntimeError("OdooClient is not connected: use 'async with OdooClient(...)'")
        return self._rpc

    # ------------------------------------------------------------------------------ typed helpers

    async def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        fields: Sequence[str] | None,
        *,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Search and read in one call. Archived records need ``context={"active_test": False}``."""
        kwargs = _kwargs(
            domain=list(domain),
            fields=list(fields) if fields is not None else None,
            offset=offset or None,
            limit=limit,
            order=order,
            context=context,
        )
        return _list_of_dicts(await self._execute(model, "search_read", None, kwargs, idempotent=True), model)

    async def search(
        self,
        model: str,
        domain: Sequence[Any],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The ids of the records matching ``domain``."""
        kwargs = _kwargs(
            domain=list(domain), offset=offset or None, limit=limit, order=order, context=context
        )
        return _ids(await self._execute(model, "search", None, kwargs, idempotent=True), model, "search")

    async def search_count(
        self, model: str, domain: Sequence[Any], *, context: Mapping[str, Any] | None = None
    ) -> int:
        """How many records match ``domain``."""
        kwargs = _kwargs(domain=list(domain), context=context)
        result = await self._execute(model, "search_count", None, kwargs, idempotent=True)
        if isinstance(result, bool) or not isinstance(result, int):
            raise _bad_answer(model, "search_count", "a count")
        return result

    async def read(
        self,
        model: str,
        ids: Sequence[int],
        fields: Sequence[str] | None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Read records by id (archived ones too); missing ids are left out, not an error."""
        kwargs = _kwargs(fields=list(fields) if fields is not None else None, context=context)
        return _list_of_dicts(await self._execute(model, "read", list(ids), kwargs, idempotent=True), model)

    async def create(
        self, model: str, vals_list: Sequence[Mapping[str, Any]], *, context: Mapping[str, Any] | None = None
    ) -> list[int]:
        """Create records; their ids in order. Not retried after an ambiguous failure (timeout, drop)."""
        kwargs = _kwargs(vals_list=[dict(v) for v in vals_list], context=context)
        result = await self._execute(model, "create", None, kwargs, idempotent=False)
        if isinstance(result, int) and not isinstance(result, bool):
            result = [result]
        return _ids(result, model, "create")

    async def write(
        self,
        model: str,
        ids: Sequence[int],
        vals: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> bool:
        """Write the same ``vals`` on every record of ``ids``."""
        kwargs = _kwargs(vals=dict(vals), context=context)
        return bool(await self._execute(model, "write", list(ids), kwargs, idempotent=True))

    async def unlink(
        self, model: str, ids: Sequence[int], *, context: Mapping[str, Any] | None = None
    ) -> bool:
        """Delete records. A missing id is OdooMissingError (also when a retried delete already ran)."""
        return bool(
            await self._execute(model, "unlink", list(ids), _kwargs(context=context), idempotent=True)
        )

    async def load(
        self,
        model: str,
        fields: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        context: Mapping[str, Any] | None = None,
    ) -> LoadResult:
        """Odoo's import. Row errors come back in ``LoadResult.messages``; they are not raised.

        With an ``id`` column of external ids the call is an idempotent upsert and is retried like
        a read; without one it creates records and is retried only when it surely did not run.
        """
        field_list = list(fields)
        kwargs = _kwargs(fields=field_list, data=[list(row) for row in data], context=context)
        result = await self._execute(model, "load", None, kwargs, idempotent="id" in field_list)
        if not isinstance(result, dict):
            raise _bad_answer(model, "load", "an object")
        ids = result.get("ids")
        messages = result.get("messages") or []
        nextrow = result.get("nextrow")
        return LoadResult(
            ids=[i if isinstance(i, int) and not isinstance(i, bool) else None for i in ids]
            if isinstance(ids, list)
            else None,
            messages=[m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else [],
            nextrow=nextrow if isinstance(nextrow, int) else 0,
        )

    async def fields_get(
        self,
        model: str,
        *,
        allfields: Sequence[str] | None = None,
        attributes: Sequence[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The model's fields and their attributes (``type``, ``store``, ``relation``...)."""
        kwargs = _kwargs(
            allfields=list(allfields) if allfields is not None else None,
            attributes=list(attributes) if attributes is not None else None,
            context=context,
        )
        result = await self._execute(model, "fields_get", None, kwargs, idempotent=True)
        if not isinstance(result, dict) or not all(isinstance(v, dict) for v in result.values()):
            raise _bad_answer(model, "fields_get", "an object of objects")
        return result

    async def check_object_reference(self, module: str, xml_id: str) -> tuple[str, int] | None:
        """``(model, id)`` of the external id ``module.xml_id``, or None when there is no such id."""
        try:
            result = await self._execute(
                "ir.model.data",
                "check_object_reference",
                None,
                {"module": module, "xml_id": xml_id},
                idempotent=True,
            )
        except OdooError as e:
            # Odoo answers an unknown external id with ValueError("External ID not found ...").
            if short_name(e.name) == "ValueError":
                return None
            raise
        if (
            not isinstance(result, list)
            or len(result) != 2
            or not isinstance(result[0], str)
            or not isinstance(result[1], int)
        ):
            raise _bad_answer("ir.model.data", "check_object_reference", "[model, id]")
        return result[0], result[1]

    async def get_external_ids(self, model: str, ids: Sequence[int]) -> dict[int, str | Literal[False]]:
        """The external id (``module.name``) of each record, False when it has none."""
        result = await self._execute(model, "get_external_id", list(ids), {}, idempotent=True)
        if not isinstance(result, dict):
            raise _bad_answer(model, "get_external_id", "an object")
        try:
            return {int(k): (v if isinstance(v, str) and v else False) for k, v in result.items()}
        except ValueError:
            raise _bad_answer(model, "get_external_id", "an object keyed by id") from None


def _as_observer(observe: Observer | DurationObserver | None) -> Observer | None:
    """``observe`` called as ``(method, seconds, error)``, whichever of the two forms it takes."""
    if observe is None:
        return None
    try:
        inspect.signature(observe).bind("method", 0.0, None)
    except TypeError:  # takes (method, seconds) only
        duration_only = cast(DurationObserver, observe)
        return lambda method, seconds, _error: duration_only(method, seconds)
    except ValueError:  # no signature to inspect (some builtins): assume the current form
        pass
    return cast(Observer, observe)


def _kwargs(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments that were given (None means "use Odoo's default", so it is left out)."""
    return {k: (dict(v) if k == "context" else v) for k, v in kwargs.items() if v is not None}


def _bad_answer(model: str, method: str, expected: str) -> OdooProtocolError:
    return OdooProtocolError(f"expected {expected} in Odoo's answer", model=model, method=method)


def _list_of_dicts(result: Any, model: str) -> list[dict[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise _bad_answer(model, "read", "a list of records")
    return result


def _ids(result: Any, model: str, method: str) -> list[int]:
    if not isinstance(result, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in result
    ):
        raise _bad_answer(model, method, "a list of ids")
    return result
