"""The systemd notify protocol against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.sdnotify import SystemdNotifier

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX sockets"),
]

TIMEOUT = 5.0


@pytest.fixture
def socket_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A short directory: AF_UNIX paths are limited to 107 bytes, tmp_path can be longer.
    return tmp_path_factory.mktemp("sd") / "notify"


@pytest.fixture
def systemd(socket_path: Path) -> Iterator[socket.socket]:
    """The receiving end, where systemd would be."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(socket_path))
    sock.settimeout(TIMEOUT)
    yield sock
    sock.close()


@pytest.fixture
def notifier(socket_path: Path, systemd: socket.socket) -> Iterator[SystemdNotifier]:
    n = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(socket_path)})
    yield n
    n.close()


def test_each_message_is_one_datagram_of_key_value_lines(
    notifier: SystemdNotifier, systemd: socket.socket
) -> None:
    assert notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("connected to PostgreSQL and Odoo")
    assert systemd.recv(4096) == b"READY=1\nSTATUS=connected to PostgreSQL and Odoo"
    notifier.ready()
    assert systemd.recv(4096) == b"READY=1"
    notifier.status("3 models, outbox idle")
    assert systemd.recv(4096) == b"STATUS=3 models, outbox idle"
    notifier.watchdog()
    assert systemd.recv(4096) == b"WATCHDOG=1"
    notifier.stopping("draining")
    assert systemd.recv(4096) == b"STOPPING=1\nSTATUS=draining"
    notifier.stopping()
    assert systemd.recv(4096) == b"STOPPING=1"
    notifier.extend_timeout(61.5, "waiting for Odoo")
    assert systemd.recv(4096) == b"EXTEND_TIMEOUT_USEC=61500000\nSTATUS=waiting for Odoo"


def test_a_status_cannot_forge_another_line(notifier: SystemdNotifier, systemd: socket.socket) -> None:
    notifier.status("odoo: error\nREADY=1")
    assert systemd.recv(4096) == b"STATUS=odoo: error READY=1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_an_abstract_socket_address_starts_with_a_nul_byte() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(b"\0" + name.encode())
        systemd.settimeout(TIMEOUT)
        n = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready("up")
        n.close()
        assert systemd.recv(4096) == b"READY=1\nSTATUS=up"


def test_the_socket_is_close_on_exec_and_non_blocking(
    notifier: SystemdNotifier, systemd: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[socket.socket] = []
    real_socket = socket.socket

    def spy(*args: Any, **kwargs: Any) -> socket.socket:
        created.append(real_socket(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(socket, "socket", spy)
    notifier.watchdog()
    assert systemd.recv(4096) == b"WATCHDOG=1"
    assert len(created) == 1
    assert created[0].type == socket.SOCK_DGRAM
    assert not created[0].get_inheritable()  # a child (the embedded PostgreSQL) does not get it
    assert not created[0].getblocking()
    notifier.watchdog()  # the socket is reused
    assert systemd.recv(4096) == b"WATCHDOG=1"
    assert len(created) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "main"}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-1000000"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid(
    env: dict[str, str], expected: float | None
) -> None:
    n = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **env}, pid=4242)
    assert n.enabled
    assert n.watchdog_interval == expected


def test_from_env_defaults_to_os_environ_and_our_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier.from_env().watchdog_interval == 1.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert SystemdNotifier.from_env().watchdog_interval is None
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not SystemdNotifier.from_env().enabled


async def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: Any, **kwargs: Any) -> socket.socket:
        raise AssertionError("a disabled notifier must not open a socket")

    monkeypatch.setattr(socket, "socket", no_socket)
    n = SystemdNotifier.from_env({"WATCHDOG_USEC": "30000000"})
    assert not n.enabled
    assert n.watchdog_interval is None  # nowhere to send the pings
    n.ready("up")
    n.status("x")
    n.watchdog()
    n.stopping("bye")
    n.close()
    await asyncio.wait_for(n.watchdog_loop(), TIMEOUT)  # returns at once


def test_a_relative_notify_socket_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="syncd.sdnotify"):
        n = SystemdNotifier.from_env({"NOTIFY_SOCKET": "run/notify", "WATCHDOG_USEC": "1000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "NOTIFY_SOCKET" in caplog.records[0].getMessage()


def test_a_vanished_socket_warns_once_never_raises_and_recovers(
    socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(socket_path)})  # nothing bound there
    with caplog.at_level(logging.DEBUG, logger="syncd.sdnotify"):
        n.ready("up")
        n.watchdog()
        n.stopping()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()
    assert len(caplog.records) == 3  # the repeats at debug

    # systemd back (e.g. after daemon-reexec): the path is resolved anew on every send.
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(socket_path))
        systemd.settimeout(TIMEOUT)
        n.watchdog()
        assert systemd.recv(4096) == b"WATCHDOG=1"
    n.close()


def test_a_full_socket_queue_does_not_block_the_caller(
    notifier: SystemdNotifier, systemd: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    # Nobody reads: the receiver's queue (net.unix.max_dgram_qlen, 10 by default) fills up. A
    # blocking send would hang here, and in the daemon it would freeze the event loop.
    def flood() -> None:
        for _ in range(2000):
            notifier.watchdog()

    with caplog.at_level(logging.WARNING, logger="syncd.sdnotify"):
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        sender.join(TIMEOUT)
    assert not sender.is_alive(), "sending blocked on a full queue"
    assert len(caplog.records) == 1
    assert systemd.recv(4096) == b"WATCHDOG=1"  # what fitted was delivered


def test_close_is_idempotent_and_a_later_send_reopens(
    notifier: SystemdNotifier, systemd: socket.socket
) -> None:
    notifier.ready()
    assert systemd.recv(4096) == b"READY=1"
    notifier.close()
    notifier.close()
    notifier.stopping()
    assert systemd.recv(4096) == b"STOPPING=1"


async def test_watchdog_loop_pings_every_interval_until_cancelled(socket_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(socket_path))
        systemd.setblocking(False)
        n = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(socket_path), "WATCHDOG_USEC": "20000"})
        assert n.watchdog_interval == 0.01
        loop = asyncio.get_running_loop()
        pinger = asyncio.create_task(n.watchdog_loop())
        started = loop.time()
        pings = [await asyncio.wait_for(loop.sock_recv(systemd, 4096), TIMEOUT) for _ in range(4)]
        elapsed = loop.time() - started
        assert pings == [b"WATCHDOG=1"] * 4
        assert elapsed >= 3 * 0.01 * 0.9  # paced by the interval, not a busy loop
        assert not pinger.done()
        pinger.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pinger
        assert pinger.cancelled()
        n.close()


async def test_watchdog_loop_returns_at_once_without_a_watchdog(notifier: SystemdNotifier) -> None:
    assert notifier.enabled
    assert notifier.watchdog_interval is None
    await asyncio.wait_for(notifier.watchdog_loop(), TIMEOUT)
