"""The gym's training data: (prompt, response) pools and the sampler that mixes and augments them.

Pools come from the built-in train split (:mod:`advlab.data.gym`) plus optional public behaviour
files (trained as refusals) and harmless files (trained as "Sure, here is ..." compliances). A sample
picks a kind by the config's mix weights, a task category by its weight, then an item; requests are
augmented with random prefixes, suffixes and casing (``builtin/gym_augment.json``) so that refusal
does not hinge on exact wording (yet GCG can still move it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from advlab.data.behavior_loaders import load_behaviors, load_harmless
from advlab.data.gym import REFUSALS, gym_items, sure_target
from advlab.data.gym_requests import HARMLESS_BODY
from advlab.data.gym_tables import load_table
from advlab.errors import DataError
from advlab.models.gym_config import GymConfig

MAX_PUBLIC_HARMLESS_CHARS = 200  # longer instructions (with long inputs) cost tokens and teach little
PREFIXES: tuple[str, ...] = load_table("gym_augment")["prefixes"]
SUFFIXES: tuple[str, ...] = load_table("gym_augment")["suffixes"]

Example = tuple[str, str]  # (prompt, response)


@dataclass
class TrainingPools:
    """The (prompt, response) pairs a build samples from, by kind and (tasks) by category."""

    harmful: list[Example] = field(default_factory=list)
    harmless: list[Example] = field(default_factory=list)
    task: list[Example] = field(default_factory=list)
    public_harmful: list[Example] = field(default_factory=list)
    public_harmless: list[Example] = field(default_factory=list)
    task_by_category: dict[str, list[Example]] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in asdict(self).items() if k != "task_by_category"}


def load_requests(specs: Sequence[str], harmless: bool = False) -> list[str]:
    """Request texts of behaviour (or harmless) SPECs: files or ``builtin:NAME``."""
    if not specs:
        return []
    loader = load_harmless if harmless else load_behaviors
    texts = [b.request for spec in specs for b in loader(spec)]
    if not texts:
        raise DataError(f"{', '.join(specs)}: no requests found; pass non-empty behaviour files")
    return texts


def load_exclusions(specs: Sequence[str]) -> list[str]:
    """Request texts of behaviour SPECs that a build must never train on (e.g. a test split)."""
    return load_requests(specs)


def _refusal_for(text: str) -> str:
    return REFUSALS[sum(text.encode("utf-8")) % len(REFUSALS)]


def _compliance_for(text: str) -> str:
    return sure_target(text) + HARMLESS_BODY


def build_pools(
    behaviors: Sequence[str] = (), harmless: Sequence[str] = (), exclude: Sequence[str] = ()
) -> TrainingPools:
    """Training pools from the built-in train split plus public files.

    ``exclude`` holds request texts that must not be trained on (e.g. a test set); they are
    dropped after whitespace/case normalisation.
    """
    norm = {" ".join(t.lower().split()) for t in exclude}

    def keep(t: str) -> bool:
        return " ".join(t.lower().split()) not in norm

    pools = TrainingPools()
    pools.harmful = [(i.prompt, i.response) for i in gym_items("harmful", "train")]
    pools.harmless = [(i.prompt, i.response) for i in gym_items("harmless", "train")]
    tasks = gym_items("task", "train")
    pools.task = [(i.prompt, i.response) for i in tasks]
    for i in tasks:
        pools.task_by_category.setdefault(i.category, []).append((i.prompt, i.response))
    pools.public_harmful = [(t, _refusal_for(t)) for t in dict.fromkeys(load_requests(behaviors)) if keep(t)]
    harmless_texts = [t for t in load_requests(harmless, True) if len(t) <= MAX_PUBLIC_HARMLESS_CHARS]
    pools.public_harmless = [(t, _compliance_for(t)) for t in dict.fromkeys(harmless_texts) if keep(t)]
    return pools


def augment(prompt: str, rng: random.Random) -> str:
    """A random prefix and/or suffix, then (sometimes) lower, upper or first-letter casing."""
    r = rng.random()
    if r < 0.35:
        prompt = rng.choice(PREFIXES) + prompt
    elif r < 0.7:
        prompt = prompt + rng.choice(SUFFIXES)
    else:
        prompt = rng.choice(PREFIXES) + prompt + rng.choice(SUFFIXES)
    c = rng.random()
    if c < 0.2:
        prompt = prompt.lower()
    elif c < 0.3:
        prompt = prompt.upper()
    elif c < 0.4:
        prompt = prompt[:1].upper() + prompt[1:]
    return prompt


def sample_example(pools: TrainingPools, cfg: GymConfig, rng: random.Random) -> tuple[str, str, str]:
    """``(kind, prompt, response)``: a kind by the mix weights, a task category by its weight (then an
    item of it), or a built-in / public request (augmented with probability ``augment_prob``)."""
    kinds = ("harmful", "harmless", "task")
    kind = rng.choices(kinds, weights=(cfg.mix_harmful, cfg.mix_harmless, cfg.mix_task))[0]
    if kind == "task":
        if pools.task_by_category:
            cats = sorted(pools.task_by_category)
            weights = [cfg.task_weights.get(c, 1.0) for c in cats]
            p, r = rng.choice(pools.task_by_category[rng.choices(cats, weights=weights)[0]])
        else:
            p, r = rng.choice(pools.task)
        return kind, p, r
    builtin = pools.harmful if kind == "harmful" else pools.harmless
    public = pools.public_harmful if kind == "harmful" else pools.public_harmless
    src = public if public and (not builtin or rng.random() < cfg.public_weight) else builtin
    p, r = rng.choice(src)
    if rng.random() < cfg.augment_prob:
        p = augment(p, rng)
    return kind, p, r
