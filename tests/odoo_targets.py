""" "An Odoo" for tests: the fake over real HTTP, or the real Odoo 19 of ``../shared/odoo19``.

A test that asks for the ``odoo_target`` fixture runs once against each (the real one is marked
``real_odoo`` and skipped, with the reason, when ``ODOO19_URL`` and friends are not set); a test that
only makes sense against the real server asks for ``real_odoo`` instead. Both give an
:class:`OdooTarget`: where it is, the credentials of both transports, the ``SYNCD_ODOO__*`` variables
of a ``syncd`` subprocess, an admin client for staging, and names unique to this test run (the real
Odoo's database is shared by the whole run and outlives it, so nothing may collide with an earlier run).
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

from syncd.config import OdooSettings
from syncd.odoo import OdooClient
from syncd.testing import FakeOdoo

Kind = Literal["fake", "real"]
Protocol = Literal["json2", "jsonrpc"]

#: The variables ``up.sh env`` prints that a real-Odoo test needs.
REAL_VARS = ("ODOO19_URL", "ODOO19_DB", "ODOO19_LOGIN", "ODOO19_PASSWORD", "ODOO19_API_KEY")
SKIP_REASON = (
    "real Odoo 19 not configured: run `bash ../shared/odoo19/up.sh start` and "
    '`eval "$(bash ../shared/odoo19/up.sh env)"` to set ODOO19_URL and friends'
)

#: One token per test run: record names, keys and field names made by tests carry it.
RUN = secrets.token_hex(3)
_serial = itertools.count(1)


def real_configured() -> bool:
    return all(os.environ.get(v) for v in REAL_VARS)


def unique(label: str) -> str:
    """A name no other test of this run, nor any earlier run, has used: ``<label>-<run>-<n>``."""
    return f"{label}-{RUN}-{next(_serial)}"


@dataclass
class OdooTarget:
    kind: Kind
    url: str
    database: str
    login: str
    password: str
    api_key: str
    #: Superuser DSN of the real Odoo's own PostgreSQL (to hold a long transaction); None for the fake.
    pg_dsn: str | None = None
    #: The in-memory Odoo behind the fake server; None for the real one.
    fake: FakeOdoo | None = None

    @property
    def real(self) -> bool:
        return self.kind == "real"

    def settings(self, protocol: Protocol = "json2", **extra: Any) -> OdooSettings:
        """Settings of a client over ``protocol``: JSON-2 with the API key, JSON-RPC with the password."""
        secret = (
            {"api_key": SecretStr(self.api_key)}
            if protocol == "json2"
            else {"password": SecretStr(self.password)}
        )
        return OdooSettings(url=self.url, database=self.database, username=self.login, protocol=protocol,
                            **secret, **extra)  # fmt: skip

    def env(self, protocol: Protocol = "json2") -> dict[str, str]:
        """The ``SYNCD_ODOO__*`` variables of a ``syncd`` subprocess talking ``protocol`` to this Odoo."""
        env = {
            "SYNCD_ODOO__URL": self.url,
            "SYNCD_ODOO__DATABASE": self.database,
            "SYNCD_ODOO__USERNAME": self.login,
            "SYNCD_ODOO__PROTOCOL": protocol,
        }
        if protocol == "json2":
            env["SYNCD_ODOO__API_KEY"] = self.api_key
        else:
            env["SYNCD_ODOO__PASSWORD"] = self.password
        return env

    @asynccontextmanager
    async def client(self, protocol: Protocol = "json2") -> AsyncIterator[OdooClient]:
        """An admin client for staging and checking (no retries: a failure shows at once)."""
        async with OdooClient(self.settings(protocol, retries=0, timeout_seconds=120)) as client:
            yield client


def real_target() -> OdooTarget:
    """The real Odoo described by the ``ODOO19_*`` variables (call only when :func:`real_configured`)."""
    env = os.environ
    return OdooTarget(
        "real",
        url=env["ODOO19_URL"].rstrip("/"),
        database=env["ODOO19_DB"],
        login=env["ODOO19_LOGIN"],
        password=env["ODOO19_PASSWORD"],
        api_key=env["ODOO19_API_KEY"],
        pg_dsn=env.get("ODOO19_PG_DSN") or None,
    )


def fake_target(fake: FakeOdoo, url: str) -> OdooTarget:
    """The fake behind ``url`` (its admin: login, password and API key all ``admin``)."""
    return OdooTarget("fake", url=url, database=fake.database, login="admin", password="admin",
                      api_key="admin", fake=fake)  # fmt: skip
