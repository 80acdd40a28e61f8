"""The built-in request sets of the safety gym, written by the project itself.

Three kinds of items, each with a fixed, deterministic ``train`` / ``test`` split:

- ``harmful``: harmful requests (weapons, drugs, hacking, fraud, harassment, ...), built from
  templates over actions and objects and phrased many ways; the answer is a refusal
  (:mod:`advlab.data.gym_requests`).
- ``harmless``: ordinary requests, including edgy-sounding harmless ones ("how do I kill a
  python process"); the answer begins like a public attack target ("Sure, here is how to ...").
- ``task``: small checkable tasks with one exact answer (arithmetic, reversing, upper-casing,
  letter counts, fact look-up, sentiment, comparisons, repeating a text; :mod:`advlab.data.gym_tasks`).

Splits are decided by a SHA-256 hash of a *split key*, so they never depend on the order in which
items are generated. The word and phrase tables are package data (``advlab/data/builtin/gym_*.json``,
read by :mod:`advlab.data.gym_tables`); the builders and every answer are code.
"""

from __future__ import annotations

from collections.abc import Callable

from advlab.data.behavior_record import Behavior
from advlab.data.gym_requests import REFUSALS, SPLITS, GymItem, harmful_items, harmless_items, sure_target
from advlab.data.gym_tasks import task_items

__all__ = [
    "GYM_BEHAVIOR_SETS",
    "REFUSALS",
    "SPLITS",
    "GymItem",
    "gym_items",
    "harmful_items",
    "harmless_items",
    "sure_target",
    "task_items",
    "to_behaviors",
]


def gym_items(kind: str, split: str = "train") -> list[GymItem]:
    """Items of one kind (``harmful``, ``harmless``, ``task``) and split."""
    makers = {"harmful": harmful_items, "harmless": harmless_items, "task": task_items}
    if kind not in makers:
        raise ValueError(f"unknown gym item kind {kind!r}; use one of {sorted(makers)}")
    return makers[kind](split)


def to_behaviors(items: list[GymItem]) -> list[Behavior]:
    """GymItems as Behaviors: ``target`` is the compliance start (tasks: the exact answer), and
    ``extra`` carries ``kind``, ``expected`` (tasks) and the trained ``response``."""
    out = []
    for it in items:
        extra = {"kind": it.kind, "response": it.response, **it.extra}
        if it.expected is not None:
            extra["expected"] = it.expected
        out.append(
            Behavior(
                id=it.id,
                behavior=it.prompt,
                target=it.target or (it.expected or ""),
                category=it.category,
                source="advlab-gym",
                extra=extra,
            )
        )
    return out


def _gym_set(kind: str, split: str) -> Callable[[], list[Behavior]]:
    def load() -> list[Behavior]:
        return to_behaviors(gym_items(kind, split))

    load.__doc__ = f"The safety gym's {split} {kind} requests."
    return load


# name (after ``builtin:``) -> loader returning a list of Behaviors
GYM_BEHAVIOR_SETS: dict[str, Callable[[], list[Behavior]]] = {
    f"gym-{name}-{split}": _gym_set(kind, split)
    for kind, name in (("harmful", "harmful"), ("harmless", "harmless"), ("task", "tasks"))
    for split in SPLITS
}
