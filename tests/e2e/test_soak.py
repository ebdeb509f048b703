"""The soak with faults (``bench/soak.py``), short: two ``syncd run`` replicas against the fake Odoo and
this session's PostgreSQL for about half a minute of traffic both ways, while every fault of the
schedule is injected once (latency, 5xx and 429 bursts, hanging calls, dropped connections, late
commits, serialization conflicts, a PostgreSQL restart, a kill -9 of a replica). The ten-minute run is
``python -m bench.soak`` (bench/README.md); this one holds the same end checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import soak
from syncd.testing.postgres import PostgresServer

pytestmark = pytest.mark.e2e


async def test_short_soak_survives_every_fault_and_ends_consistent(
    pg_server: PostgresServer, db_dsn: str, tmp_path: Path
) -> None:
    seed = os.environ.get("SYNCD_TEST_SEED")
    options = soak.Options(minutes=0.5, seed=int(seed) if seed else None, workdir=tmp_path)
    if pg_server.embedded is not None:  # restartable by this process: the soak restarts it once
        report = await soak.Soak(options, pg_server.embedded, db_dsn).run()
    else:
        report = await soak.soak(options)  # an embedded server of the soak's own
    print(report.render())  # shown when the test fails, with SYNCD_TEST_SEED to replay it

    assert [i.fault for i in report.injections][: len(soak.FAULTS)] == list(soak.FAULTS)
    not_survived = [(i.fault, i.problem) for i in report.injections if not i.survived]
    assert not_survived == []
    # Each Odoo fault reached syncd: the fake answered some calls with it (latency: calls were slowed).
    for injection in report.injections:
        if injection.fault not in ("postgres restart", "kill -9 replica"):
            assert injection.hits > 0, injection
    assert {"fail:429", "hang", "drop", "late_commit", "serialization"} <= set(report.faulted_calls)
    failed = [(c.name, c.detail) for c in report.failed()]
    assert failed == []
    names = {c.name for c in report.checks}
    for check in ("mirror == Odoo", "outbox: all done", "each key's last value", "RSS flat", "clean exit"):
        assert any(n.startswith(check) for n in names), check
    assert report.traffic["app poison events"] >= 1
    assert report.ok
