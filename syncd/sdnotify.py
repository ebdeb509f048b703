"""sd_notify(3) in a few lines, without libsystemd: tell systemd we are READY, alive (WATCHDOG), STOPPING.

systemd passes the address of a datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an
abstract socket) and, when the unit sets ``WatchdogSec=``, the deadline in ``$WATCHDOG_USEC``. Each
message is one datagram of newline-separated ``KEY=value`` lines. Without ``$NOTIFY_SOCKET`` (not run
by systemd, or not ``Type=notify``) every method is a no-op, so the daemon calls them unconditionally.

Sending never raises: systemd going away (or a full socket queue) must not kill the daemon. The
first failure is logged at warning, later ones at debug until a send succeeds again. ``STATUS=`` text
is shown by ``systemctl status`` to anyone: never put a secret (a DSN, a key) in it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("syncd.sdnotify")


class SystemdNotifier:
    """The service side of the systemd notify protocol; build it with :meth:`from_env`."""

    def __init__(self, address: str | None, watchdog_interval: float | None = None) -> None:
        self._address: str | bytes | None = None
        if address and hasattr(socket, "AF_UNIX"):
            if address.startswith("@"):  # abstract namespace: the kernel name starts with a NUL byte
                self._address = b"\0" + address[1:].encode()
            elif address.startswith("/"):
                self._address = address
            else:  # sd_notify(3) accepts nothing else (vsock: aside), neither do we
                log.warning("NOTIFY_SOCKET is neither an absolute path nor @abstract; not notifying systemd")
        self.enabled: bool = self._address is not None
        #: Seconds between WATCHDOG=1 pings: half the deadline, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval: float | None = watchdog_interval if self.enabled else None
        self._sock: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, pid: int | None = None) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (default: ``os.environ``).

        The watchdog counts only when ``WATCHDOG_PID`` is unset or names ``pid`` (default: ours):
        systemd sets it for the main process, and a child that inherited the variables must not ping.
        """
        env = os.environ if env is None else env
        pid = os.getpid() if pid is None else pid
        interval: float | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
            owner = env.get("WATCHDOG_PID")
            if usec > 0 and (owner is None or int(owner) == pid):
                interval = usec / 2 / 1_000_000
        except ValueError:  # unset or garbage: no watchdog rather than a crash at start-up
            interval = None
        return cls(env.get("NOTIFY_SOCKET"), interval)

    def ready(self, status: str | None = None) -> None:
        """READY=1: start-up is complete (systemd's ``Type=notify`` start job finishes here)."""
        self._send({"READY": "1", "STATUS": status})

    def status(self, text: str) -> None:
        """STATUS=…: one line shown by ``systemctl status``."""
        self._send({"STATUS": text})

    def watchdog(self) -> None:
        """WATCHDOG=1: still alive; systemd kills and restarts us if these stop for ``WatchdogSec``."""
        self._send({"WATCHDOG": "1"})

    def extend_timeout(self, seconds: float, status: str | None = None) -> None:
        """EXTEND_TIMEOUT_USEC=…: start-up goes on (waiting for a dependency); systemd allows this
        much more time from now before ``TimeoutStartSec`` kills us (systemd ≥ 236)."""
        self._send({"EXTEND_TIMEOUT_USEC": str(int(seconds * 1_000_000)), "STATUS": status})

    def stopping(self, status: str | None = None) -> None:
        """STOPPING=1: shutdown has begun (so a slow drain is not taken for a hang)."""
        self._send({"STOPPING": "1", "STATUS": status})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def watchdog_loop(self) -> None:
        """Ping every ``watchdog_interval`` seconds until cancelled; return at once without a watchdog.

        The pings come from the event loop itself, so a loop blocked by a synchronous call stops
        them, and systemd restarts a daemon that would otherwise hang while looking alive."""
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def _send(self, fields: Mapping[str, str | None]) -> None:
        if self._address is None:
            return
        # A newline would start a new KEY=value line: a status text could otherwise forge one.
        lines = [
            f"{key}={' '.join(value.splitlines())}" for key, value in fields.items() if value is not None
        ]
        try:
            if self._sock is None:
                # CLOEXEC: a child (the embedded PostgreSQL) must not inherit it. Non-blocking: a full
                # queue on systemd's side must not stall the event loop.
                cloexec = getattr(socket, "SOCK_CLOEXEC", 0)
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | cloexec)
                self._sock.setblocking(False)
            # sendto, not connect: the address is resolved anew each time, so a socket systemd
            # recreated (daemon-reexec) is found again.
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as e:
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "cannot notify systemd (%s); continuing without", e.strerror or e)
            self._failing = True
        else:
            self._failing = False
