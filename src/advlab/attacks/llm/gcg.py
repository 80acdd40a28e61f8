"""Greedy Coordinate Gradient (Zou et al. 2023, arXiv 2307.15043), nanoGCG-compatible options.

Each step: (1) the token gradient ∇_E L of the loss w.r.t. the one-hot slot (summed over models,
averaged over behaviours); (2) ``search_width`` candidates, each replacing ``n_replace`` slot
tokens by one of the top-k tokens of −∇_E L; (3) drop candidates with disallowed tokens or that
do not survive decode→encode in the full prompt; (4) exact loss of every surviving candidate —
the shared prefix KV cache is computed once and expanded (a view) over the candidate batch, and
only the target positions are projected to the vocabulary; (5) move to the best candidate (with
``buffer_size`` > 0: keep the best candidates seen and continue from the best of them).

Universal: one slot for several behaviours (loss = mean over behaviours). Transfer: several
models sharing one tokenizer (loss = sum over models). Early stop when greedy decoding reproduces
the target (argmax at every target position, read off the loss pass for free) for every
behaviour and model. Budget: every sequence pushed through a model counts one forward pass
(counted by the objective, :class:`~advlab.attacks.llm.gcg_objective.MultiPromptObjective`); wall-clock
time is measured by the registry, not here.

Entry points: :func:`run_gcg` (prompt segments in) and :func:`gcg_attack` (the LLM-attack protocol of
:mod:`advlab.attacks.llm.base`: several prompts = universal, ``helpers.transfer`` = transfer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from advlab.attacks.llm.base import AttackHelpers, AttackPrompt, LLMAttackResult, OnStep, StepInfo
from advlab.attacks.llm.common import disallowed_token_mask, embedding_matrix
from advlab.attacks.llm.gcg_candidates import CandidateBuffer, RetokenizationFilter, allowed_rows, sample_candidates
from advlab.attacks.llm.gcg_objective import MultiPromptObjective, prompt_with_slot
from advlab.errors import require
from advlab.models.segments import PromptSegments

DEFAULT_INIT = " ".join(["x"] * 20)


@dataclass
class GCGConfig:
    """GCG options (defaults as nanoGCG 0.3.0 / PAPERS.md §2)."""

    steps: int = 250
    search_width: int = 512
    topk: int = 256
    n_replace: int = 1
    optim_str_init: str = DEFAULT_INIT
    buffer_size: int = 0
    use_mellowmax: bool = False
    mellowmax_alpha: float = 1.0
    allow_non_ascii: bool = False
    allow_special: bool = False
    filter_ids: bool = True
    early_stop: bool = True
    chunk_size: int | None = None  # candidates per forward; None = all at once (halved on OOM)
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.steps >= 1, f"--steps {self.steps}: GCG needs at least 1 step; pass --steps 1 or more")
        require(self.search_width >= 1, f"--search-width {self.search_width}: must be at least 1 (default 512)")
        require(self.topk >= 1, f"--topk {self.topk}: must be at least 1 (default 256)")
        require(self.n_replace >= 1, f"--n-replace {self.n_replace}: must be at least 1 (default 1)")
        require(self.buffer_size >= 0, f"buffer_size {self.buffer_size}: must be 0 or more")
        require(self.mellowmax_alpha > 0, f"mellowmax_alpha {self.mellowmax_alpha}: must be positive")
        require(self.chunk_size is None or self.chunk_size >= 1, "chunk_size must be at least 1 (or None)")
        require(bool(self.optim_str_init.strip()), "the GCG initial string is empty; pass e.g. 'x x x x x'")

    @property
    def loss_kind(self) -> str:
        return "mellowmax" if self.use_mellowmax else "ce"


def _validate(models: Sequence[Any], segments: Sequence[PromptSegments], tokenizer: Any, cfg: GCGConfig) -> None:
    require(len(models) >= 1, "GCG needs at least one model")
    require(len(segments) >= 1, "GCG needs at least one behaviour")
    vocab = embedding_matrix(models[0]).shape[0]
    for m in models[1:]:
        require(
            embedding_matrix(m).shape[0] == vocab,
            "transfer GCG needs models that share one tokenizer and vocabulary size",
        )
    require(cfg.topk <= vocab, f"--topk {cfg.topk} exceeds the vocabulary size {vocab}; pass --topk {vocab} or less")
    slot_len = len(segments[0].slot)
    for s in segments:
        require(len(s.target) > 0, "a behaviour has an empty target; give every behaviour a target string")
        require(
            len(s.slot) > 0,
            f"the initial string {cfg.optim_str_init!r} tokenises to zero tokens; pass a non-empty --init string",
        )
        require(
            len(s.slot) == slot_len,
            "universal GCG needs the initial string to tokenise to the same length in every behaviour",
        )
    require(
        cfg.n_replace <= slot_len,
        f"--n-replace {cfg.n_replace} exceeds the {slot_len} slot tokens; pass --n-replace {slot_len} or less",
    )


def run_gcg(
    model: Any | Sequence[Any],
    tokenizer: Any,
    segments: PromptSegments | Sequence[PromptSegments],
    config: GCGConfig | None = None,
    *,
    on_step: OnStep | None = None,
    stop_check: Callable[[int, list[int]], bool] | None = None,
    not_allowed: torch.Tensor | None = None,
    candidate_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_scored: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> LLMAttackResult:
    """Optimise the slot of ``segments`` (one, or several for a universal suffix) against ``model``
    (one, or several for transfer). Returns the best slot found and the budget spent.

    Hooks, all optional: ``on_step(StepInfo(step, loss, current))`` after every step, ``current`` the slot
    ids the next step starts from; ``stop_check(step, best_slot_ids) -> bool`` too (True stops the attack,
    e.g. HarmBench's "generate and look for a refusal"; its cost is the caller's); ``not_allowed`` a [V] bool
    mask of tokens the slot may not hold, replacing the config's (e.g. trigger search's word vocabulary);
    ``candidate_filter(candidates [W, S]) -> [W] bool`` keeps candidates beside the re-tokenisation check;
    ``on_scored(candidates, losses)`` sees every scored batch, the initial slot included."""
    cfg = config or GCGConfig()
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    segs = list(segments) if isinstance(segments, (list, tuple)) else [segments]
    _validate(models, segs, tokenizer, cfg)
    vocab = embedding_matrix(models[0]).shape[0]
    if not_allowed is None:
        not_allowed = disallowed_token_mask(
            tokenizer, vocab, allow_non_ascii=cfg.allow_non_ascii, allow_special=cfg.allow_special
        )
    require(bool((~not_allowed).any()), "every token is disallowed; pass --allow-non-ascii or check the tokenizer")
    objective = MultiPromptObjective(
        models, segs, loss_kind=cfg.loss_kind, mellowmax_alpha=cfg.mellowmax_alpha, chunk_size=cfg.chunk_size
    )
    filters = [RetokenizationFilter(tokenizer, s.before, s.after, s.slot) for s in segs] if cfg.filter_ids else []
    gen = torch.Generator().manual_seed(cfg.seed)

    def score(cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses, matches = objective.losses(cands)
        if on_scored is not None:
            on_scored(cands, losses)
        return losses, matches

    current = torch.as_tensor(segs[0].slot, dtype=torch.long)
    init_losses, init_match = score(current.unsqueeze(0))
    init_loss = float(init_losses[0])
    buffer = CandidateBuffer(cfg.buffer_size)
    buffer.add(init_loss, current)
    best_loss, best_ids = init_loss, current.clone()
    history: list[float] = []
    n_filtered_out = 0
    early = cfg.early_stop and bool(init_match[0])
    step = 0
    while not early and step < cfg.steps:
        step += 1
        # 1. token gradient, 2. sample candidates, 3. drop disallowed / non-round-tripping ones
        grad = objective.gradient(current)
        cands = sample_candidates(current, grad, search_width=cfg.search_width, topk=cfg.topk,
                                  n_replace=cfg.n_replace, not_allowed=not_allowed, generator=gen)
        keep = allowed_rows(cands, not_allowed)
        if candidate_filter is not None:
            keep &= candidate_filter(cands)
        for f in filters:
            keep &= f(cands)
        n_filtered_out += int((~keep).sum())
        cands = cands[keep]
        if cands.shape[0] == 0:  # nothing survived: keep the current slot this step
            history.append(history[-1] if history else init_loss)
            if on_step:
                on_step(StepInfo(step, history[-1], current.clone()))
            continue
        # 4. exact loss of every candidate, 5. move to the best (or the best of the buffer)
        losses, matches = score(cands)
        i = int(torch.argmin(losses))
        step_loss = float(losses[i])
        if cfg.buffer_size == 0:  # plain GCG (nanoGCG buffer_size=0)
            current = cands[i].clone()
        else:
            buffer.add(step_loss, cands[i])
            current = buffer.best_ids
        history.append(step_loss)
        if step_loss < best_loss:
            best_loss, best_ids = step_loss, cands[i].clone()
        if on_step:
            on_step(StepInfo(step, step_loss, current.clone()))
        if cfg.early_stop and bool(matches[i]):
            best_loss, best_ids = step_loss, cands[i].clone()
            early = True
        elif stop_check is not None and stop_check(step, best_ids.tolist()):
            early = True

    budget = objective.budget
    budget.steps = step
    best_list = best_ids.tolist()
    prompts = [prompt_with_slot(s, best_list) for s in segs]
    return LLMAttackResult(
        method="gcg",
        best_loss=best_loss,
        loss_history=history,
        adv_string=tokenizer.decode(best_list, clean_up_tokenization_spaces=False),
        adv_prompt_ids=prompts[0],
        budget=budget,
        early_stopped=early,
        extra={
            "adv_ids": best_list,
            "prompt_ids_per_behavior": prompts,
            "filtered_out": n_filtered_out,
            "chunk_size": objective.chunk_sizes,
            "init_loss": init_loss,
        },
    )


def gcg_attack(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[AttackPrompt],
    config: GCGConfig,
    *,
    on_step: OnStep | None = None,
    helpers: AttackHelpers | None = None,
) -> LLMAttackResult:
    """GCG in the attack protocol: one prompt = individual; several = one universal suffix
    s* = argmin_s (1/B) Σ_b L_b(s); ``helpers.transfer`` models join the objective (losses summed)."""
    transfer = list(helpers.transfer) if helpers is not None else []
    segs = [p.segments(config.optim_str_init) for p in prompts]
    return run_gcg([model, *transfer] if transfer else model, tokenizer, segs, config, on_step=on_step)
