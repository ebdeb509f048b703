"""The benchmark model ``x.bench``: one field of every type syncd maps, filled with realistic values.

:func:`build_fake` returns a :class:`~syncd.testing.FakeOdoo` holding ``records`` of them. Creation goes
through the fake's own ``create`` (so the rows are exactly what Odoo would store) in batches of
:data:`BATCH`, each batch one transaction stamped a few seconds after the previous one by a
:class:`~syncd.testing.ManualClock` that starts :data:`HISTORY` in the past: write dates are spread over
most of that span like a model edited over weeks, and the newest one is still well behind the poller's
lookback window. Afterwards the fake runs on the real clock again, so writes made during the benchmark are
stamped "now".
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from syncd.testing import FakeOdoo, FieldSpec, ManualClock, utcnow

MODEL = "x.bench"
TABLE = "x_bench"
#: Records per ``create`` call (one transaction, one ``write_date``).
BATCH = 50
#: How far back the first record is stamped.
HISTORY = timedelta(days=30)
#: Partners and tags the records point at (created on top of the demo data).
PARTNERS = 200
TAGS = 20

STATES = [("draft", "Draft"), ("confirmed", "Confirmed"), ("done", "Done"), ("cancel", "Cancelled")]
WORDS = [
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod",
    "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim", "ad", "minim",
    "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi",
]  # fmt: skip

FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec("char", string="Reference", required=True),
    "description": FieldSpec("text"),
    "quantity": FieldSpec("integer"),
    "weight": FieldSpec("float", digits=(16, 3)),
    "currency_id": FieldSpec("many2one", relation="res.currency", default=1),
    "amount": FieldSpec("monetary", currency_field="currency_id"),
    "active": FieldSpec("boolean", default=True),
    "state": FieldSpec("selection", selection=STATES, default="draft"),
    "date_due": FieldSpec("date"),
    "date_done": FieldSpec("datetime"),
    "partner_id": FieldSpec("many2one", relation="res.partner"),
    "tag_ids": FieldSpec("many2many", relation="res.partner.category"),
}


def declare(fake: FakeOdoo) -> tuple[list[int], list[int]]:
    """Declare ``x.bench`` and the partners and tags it points at; returns their ids."""
    partners = fake.create(
        "res.partner",
        [{"name": f"Customer {i:03d}", "email": f"customer{i}@example.com", "is_company": i % 5 == 0}
         for i in range(PARTNERS)],
    )  # fmt: skip
    tags = fake.create("res.partner.category", [{"name": f"Tag {i:02d}"} for i in range(TAGS)])
    fake.declare_model(MODEL, FIELDS, description="Benchmark record")
    return partners, tags


def record_values(i: int, rng: random.Random, partners: list[int], tags: list[int]) -> dict[str, Any]:
    """The ``create`` values of the ``i``-th record: a bit of everything, some fields left empty."""
    words = rng.choices(WORDS, k=rng.randint(8, 30))
    done = rng.random() < 0.4
    return {
        "name": f"BENCH/{i:07d}",
        "description": " ".join(words).capitalize() + "." if rng.random() < 0.8 else False,
        "quantity": rng.randint(0, 10_000),
        "weight": round(rng.uniform(0, 500), 3),
        "currency_id": 1 if rng.random() < 0.7 else 125,
        "amount": round(rng.uniform(1, 100_000), 2),
        "active": rng.random() > 0.05,
        "state": rng.choice(STATES)[0],
        "date_due": (
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if rng.random() < 0.9 else False
        ),
        "date_done": (
            f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            if done
            else False
        ),
        "partner_id": rng.choice(partners) if rng.random() < 0.95 else False,
        "tag_ids": rng.sample(tags, rng.randint(0, 3)),
    }


def build_fake(records: int, *, seed: int = 1) -> tuple[FakeOdoo, float]:
    """A fake Odoo with demo data and ``records`` x.bench records; returns it and the seconds it took."""
    started = time.perf_counter()
    start = utcnow() - HISTORY
    clock = ManualClock(start, tick=timedelta(microseconds=1))
    fake = FakeOdoo(demo_data=True, clock=clock)
    partners, tags = declare(fake)
    rng = random.Random(seed)
    # Spread the batches over about 3/4 of HISTORY, at least a second apart: pages of 5000 span many
    # seconds, and the newest record stays days behind now (and behind the poller's lookback window).
    step = max(HISTORY / max(records // BATCH, 1), timedelta(seconds=1.5)).total_seconds()
    for first in range(0, records, BATCH):
        clock.advance(step * rng.uniform(0.5, 1.0))
        fake.create(
            MODEL, [record_values(i, rng, partners, tags) for i in range(first, min(first + BATCH, records))]
        )
    fake.clock = utcnow  # from now on the fake stamps with the real time
    # Build the fake's (write_date, id) index now rather than during the first timed request.
    fake.search_read(
        MODEL, [], ["id"], limit=1, order="write_date asc, id asc", context={"active_test": False}
    )
    return fake, time.perf_counter() - started
