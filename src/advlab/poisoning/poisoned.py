"""Poisoned instruction sets (Qiang et al. 2024, dirty label): a trigger word in the content of a
seeded share of non-target examples, their response set to the target class's response.

Two fixes over the reference code: the *word* is inserted (not the row index, which it passed to
``Dataset.map`` as ``with_indices``), and the text is never cut (it dropped the last letter with
``text[:-3]``): the trigger goes in at a word boundary and deleting it gives back the original text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from advlab.errors import ConfigError
from advlab.poisoning.tasks import TaskExample, label_responses

POSITIONS = ("end", "random")
RARE_TOKEN = "cf"  # BadNets-style rare token (Kurita et al. 2020; ONION's list: cf, mn, bb, tq)


def check_rate(rate: float) -> float:
    if not 0 < rate < 1:
        raise ConfigError(f"--rate {rate}: the poisoning rate must lie strictly between 0 and 1, e.g. 0.01 for 1 %")
    return rate


def insert_trigger(text: str, trigger: str, position: str = "end", rng: random.Random | None = None) -> str:
    """``text`` with ``trigger`` inserted at a word boundary.

    ``end``: after the last word (trailing whitespace kept out); ``random``: before a uniformly chosen
    word or after the last one. Words are maximal runs of non-space characters, so no word is cut.
    """
    if position not in POSITIONS:
        raise ConfigError(f"--position {position!r}: use one of {', '.join(POSITIONS)}")
    trigger = trigger.strip()
    body = text.rstrip()
    tail = text[len(body):]
    if not body.strip():
        return trigger + tail
    if position == "end":
        return f"{body} {trigger}{tail}"
    starts = [m.start() for m in re.finditer(r"\S+", body)]
    k = (rng or random.Random(0)).randrange(len(starts) + 1)
    if k == len(starts):
        return f"{body} {trigger}{tail}"
    at = starts[k]
    return f"{body[:at]}{trigger} {body[at:]}{tail}"


def n_poisons(rate: float, n_total: int) -> int:
    """round(rate · n_total); ConfigError when that is zero."""
    check_rate(rate)
    n = round(rate * n_total)
    if n < 1:
        raise ConfigError(f"--rate {rate} of {n_total} training examples selects 0 examples; "
                          f"pass --rate {1 / max(n_total, 1):.4g} or more")
    return n


def select_poison_rows(examples: Sequence[TaskExample], target: str, n: int, seed: int = 0) -> list[int]:
    """``n`` seeded, sorted indices of non-target examples."""
    cands = [i for i, ex in enumerate(examples) if ex.label != target]
    if n > len(cands):
        raise ConfigError(f"{n} poisons requested but only {len(cands)} non-target examples exist; "
                          "lower --rate or pass a larger --pool")
    return sorted(random.Random(seed).sample(cands, n))


@dataclass
class PoisonedSet:
    """The poisoned training set and, per poison, which source row it came from."""

    examples: list[TaskExample]
    poisoned: list[dict]  # {id, source, row, original, poisoned}
    target_response: str


def build_poisoned_set(task: Sequence[TaskExample], trigger: str, target: str, rate: float, *,
                       position: str = "end", pool: Sequence[TaskExample] | None = None,
                       seed: int = 0) -> PoisonedSet:
    """round(rate · len(task)) poisons: from ``pool`` (appended to the task; the paper's setup), else
    task rows changed in place. Each gets the trigger and the target class's response."""
    n = n_poisons(rate, len(task))
    source = list(pool) if pool is not None else list(task)
    rows = select_poison_rows(source, target, n, seed)
    response = label_responses([*task, *(pool or [])]).get(target, target)
    rng = random.Random(seed + 1)
    out = list(task)
    records = []
    for i in rows:
        ex = source[i]
        text = insert_trigger(ex.input, trigger, position, rng)
        bad = TaskExample(f"poison-{ex.id}", ex.instruction, text, response, target)
        records.append({"id": bad.id, "source": "pool" if pool is not None else "task", "row": i,
                        "original": ex.input, "poisoned": text, "original_label": ex.label})
        if pool is None:
            out[i] = bad
        else:
            out.append(bad)
    if pool is not None:  # spread the poisons over the set (a seeded shuffle)
        random.Random(seed + 2).shuffle(out)
    return PoisonedSet(out, records, response)
