"""AutoDAN (Liu et al. 2023, arXiv 2310.04451): a genetic algorithm over jailbreak prompts (HarmBench config).

An individual is a prompt *template* with the placeholder ``[REQUEST]``; the user message sent
to the target is the template with the request filled in. Fitness is the target loss — the
mean cross-entropy of the target response given that message (lower is better) — computed in
batches. Each generation (defaults: population 64, 100 steps):

1. *elitism*: the ``max(1, int(elite_fraction · N))`` best templates pass unchanged;
2. *roulette selection*: the other parents are drawn with probability ∝ exp(-(loss - min loss));
3. *sentence-level crossover* (probability ``crossover_rate``): both parents are split into
   sentences and up to ``num_points`` cut points alternate which parent each stretch comes from;
4. *mutation* (probability ``mutation_rate`` per child): rephrasing through a chat backend when one
   is given, else word-level synonym substitution from a built-in table
   (:mod:`advlab.attacks.llm.prototypes`).

The initial population is the prototypes plus mutated copies of them. The search stops after
``steps`` generations, after ``patience`` generations without a better best loss, or (with
``early_stop``) when greedy decoding from the best prompt reproduces the target (checked every
``check_every`` generations). All randomness comes from ``random.Random(seed)``: same seed, same
result. Losses are cached by prompt text, so elites are not re-evaluated.

Result: ``adv_string`` = the best user message (template with the request), ``adv_prompt_ids`` the
full prompt ids the completion must be generated from, ``loss_history[i]`` the best loss in
generation ``i``, ``best_loss`` the lowest loss seen; budget ``forward_passes`` = sequences pushed
through the model (fitness evaluations plus one per early-stop check).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from advlab.attacks.llm.autodan_operators import (
    Mutator,
    crossover,
    fill,
    normalize_template,
    roulette_select,
    split_sentences,
    synonym_mutation,
)
from advlab.attacks.llm.base import AttackBudget, AttackHelpers, AttackPrompt, LLMAttackResult, OnStep
from advlab.attacks.llm.common import AdaptiveChunker, left_pad, model_device, target_logits, target_loss_from_logits
from advlab.attacks.llm.prototypes import PROTOTYPES
from advlab.data.behavior_record import Behavior
from advlab.errors import ConfigError
from advlab.models.chat_api import derive_seed
from advlab.models.formatting import ChatFormatter
from advlab.models.generation import greedy_generate, pad_id_of, stop_token_ids

__all__ = [
    "AutoDANConfig",
    "Mutator",
    "autodan_attack",
    "crossover",
    "fill",
    "normalize_template",
    "roulette_select",
    "run_autodan",
    "split_sentences",
    "synonym_mutation",
    "target_losses",
]


@dataclass
class AutoDANConfig:
    """AutoDAN settings; HarmBench defaults (population 64, 100 steps, mutation rate 0.01, patience 10)."""

    population_size: int = 64
    steps: int = 100
    elite_fraction: float = 0.05
    crossover_rate: float = 0.5
    num_points: int = 5
    mutation_rate: float = 0.01
    word_swap_prob: float = 0.2  # per replaceable word, in a synonym mutation
    patience: int = 10
    early_stop: bool = True
    check_every: int = 5
    batch_size: int = 16  # sequences per forward pass when computing fitness
    rephrase_max_new_tokens: int = 256
    prototypes: tuple[str, ...] | None = None  # None = the built-in prototypes
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "population_size",
            "steps",
            "num_points",
            "patience",
            "check_every",
            "batch_size",
            "rephrase_max_new_tokens",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"AutoDAN {name} must be an integer >= 1; got {value!r}")
        if self.population_size < 2:
            raise ConfigError(f"AutoDAN population_size must be >= 2; got {self.population_size}")
        for name in ("elite_fraction", "crossover_rate", "mutation_rate", "word_swap_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ConfigError(f"AutoDAN {name} must be in [0, 1]; got {value!r}")
        if self.prototypes is not None:
            self.prototypes = tuple(self.prototypes)
            if not self.prototypes or not all(isinstance(p, str) and p.strip() for p in self.prototypes):
                raise ConfigError(
                    "AutoDAN prototypes must be non-empty strings (use [REQUEST] for the request)"
                )

    @property
    def num_elites(self) -> int:
        return max(1, int(self.elite_fraction * self.population_size))


# ----------------------------------------------------------------------------------- model side


def _default_segments(tokenizer: Any, formatter: Any = None) -> Callable[[str, str], Any]:
    """PromptSegments for (user message, target) from a ChatFormatter whose slot is the whole request.

    A given formatter with another slot mode is rebuilt with the same system prompt and slot "request".
    """
    if formatter is None or getattr(formatter, "slot", "request") != "request":
        system = getattr(formatter, "system_prompt", None)
        formatter = ChatFormatter(
            getattr(formatter, "tokenizer", tokenizer), system_prompt=system, slot="request"
        )
    return lambda message, target: formatter.segments(message, message, target)


def target_losses(model: Any, segments: Sequence[Any], batch_size: int = 16) -> list[float]:
    """Mean cross-entropy of each segments' target tokens given its prompt (teacher forcing), in batches.

    Uses :mod:`advlab.attacks.llm.common`: rows of different lengths are left-padded so that every
    target sits at the end (position ids follow the real tokens), and only the target-position
    logits are projected to the vocabulary. Rows are grouped by their target ids.
    """
    device = model_device(model)
    losses: list[float] = [math.nan] * len(segments)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(tuple(seg.target), []).append(i)
    chunker = AdaptiveChunker(batch_size)
    for target, idx in groups.items():
        if not target:
            raise ConfigError("the target tokenises to zero tokens; give a non-empty target")
        ids, mask = left_pad([segments[i].input_ids for i in idx], 0, device)
        tgt = torch.tensor(target, dtype=torch.long, device=device)

        def run(s: int, e: int, ids=ids, mask=mask, tgt=tgt) -> torch.Tensor:
            with torch.no_grad():
                logits = target_logits(model, len(tgt), input_ids=ids[s:e], attention_mask=mask[s:e])
                return target_loss_from_logits(logits, tgt)

        for i, loss in zip(idx, chunker.map(run, len(idx)).tolist()):
            losses[i] = float(loss)
    return losses


def _greedy_text(model: Any, tokenizer: Any, prompt_ids: list[int], max_new_tokens: int) -> str:
    out = greedy_generate(
        model,
        input_ids=[list(prompt_ids)],
        max_new_tokens=max_new_tokens,
        eos_ids=stop_token_ids(model, tokenizer),
        pad_id=pad_id_of(tokenizer),
    )
    return tokenizer.decode(out[0], skip_special_tokens=True)


# ----------------------------------------------------------------------------------- the attack


def run_autodan(
    model: Any,
    tokenizer: Any,
    behavior: Behavior,
    config: AutoDANConfig | None = None,
    formatter: Any = None,
    backend: Any = None,
    segments_fn: Callable[[str, str], Any] | None = None,
    loss_fn: Callable[[Sequence[Any]], list[float]] | None = None,
    on_step: OnStep | None = None,
) -> LLMAttackResult:
    """Run AutoDAN on one behaviour (see the module docstring).

    ``formatter``: a ChatFormatter whose slot is the whole request (default: built from the tokenizer);
    ``backend``: a ChatBackend used to rephrase in mutations (None = synonym substitution);
    ``segments_fn(message, target) -> PromptSegments`` and ``loss_fn(segments) -> losses`` override
    the formatter and the fitness (tests, other models); ``on_step(generation, best_loss)`` is called
    after each generation (1-based).
    """
    cfg = config or AutoDANConfig()
    if not behavior.target or not behavior.target.strip():
        raise ConfigError(f"behaviour {behavior.id!r} has an empty target; AutoDAN's fitness needs one")
    if not behavior.request.strip():
        raise ConfigError(f"behaviour {behavior.id!r} has an empty request")
    if segments_fn is None:
        segments_fn = _default_segments(tokenizer, formatter)
    if loss_fn is None:
        loss_fn = lambda segs: target_losses(model, segs, cfg.batch_size)  # noqa: E731

    rng = random.Random(derive_seed(cfg.seed, 0xA070DA))
    mutate = Mutator(backend, cfg.word_swap_prob, cfg.rephrase_max_new_tokens)
    request, target = behavior.request, behavior.target
    protos = [normalize_template(p) for p in (cfg.prototypes or PROTOTYPES)]
    population = [
        protos[i % len(protos)] if i < len(protos) else mutate(protos[i % len(protos)], rng)
        for i in range(cfg.population_size)
    ]

    cache: dict[str, tuple[float, Any]] = {}
    forward = 0

    def evaluate(pop: list[str]) -> list[float]:
        nonlocal forward
        todo = list(dict.fromkeys(t for t in pop if t not in cache))
        if todo:
            segs = [segments_fn(fill(t, request), target) for t in todo]
            for t, seg, loss in zip(todo, segs, loss_fn(segs)):
                cache[t] = (float(loss), seg)
            forward += len(todo)
        return [cache[t][0] for t in pop]

    best_template, best_loss = population[0], math.inf
    loss_history: list[float] = []
    stale = 0
    stop_reason = "max steps"
    steps = 0
    for step in range(cfg.steps):
        steps += 1
        losses = evaluate(population)
        order = sorted(range(len(population)), key=lambda i: (losses[i], i))
        gen_best = losses[order[0]]
        loss_history.append(gen_best)
        if gen_best < best_loss - 1e-12:
            best_loss, best_template, stale = gen_best, population[order[0]], 0
        else:
            stale += 1
        if on_step is not None:
            on_step(step + 1, best_loss)
        if cfg.early_stop and (step + 1) % cfg.check_every == 0:
            forward += 1
            text = _greedy_text(
                model,
                tokenizer,
                cache[best_template][1].prompt_ids,
                len(tokenizer(target, add_special_tokens=False)["input_ids"]) + 8,
            )
            if text.strip().startswith(target.strip()):
                stop_reason = "target reproduced"
                break
        if stale >= cfg.patience:
            stop_reason = f"no improvement in {cfg.patience} steps"
            break
        if step == cfg.steps - 1:
            break
        # next generation
        elites = [population[i] for i in order[: cfg.num_elites]]
        n_children = cfg.population_size - len(elites)
        parents = [population[i] for i in roulette_select(losses, n_children + (n_children % 2), rng)]
        children: list[str] = []
        for i in range(0, len(parents), 2):
            a, b = parents[i], parents[i + 1]
            if rng.random() < cfg.crossover_rate:
                a, b = crossover(a, b, cfg.num_points, rng)
            children.extend([a, b])
        children = [mutate(c, rng) if rng.random() < cfg.mutation_rate else c for c in children[:n_children]]
        population = elites + children

    best_seg = cache[best_template][1]
    return LLMAttackResult(
        method="autodan",
        best_loss=float(best_loss),
        loss_history=loss_history,
        adv_string=fill(best_template, request),
        adv_prompt_ids=list(best_seg.prompt_ids),
        budget=AttackBudget(steps=steps, forward_passes=forward, backward_passes=0),
        early_stopped=stop_reason != "max steps",
        extra={
            "adv_slot": "request",
            "template": best_template,
            "stop_reason": stop_reason,
            "mutations": mutate.calls,
            "rephrase_fallbacks": mutate.fallbacks,
            "mutation": "rephrase" if backend is not None else "synonym",
            "config": asdict(cfg),
        },
    )


def autodan_attack(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[AttackPrompt],
    config: AutoDANConfig,
    *,
    on_step: OnStep | None = None,
    helpers: AttackHelpers | None = None,
) -> LLMAttackResult:
    """AutoDAN in the attack protocol, on one prompt; ``helpers.rephraser`` (a chat backend) rephrases in
    mutations, else synonym substitution. The slot is the whole request (the formatter's system prompt kept)."""
    if len(prompts) != 1:
        raise ConfigError("AutoDAN attacks one behaviour per call; pass one prompt")
    (prompt,) = prompts
    rephraser = helpers.rephraser if helpers is not None else None
    return run_autodan(model, tokenizer, prompt.behavior, config, formatter=prompt.formatter, backend=rephraser,
                       on_step=on_step)
