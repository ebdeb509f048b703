"""Malformed configuration, generated (issue 6): ``load_config`` raises ConfigError, never anything
else; the message names the key (or the file and line of a TOML syntax error) and never shows a
secret. The wrong values are derived from the pydantic models in ``syncd.config`` (every key of
every section, by its type and bounds), so a key added later is fuzzed too. The real CLI's exit
code 2 is in ``tests/e2e/test_cli_config_fuzz.py``.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from syncd.config import Settings, load_config
from syncd.errors import ConfigError

pytestmark = pytest.mark.unit

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI; failures still shrink
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: Every secret in a generated config contains this; no message may.
SECRET = "S3CRET-a8f3"
#: The secrets of a valid config: an error about another key must not show them either.
SECRETS = {
    ("odoo", "api_key"): f"{SECRET}-api-key",
    ("odoo", "password"): f"{{{SECRET}-password",  # starts like JSON: a secret may
    ("database", "dsn"): f"postgresql://syncd:{SECRET}-pw@db.example.com:5432/postgres",
}
SECTIONS: dict[str, type[BaseModel]] = {
    name: typing.cast(type[BaseModel], field.default_factory)
    for name, field in Settings.model_fields.items()
    if name != "source"
}
KEYS: list[tuple[str, str, FieldInfo]] = [
    (section, key, info) for section, model in SECTIONS.items() for key, info in model.model_fields.items()
]


# ---------------------------------------------------------------------------------- wrong values


def _types(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation)) - {type(None)}
    return {annotation}


def _bounds(info: FieldInfo) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in info.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


#: values that are wrong for keys validated beyond their type
SPECIFIC: dict[tuple[str, str], list[Any]] = {
    ("odoo", "url"): ["erp.example.com", "ftp://erp.example.com", "http://", "", "https://:443/x"],
    ("http", "listen"): ["9187", "localhost", ":9187", "127.0.0.1:99999", "h:-1", "[::1]"],
    ("database", "mirror_schema"): ["Odoo", "syncd", "public", "a-b", "x" * 64, "", "1abc", 'o"; drop'],
    ("outbox", "xmlid_module"): ["a.b", "", "x" * 65, "sp ace", "é"],
    ("http", "webhook_secret"): [SECRET, f"{SECRET}/{SECRET}", f"{SECRET} {SECRET}", f"{SECRET}?é=1"],
    ("http", "public_url"): ["syncd.internal:9187", "ftp://syncd.internal", "https://", "https://h/#x"],
    ("cdc", "models"): [
        5,
        "res.partner",
        [5],
        [{}],
        [{"model": "Res Partner"}],
        [{"model": "res.partner", "fields": "name"}],
        [{"model": "res.partner", "fields": [1]}],
        [{"model": "res.partner", "fields": ["name", "name"]}],
        [{"model": "res.partner", "fields": ["bad-name"]}],
        [{"model": "a.b"}, {"model": "a.b"}],
        [{"model": "a.b", "delete_mode": "drop"}],
        [{"model": "a.b", "unknown": 1}],
    ],
}


def wrong_values(section: str, key: str, info: FieldInfo) -> list[Any]:
    """Values that ``[section] key`` must refuse, from its type, bounds and validators."""
    found = _types(info.annotation)
    secret = SecretStr in found
    out: list[Any] = list(SPECIFIC.get((section, key), []))
    if (section, key) == ("cdc", "models"):
        return out
    # no other key takes a list or a table (a secret's is shown neither)
    out += [[f"{SECRET}-in-a-list"], {"value": f"{SECRET}-in-a-table"}] if secret else [[1, 2], {"a": 1}]
    if bool in found:
        out += ["maybe", 2, 1.5, "2", ""]
    elif int in found:
        out += ["many", 1.5, "1.5", "", math.nan]
        bounds = _bounds(info)
        if "ge" in bounds:
            out.append(int(bounds["ge"]) - 1)
        if "le" in bounds:
            out.append(int(bounds["le"]) + 1)
    elif float in found:
        out += ["soon", "", "1,5", math.nan, math.inf, -math.inf]
        bounds = _bounds(info)
        if "gt" in bounds:
            out += [bounds["gt"], bounds["gt"] - 1]
        if "ge" in bounds:
            out.append(bounds["ge"] - 0.5)
    elif any(typing.get_origin(t) is typing.Literal for t in found):
        (literal,) = found
        choices = typing.get_args(literal)
        out += [5, "", "nope", f"{choices[0]}x"]
    else:  # text: str, SecretStr, Path
        out += [5, 1.5, True]
    return out


WRONG: list[tuple[str, str, Any]] = [
    (section, key, value) for section, key, info in KEYS for value in wrong_values(section, key, info)
]
_TEXT_KEYS = {(s, k) for s, k, info in KEYS if _types(info.annotation) & {str, SecretStr, Path}}
#: the same as environment strings: a number or boolean is fine text for a text key
WRONG_IN_ENV = [(s, k, v) for s, k, v in WRONG if not ((s, k) in _TEXT_KEYS and isinstance(v, int | float))]


def test_every_key_of_every_section_has_wrong_values() -> None:
    assert {(s, k) for s, k, _ in WRONG} == {(s, k) for s, k, _ in KEYS}
    assert len(WRONG) > 4 * len(KEYS)


# ------------------------------------------------------------------------------------------ TOML


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, but TOML wants DEL escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise AssertionError(value)


def toml(data: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def write(tmp_path: Path) -> Any:
    counter = iter(range(10**9))

    def _write(content: str | bytes) -> Path:
        path = tmp_path / f"syncd-{next(counter)}.toml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


def error_or_none(path: Path) -> str | None:
    """The ConfigError's message, or None when the file is a valid config (any other exception fails)."""
    try:
        load_config(path, env={})
    except ConfigError as e:
        return str(e)
    return None


def config_error(path: Path | None, env: dict[str, str] | None = None) -> str:
    """The ConfigError's message (any other exception fails the test); checks what every message must."""
    try:
        load_config(path, env=env or {})
    except ConfigError as e:
        message = str(e)
    else:
        raise AssertionError("the configuration was accepted")
    assert SECRET not in message, message
    assert "Traceback" not in message
    return message


def valid_base() -> dict[str, dict[str, Any]]:
    """A valid config holding every kind of secret (so that errors about other keys could show them)."""
    return {
        "odoo": {"api_key": SECRETS["odoo", "api_key"], "password": SECRETS["odoo", "password"]},
        "database": {"dsn": SECRETS["database", "dsn"]},
    }


def test_the_base_config_is_valid(write: Any) -> None:
    s = load_config(write(toml(valid_base())), env={})
    assert s.odoo.api_key is not None and s.odoo.api_key.get_secret_value() == SECRETS["odoo", "api_key"]


# ------------------------------------------------------------------------------- generated cases


@SETTINGS
@given(bad=st.lists(st.sampled_from(WRONG), min_size=1, max_size=4, unique_by=lambda w: (w[0], w[1])))
def test_wrong_values_in_the_file_name_every_key(write: Any, bad: list[tuple[str, str, Any]]) -> None:
    data = valid_base()
    for section, key, value in bad:
        data.setdefault(section, {})[key] = value
    message = config_error(write(toml(data)))
    for section, key, _ in bad:
        assert f"{section}.{key}" in message, (section, key, message)


def _env_text(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, list | dict)
        else str(value)
    )


@SETTINGS
@given(bad=st.lists(st.sampled_from(WRONG_IN_ENV), min_size=1, max_size=3, unique_by=lambda w: (w[0], w[1])))
def test_wrong_values_from_the_environment_name_every_key(
    write: Any, bad: list[tuple[str, str, Any]]
) -> None:
    """The same wrong values as ``SYNCD_<SECTION>__<KEY>`` strings, over a valid file."""
    env = {f"SYNCD_{section.upper()}__{key.upper()}": _env_text(value) for section, key, value in bad}
    message = config_error(write(toml(valid_base())), env)
    for section, key, _ in bad:
        assert f"{section}.{key}" in message or f"SYNCD_{section.upper()}__{key.upper()}" in message, message


_identifier = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(lambda s: s != "source")


@SETTINGS
@given(
    section=st.one_of(st.sampled_from(sorted(SECTIONS)), _identifier),
    key=st.one_of(_identifier, st.text(min_size=1, max_size=10).filter(lambda s: "\x00" not in s)),
)
def test_unknown_sections_and_keys_are_named(write: Any, section: str, key: str) -> None:
    known = SECTIONS.get(section)
    if known is not None and key in known.model_fields:
        return  # not unknown
    data = valid_base()
    data.setdefault(section, {})[key] = 1
    message = config_error(write(toml(data)))
    if known is None:
        assert f"  {section}: unknown key" in message
    else:
        assert f"  {section}.{key}: unknown key" in message


def _corruptions() -> st.SearchStrategy[tuple[str, int, str]]:
    return st.tuples(
        st.sampled_from(["insert", "delete", "truncate", "duplicate line"]),
        st.integers(0, 10_000),
        st.sampled_from(['"', "'", "[", "]", "=", "\n", "{", "}", ",", "#", "\\", "x", " ", "\t", '"""']),
    )


@SETTINGS
@given(corruption=_corruptions())
def test_broken_toml_names_the_file_and_where(write: Any, corruption: tuple[str, int, str]) -> None:
    """Any edit of a valid file: it still loads, or fails as a ConfigError; a syntax error names the
    file and the line (or the end of the document)."""
    how, at, text = corruption
    good = toml({**valid_base(), "cdc": {"interval_seconds": 2.5, "models": [{"model": "res.partner"}]}})
    at %= len(good)
    if how == "insert":
        content = good[:at] + text + good[at:]
    elif how == "delete":
        content = good[:at] + good[at + 1 :]
    elif how == "truncate":
        content = good[:at]
    else:
        lines = good.splitlines(keepends=True)
        i = at % len(lines)
        content = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    path = write(content)
    try:
        tomllib.loads(content)
    except tomllib.TOMLDecodeError:
        message = config_error(path)
        assert message.startswith(f"{path}: not valid TOML")
        assert "line" in message or "end of document" in message
        return
    message = error_or_none(path)
    assert message is None or SECRET not in message


@SETTINGS
@given(content=st.text(max_size=200) | st.binary(max_size=200))
def test_any_file_content_loads_or_is_a_config_error(write: Any, content: str | bytes) -> None:
    path = write(content)
    message = error_or_none(path)
    assert message is None or str(path) in message or message.startswith("invalid configuration")


# --------------------------------------------------------------------------------- named cases


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SYNCD_CDC__INTERVAL_SECONDS": "soon"}, "cdc.interval_seconds = 'soon'"),
        ({"SYNCD_CDC__MODELS": "[1"}, "cdc.models"),
        ({"SYNCD_CDC__MODELS": '{"model": "res.partner"}'}, "cdc.models: Input should be a valid list"),
        ({"SYNCD_CDC__MODELS": '[{"model": "res.partner", "fields": "name"}]'}, "cdc.models.0.fields"),
        ({"SYNCD_OUTBOX__BATCH_SIZE": "0"}, "outbox.batch_size = '0'"),
        (
            {"SYNCD_OUTBOX__LEASE_SECONDS": "inf"},
            "outbox.lease_seconds = 'inf': Input should be a finite number",
        ),
        ({"SYNCD_NOPE__X": "1"}, "nope: unknown key"),
        ({"SYNCD_ODOO__NOPE": "1"}, "odoo.nope: unknown key"),
        (
            {"SYNCD_ODOO__API_KEY_FILE": "/does/not/exist"},
            "odoo.api_key_file = '/does/not/exist': cannot read",
        ),
        ({"SYNCD_DATABASE__DSN_FILE": "/"}, "database.dsn_file = '/': cannot read: Is a directory"),
        ({"SYNCD_ODOO__PASSWORD_FILE": "/dev/null"}, "odoo.password_file = '/dev/null': the file is empty"),
        ({"SYNCD_DATABASE__DSN": f"mysql://u:{SECRET}@h/db"}, "database.dsn: expected a postgresql:// URL"),
        (
            {"SYNCD_ODOO__URL": f"ftp://bot:{SECRET}@erp.example.com"},
            "odoo.url = 'ftp://bot:***@erp.example.com'",
        ),
        ({"SYNCD_ODOO__API_KEY": f'["{SECRET}"]'}, "odoo.api_key: Input should be a valid string"),
    ],
)
def test_bad_environment_values_name_the_key(env: dict[str, str], named: str) -> None:
    assert named in config_error(None, env)


@pytest.mark.parametrize(
    "dsn", [f"mysql://u:{SECRET}@h/db", SECRET, f"http://u:{SECRET}@h", f"postgresql//u:{SECRET}@h", ""]
)
def test_a_dsn_that_is_not_a_postgresql_url_is_not_shown(write: Any, dsn: str) -> None:
    message = config_error(write(toml({"database": {"dsn": dsn, "pool_min_size": 1}})))
    assert "database.dsn: expected a postgresql:// URL (the value is not shown)" in message


def test_text_values_may_start_like_json_in_the_environment() -> None:
    """Only values that are meant as JSON are parsed as JSON: an IPv6 listen address and a password
    starting with "{" are text."""
    s = load_config(None, env={"SYNCD_HTTP__LISTEN": "[::1]:9187", "SYNCD_ODOO__PASSWORD": "{S3cr3t"})
    assert s.http.listen == "[::1]:9187"
    assert s.odoo.secret == "{S3cr3t"


def test_a_toml_section_that_is_not_a_table_and_an_override_for_it(write: Any) -> None:
    message = config_error(write("cdc = 5\n"), {"SYNCD_CDC__INTERVAL_SECONDS": "2"})
    assert message == "SYNCD_CDC__INTERVAL_SECONDS: [cdc] is not a table in the config file"


def test_a_file_that_is_not_utf8_is_a_config_error(write: Any) -> None:
    path = write(b'[odoo]\nurl = "http://erp\xff"\n')
    message = config_error(path)
    assert message.startswith(f"{path}: not UTF-8") and "line 2" in message


def test_a_secret_file_that_is_not_utf8_names_its_key(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe" + SECRET.encode())
    message = config_error(None, {"SYNCD_ODOO__API_KEY_FILE": str(key)})
    assert f"odoo.api_key_file = {str(key)!r}: not UTF-8 text" in message


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
@pytest.mark.parametrize(
    "key",
    [f"{s}.{k}" for s, k, info in KEYS if float in _types(info.annotation)],
)
def test_durations_must_be_finite(write: Any, key: str, value: str) -> None:
    section, name = key.split(".")
    message = config_error(write(f"[{section}]\n{name} = {value}\n"))
    assert f"{key} = " in message
