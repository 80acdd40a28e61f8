"""GCG's objective over several prompts and models (universal and transfer GCG; reused for trigger search).

For one slot s shared by behaviours b = 1..B (each with its own ``before | slot | after | target``
segments) and models m = 1..M sharing one tokenizer,

    L(s) = (1/B) Σ_b Σ_m L_{b,m}(s),   L_{b,m}(s) = −(1/T_b) Σ_t log p_m(y_{b,t} | before_b, s, after_b, y_{b,<t})

(or the mellowmax variant). B = M = 1 is individual GCG (Zou et al. 2023, eq. 2), B > 1 the universal
suffix (eq. 3), M > 1 the transfer attack. Each (model, behaviour) pair keeps its prefix KV cache,
computed once; the objective counts the sequences it pushes through the models (its ``budget``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from advlab.attacks.llm.base import AttackBudget
from advlab.attacks.llm.common import (
    AdaptiveChunker,
    PrefixCache,
    batch_target_loss,
    compute_prefix_cache,
    embedding_matrix,
    model_device,
    target_logits,
    target_loss_from_logits,
    to_ids_tensor,
)
from advlab.attacks.llm.gcg_candidates import one_hot_gradient
from advlab.models.segments import PromptSegments


@dataclass
class _Pair:
    """One (model, behaviour) pair with its cached prefix and fixed tensors."""

    model: Any
    prefix: PrefixCache | None
    after: torch.Tensor
    target: torch.Tensor
    chunker: AdaptiveChunker = field(default_factory=AdaptiveChunker)


class MultiPromptObjective:
    """L(s) of the module docstring: ``losses(candidates)`` (no grad) and ``gradient(slot)`` (token gradient).

    ``budget.forward_passes`` counts every sequence pushed through a model (prefix passes included),
    ``budget.backward_passes`` every gradient pass.
    """

    def __init__(
        self,
        models: Sequence[Any],
        segments: Sequence[PromptSegments],
        *,
        loss_kind: str = "ce",
        mellowmax_alpha: float = 1.0,
        chunk_size: int | None = None,
    ) -> None:
        self.n_prompts = len(segments)
        self.loss_kind, self.mellowmax_alpha = loss_kind, mellowmax_alpha
        self.budget = AttackBudget()
        self.pairs: list[_Pair] = []
        for m in models:
            dev = model_device(m)
            for s in segments:
                prefix = compute_prefix_cache(m, s.before)
                self.budget.forward_passes += 1 if s.before else 0
                after, target = to_ids_tensor(s.after, dev), to_ids_tensor(s.target, dev)
                self.pairs.append(_Pair(m, prefix, after, target, AdaptiveChunker(chunk_size)))

    @property
    def chunk_sizes(self) -> list[int | None]:
        return [p.chunker.chunk_size for p in self.pairs]

    def losses(self, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L(s) for each candidate slot [W, S] -> ([W] loss on CPU, [W] bool: greedy decoding reproduces
        every target under every model)."""
        total = torch.zeros(candidates.shape[0])
        matched = torch.ones(candidates.shape[0], dtype=torch.bool)
        for p in self.pairs:
            c = candidates.to(model_device(p.model))
            rows = torch.cat([c, p.after.expand(c.shape[0], -1), p.target.expand(c.shape[0], -1)], dim=1)
            loss, match = batch_target_loss(
                p.model, rows, p.target, prefix=p.prefix, kind=self.loss_kind, mellowmax_alpha=self.mellowmax_alpha,
                chunker=p.chunker, return_matches=True,
            )
            total += loss.cpu() / self.n_prompts
            matched &= match.cpu()
            self.budget.forward_passes += int(c.shape[0])
        return total, matched

    def gradient(self, slot_ids: torch.Tensor) -> torch.Tensor:
        """∇ of L w.r.t. the one-hot slot [S, V] (float32, CPU), summed over models, averaged over prompts."""
        grad = None
        for p in self.pairs:
            g = one_hot_gradient(p.model, slot_ids.to(model_device(p.model)), self._slot_loss_fn(p))
            g = g.float().cpu() / self.n_prompts
            grad = g if grad is None else grad + g
            self.budget.forward_passes += 1
            self.budget.backward_passes += 1
        return grad

    def _slot_loss_fn(self, p: _Pair) -> Callable[[torch.Tensor], torch.Tensor]:
        weight = embedding_matrix(p.model)

        def fn(slot_embeds: torch.Tensor) -> torch.Tensor:
            rest = weight[torch.cat([p.after, p.target])].detach().unsqueeze(0)
            embeds = torch.cat([slot_embeds.to(weight.dtype), rest], dim=1)
            logits = target_logits(p.model, p.target.shape[0], inputs_embeds=embeds, prefix=p.prefix)
            return target_loss_from_logits(
                logits, p.target, kind=self.loss_kind, mellowmax_alpha=self.mellowmax_alpha
            ).sum()

        return fn


def prompt_with_slot(segments: PromptSegments, slot_ids: Sequence[int]) -> list[int]:
    """The prompt ids ``before + slot + after`` of a behaviour with another slot (e.g. a universal suffix)."""
    return [*segments.before, *slot_ids, *segments.after]


def target_loss(model: Any, prompt_ids: Sequence[int], target_ids: Sequence[int]) -> float:
    """L_b = −(1/T) Σ_t log p(y_t | prompt, y_<t): one behaviour's own target loss (nan without a target)."""
    if not target_ids:
        return float("nan")
    dev = model_device(model)
    rows = to_ids_tensor([*prompt_ids, *target_ids], dev).unsqueeze(0)
    return float(batch_target_loss(model, rows, to_ids_tensor(target_ids, dev))[0])
