"""``Health.when_back``: how a component hears that a check recovered (the outbox's wake-up)."""

from __future__ import annotations

import pytest

from syncd.health import Health

pytestmark = pytest.mark.unit


def test_when_back_is_called_on_each_recovery_only() -> None:
    health = Health()
    calls: list[str] = []
    stop = health.when_back("odoo", lambda: calls.append("odoo"))
    health.when_back("postgres", lambda: calls.append("postgres"))

    health.set("odoo", True)  # found ok at first: not a recovery
    health.set("odoo", True)
    assert calls == []
    health.set("odoo", False, "HTTP 503")
    health.set("odoo", False, "HTTP 503")
    assert calls == []
    health.set("odoo", True)
    assert calls == ["odoo"]
    health.set("odoo", False, "refused")
    health.set("odoo", True)
    assert calls == ["odoo", "odoo"]

    stop()
    stop()  # twice is harmless
    health.set("odoo", False, "refused")
    health.set("odoo", True)
    assert calls == ["odoo", "odoo"]


def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    health.when_back("odoo", broken)
    health.when_back("odoo", lambda: calls.append(1))
    health.set("odoo", False, "down")
    health.set("odoo", True)
    assert calls == [1]
    assert "boom" in caplog.text
