"""The safety gym's word and phrase tables, read from the JSON files in ``advlab/data/builtin``.

``gym_requests.json`` holds the refusals, the request phrasings and the harmful and harmless
actions; ``gym_tasks.json`` the words, facts and phrasings of the checkable tasks; ``gym_augment.json``
the random prefixes and suffixes the trainer adds to requests. Lists come back as tuples, and the
order of every table is kept (it fixes the order of the generated items).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

TABLE_NAMES = ("gym_requests", "gym_tasks", "gym_augment")


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


@cache
def load_table(name: str) -> dict[str, Any]:
    """The table ``name`` (one of :data:`TABLE_NAMES`) with its lists as tuples."""
    if name not in TABLE_NAMES:
        raise ValueError(f"unknown gym table {name!r}; use one of {', '.join(TABLE_NAMES)}")
    text = (files("advlab.data") / "builtin" / f"{name}.json").read_text(encoding="utf-8")
    return _frozen(json.loads(text))
