"""``database.pooler``: what a transaction-mode pooler implies, and how long a CDC lease lasts."""

from __future__ import annotations

import pytest

from syncd.cdc.service import MIN_LEASE_SECONDS, lease_seconds
from syncd.config import Settings, load_config
from syncd.errors import ConfigError

pytestmark = pytest.mark.unit


def test_default_keeps_session_features() -> None:
    s = load_config(None, env={})
    assert s.database.pooler == "none"
    assert s.database.session_state
    assert s.database.statement_cache_size == 100
    assert s.outbox.listen is True


def test_transaction_pooler_turns_off_statement_cache_and_listen_whatever_they_say() -> None:
    s = load_config(
        None,
        env={
            "SYNCD_DATABASE__POOLER": "transaction",
            "SYNCD_DATABASE__STATEMENT_CACHE_SIZE": "250",
            "SYNCD_OUTBOX__LISTEN": "true",
        },
    )
    assert not s.database.session_state
    assert s.database.statement_cache_size == 0
    assert s.outbox.listen is False


def test_session_pooler_is_like_a_direct_connection() -> None:
    s = Settings.model_validate({"database": {"pooler": "session"}})
    assert s.database.session_state
    assert s.database.statement_cache_size == 100 and s.outbox.listen is True


def test_an_unknown_pooler_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, env={"SYNCD_DATABASE__POOLER": "statement"})
    assert "database.pooler = 'statement'" in str(e.value)
    assert "'transaction'" in str(e.value)


@pytest.mark.parametrize(
    ("interval", "lease"), [(0.1, MIN_LEASE_SECONDS), (1.0, MIN_LEASE_SECONDS), (5.0, 15.0), (60.0, 180.0)]
)
def test_a_lease_lasts_three_intervals_but_at_least_a_few_seconds(interval: float, lease: float) -> None:
    assert lease_seconds(interval) == lease
