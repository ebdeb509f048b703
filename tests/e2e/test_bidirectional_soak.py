"""The two-sided soak of writable mirror tables (``bench/bidirectional.py``), short: the real daemon, an
app editing the mirror table and an Odoo user editing the same records through the fake Odoo's API for
about 20 seconds, with same-field collisions. The five-minute run is ``python -m bench.bidirectional``
(bench/README.md); this one holds the same invariants (not the timings).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import bidirectional

pytestmark = pytest.mark.e2e


async def test_short_two_sided_soak_ends_consistent_with_every_app_change_accounted_for(
    db_dsn: str, tmp_path: Path
) -> None:
    seed = os.environ.get("SYNCD_TEST_SEED")
    options = bidirectional.Options(
        seconds=20, records=30, seed=int(seed) if seed else None, settle_seconds=60, workdir=tmp_path
    )
    report = await bidirectional.bidirectional(options, db_dsn)
    print(report.render())  # shown when the test fails, with SYNCD_TEST_SEED to replay it

    failed = [(c.name, c.detail) for c in report.checks if not c.ok]
    assert failed == []
    names = " ".join(c.name for c in report.checks)
    for check in ("mirror == Odoo", "accounted for exactly once", "no echo", "sync state", "collision"):
        assert check in names, check
    numbers = dict(report.numbers)
    assert int(numbers["app changes (outbox events)"]) > 50
    assert int(numbers.get("app mass updates", "0")) >= 1
    assert sum(report.collisions.values()) > 0
    assert report.ok
