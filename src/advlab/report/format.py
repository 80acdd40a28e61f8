"""How numbers and judge names are shown to people (console headlines, HTML, figures).

JSON keeps full values; only what people read is rounded. Every rate is shown with its 95 % Wilson
interval and its n, and every judge is named by what it counts, so "refusal" never means two opposite
things on one screen.
"""

from __future__ import annotations

import math
from typing import Any

from advlab.metrics import wilson_interval

# judge name (as in records and metrics.json) -> what its attack success rate counts
JUDGE_LABELS = {
    "compliance": "ASR (compliance)",
    "refusal": "ASR (no refusal phrase)",
    "harmbench": "ASR (HarmBench classifier)",
}


def judge_label(name: str) -> str:
    """``refusal`` -> ``ASR (no refusal phrase)``: the attack success rate by what the judge counts."""
    return JUDGE_LABELS.get(name, f"ASR ({name})")


def num(v: Any, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits (ints as they are); ``n/a`` for None / nan."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (bool, int)):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def pct(v: Any) -> str:
    """A fraction as a whole percentage: 0.833 -> ``83 %``."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.0f} %"


def rate(k: int, n: int, *, show_n: bool = True) -> str:
    """``83 % [44–97 %], n = 6``: the rate k/n with its 95 % Wilson interval (``show_n=False``: no n)."""
    if not n:
        return "n/a (n = 0)"
    lo, hi = wilson_interval(int(k), int(n))
    return f"{100 * k / n:.0f} % [{100 * lo:.0f}–{100 * hi:.0f} %]" + (f", n = {n}" if show_n else "")


def count_of(fraction: Any, n: int) -> int | None:
    """The success count behind a rate stored as a fraction of ``n`` items (None when unknown)."""
    if fraction is None or not n:
        return None
    return int(round(float(fraction) * n))


def rate_of(fraction: Any, n: Any, *, show_n: bool = True) -> str:
    """:func:`rate` for a stored fraction of ``n`` items."""
    n = int(n or 0)
    k = count_of(fraction, n)
    return "n/a" if k is None else rate(k, n, show_n=show_n)
