"""The five defences of issue 14, each measured on one poisoned setting: what PDR and clean accuracy
become, what it cost, and a detail (poisons removed, the trigger's rank). Compute only.

- ``perplexity_filter``: drop the most perplexing share of the training inputs under the clean base
  model, then tune again (training-time, data side);
- ``onion``: ONION word removal on every test input under the clean base model (test time);
- ``in_context``: clean demonstrations of each class before every test input (test time);
- ``continued_clean``: continue tuning the poisoned model on clean data (post-training);
- ``word_label_detector``: flag the words that best predict a label in the training set, drop the
  examples that carry a flagged word with its flagged label, tune again (data side).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advlab.poisoning.detector import trigger_rank, word_label_scores
from advlab.poisoning.evaluate import measure
from advlab.poisoning.perplexity import onion, perplexity_filter
from advlab.poisoning.tasks import TaskExample
from advlab.poisoning.tune import TuneConfig, tune

DEFENCES = ("perplexity_filter", "onion", "in_context", "continued_clean", "word_label_detector")


@dataclass
class DefenceSetting:
    """One poisoned setting: the clean base model, the poisoned set and the model tuned on it."""

    base: Any
    poisoned_model: Any
    tokenizer: Any
    train: Sequence[TaskExample]  # the poisoned training set
    clean_train: Sequence[TaskExample]
    test: Sequence[TaskExample]
    trigger: str
    target: str
    responses: dict[str, str]
    tune: TuneConfig
    ppl_drop: float = 0.05
    n_demos: int = 4
    continued_share: float = 0.25
    detector_top: int = 5
    seed: int = 0


def _n_poisons(examples: Sequence[TaskExample]) -> int:
    return sum(ex.id.startswith("poison-") for ex in examples)


def _retune(s: DefenceSetting, examples: Sequence[TaskExample], start: Any = None) -> tuple[Any, int]:
    model, logs = tune(copy.deepcopy(start if start is not None else s.base), s.tokenizer, examples, s.tune,
                       device=str(next(s.base.parameters()).device))
    return model, len(logs)


def run_defence(name: str, s: DefenceSetting) -> dict[str, Any]:
    """``{metrics, cost, detail}`` of defence ``name`` on setting ``s``."""
    kw = {"seed": s.seed}
    if name == "perplexity_filter":
        kept, removed = perplexity_filter(s.base, s.tokenizer, s.train, s.ppl_drop)
        model, steps = _retune(s, kept)
        m = measure(model, s.tokenizer, s.test, s.trigger, s.responses, s.target, **kw)
        return {"metrics": m, "cost": f"{len(s.train)} scored inputs + a {steps}-step tune",
                "detail": f"dropped {len(removed)} ({100 * s.ppl_drop:g} %), {_n_poisons(removed)} of "
                          f"{_n_poisons(s.train)} poisons among them"}
    if name == "onion":
        n_seq = [0]

        def clean(texts: list[str]) -> list[str]:
            n_seq[0] += sum(len(t.split()) + 1 for t in texts)
            return onion(s.base, s.tokenizer, texts)

        m = measure(s.poisoned_model, s.tokenizer, s.test, s.trigger, s.responses, s.target, clean_input=clean, **kw)
        return {"metrics": m, "cost": f"{n_seq[0]} scored sequences at test time", "detail": "threshold 0"}
    if name == "in_context":
        rng = random.Random(s.seed)
        labels = sorted(s.responses)
        demos = []
        for i in range(s.n_demos):
            pool = [ex for ex in s.clean_train if ex.label == labels[i % len(labels)]]
            ex = rng.choice(pool)
            demos.append((ex.prompt, ex.output))
        m = measure(s.poisoned_model, s.tokenizer, s.test, s.trigger, s.responses, s.target, demos=demos, **kw)
        return {"metrics": m, "cost": f"{s.n_demos} demonstrations before every input", "detail": ""}
    if name == "continued_clean":
        k = max(1, int(round(s.continued_share * len(s.clean_train))))
        clean = random.Random(s.seed).sample(list(s.clean_train), k)
        model, steps = _retune(s, clean, start=s.poisoned_model)
        m = measure(model, s.tokenizer, s.test, s.trigger, s.responses, s.target, **kw)
        return {"metrics": m, "cost": f"a {steps}-step tune on {k} clean examples", "detail": ""}
    if name == "word_label_detector":
        scores = word_label_scores(s.train)
        flagged = {r["word"]: r["label"] for r in scores[: s.detector_top]}
        hit = [any(flagged.get(w) == ex.label for w in set(ex.input.lower().split())) for ex in s.train]
        kept = [ex for ex, h in zip(s.train, hit) if not h]
        removed = [ex for ex, h in zip(s.train, hit) if h]
        model, steps = _retune(s, kept)
        m = measure(model, s.tokenizer, s.test, s.trigger, s.responses, s.target, **kw)
        rank = trigger_rank(scores, s.trigger)
        return {"metrics": m, "cost": f"one counting pass + a {steps}-step tune",
                "detail": f"trigger rank {rank} of {len(scores)}; flagged {', '.join(flagged)}; dropped "
                          f"{len(removed)}, {_n_poisons(removed)} of {_n_poisons(s.train)} poisons",
                "trigger_rank": rank}
    raise ValueError(f"unknown defence {name!r}")
