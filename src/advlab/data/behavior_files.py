"""Reading behaviour files: CSV/TSV, JSON, JSONL and TXT rows, their format, ids and shipped targets.

:func:`advlab.data.behavior_loaders.load_behaviors` takes such a file. The format is detected from
the columns (case-insensitive):

==============  =============================================  ===================================
format          columns                                        target
==============  =============================================  ===================================
jailbreakbench  ``Goal, Target, Behavior, Category``           ``Target``
advbench        ``goal, target``                               ``target``
harmbench       ``Behavior, BehaviorID`` (+ ``ContextString``)  looked up by ``BehaviorID`` in a
                                                               targets JSON (``targets=`` or found
                                                               next to the shared data layout)
strongreject    ``forbidden_prompt`` (+ ``category, source``)   ``strong_reject/targets.txt`` when
                                                               present (one per row)
instructions    ``instruction`` (refusal_direction JSON)        default
==============  =============================================  ===================================

Ids (:func:`assign_ids`): the file's own id column when it has one, else ``<format>-<sha1 of the
text>``; repeated ids get ``-2``, ``-3``...
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advlab.data.behavior_record import Behavior
from advlab.errors import DataError

KNOWN_COLUMN_SETS: dict[str, tuple[str, ...]] = {
    "jailbreakbench": ("goal", "target", "behavior", "category"),
    "advbench": ("goal", "target"),
    "harmbench": ("behavior", "behaviorid"),
    "strongreject": ("forbidden_prompt",),
    "instructions": ("instruction",),
}


def detect_format(rows: Sequence[dict[str, Any]], path: Path | str = "") -> str:
    """The format name of ``rows`` (from its column names) or DataError listing the known sets."""
    cols = {str(k).strip().lower() for r in rows[:1] for k in r}
    for name, needed in KNOWN_COLUMN_SETS.items():
        if set(needed) <= cols:
            return name
    known = "; ".join(f"{n}: {', '.join(c)}" for n, c in KNOWN_COLUMN_SETS.items())
    found = ", ".join(sorted(cols)) or "none"
    raise DataError(f"{path}: unknown behaviour format (columns: {found}); known column sets are {known}")


# ---------------------------------------------------------------------------------------------
# reading




def check_file(spec: str, option: str) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{option} {spec}: no such file; pass a CSV/JSON/JSONL file or builtin:NAME")
    if path.is_dir():
        raise DataError(f"{option} {spec}: is a directory; pass a CSV/JSON/JSONL file")
    return path


def split_row_filter(spec: str) -> tuple[str, str | None]:
    """``FILE#COLUMN=VALUE[,VALUE...]`` -> (``FILE``, ``COLUMN=VALUE...``); a spec that names an existing
    file (``#`` in its name included) is taken whole, with no filter."""
    if "#" not in spec or Path(spec).expanduser().exists():
        return spec, None
    file, _, row_filter = spec.rpartition("#")
    return file, row_filter


def keep_matching_rows(items: list[Behavior], rows: list[dict[str, Any]], row_filter: str, spec: str) -> list[Behavior]:
    """The behaviours whose row has ``COLUMN`` equal to one of the comma-separated values (case-insensitive).

    Ids were assigned on the whole file, so a filtered set keeps the ids of the unfiltered one."""
    column, sep, values = row_filter.partition("=")
    column = column.strip().lower()
    wanted = {v.strip().lower() for v in values.split(",") if v.strip()}
    if not (sep and column and wanted):
        raise DataError(f"{spec}: row filter {row_filter!r} is not COLUMN=VALUE; "
                        "e.g. harmbench_behaviors_text_test.csv#FunctionalCategory=standard")
    columns = {str(k).strip().lower() for r in rows for k in r}
    if column not in columns:
        raise DataError(f"{spec}: no column {column!r} to filter on; the file has {', '.join(sorted(columns))}")
    kept = [b for b in items if _get(rows[b.extra["row"]], column).lower() in wanted]
    if not kept:
        present = sorted({_get(r, column) for r in rows} - {""})
        raise DataError(f"{spec}: no behaviour has {column} = {' or '.join(sorted(wanted))}; "
                        f"the file's values are {', '.join(present[:12]) or 'all empty'}")
    return kept


def _read_text(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); re-save the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; pass a file with at least one row")
    return text


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV, JSON (list of objects or strings, or {"data": [...]}) , JSONL or TXT file."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not valid JSON ({exc.msg}); one JSON object per line") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); fix the file") from None
        if isinstance(data, dict):
            data = next(
                (v for k, v in data.items() if k in ("data", "behaviors", "rows") and isinstance(v, list)),
                None,
            )
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of objects (or of strings); fix the file")
        rows = data
    elif suffix == ".txt":
        rows = [{"instruction": line.strip()} for line in text.splitlines() if line.strip()]
    elif suffix in (".csv", ".tsv"):
        delim = "\t" if suffix == ".tsv" else ","
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter=delim)
            rows = [dict(r) for r in reader]
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise DataError(f"{path}: malformed CSV ({exc}); fix the file") from None
        if not rows:
            raise DataError(f"{path}: the CSV has a header ({', '.join(header)}) but no rows; add behaviours")
    else:
        raise DataError(f"{path}: unknown file type {suffix or '(none)'}; use .csv, .json, .jsonl or .txt")
    rows = [{"instruction": r} if isinstance(r, str) else r for r in rows]
    if any(not isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: every entry must be an object (or a string); fix the file")
    if not rows:
        raise DataError(f"{path}: no rows; pass a file with at least one behaviour")
    return rows


def clean(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _get(row: dict[str, Any], name: str) -> str:
    for k, v in row.items():
        if str(k).strip().lower() == name:
            return clean(v)
    return ""


def behaviors_from_rows(rows: list[dict[str, Any]], fmt: str, path: Path) -> list[Behavior]:
    items: list[Behavior] = []
    own_ids: list[str | None] = []
    for i, r in enumerate(rows):
        if fmt in ("jailbreakbench", "advbench"):
            text, target = _get(r, "goal"), _get(r, "target")
            category = _get(r, "category") or None
            own = _get(r, "index") or _get(r, "id")
            own_id = f"{fmt}_{own}" if own else None
            extra = {"name": _get(r, "behavior")} if fmt == "jailbreakbench" else {}
            for key in ("source",):
                if _get(r, key):
                    extra[key] = _get(r, key)
            b = Behavior(id="", behavior=text, target=target, category=category, source=str(path), extra=extra)
        elif fmt == "harmbench":
            text = _get(r, "behavior")
            own_id = _get(r, "behaviorid") or None
            extra = {k: _get(r, k.lower()) for k in ("FunctionalCategory", "Tags") if _get(r, k.lower())}
            b = Behavior(
                id="",
                behavior=text,
                context=_get(r, "contextstring") or None,
                category=_get(r, "semanticcategory") or _get(r, "category") or None,
                source=str(path),
                extra=extra,
            )
        elif fmt == "strongreject":
            text = _get(r, "forbidden_prompt")
            own_id = None
            extra = {"row": i} | ({"origin": _get(r, "source")} if _get(r, "source") else {})
            b = Behavior(id="", behavior=text, category=_get(r, "category") or None, source=str(path), extra=extra)
        else:  # instructions
            text = _get(r, "instruction")
            own_id = _get(r, "id") or None
            b = Behavior(
                id="",
                behavior=text,
                target=_get(r, "target"),
                category=_get(r, "category") or None,
                source=str(path),
            )
        if text:
            b.extra.setdefault("row", i)
            items.append(b)
            own_ids.append(own_id)
    assign_ids(items, fmt, own_ids)
    return items


def assign_ids(items: list[Behavior], prefix: str, own_ids: Sequence[str | None]) -> None:
    seen: dict[str, int] = {}
    for b, own in zip(items, own_ids, strict=True):
        base = own or f"{prefix}-{hashlib.sha1(b.request.encode('utf-8')).hexdigest()[:10]}"
        seen[base] = seen.get(base, 0) + 1
        b.id = base if seen[base] == 1 else f"{base}-{seen[base]}"


# ---------------------------------------------------------------------------------------------
# targets


def load_targets(path: Path, option: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{option} {path}: no such file; pass a JSON file mapping behaviour ids to targets")
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}); pass a JSON object id -> target") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping behaviour ids to target strings")
    return data


def _data_root(path: Path) -> Path | None:
    for parent in path.resolve().parents:
        if parent.name == "behavior_datasets":
            return parent.parent
    return None


def shipped_targets(path: Path, fmt: str) -> dict[str, Any]:
    """Targets shipped with the shared data layout (``optimizer_targets/``) for a behaviours file in it."""
    root = _data_root(path)
    if root is None or fmt not in ("harmbench", "advbench", "jailbreakbench"):
        return {}
    stem = path.stem.replace("_behaviors", "_targets")
    names = [
        root / "optimizer_targets" / "extra_targets" / f"{stem}.json",
        root / "optimizer_targets" / f"{stem}.json",
    ]
    if path.stem.startswith("harmbench_behaviors_text") or path.stem.startswith("harmbench_behaviors_polite"):
        names.append(root / "optimizer_targets" / "harmbench_targets_text.json")
    for p in names:
        if p.is_file():
            return load_targets(p, "targets")
    return {}


def attach_line_targets(items: list[Behavior], path: Path) -> None:
    root = _data_root(path)
    if root is None:
        return
    tfile = root / "strong_reject" / "targets.txt"
    if not tfile.is_file():
        return
    lines = _read_text(tfile).splitlines()
    for b in items:
        row = b.extra.get("row")
        if isinstance(row, int) and row < len(lines) and lines[row].strip():
            b.target = lines[row].strip()
