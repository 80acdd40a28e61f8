"""The one comparison of a run's output with its recorded golden (imported by the golden tests).

Dicts must have the same keys, lists the same length; floats compare to ``rel=1e-5`` and ``abs_tol`` (nan
equals nan); everything else (ids, strings, booleans, integers) exactly. ``where`` is the JSON path named in
a failure.
"""

from __future__ import annotations

import math

import pytest


def compare_golden(got, want, where: str = "$", *, abs_tol: float) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            compare_golden(got[k], want[k], f"{where}.{k}", abs_tol=abs_tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            compare_golden(g, w, f"{where}[{i}]", abs_tol=abs_tol)
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        if math.isnan(want):
            assert math.isnan(got), f"{where}: {got} != nan"
        else:
            assert got == pytest.approx(want, rel=1e-5, abs=abs_tol), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
