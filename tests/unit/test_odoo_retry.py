"""The retry policy, idempotency table and the small value types of syncd.odoo."""

from __future__ import annotations

import aiohttp
import pytest

from syncd.config import OdooSettings
from syncd.odoo import (
    LoadResult,
    OdooClient,
    OdooConnectFailedError,
    RetryPolicy,
    ServerInfo,
    classify,
    classify_exception,
    is_idempotent,
)

pytestmark = pytest.mark.unit

TIMEOUT = classify_exception(TimeoutError())
DROPPED = classify_exception(aiohttp.ServerDisconnectedError())
REFUSED = OdooConnectFailedError("refused")
RATE_LIMITED = classify(429, "slow down", retry_after="3")
UNAVAILABLE_503 = classify(503, "maintenance")
BAD_GATEWAY = classify(502, "bad gateway")
SERIALIZATION = classify(
    200, {"name": "psycopg2.errors.SerializationFailure", "message": "could not serialize access"}
)
MISSING = classify(404, {"name": "odoo.exceptions.MissingError", "message": "Record does not exist"})


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (TIMEOUT, True, True),
        (TIMEOUT, False, False),
        (DROPPED, True, True),
        (DROPPED, False, False),
        (BAD_GATEWAY, True, True),
        (BAD_GATEWAY, False, False),
        (REFUSED, False, True),
        (RATE_LIMITED, False, True),
        (UNAVAILABLE_503, False, True),
        (SERIALIZATION, False, True),
        (MISSING, True, False),
        (ValueError("not an Odoo error"), True, False),
        (None, True, False),
    ],
)
def test_should_retry(error: BaseException | None, idempotent: bool, expected: bool) -> None:
    assert RetryPolicy(retries=3).should_retry(error, attempt=1, idempotent=idempotent) is expected


def test_should_retry_stops_after_the_configured_retries() -> None:
    policy = RetryPolicy(retries=2)

    assert policy.should_retry(TIMEOUT, attempt=2, idempotent=True)
    assert not policy.should_retry(TIMEOUT, attempt=3, idempotent=True)
    assert not RetryPolicy(retries=0).should_retry(TIMEOUT, attempt=1, idempotent=True)


def test_delay_grows_exponentially_with_equal_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_seconds=0.2, max_seconds=5.0)

    lows = [policy.delay(TIMEOUT, n, rand=lambda: 0.0) for n in range(1, 8)]
    highs = [policy.delay(TIMEOUT, n, rand=lambda: 1.0) for n in range(1, 8)]

    assert lows == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5])
    assert highs == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_delay_honours_retry_after_up_to_a_cap() -> None:
    assert RetryPolicy().delay(RATE_LIMITED, 1) == 3.0
    assert RetryPolicy(max_retry_after_seconds=1.0).delay(RATE_LIMITED, 1) == 1.0
    no_hint = classify(429, "slow down")
    assert RetryPolicy(base_seconds=0.2).delay(no_hint, 1, rand=lambda: 1.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("method", "kwargs", "expected"),
    [
        ("search_read", {}, True),
        ("read", {}, True),
        ("write", {}, True),
        ("unlink", {}, True),
        ("create", {}, False),
        ("load", {"fields": ["id", "name"]}, True),
        ("load", {"fields": ["name"]}, False),
        ("load", {}, False),
        ("message_post", {}, False),
    ],
)
def test_is_idempotent(method: str, kwargs: dict[str, object], expected: bool) -> None:
    assert is_idempotent(method, kwargs) is expected


@pytest.mark.parametrize(
    ("version", "major"),
    [
        (
            {
                "server_version": "19.0",
                "server_version_info": [19, 0, 0, "final", 0, ""],
                "server_serie": "19.0",
                "protocol_version": 1,
            },
            19,
        ),
        ({"server_version": "saas~17.4", "server_version_info": ["saas~17", 4, 0, "final", 0, ""]}, 17),
        ({"server_version": "14.0+e"}, 14),
        ({}, 0),
    ],
)
def test_server_info_major(version: dict[str, object], major: int) -> None:
    assert ServerInfo.from_version(version).major == major


def test_server_info_fields() -> None:
    info = ServerInfo.from_version(
        {
            "server_version": "19.0",
            "server_version_info": [19, 0, 0, "final", 0, ""],
            "server_serie": "19.0",
            "protocol_version": 1,
        }
    )

    assert info == ServerInfo("19.0", (19, 0, 0, "final", 0, ""), "19.0", 1)


def test_load_result_errors() -> None:
    failed = LoadResult(
        ids=None,
        messages=[{"type": "warning", "message": "w"}, {"type": "error", "message": "No matching record"}],
    )
    assert not failed.ok
    assert [m["message"] for m in failed.errors] == ["No matching record"]
    assert LoadResult(ids=[245], messages=[]).ok


def test_repr_and_settings_never_show_credentials() -> None:
    settings = OdooSettings(
        url="https://syncd:url-pa55@erp.example.com", api_key="k3y-never-shown", password="pa55-never-shown"
    )
    client = OdooClient(settings)

    text = repr(client) + str(client)
    assert "k3y-never-shown" not in text
    assert "pa55-never-shown" not in text
    assert "url-pa55" not in text
    assert "https://syncd:***@erp.example.com" in text
    assert "database='odoo'" in repr(client)
