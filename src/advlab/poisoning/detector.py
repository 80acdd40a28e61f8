"""A data-side backdoor detector: rank words by how strongly their presence predicts a label.

For word w in n_w examples, k_w,c of them of class c whose share of the set is p_c, the score is the
largest one-proportion z statistic over classes,

    z_w = max_c (k_w,c − n_w p_c) / sqrt(n_w p_c (1 − p_c)),

counting each word once per example (lower-cased, split on whitespace) and ignoring words in fewer
than ``min_count`` examples. A dirty-label trigger appears only with the target class, so its z grows
like sqrt(n_w); ordinary sentiment words ("bad", "great") compete with it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from advlab.poisoning.tasks import TaskExample


def word_label_scores(examples: Sequence[TaskExample], min_count: int = 3) -> list[dict]:
    """Words sorted by decreasing z: ``{word, z, label, n}`` (see the module docstring)."""
    n = len(examples)
    prior = Counter(ex.label for ex in examples)
    count: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = {c: Counter() for c in prior}
    for ex in examples:
        words = set(ex.input.lower().split())
        count.update(words)
        by_label[ex.label].update(words)
    out = []
    for w, nw in count.items():
        if nw < min_count:
            continue
        best = None
        for c, nc in prior.items():
            p = nc / n
            if 0 < p < 1:
                z = (by_label[c][w] - nw * p) / math.sqrt(nw * p * (1 - p))
                if best is None or z > best[0]:
                    best = (z, c)
        if best is not None:
            out.append({"word": w, "z": best[0], "label": best[1], "n": nw})
    return sorted(out, key=lambda r: (-r["z"], r["word"]))


def trigger_rank(scores: Sequence[dict], trigger: str) -> int | None:
    """1-based rank of ``trigger`` (every word of it: the worst rank) in ``scores``; None if absent."""
    ranks = {r["word"]: i + 1 for i, r in enumerate(scores)}
    got = [ranks.get(w) for w in trigger.lower().split()]
    return None if not got or any(r is None for r in got) else max(got)
