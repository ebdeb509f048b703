"""Stable Odoo external ids for producer keys: the same (model, key) always names the same record.

Odoo splits an external id at its first dot into module and name, rejects spaces, breaks lists on
commas, and indexes module + name (so it must stay short). Any key a producer may use — uuids,
emails, text with spaces — must still map to a valid, unique id:

* keys made only of ``[A-Za-z0-9-]`` and single underscores, up to 120 characters, are kept as they
  are (readable in Odoo): ``syncd.res_partner__k_cust-42``;
* anything else is hashed: ``syncd.res_partner__h_<sha256 of the key, 40 hex digits>``.

The markers ``k``/``h`` keep the two forms apart, and the double underscore cannot occur inside a kept
key, so two different keys never map to one id.
"""

from __future__ import annotations

import hashlib
import re

# fullmatch: `$` alone also matches before a final newline, which would keep "key\n" as it is
_PLAIN_KEY = re.compile(r"(?!.*__)[A-Za-z0-9_-]{1,120}")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def model_slug(model: str) -> str:
    slug = model.replace(".", "_")
    if "__" in slug:  # keep "__" free for the separator
        slug = slug.replace("__", "_") + "_" + _digest(model, 8)
    return slug


def external_name(model: str, key: str) -> str:
    """The name part (without module) of the external id of ``key`` in ``model``."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{model_slug(model)}__k_{key}"
    return f"{model_slug(model)}__h_{_digest(key, 40)}"


def external_id(module: str, model: str, key: str) -> str:
    """``module.name``: what ``load()`` takes in its ``id`` column."""
    return f"{module}.{external_name(model, key)}"
