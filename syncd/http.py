"""``/metrics``, ``/healthz`` and ``/readyz`` (SPEC §6) on ``http.listen``, and the webhook.

- ``/metrics``: the Prometheus text exposition of every ``syncd_*`` metric (and the process ones).
- ``/healthz``: liveness — 200 whenever the event loop answers; it never touches a dependency, so
  an Odoo outage does not get the pod killed.
- ``/readyz``: 200 when PostgreSQL and Odoo are reachable and the schema is current, else 503; the
  JSON body names each check and how long it has been in its state.
- ``POST /odoo/webhook/<secret>`` (only with ``http.webhook_secret``): a wake-up hint from an Odoo
  automation rule (docs/webhooks.md), answered 202 at once; a wrong secret is a 404 like any
  unknown path. The path holds the secret: no log line, error or answer ever shows it.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import traceback
from typing import Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import SecretStr

from syncd import __version__, metrics
from syncd.config import WEBHOOK_PATH_PREFIX, parse_listen
from syncd.errors import SyncdError
from syncd.health import Health

log = logging.getLogger("syncd.http")

#: Largest webhook body read (Odoo's are a few hundred bytes: the record's chosen fields).
WEBHOOK_MAX_BYTES = 64 * 1024
#: Odoo's ids are PostgreSQL integers.
MAX_RECORD_ID = 2**31 - 1
#: Loggers that could see a request line (aiohttp's own, e.g. for a malformed request): their
#: records have the webhook secret masked.
_REDACTED_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "syncd.http")


class HintSink(Protocol):
    """Where the webhook hands its hints (:class:`syncd.cdc.hints.HintRouter`)."""

    @property
    def models(self) -> frozenset[str]: ...

    def hint(self, model: str, record_id: int) -> str: ...


class _Redact(logging.Filter):
    """Masks a secret in every record of the logger it is attached to, traceback included."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            text += "\n" + record.exc_text
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, "***"), None
            record.exc_info = record.exc_text = None
        return True


class HttpServer:
    """The daemon's HTTP endpoint; :meth:`start` binds, :meth:`run` serves as a component.

    With ``webhook_secret`` and ``hints`` the webhook route exists; without, it does not (404)."""

    def __init__(
        self,
        listen: str,
        health: Health,
        registry: CollectorRegistry = REGISTRY,
        *,
        webhook_secret: SecretStr | None = None,
        hints: HintSink | None = None,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self.health = health
        self.registry = registry
        self.hints = hints if webhook_secret is not None else None
        self._secret = webhook_secret.get_secret_value().encode() if webhook_secret is not None else b""
        self._redact = _Redact(webhook_secret.get_secret_value()) if webhook_secret is not None else None
        self._runner: web.AppRunner | None = None
        if self.hints is not None:
            for reason in metrics.WEBHOOK_REJECT_REASONS:  # at 0 from the start, for rate()
                metrics.WEBHOOK_REJECTED.labels(reason=reason)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        # No endpoint takes a larger body than the webhook's (the others are GETs); aiohttp refuses
        # a body that reaches client_max_size.
        app = web.Application(client_max_size=WEBHOOK_MAX_BYTES + 1)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._index)
        if self.hints is not None:
            app.router.add_post(WEBHOOK_PATH_PREFIX + "{secret}", self._webhook)
        return app

    async def start(self) -> None:
        """Bind ``http.listen``; port 0 picks a free port (``self.port`` tells which)."""
        if self._redact is not None:
            for name in _REDACTED_LOGGERS:
                logging.getLogger(name).addFilter(self._redact)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            why = "the address is already in use" if e.errno == errno.EADDRINUSE else e.strerror or str(e)
            raise SyncdError(
                f"http.listen {self.host}:{self.port}: cannot listen: {why} "
                "(is another syncd running? choose another port in [http] listen)"
            ) from None
        self._runner = runner
        if self.port == 0 and runner.addresses:
            self.port = int(runner.addresses[0][1])
        log.info("serving /metrics, /healthz and /readyz on %s", self.url)
        if self.hints is not None:
            log.info("webhook hints accepted at POST %s<http.webhook_secret>", WEBHOOK_PATH_PREFIX)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            if self._redact is not None:
                for name in _REDACTED_LOGGERS:
                    logging.getLogger(name).removeFilter(self._redact)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` (binding first if :meth:`start` was not called)."""
        if self._runner is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ---------------------------------------------------------------------------------- handlers
    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def _readyz(self, _request: web.Request) -> web.Response:
        report = self.health.report()
        return web.json_response(report, status=200 if report["ready"] else 503)

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(text=f"syncd {__version__}: /metrics /healthz /readyz\n")

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        """One hint: ``{"_model": "res.partner", "_id": 43, ...}``. Odoo waits for the answer in its
        request thread (1 s timeout, no retry), so nothing here waits on PostgreSQL or Odoo."""
        assert self.hints is not None
        if not hmac.compare_digest(request.match_info["secret"].encode(), self._secret):
            # Answered before the body is read, exactly like a path that does not exist.
            metrics.WEBHOOK_REJECTED.labels(reason="secret").inc()
            raise web.HTTPNotFound()
        if request.content_length is not None and request.content_length > WEBHOOK_MAX_BYTES:
            return _rejected("size", 413, f"the body is larger than {WEBHOOK_MAX_BYTES} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked, without a Content-Length
            return _rejected("size", 413, f"the body is larger than {WEBHOOK_MAX_BYTES} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _rejected("json", 400, "the body is not JSON")
        model = data.get("_model") if isinstance(data, dict) else None
        record_id = data.get("_id") if isinstance(data, dict) else None
        if not isinstance(model, str) or type(record_id) is not int or not 0 < record_id <= MAX_RECORD_ID:
            return _rejected(
                "json", 400, "expected a JSON object with a string _model and a positive integer _id"
            )
        if model not in self.hints.models:
            return _rejected("model", 422, "_model is not a model this syncd mirrors")
        try:
            self.hints.hint(model, record_id)
        except Exception:
            # Not aiohttp's handler: its log line would name the request (and so the path).
            log.exception("webhook: a hint for %s failed", model, extra={"model": model})
            return web.json_response({"status": "error"}, status=500)
        return web.json_response({"status": "accepted"}, status=202)


def _rejected(reason: str, status: int, error: str) -> web.Response:
    metrics.WEBHOOK_REJECTED.labels(reason=reason).inc()
    return web.json_response({"status": "rejected", "error": error}, status=status)
