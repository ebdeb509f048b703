"""A fake Odoo 19 for tests, benchmarks and demos: a real HTTP server over an in-memory store.

It speaks both external APIs the way a real Odoo 19 answers them (``/jsonrpc`` and ``/json/2``), reproduces
the behaviours recorded in ``odoo-wire/`` (whole-second datetime domains, ``write_date`` = transaction start,
``active_test``, ``load`` import semantics, error names, messages and statuses) and can inject faults::

    from syncd.testing import FakeOdoo, FakeOdooServer, FieldSpec

    fake = FakeOdoo(demo_data=True)
    fake.declare_model("x.thing", {"name": FieldSpec("char"), "partner_id": FieldSpec("many2one", relation="res.partner")})
    async with FakeOdooServer(fake) as server:
        ...  # point a client at server.url, database "odoo", login admin/admin or API key "admin"
"""

from syncd.testing.errors import FakeOdooError
from syncd.testing.fake import FakeOdoo, FakeTransaction, FakeUser, ManualClock, utcnow
from syncd.testing.faults import CallRecord, Faults
from syncd.testing.fields import FieldSpec, ModelSpec
from syncd.testing.server import BackgroundFakeOdooServer, FakeOdooServer, parse_listen, serve_forever

__all__ = [
    "BackgroundFakeOdooServer",
    "CallRecord",
    "FakeOdoo",
    "FakeOdooError",
    "FakeOdooServer",
    "FakeTransaction",
    "FakeUser",
    "Faults",
    "FieldSpec",
    "ManualClock",
    "ModelSpec",
    "parse_listen",
    "serve_forever",
    "utcnow",
]
