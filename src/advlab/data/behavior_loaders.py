"""Behaviour and instruction loaders: files (AdvBench, HarmBench, JailbreakBench, StrongREJECT and
instruction lists, read by :mod:`advlab.data.behavior_files`) and ``builtin:NAME`` sets.

A behaviour without a target gets :func:`default_target` ("Sure, here is ..." + a lower-case
rephrasing of the request) and ``extra["default_target"] = True``. Ids are stable: the file's own
id column when it has one, else ``<format>-<sha1 of the text>``; repeated ids get ``-2``, ``-3``...
Two different requests under one id are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from advlab.data.behavior_files import (
    assign_ids,
    attach_line_targets,
    behaviors_from_rows,
    check_file,
    clean,
    detect_format,
    keep_matching_rows,
    load_targets,
    read_rows,
    shipped_targets,
    split_row_filter,
)
from advlab.data.behavior_record import Behavior
from advlab.data.gym import GYM_BEHAVIOR_SETS
from advlab.data.gym_requests import sure_target
from advlab.errors import ConfigError, DataError

BUILTIN_BEHAVIORS: dict[str, Callable[[], list[Behavior]]] = {}
"""Extra ``builtin:NAME`` sets for :func:`load_behaviors` (on top of the gym's ``GYM_BEHAVIOR_SETS``)."""
BUILTIN_HARMLESS: dict[str, Callable[[], list[Behavior]]] = {}
"""Extra ``builtin:NAME`` sets for :func:`load_harmless` (likewise on top of the gym's sets)."""

_HARMLESS_COLUMNS = (
    "instruction",
    "prompt",
    "request",
    "goal",
    "behavior",
    "forbidden_prompt",
    "text",
    "question",
)


# ---------------------------------------------------------------------------------------------
# public API


def unique_ids(items: list[Behavior], spec: str) -> list[Behavior]:
    """Drop exact repeats (same id and text); refuse one id used for two different requests, which
    would make run directories skip or collide on records."""
    seen: dict[str, str] = {}
    out = []
    for b in items:
        if b.id in seen:
            if seen[b.id] != b.behavior:
                raise DataError(f"{spec}: id {b.id!r} is used by two different requests; give every row its own id")
            continue
        seen[b.id] = b.behavior
        out.append(b)
    return out


def load_behaviors(spec: str | Path, limit: int | None = None, targets: str | Path | None = None) -> list[Behavior]:
    """Behaviours from a file or ``builtin:NAME`` (see the module docstring for formats).

    ``FILE#COLUMN=VALUE[,VALUE...]`` keeps the rows whose ``COLUMN`` has one of the values, e.g.
    ``harmbench_behaviors_text_test.csv#FunctionalCategory=standard`` (HarmBench's standard behaviours,
    without its contextual and copyright ones). Ids stay those of the whole file.

    ``limit``: keep the first N (must be >= 1). ``targets``: a JSON file mapping ids to target
    strings (or lists of them; the first is used, all kept in ``extra['targets']``).
    """
    _check_limit(limit)
    spec_s = str(spec).strip()
    if not spec_s:
        raise ConfigError("--behaviors is empty; pass a CSV/JSON/JSONL file or builtin:NAME")
    if spec_s.startswith("builtin:"):
        items = _builtin(spec_s, BUILTIN_BEHAVIORS, "--behaviors")
    else:
        file_s, row_filter = split_row_filter(spec_s)
        path = check_file(file_s, "--behaviors")
        rows = read_rows(path)
        fmt = detect_format(rows, path)
        items = behaviors_from_rows(rows, fmt, path)
        table = load_targets(Path(targets), "--targets") if targets else shipped_targets(path, fmt)
        if fmt == "strongreject" and not targets:
            attach_line_targets(items, path)
        if table:
            for b in items:
                hit = table.get(b.id)
                if hit:
                    values = [hit] if isinstance(hit, str) else [str(v) for v in hit]
                    b.target = values[0]
                    if len(values) > 1:
                        b.extra["targets"] = values
        if row_filter is not None:
            items = keep_matching_rows(items, rows, row_filter, spec_s)
        for b in items:
            if not b.target:
                b.target = default_target(b.behavior)
                b.extra["default_target"] = True  # not from the file: "Sure, here is" + the request
    if not items:
        raise DataError(f"{spec_s}: no behaviours found; pass a file with at least one behaviour row")
    items = unique_ids(items, spec_s)
    return items[:limit] if limit else items


def load_harmless(spec: str | Path, limit: int | None = None) -> list[Behavior]:
    """Harmless instructions: JSON list of ``{instruction, category}`` (refusal_direction) or of strings,
    JSONL, plain ``.txt`` (one per line), CSV with an instruction-like column, or ``builtin:NAME``.
    Returned as :class:`Behavior` with an empty target."""
    _check_limit(limit)
    spec_s = str(spec).strip()
    if not spec_s:
        raise ConfigError("--harmless is empty; pass a JSON/JSONL/TXT/CSV file or builtin:NAME")
    if spec_s.startswith("builtin:"):
        items = _builtin(spec_s, BUILTIN_HARMLESS, "--harmless")
    else:
        path = check_file(spec_s, "--harmless")
        rows = read_rows(path)
        keys = {k.lower(): k for r in rows[:1] for k in r}
        col = next((keys[c] for c in _HARMLESS_COLUMNS if c in keys), None)
        if col is None:
            raise DataError(
                f"{path}: no instruction column; use one of {', '.join(_HARMLESS_COLUMNS)} "
                "(or a .txt file, one per line)"
            )
        cat = keys.get("category")
        items = []
        for r in rows:
            text = clean(r.get(col))
            if text:
                items.append(
                    Behavior(
                        id="",
                        behavior=text,
                        category=clean(r.get(cat)) or None if cat else None,
                        source=str(path),
                    )
                )
        assign_ids(items, "harmless", [None] * len(items))
    if not items:
        raise DataError(f"{spec_s}: no instructions found; pass a file with at least one instruction")
    items = unique_ids(items, spec_s)
    return items[:limit] if limit else items


def default_target(request: str) -> str:
    """The "Sure, here is ..." target for a request without one (built like AdvBench targets).

    Uses the safety gym's rephrasing, so the gym's compliant answers start with it.
    """
    return sure_target(request)


def normalize_text(text: str) -> str:
    """Case-folded words joined by single spaces: the key :func:`overlap` compares."""
    return " ".join(re.findall(r"\w+", str(text).casefold()))


def overlap(a: Iterable[Behavior], b: Iterable[Behavior]) -> list[Behavior]:
    """Behaviours of ``a`` that also occur in ``b`` (same id, or the same behaviour text up to case and
    punctuation; contexts are ignored, so a request seen with any context counts as seen)."""
    b = list(b)
    ids = {x.id for x in b}
    texts = {normalize_text(x.behavior) for x in b}
    return [x for x in a if x.id in ids or normalize_text(x.behavior) in texts]


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"--limit {limit}: must be a positive number of behaviours (or left out for all)")


# ---------------------------------------------------------------------------------------------
# built-in sets: the safety gym's own requests (gym-harmful-test, gym-harmless-train, gym-tasks-test, ...)


def _registry(extra: dict[str, Callable[[], list[Behavior]]]) -> dict[str, Callable[[], list[Behavior]]]:
    """The safety gym's sets (``advlab.data.gym.GYM_BEHAVIOR_SETS``) plus those registered here."""
    return {**GYM_BEHAVIOR_SETS, **extra}


def builtin_names(harmless: bool = False) -> list[str]:
    """Names accepted after ``builtin:`` by :func:`load_behaviors` (or :func:`load_harmless`)."""
    return sorted(_registry(BUILTIN_HARMLESS if harmless else BUILTIN_BEHAVIORS))


def _builtin(spec: str, registry: dict[str, Callable[[], list[Behavior]]], option: str) -> list[Behavior]:
    name = spec.split(":", 1)[1].strip()
    table = _registry(registry)
    if name not in table:
        known = ", ".join(f"builtin:{n}" for n in sorted(table)) or "none"
        raise ConfigError(f"{option} {spec}: unknown built-in set; use one of {known}")
    return list(table[name]())
