"""Configuration: one TOML file, ``SYNCD_<SECTION>__<KEY>`` overrides, ``*_file`` secrets.

Resolving settings never starts anything. ``load_config`` returns a frozen :class:`Settings` or raises
:class:`~syncd.errors.ConfigError` with one line per problem naming the key, the bad value and what
is expected. Secrets are :class:`pydantic.SecretStr` so that a repr, a log line or an error message
never shows them.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.errors import ConfigError

ENV_PREFIX = "SYNCD_"
#: Where ``--config`` is looked for when not given, after ``$SYNCD_CONFIG``.
DEFAULT_CONFIG_PATHS = (Path("syncd.toml"), Path("/etc/syncd/config.toml"))

_MODEL_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$")
_FIELD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SQL_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: inf passes gt=0 (and TOML writes it as plain `inf`), but no duration of syncd can be infinite:
#: PostgreSQL's make_interval refuses it, asyncio's timers never fire.
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OdooSettings(_Section):
    """``[odoo]``: where Odoo is and who syncd is there."""

    url: str = "http://127.0.0.1:8069"
    database: str = "odoo"
    username: str = "admin"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    protocol: Literal["auto", "json2", "jsonrpc"] = "auto"
    timeout_seconds: PositiveSeconds = 30.0
    max_concurrency: int = Field(default=4, ge=1, le=64)
    retries: int = Field(default=3, ge=0, le=10)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host, e.g. https://erp.example.com")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _credentials(self) -> OdooSettings:
        if self.api_key_file is not None and self.api_key is None:
            object.__setattr__(self, "api_key", _read_secret(self.api_key_file, "odoo.api_key_file"))
        if self.password_file is not None and self.password is None:
            object.__setattr__(self, "password", _read_secret(self.password_file, "odoo.password_file"))
        if self.protocol == "json2" and self.api_key is None:
            raise ValueError(
                "odoo.protocol: 'json2' needs odoo.api_key (JSON-2 authenticates with API keys only)"
            )
        return self

    @property
    def secret(self) -> str | None:
        """The credential to send: the API key if there is one, else the password."""
        chosen = self.api_key or self.password
        return chosen.get_secret_value() if chosen is not None else None

    @property
    def credential_key(self) -> str:
        """The key that holds the credential sent, and its variable: ``odoo.api_key
        (SYNCD_ODOO__API_KEY)``; the ``_file`` key when the secret was read from a file."""
        name = "api_key" if self.api_key is not None else "password"
        if getattr(self, f"{name}_file") is not None and name not in self.model_fields_set:
            name += "_file"
        return f"odoo.{name} ({ENV_PREFIX}ODOO__{name.upper()})"

    def credentials_refused(self, reason: str) -> str:
        """What to say when Odoo refuses the credentials: where, who, and the keys to fix."""
        return (
            f"Odoo at {redact_dsn(self.url)} refused the credentials of user {self.username!r} in "
            f"database {self.database!r} ({reason}): check {self.credential_key} and odoo.username"
        )


class DatabaseSettings(_Section):
    """``[database]``: the PostgreSQL that holds the ``syncd`` schema and the mirror tables."""

    dsn: SecretStr | None = None
    dsn_file: Path | None = None
    mirror_schema: str = "odoo"
    #: Where the embedded PostgreSQL keeps its data when ``dsn`` is not set.
    data_dir: Path = Path("~/.local/share/syncd/postgres")
    pool_min_size: int = Field(default=1, ge=0, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=100)
    #: 0 disables asyncpg's prepared-statement cache: needed behind a transaction-mode pooler
    #: (PgBouncer, Supabase port 6543).
    statement_cache_size: int = Field(default=100, ge=0)
    #: What ``dsn`` reaches. "none" (PostgreSQL itself) and "session" (a session-mode pooler such as
    #: Supabase's port 5432) keep a server connection per client connection, so LISTEN and
    #: session-level advisory locks work. "transaction" (PgBouncer ``pool_mode = transaction``,
    #: Supabase's port 6543) hands out a server connection per transaction: syncd then keeps no
    #: session state — no prepared-statement cache, no LISTEN, CDC leadership by lease rows.
    pooler: Literal["none", "session", "transaction"] = "none"
    connect_timeout_seconds: PositiveSeconds = 10.0
    command_timeout_seconds: PositiveSeconds = 60.0

    @field_validator("mirror_schema")
    @classmethod
    def _schema(cls, v: str) -> str:
        if not _SQL_IDENT.match(v) or v in ("syncd", "public", "pg_catalog", "information_schema"):
            raise ValueError(
                "expected a lowercase SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters) "
                "other than syncd, public, pg_catalog or information_schema"
            )
        return v

    @model_validator(mode="after")
    def _resolve(self) -> DatabaseSettings:
        if self.dsn_file is not None and self.dsn is None:
            object.__setattr__(self, "dsn", _read_secret(self.dsn_file, "database.dsn_file"))
        if self.dsn is not None:
            scheme = urlsplit(self.dsn.get_secret_value()).scheme
            if scheme not in ("postgres", "postgresql"):
                raise ValueError("database.dsn: expected a postgresql:// URL (the value is not shown)")
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("database.pool_min_size: must not exceed database.pool_max_size")
        if self.pooler == "transaction":
            # A cached statement is prepared on one server connection and executed on another.
            object.__setattr__(self, "statement_cache_size", 0)
        return self

    @property
    def session_state(self) -> bool:
        """False behind a transaction-mode pooler: nothing may outlive a transaction (no LISTEN,
        no session-level advisory lock, no named prepared statement)."""
        return self.pooler != "transaction"

    @property
    def embedded(self) -> bool:
        """True when no DSN is configured and syncd runs its own PostgreSQL under ``data_dir``."""
        return self.dsn is None


class ModelSettings(_Section):
    """One ``[[cdc.models]]`` entry: an Odoo model to mirror."""

    model: str
    fields: list[str] | Literal["*"] = "*"
    #: How deletions are applied by the outbox for this model: really delete, or archive (active=false).
    delete_mode: Literal["unlink", "archive"] = "unlink"
    #: Apps may UPDATE and DELETE rows of the mirror table: each change becomes an outbox event, and
    #: every row shows its sync state (docs/bidirectional.md).
    writable: bool = False
    #: What a write does with a field that Odoo changed since the app read it (its base): hold it
    #: for a decision, keep Odoo's value, or write the app's anyway. The other fields are written.
    conflict: Literal["hold", "odoo_wins", "app_wins"] = "hold"

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not _MODEL_NAME.match(v):
            raise ValueError("expected an Odoo model name such as 'res.partner'")
        return v

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "*":
            raise ValueError('expected a list of field names or "*" for every stored field')
        if isinstance(v, list):
            bad = [f for f in v if not isinstance(f, str) or not _FIELD_NAME.match(f)]
            if bad:
                raise ValueError(f"not valid Odoo field names: {bad!r}")
            if len(set(v)) != len(v):
                raise ValueError("a field is listed twice")
        return v

    @property
    def table(self) -> str:
        """The mirror table's name: the model name with '.' replaced by '_'."""
        return self.model.replace(".", "_")


class CdcSettings(_Section):
    """``[cdc]``: the Odoo → PostgreSQL mirror."""

    enabled: bool = True
    interval_seconds: PositiveSeconds = 5.0
    page_size: int = Field(default=500, ge=1, le=10_000)
    #: Page size of a model's first sync (larger pages, fewer round trips).
    backfill_page_size: int = Field(default=5000, ge=1, le=50_000)
    #: Every poll re-reads this far before the cursor: Odoo stamps write_date at the start of a
    #: transaction, so a long transaction commits rows "in the past". Keep it above Odoo's
    #: limit_time_real (120 s by default), the longest an Odoo transaction can run.
    lookback_seconds: float = Field(default=120.0, ge=0, allow_inf_nan=False)
    #: After a poll, the lookback window costs Odoo ids and write dates only; Odoo's write_date has
    #: whole seconds, so a record read less than this long after the end of its write_date second
    #: is read once more (a transaction shorter than this that commits into that same second later
    #: is seen). Setting it to lookback_seconds covers every transaction the lookback does.
    settle_seconds: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    #: How often a poller asks Odoo for the model's fields again (a field added to a "*" model shows
    #: up as a column then); also after any failed poll.
    schema_refresh_seconds: PositiveSeconds = 3600.0
    reconcile_interval_seconds: PositiveSeconds = 3600.0
    models: list[ModelSettings] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for m in v:
            if m.model in seen:
                raise ValueError(f"model {m.model!r} is configured twice")
            seen.add(m.model)
        return v


class OutboxSettings(_Section):
    """``[outbox]``: the PostgreSQL → Odoo direction."""

    enabled: bool = True
    #: LISTEN for immediate wake-ups; turn off behind a transaction-mode pooler (polling still works).
    listen: bool = True
    poll_interval_seconds: PositiveSeconds = 1.0
    #: Events per claim, and per load() call. 200 is what a real Odoo 19 takes fastest (bench.real_odoo:
    #: 200 in 2 calls at a time beat 100, 500 and 50; 4 at a time never beat 2).
    batch_size: int = Field(default=200, ge=1, le=10_000)
    concurrency: int = Field(default=2, ge=1, le=64)
    lease_seconds: PositiveSeconds = 120.0
    max_attempts: int = Field(default=10, ge=1)
    #: Most events of one record folded into one call to Odoo (consecutive upserts of one key,
    #: writes of one odoo_id); 1 turns folding off.
    fold_max_events: int = Field(default=1000, ge=1, le=10_000)
    backoff_base_seconds: PositiveSeconds = 1.0
    backoff_max_seconds: PositiveSeconds = 600.0
    #: After a call that got no answer (timeout, connection dropped after sending), its events are
    #: retried no sooner than this: Odoo may still carry the request out until its limit_time_real
    #: (120 s by default) kills it, and a later event of the same record must not land before it.
    timeout_fence_seconds: float = Field(default=120.0, ge=0, allow_inf_nan=False)
    retention_days: float = Field(default=7.0, ge=0, allow_inf_nan=False)
    #: Module part of the external ids syncd gives to records it creates (``syncd.<model>__k_<key>`` or ``__h_<hash>``).
    xmlid_module: str = "syncd"

    @field_validator("xmlid_module")
    @classmethod
    def _module(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", v):
            raise ValueError("expected letters, digits and '_' only (it becomes the module of external ids)")
        return v


class HttpSettings(_Section):
    """``[http]``: /metrics, /healthz and /readyz, and the webhook endpoint when a secret is set."""

    enabled: bool = True
    listen: str = "127.0.0.1:9187"
    #: The secret path part of ``POST /odoo/webhook/<secret>`` (docs/webhooks.md). Webhooks are on
    #: iff it is set.
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    #: The base URL Odoo reaches syncd at (``syncd odoo webhooks install`` builds the rule's URL
    #: from it); it may differ from ``listen`` behind a proxy or a Kubernetes Service.
    public_url: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, v: SecretStr | None) -> SecretStr | None:
        problem = _webhook_secret_problem(v.get_secret_value()) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(
                "expected the http:// or https:// base URL Odoo reaches syncd at, "
                "e.g. https://syncd.internal:9187 (no query or fragment)"
            )
        return v.rstrip("/")

    @model_validator(mode="after")
    def _resolve(self) -> HttpSettings:
        if self.webhook_secret_file is not None and self.webhook_secret is None:
            secret = _read_secret(self.webhook_secret_file, "http.webhook_secret_file")
            problem = _webhook_secret_problem(secret.get_secret_value())
            if problem:
                raise ValueError(f"http.webhook_secret_file = {str(self.webhook_secret_file)!r}: {problem}")
            object.__setattr__(self, "webhook_secret", secret)
        if self.webhook_secret is not None and not self.enabled:
            raise ValueError(
                "http.webhook_secret: the webhook endpoint is served by the HTTP server; "
                "set http.enabled = true, or remove the secret to turn webhooks off"
            )
        return self

    @property
    def webhooks_enabled(self) -> bool:
        """True when a webhook secret is configured: ``POST /odoo/webhook/<secret>`` exists."""
        return self.webhook_secret is not None

    def webhook_url(self) -> str:
        """The URL Odoo's rules post to: ``{public_url}/odoo/webhook/{secret}``. It holds the secret:
        never log or print it. Raises ConfigError naming the missing key."""
        if self.webhook_secret is None:
            raise ConfigError(
                f"http.webhook_secret is not set (webhooks are off); generate one with {KEYGEN_COMMAND}"
            )
        if self.public_url is None:
            raise ConfigError(
                "http.public_url is not set: the base URL Odoo reaches syncd at, "
                "e.g. https://syncd.internal:9187"
            )
        return self.public_url + webhook_path(self.webhook_secret.get_secret_value())


class DaemonSettings(_Section):
    """``[daemon]``: process lifecycle."""

    shutdown_grace_seconds: PositiveSeconds = 30.0
    #: How often the daemon checks that PostgreSQL and Odoo answer (what /readyz reports).
    probe_interval_seconds: PositiveSeconds = 5.0
    #: Name this replica uses for leases and locks; default: hostname and pid.
    instance_id: str | None = None


class LogSettings(_Section):
    """``[log]``: defaults for ``--log-format`` and ``--log-level``."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v


class Settings(_Section):
    """The whole configuration. ``source`` says which file it came from (None: defaults and env only)."""

    odoo: OdooSettings = Field(default_factory=OdooSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cdc: CdcSettings = Field(default_factory=CdcSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _pooler(self) -> Settings:
        if not self.database.session_state and self.outbox.listen:
            # LISTEN through a transaction-mode pooler "succeeds" on a server connection that is
            # handed to someone else after the statement: notifications never arrive. Poll instead.
            object.__setattr__(self, "outbox", self.outbox.model_copy(update={"listen": False}))
        return self

    @model_validator(mode="after")
    def _webhook_interval(self) -> Settings:
        # model_fields_set holds the keys given in the file or the environment: a value set there,
        # even 5.0, is kept.
        if self.http.webhooks_enabled and "interval_seconds" not in self.cdc.model_fields_set:
            cdc = self.cdc.model_copy(update={"interval_seconds": WEBHOOK_INTERVAL_SECONDS})
            object.__setattr__(self, "cdc", cdc)
        return self


# ----------------------------------------------------------------------------------------- webhooks

#: Where the webhook endpoint lives; the secret follows as the last path segment.
WEBHOOK_PATH_PREFIX = "/odoo/webhook/"
#: Shortest webhook secret accepted: it is the only thing that authenticates a hint.
MIN_WEBHOOK_SECRET_LENGTH = 16
KEYGEN_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
#: cdc.interval_seconds when webhooks are on and it is not set: hints bring changes at once, the
#: interval poll is only the safety net for a hint that got lost.
WEBHOOK_INTERVAL_SECONDS = 60.0
# RFC 3986 unreserved characters: the secret goes into a URL path as it is.
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9._~-]+$")


def webhook_path(secret: str) -> str:
    """The path of the webhook endpoint for ``secret`` (secret: never log it)."""
    return WEBHOOK_PATH_PREFIX + secret


def _webhook_secret_problem(secret: str) -> str | None:
    """What is wrong with a webhook secret, never showing it (not even a part of it)."""
    if len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
        return (
            f"too short ({len(secret)} characters, at least {MIN_WEBHOOK_SECRET_LENGTH}); "
            f"generate one with {KEYGEN_COMMAND}"
        )
    if not _WEBHOOK_SECRET.match(secret):
        return (
            "only letters, digits and - _ . ~ may be used (it is part of a URL path); "
            f"generate one with {KEYGEN_COMMAND}"
        )
    return None


# ------------------------------------------------------------------------------------------ loading


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) and check both parts."""
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9187 or [::]:9187")
    return host.strip("[]"), int(port_s)


def find_config_file(explicit: str | Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The discovery order of SPEC §1: ``--config``, ``$SYNCD_CONFIG``, ./syncd.toml, /etc/syncd/config.toml.

    An explicitly named file (flag or env) must exist; the implicit ones are optional.
    """
    env = os.environ if env is None else env
    named = explicit or env.get("SYNCD_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--config" if explicit else "$SYNCD_CONFIG"
            raise ConfigError(f"config file {str(path)!r} (from {source}) does not exist or is not a file")
        return path
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.is_file():
            return candidate
    return None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises ConfigError with a readable message."""
    env = os.environ if env is None else env
    file = find_config_file(path, env)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{file}: not valid TOML: {e}") from None
        except UnicodeDecodeError as e:
            line = e.object[: e.start].count(b"\n") + 1
            raise ConfigError(f"{file}: not UTF-8 text (line {line}); TOML files are UTF-8") from None
        except OSError as e:
            raise ConfigError(f"{file}: cannot read: {e.strerror}") from None
    from_env = _apply_env(data, env)
    try:
        settings = Settings.model_validate({**data, "source": file})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, file, from_env)) from None
    return settings


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Overlay ``SYNCD_<SECTION>__<KEY>=value`` onto the parsed TOML; return which variable set
    which ``(section, key)`` (and ``(section,)`` for a section that only the environment has), so
    that an error can name the variable instead of the file.

    Values are strings; pydantic converts numbers and booleans. A value that looks like a JSON
    array or object (e.g. ``SYNCD_CDC__MODELS='[{"model": "res.partner"}]'``) is parsed as JSON.
    """
    from_env: dict[tuple[str, ...], str] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if not section or not key or "__" in key:
            continue
        value: Any = raw
        if raw[:1] in "[{":
            # A list or table as JSON; else text that starts like JSON (a listen address "[::]:9187",
            # a secret), which the key's validation judges.
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(raw)
        if section not in data:
            from_env[(section,)] = name
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{name}: [{section}] is not a table in the config file")
        target[key] = value
        from_env[(section, key)] = name
    return from_env


_SECRET_KEYS = {"api_key", "password", "dsn", "webhook_secret"}


def format_validation_error(
    error: ValidationError, file: Path | None, from_env: Mapping[tuple[str, ...], str] | None = None
) -> str:
    """One line per problem: ``odoo.protocol = 'xml': expected one of 'auto', 'json2', 'jsonrpc'``.

    A problem with a value from the environment names its variable (``… (set by
    SYNCD_CDC__INTERVAL_SECONDS)``), a misspelt variable too; an unknown key gets the nearest valid
    one (``did you mean cdc.interval_seconds?``, or ``SYNCD_CDC__INTERVAL_SECONDS`` for a variable)."""
    from_env = from_env or {}
    lines: list[str] = []
    sources: set[str] = set()
    for err in error.errors(include_url=False):
        parts = tuple(p for p in err["loc"] if not str(p).startswith("function-after"))
        loc = ".".join(str(p) for p in parts)
        key = loc.split(".")[-1] if loc else ""
        msg = err["msg"].removeprefix("Value error, ")
        # A cross-field check of a section already names its key: "database.dsn: expected …".
        cross = bool(loc) and msg.startswith(f"{loc}.")
        origin = (loc, msg[len(loc) + 1 :].split(":")[0].split(" ")[0]) if cross else parts[:2]
        variable = from_env.get(tuple(str(p) for p in origin))
        sources.add("environment" if variable else "file")
        if err["type"] == "extra_forbidden" and variable and len(parts) <= 2:
            lines.append(_unknown_variable(parts, variable))
            continue
        if err["type"] == "extra_forbidden":
            line = f"  {loc}: unknown key" + _did_you_mean(parts)
        elif err["type"] == "missing":
            line = f"  {loc}: required"
        elif cross:
            line = f"  {msg}"
        elif isinstance(err.get("input"), dict | list) or key in _SECRET_KEYS:
            line = f"  {loc or '(top level)'}: {msg}"
        else:
            line = f"  {loc} = {_short(err.get('input'))}: {msg}"
        lines.append(line + (f" (set by {variable})" if variable else ""))
    where = [str(file) if file is not None else "configuration"] if "file" in sources else []
    if "environment" in sources:
        where.append("SYNCD_* environment")
    return "\n".join([f"invalid configuration ({' and '.join(where)}):", *lines])


def _did_you_mean(parts: tuple[int | str, ...]) -> str:
    """``; did you mean cdc.interval_seconds?`` for the unknown key at ``parts``, or where to look."""
    near = difflib.get_close_matches(str(parts[-1]), _keys_at(parts[:-1]), n=1)
    if not near:
        return " (check its spelling; config.example.toml lists every key)"
    return f"; did you mean {'.'.join([*map(str, parts[:-1]), near[0]])}?"


def _unknown_variable(parts: tuple[int | str, ...], variable: str) -> str:
    """``cdc.intervall_seconds: unknown key, from the environment variable SYNCD_CDC__INTERVALL_SECONDS;
    did you mean SYNCD_CDC__INTERVAL_SECONDS?`` (``parts``: the unknown section, or section and key)."""
    near = difflib.get_close_matches(str(parts[-1]), _keys_at(parts[:-1]), n=1)
    section, _, key = variable[len(ENV_PREFIX) :].partition("__")
    if len(parts) == 1:
        guess = f"{ENV_PREFIX}{near[0].upper()}__{key}" if near else ""
    else:
        guess = f"{ENV_PREFIX}{section}__{near[0].upper()}" if near else ""
    loc = ".".join(str(p) for p in parts)
    return f"  {loc}: unknown key, from the environment variable {variable}" + (
        f"; did you mean {guess}?" if guess else ""
    )


def _keys_at(parts: tuple[int | str, ...]) -> list[str]:
    """The valid keys of the table at ``parts`` (``("cdc", "models", 0)``: those of a model entry)."""
    cls: type[BaseModel] = Settings
    for part in parts:
        if isinstance(part, int):
            continue  # an entry of a list: its type was taken from the list's annotation
        field = cls.model_fields.get(part)
        if field is None:
            return []
        inner = [field.annotation, *get_args(field.annotation)]
        nested = [t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return []
        cls = nested[0]
    return [k for k in cls.model_fields if k != "source"]


def _short(value: Any) -> str:
    if isinstance(value, str) and "@" in value:
        with contextlib.suppress(ValueError):
            value = redact_dsn(value)  # a URL's password, e.g. odoo.url = "ftp://bot:secret@erp"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_secret(path: Path, key: str) -> SecretStr:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{key} = {str(path)!r}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{key} = {str(path)!r}: not UTF-8 text") from None
    text = text.strip("\r\n")
    if not text:
        raise ValueError(f"{key} = {str(path)!r}: the file is empty")
    return SecretStr(text)


def redact_dsn(dsn: str) -> str:
    """A DSN with its password replaced by ``***``, safe to print."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
