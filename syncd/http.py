"""``/metrics``, ``/healthz`` and ``/readyz`` (SPEC §6) on ``http.listen``.

- ``/metrics``: the Prometheus text exposition of every ``syncd_*`` metric (and the process ones).
- ``/healthz``: liveness — 200 whenever the event loop answers; it never touches a dependency, so
  an Odoo outage does not get the pod killed.
- ``/readyz``: 200 when PostgreSQL and Odoo are reachable and the schema is current, else 503; the
  JSON body names each check and how long it has been in its state.
"""

from __future__ import annotations

import asyncio
import errno
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from syncd import __version__
from syncd.config import parse_listen
from syncd.errors import SyncdError
from syncd.health import Health

log = logging.getLogger("syncd.http")


class HttpServer:
    """The daemon's HTTP endpoint; :meth:`start` binds, :meth:`run` serves as a component."""

    def __init__(self, listen: str, health: Health, registry: CollectorRegistry = REGISTRY) -> None:
        self.host, self.port = parse_listen(listen)
        self.health = health
        self.registry = registry
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/", self._index)
        return app

    async def start(self) -> None:
        """Bind ``http.listen``; port 0 picks a free port (``self.port`` tells which)."""
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

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
