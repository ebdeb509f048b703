"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order, recorded with checksums.

All pending migrations are applied in **one transaction** under a transaction-level advisory lock:
two ``syncd migrate`` runs at once serialise, a failing migration leaves nothing half-applied, and it
works through a transaction-mode pooler (no session state is needed).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from syncd import db
from syncd.errors import DatabaseError, SchemaError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        normalized = self.sql.replace("\r\n", "\n").strip()
        return hashlib.sha256(normalized.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str


@dataclass
class SchemaStatus:
    """How the database's ``syncd`` schema compares with this version's migrations."""

    applied: list[Applied] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    #: Applied migrations whose file changed since (version, name).
    altered: list[Applied] = field(default_factory=list)
    #: Applied migrations this version does not know: the database is newer than this syncd.
    unknown: list[Applied] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return not (self.pending or self.altered or self.unknown)

    @property
    def version(self) -> int:
        return max((a.version for a in self.applied), default=0)

    def problems(self) -> list[str]:
        """Readable lines, each naming the problem and the fix."""
        out = []
        if self.unknown:
            names = ", ".join(f"{a.version:04d}_{a.name}" for a in self.unknown)
            out.append(f"the database has migrations this syncd does not know ({names}): upgrade syncd")
        if self.altered:
            names = ", ".join(f"{a.version:04d}_{a.name}" for a in self.altered)
            out.append(
                f"applied migrations were changed since they ran ({names}): restore the original files;"
                " never edit an applied migration, add a new one"
            )
        if self.pending:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in self.pending)
            out.append(f"migrations not applied yet ({names}): run `syncd migrate`")
        return out


def migrations_dir() -> Path:
    """``syncd/migrations`` inside an installed wheel, else ``migrations/`` of the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise SchemaError(f"no migrations directory found next to {here}")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise SchemaError(f"{path}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise SchemaError(f"{path}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"migration versions must be 1..N without gaps, found {versions}")
    return [found[v] for v in versions]


async def _applied(conn: db.Connection) -> list[Applied]:
    if not await conn.fetchval(db.queries["migration_table_exists"]):
        return []
    rows = await conn.fetch(db.queries["migration_list_applied"])
    return [Applied(r["version"], r["name"], r["checksum"]) for r in rows]


def _compare(applied: list[Applied], known: list[Migration]) -> SchemaStatus:
    by_version = {m.version: m for m in known}
    status = SchemaStatus(applied=applied)
    done = set()
    for a in applied:
        m = by_version.get(a.version)
        if m is None:
            status.unknown.append(a)
        elif m.checksum != a.checksum:
            status.altered.append(a)
        done.add(a.version)
    status.pending = [m for m in known if m.version not in done]
    return status


async def check(conn: db.Connection, known: list[Migration] | None = None) -> SchemaStatus:
    """Compare the database with the known migrations, changing nothing."""
    with db.translate_errors("reading syncd.schema_migrations"):
        return _compare(await _applied(conn), known if known is not None else load_migrations())


async def apply(conn: db.Connection, known: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration; returns those applied. Refuses on altered or unknown ones."""
    known = known if known is not None else load_migrations()
    with db.translate_errors("migrating"):
        async with conn.transaction():
            # The lock comes first: even `create schema if not exists` races with a concurrent run.
            await conn.execute(db.queries["migration_lock"])
            await conn.execute(db.queries["migration_bootstrap"])
            status = _compare(await _applied(conn), known)
            if status.unknown or status.altered:
                raise SchemaError("; ".join(status.problems()))
            for migration in status.pending:
                label = f"migration {migration.version:04d}_{migration.name} failed"
                try:
                    with db.translate_errors(label):
                        await conn.execute(migration.sql)
                except DatabaseError as e:
                    if e.transient:
                        raise
                    raise SchemaError(f"{e} (nothing was applied)") from e
                await conn.execute(
                    db.queries["migration_record"], migration.version, migration.name, migration.checksum
                )
            return status.pending
