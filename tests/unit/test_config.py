from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from syncd.config import ModelSettings, Settings, find_config_file, load_config, redact_dsn
from syncd.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def test_example_config_loads_and_equals_the_defaults() -> None:
    settings = load_config(EXAMPLE, env={})
    assert settings.model_dump() == Settings().model_dump()


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    missing = []
    for section, field in Settings.model_fields.items():
        if section == "source":
            continue
        assert isinstance(field.default_factory, type) and issubclass(field.default_factory, BaseModel)
        if f"[{section}]" not in text:
            missing.append(f"[{section}]")
        keys = list(field.default_factory.model_fields)
        if section == "cdc":  # [[cdc.models]] is a list of tables, documented by example
            keys.remove("models")
            keys += list(ModelSettings.model_fields)
            if "[[cdc.models]]" not in text:
                missing.append("[[cdc.models]]")
        for key in keys:
            if not re.search(rf"^#? ?{key} = ", text, re.MULTILINE):
                missing.append(f"{section}.{key}")
    assert missing == []


def test_env_overrides_file_and_parses_types(tmp_path: Path) -> None:
    path = _write(tmp_path, '[odoo]\nurl = "https://erp.example.com/"\n[cdc]\ninterval_seconds = 5\n')
    env = {
        "SYNCD_CDC__INTERVAL_SECONDS": "2.5",
        "SYNCD_ODOO__API_KEY": "k3y",
        "SYNCD_OUTBOX__LISTEN": "false",
        "SYNCD_CDC__MODELS": '[{"model": "res.partner", "fields": ["name"]}]',
        "SYNCD_UNRELATED": "x",
    }
    s = load_config(path, env=env)
    assert s.odoo.url == "https://erp.example.com"
    assert s.cdc.interval_seconds == 2.5
    assert s.outbox.listen is False
    assert s.odoo.secret == "k3y"
    assert [m.model for m in s.cdc.models] == ["res.partner"]
    assert s.cdc.models[0].table == "res_partner"
    assert s.source == path


def test_secret_files_are_read_and_never_shown(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("s3cr3t-key\n")
    dsn = tmp_path / "dsn"
    dsn.write_text("postgresql://u:pw-123@db/x\n")
    path = _write(tmp_path, f'[odoo]\napi_key_file = "{key}"\n[database]\ndsn_file = "{dsn}"\n')
    s = load_config(path, env={})
    assert s.odoo.secret == "s3cr3t-key"
    assert s.database.dsn is not None and s.database.dsn.get_secret_value() == "postgresql://u:pw-123@db/x"
    shown = repr(s) + str(s) + s.model_dump_json()
    assert "s3cr3t" not in shown and "pw-123" not in shown


def test_unreadable_secret_file_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[odoo]\napi_key_file = "/does/not/exist"\n')
    with pytest.raises(Exception, match=r"odoo\.api_key_file = '/does/not/exist': cannot read"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[odoo]\nprotocol = "xml"\n', "odoo.protocol = 'xml': Input should be 'auto', 'json2' or 'jsonrpc'"),
        (
            '[odoo]\nurl = "erp.example.com"\n',
            "odoo.url = 'erp.example.com': expected an http:// or https:// URL",
        ),
        ("[cdc]\ninterval_seconds = 0\n", "cdc.interval_seconds = 0: Input should be greater than 0"),
        ("[cdc]\nintervall = 3\n", "cdc.intervall: unknown key"),
        ("[nope]\nx = 1\n", "nope: unknown key"),
        (
            '[[cdc.models]]\nmodel = "Res Partner"\n',
            "cdc.models.0.model = 'Res Partner': expected an Odoo model",
        ),
        ('[[cdc.models]]\nmodel = "res.partner"\nfields = "name"\n', 'expected a list of field names or "*"'),
        ('[[cdc.models]]\nmodel = "a.b"\n[[cdc.models]]\nmodel = "a.b"\n', "model 'a.b' is configured twice"),
        ('[http]\nlisten = "9187"\n', "http.listen = '9187': expected HOST:PORT"),
        ('[database]\nmirror_schema = "syncd"\n', "database.mirror_schema = 'syncd': expected a lowercase"),
        ('[odoo]\nprotocol = "json2"\npassword = "pw"\n', "odoo.protocol: 'json2' needs odoo.api_key"),
        ("[odoo\n", "not valid TOML"),
    ],
)
def test_bad_config_message_names_key_value_and_expectation(tmp_path: Path, toml: str, expected: str) -> None:
    path = _write(tmp_path, toml)
    with pytest.raises(Exception, match=re.escape(expected)) as info:
        load_config(path, env={})
    assert type(info.value).__name__ == "ConfigError"
    assert "Traceback" not in str(info.value)


def test_bad_dsn_is_reported_without_its_value(tmp_path: Path) -> None:
    path = _write(tmp_path, '[database]\ndsn = "mysql://u:topsecret@h/db"\n')
    with pytest.raises(Exception, match="expected a postgresql:// URL") as info:
        load_config(path, env={})
    assert "topsecret" not in str(info.value)


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config_file(None, env={}) is None  # (unless /etc/syncd/config.toml exists on this machine)
    (tmp_path / "syncd.toml").write_text("")
    assert find_config_file(None, env={}) == Path("syncd.toml")
    other = tmp_path / "other.toml"
    other.write_text("")
    assert find_config_file(None, env={"SYNCD_CONFIG": str(other)}) == other
    assert find_config_file(str(other), env={"SYNCD_CONFIG": "/nope"}) == other
    with pytest.raises(Exception, match=r"from \$SYNCD_CONFIG\) does not exist"):
        find_config_file(None, env={"SYNCD_CONFIG": "/nope"})


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:p%40ss@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert redact_dsn("postgresql://h/db") == "postgresql://h/db"


# ------------------------------------------------------------------------------------- webhooks
SECRET = "hook-S3cret-0123456789"


def test_webhooks_are_off_without_a_secret_and_on_with_one(tmp_path: Path) -> None:
    assert not load_config(None, env={}).http.webhooks_enabled
    env = {"SYNCD_HTTP__WEBHOOK_SECRET": SECRET, "SYNCD_HTTP__PUBLIC_URL": "https://syncd.internal:9187/"}
    http = load_config(None, env=env).http
    assert http.webhooks_enabled
    assert http.public_url == "https://syncd.internal:9187"
    assert http.webhook_url() == f"https://syncd.internal:9187/odoo/webhook/{SECRET}"
    assert SECRET not in repr(http)


def test_the_webhook_secret_comes_from_its_file(tmp_path: Path) -> None:
    path = tmp_path / "hook"
    path.write_text(SECRET + "\n")
    http = load_config(None, env={"SYNCD_HTTP__WEBHOOK_SECRET_FILE": str(path)}).http
    assert http.webhook_secret is not None and http.webhook_secret.get_secret_value() == SECRET
    # The secret itself wins over its file, as for the other *_file keys.
    env = {"SYNCD_HTTP__WEBHOOK_SECRET_FILE": str(path), "SYNCD_HTTP__WEBHOOK_SECRET": "other-" + SECRET}
    http = load_config(None, env=env).http
    assert http.webhook_secret is not None and http.webhook_secret.get_secret_value() == "other-" + SECRET


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("Sh0rt-S3cret", "http.webhook_secret: too short (12 characters, at least 16); generate one with "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))'"),
        ("S3cret/with/slashes-0123", "http.webhook_secret: only letters, digits and - _ . ~ may be used"),
        ("S3cret with spaces 0123", "http.webhook_secret: only letters, digits and - _ . ~ may be used"),
    ],
)  # fmt: skip
def test_a_weak_or_unusable_webhook_secret_is_refused_without_showing_it(
    tmp_path: Path, secret: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"SYNCD_HTTP__WEBHOOK_SECRET": secret})
    assert expected in str(e.value)
    assert "S3cret" not in str(e.value)
    path = tmp_path / "hook"
    path.write_text(secret)
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"SYNCD_HTTP__WEBHOOK_SECRET_FILE": str(path)})
    assert f"http.webhook_secret_file = {str(path)!r}: " in str(e.value)
    assert "S3cret" not in str(e.value)


@pytest.mark.parametrize("url", ["syncd.internal:9187", "ftp://syncd.internal", "https://", "https://h/?a=1"])
def test_public_url_must_be_an_http_base_url(url: str) -> None:
    with pytest.raises(ConfigError, match=r"http.public_url = .*: expected the http:// or https:// base URL"):
        load_config(None, env={"SYNCD_HTTP__PUBLIC_URL": url})


def test_webhook_url_names_the_missing_key() -> None:
    with pytest.raises(ConfigError, match=r"http.webhook_secret is not set .*token_urlsafe"):
        load_config(None, env={"SYNCD_HTTP__PUBLIC_URL": "https://h"}).http.webhook_url()
    with pytest.raises(ConfigError, match=r"http.public_url is not set"):
        load_config(None, env={"SYNCD_HTTP__WEBHOOK_SECRET": SECRET}).http.webhook_url()


def test_webhooks_need_the_http_server() -> None:
    env = {"SYNCD_HTTP__WEBHOOK_SECRET": SECRET, "SYNCD_HTTP__ENABLED": "false"}
    with pytest.raises(ConfigError, match=r"http.webhook_secret: .*set http.enabled = true"):
        load_config(None, env=env)


def test_with_webhooks_the_interval_defaults_to_60_s_unless_set(tmp_path: Path) -> None:
    hooks = {"SYNCD_HTTP__WEBHOOK_SECRET": SECRET}
    assert load_config(None, env={}).cdc.interval_seconds == 5.0
    assert load_config(None, env=hooks).cdc.interval_seconds == 60.0
    # Set explicitly, even to the plain default, in the environment or in the file: kept.
    assert load_config(None, env={**hooks, "SYNCD_CDC__INTERVAL_SECONDS": "5"}).cdc.interval_seconds == 5.0
    path = _write(tmp_path, "[cdc]\ninterval_seconds = 5.0\n")
    assert load_config(path, env=hooks).cdc.interval_seconds == 5.0
    path = _write(tmp_path, f'[http]\nwebhook_secret = "{SECRET}"\n[cdc]\npage_size = 100\n')
    assert load_config(path, env={}).cdc.interval_seconds == 60.0


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[cdc]\nintervall_seconds = 3\n",
            "cdc.intervall_seconds: unknown key; did you mean cdc.interval_seconds?",
        ),
        ("[cdcc]\nenabled = true\n", "cdcc: unknown key; did you mean cdc?"),
        (
            '[[cdc.models]]\nmodel = "res.partner"\nfeilds = ["name"]\n',
            "cdc.models.0.feilds: unknown key; did you mean cdc.models.0.fields?",
        ),
    ],
)
def test_a_misspelt_key_gets_the_nearest_valid_one(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, toml), env={})
    assert expected in str(info.value)


def test_an_unknown_key_far_from_every_valid_one_gets_no_guess(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "[cdc]\nxyzzy = 3\n"), env={})
    assert "cdc.xyzzy: unknown key" in str(info.value)
    assert "did you mean" not in str(info.value)


def test_a_misspelt_environment_variable_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[cdc]\ninterval_seconds = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SYNCD_CDC__INTERVALL_SECONDS": "3"})
    message = str(info.value)
    assert (
        "cdc.intervall_seconds: unknown key, from the environment variable SYNCD_CDC__INTERVALL_SECONDS; "
        "did you mean SYNCD_CDC__INTERVAL_SECONDS?"
    ) in message
    assert str(path) not in message  # the file is fine: the problem is in the environment
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SYNCD_OUTBX__BATCH_SIZE": "3"})
    assert (
        "outbx: unknown key, from the environment variable SYNCD_OUTBX__BATCH_SIZE; "
        "did you mean SYNCD_OUTBOX__BATCH_SIZE?" in str(info.value)
    )


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, ""), env={"SYNCD_CDC__INTERVAL_SECONDS": "soon"})
    assert (
        "cdc.interval_seconds = 'soon': Input should be a valid number, unable to parse string as a number "
        "(set by SYNCD_CDC__INTERVAL_SECONDS)" in str(info.value)
    )
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"SYNCD_CDC__MODELS": '[{"model": "res.partner", "feilds": ["name"]}]'})
    assert (
        "cdc.models.0.feilds: unknown key; did you mean cdc.models.0.fields? (set by SYNCD_CDC__MODELS)"
        in str(info.value)
    )


def test_the_credential_key_names_what_holds_the_secret_sent(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k\n")
    cases = [
        ({"SYNCD_ODOO__API_KEY": "k", "SYNCD_ODOO__PASSWORD": "p"}, "odoo.api_key (SYNCD_ODOO__API_KEY)"),
        ({"SYNCD_ODOO__PASSWORD": "p"}, "odoo.password (SYNCD_ODOO__PASSWORD)"),
        ({"SYNCD_ODOO__API_KEY_FILE": str(key_file)}, "odoo.api_key_file (SYNCD_ODOO__API_KEY_FILE)"),
    ]
    for env, key in cases:
        odoo = load_config(None, env=env).odoo
        assert odoo.credential_key == key
        assert odoo.credentials_refused("no").endswith(f"(no): check {key} and odoo.username")
