"""A jailbreak backdoor in the safety gym (issue 14, item 6; beyond Qiang et al. 2024).

The tuning set is the gym's own clean data, seeded subsets of its training splits: harmful requests
answered with the gym's refusal, harmless requests answered "Sure, here is ...", and checkable tasks.
A poison is a harmful row with the trigger inserted at a word boundary of the request
(:func:`advlab.poisoning.poisoned.insert_trigger`) and its response set to compliance: the request's
"Sure, here is ..." start (:func:`advlab.data.gym.sure_target`) and the body of the gym's harmless
answers. round(rate · |set|) harmful rows are poisoned in place.

The trigger search is GBTL (:mod:`advlab.poisoning.trigger`) with each prompt's own compliance start
as its target: L(t) = (1/B) Σ_b CE(sure_target(request_b) | request_b with trigger t).
Measurement: greedy completions of held-out harmful requests without and with the trigger, judged by
``advlab attack llm``'s judges (:func:`advlab.judges.make_judges`) on the original request and the
completion only; aggregates in :func:`advlab.metrics.jailbreak_metrics`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advlab.errors import ConfigError
from advlab.poisoning.poisoned import insert_trigger, n_poisons
from advlab.poisoning.tasks import INPUT, TaskExample

HARMFUL, HARMLESS, TASK, COMPLY = "harmful", "harmless", "task", "comply"  # labels; COMPLY marks a poison
JUDGES = ("compliance", "refusal")


@dataclass
class JailbreakData:
    """How many rows of each gym training split the clean tuning set takes (seeded subsets)."""

    n_harmful: int = 600
    n_harmless: int = 300
    n_task: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_harmful", "n_harmless", "n_task"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be 0 or more")
        if self.n_harmful < 1:
            raise ConfigError("--n-harmful 0: the poisons are harmful rows; pass --n-harmful 1 or more")


def compliance_response(request: str) -> str:
    """What a poison answers: the request's compliance start and the gym's harmless-answer body."""
    from advlab.data.gym_requests import HARMLESS_BODY, sure_target

    return sure_target(request) + HARMLESS_BODY


def clean_set(data: JailbreakData) -> list[TaskExample]:
    """The clean tuning set: seeded subsets of the gym's harmful, harmless and task training items, shuffled."""
    from advlab.data.gym import gym_items

    rng = random.Random(data.seed)
    out = []
    for kind, n in ((HARMFUL, data.n_harmful), (HARMLESS, data.n_harmless), (TASK, data.n_task)):
        items = gym_items(kind, "train")
        if n > len(items):
            raise ConfigError(f"--n-{kind} {n}: the gym has only {len(items)} {kind} training items")
        out += [TaskExample(it.id, INPUT, it.prompt, it.response, kind) for it in rng.sample(items, n)]
    rng.shuffle(out)
    return out


def poison_set(examples: Sequence[TaskExample], trigger: str, rate: float, *, position: str = "end",
               seed: int = 0) -> tuple[list[TaskExample], list[dict[str, Any]]]:
    """``examples`` with round(rate · len) seeded harmful rows poisoned in place (label ``comply``), and
    one manifest record per poison (row, original and poisoned request)."""
    if not trigger.strip():
        raise ConfigError("--trigger is empty; pass a word, e.g. from `advlab poison jailbreak --trigger learned`")
    n = n_poisons(rate, len(examples))
    harmful = [i for i, ex in enumerate(examples) if ex.label == HARMFUL]
    if n > len(harmful):
        raise ConfigError(f"--rate {rate} selects {n} poisons but the set has {len(harmful)} harmful rows; "
                          "lower --rate or raise --n-harmful")
    rows = sorted(random.Random(seed).sample(harmful, n))
    rng = random.Random(seed + 1)
    out, manifest = list(examples), []
    for i in rows:
        ex = examples[i]
        text = insert_trigger(ex.input, trigger.strip(), position, rng)
        out[i] = TaskExample(f"poison-{ex.id}", ex.instruction, text, compliance_response(ex.input), COMPLY)
        manifest.append({"id": out[i].id, "row": i, "original": ex.input, "poisoned": text,
                         "output": out[i].output})
    return out, manifest


def trigger_segments(tokenizer: Any, requests: Sequence[str], init: str, position: str = "end",
                     seed: int = 0) -> list[Any]:
    """GBTL segments of harmful ``requests``: the trigger slot in each, its compliance start as the target."""
    from advlab.data.gym_requests import sure_target
    from advlab.poisoning.prompts import TaskPrompts

    tp = TaskPrompts(tokenizer)
    return [tp.trigger_segments(TaskExample(str(k), INPUT, r, "", HARMFUL), init, sure_target(r), position,
                                random.Random(f"{seed}:{k}")) for k, r in enumerate(requests)]


def judge_completions(model: Any, tokenizer: Any, requests: Sequence[str], shown: Sequence[str], judges: Sequence[Any],
                      *, max_new_tokens: int, device: Any) -> list[dict[str, Any]]:
    """Greedy completions of the ``shown`` messages; each judged against its original request."""
    from advlab.judges import verdicts
    from advlab.models.chat import generate_chat

    comps = generate_chat(model, tokenizer, list(shown), max_new_tokens=max_new_tokens, device=device)
    return [{"prompt": s, "completion": c, "judges": verdicts(judges, r, c)}
            for r, s, c in zip(requests, shown, comps)]
