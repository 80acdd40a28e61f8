"""Checks of safetensors weight files before loading, so a damaged file is named with its fix.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON header mapping each
tensor to ``data_offsets`` [begin, end) in the data section, then the data. A file cut short (an
interrupted download or copy) has a data section shorter than the largest ``end``, or a header that
runs past the end of the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from advlab.errors import ModelError

FIX = "rebuild it (advlab zoo build / advlab train classifier) or download it again and check its size"


def safetensors_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when its header and size agree."""
    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than the 8-byte header length"
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            return f"header of {n} bytes runs past the end of the {size}-byte file (truncated?)"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "the header is not valid JSON"
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    need = 8 + n + max(ends, default=0)
    if need > size:
        return f"{size} bytes but its header needs {need} (truncated)"
    return None


def check_safetensors(directory: str | Path) -> None:
    """Raise :class:`ModelError` naming the first damaged ``*.safetensors`` file in ``directory``."""
    for f in sorted(Path(directory).glob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem is not None:
            raise ModelError(f"{f}: corrupt safetensors file ({problem}); {FIX}")
