"""GCG's reusable candidate search (Zou et al. 2023): token gradient, sampling, filtering, buffer.

Used by GCG and by poisoning trigger learning (GBTL).

- Token gradient: with the slot written as a one-hot matrix E ∈ {0,1}^{S×V}, its embeddings are
  E·W_E; ∇_E L [S, V] is a first-order estimate of the loss change of swapping slot token i for v.
- Sampling: per candidate, ``n_replace`` random slot positions each get one of the top-k tokens of
  −∇_E L at that position (disallowed tokens masked to +inf first).
- Re-tokenisation filter: a candidate survives only when decode→encode of the *full prompt*
  (before + slot + after) gives back exactly the same ids, checked for all candidates in one
  batched tokenizer call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from advlab.attacks.llm.common import embedding_matrix
from advlab.errors import ConfigError


def one_hot_gradient(
    model: Any, slot_ids: torch.Tensor, loss_of_slot_embeds: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """∇ of ``loss_of_slot_embeds(one_hot @ W_E)`` w.r.t. the one-hot [S, V] of ``slot_ids`` [S].

    No gradient reaches the model weights (``torch.autograd.grad`` w.r.t. the one-hot only).
    """
    weight = embedding_matrix(model)
    one_hot = torch.zeros(slot_ids.shape[0], weight.shape[0], dtype=weight.dtype, device=weight.device)
    one_hot.scatter_(1, slot_ids.to(weight.device).unsqueeze(1), 1.0)
    one_hot.requires_grad_(True)
    embeds = (one_hot @ weight.detach()).unsqueeze(0)
    loss = loss_of_slot_embeds(embeds)
    (grad,) = torch.autograd.grad(loss, one_hot)
    return grad


def sample_candidates(
    slot_ids: torch.Tensor,
    grad: torch.Tensor,
    *,
    search_width: int,
    topk: int,
    n_replace: int = 1,
    not_allowed: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[search_width, S] candidates: each replaces ``n_replace`` random positions by top-k tokens."""
    s, v = grad.shape
    if not 1 <= n_replace <= s:
        raise ConfigError(f"n_replace={n_replace} must be between 1 and the slot length {s}")
    if not 1 <= topk <= v:
        raise ConfigError(f"topk={topk} must be between 1 and the vocabulary size {v}")
    g = grad.detach().float().clone()
    if not_allowed is not None:
        g[:, not_allowed.to(g.device)] = float("inf")
    top = (-g).topk(topk, dim=1).indices.cpu()  # [S, k]
    rand = torch.rand(search_width, s, generator=generator)
    pos = rand.argsort(dim=1)[:, :n_replace]  # [W, n]
    choice = torch.randint(0, topk, (search_width, n_replace), generator=generator)
    vals = top[pos, choice]  # [W, n]
    cands = slot_ids.cpu().unsqueeze(0).repeat(search_width, 1)
    cands.scatter_(1, pos, vals)
    return cands


def allowed_rows(candidates: torch.Tensor, not_allowed: torch.Tensor | None) -> torch.Tensor:
    """[W] bool: no disallowed token in the row (top-k may include them when k exceeds the allowed set)."""
    if not_allowed is None:
        return torch.ones(candidates.shape[0], dtype=torch.bool)
    return ~not_allowed.cpu()[candidates].any(dim=1)


class RetokenizationFilter:
    """Keep candidates whose full prompt survives decode→encode unchanged (one batched call).

    When the unmodified prompt itself does not round-trip (some tokenizers add or merge spaces
    around special tokens), the check falls back to the slot alone (nanoGCG's check).
    """

    def __init__(self, tokenizer: Any, before: Sequence[int], after: Sequence[int], current: Sequence[int]):
        self.tokenizer = tokenizer
        self.before = list(before)
        self.after = list(after)
        self.full_context = bool(self._survives([list(current)], full=True)[0])

    def _survives(self, rows: list[list[int]], full: bool) -> list[bool]:
        seqs = [self.before + r + self.after for r in rows] if full else rows
        texts = self.tokenizer.batch_decode(seqs, clean_up_tokenization_spaces=False)
        enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [list(e) == s for e, s in zip(enc, seqs)]

    def __call__(self, candidates: torch.Tensor) -> torch.Tensor:
        """[W] bool mask of surviving candidates."""
        rows = candidates.tolist()
        return torch.tensor(self._survives(rows, full=self.full_context), dtype=torch.bool)


class CandidateBuffer:
    """The ``size`` best (loss, ids) seen so far; GCG continues from the best (nanoGCG's buffer)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.items: list[tuple[float, torch.Tensor]] = []

    def add(self, loss: float, ids: torch.Tensor) -> None:
        if len(self.items) < self.size:
            self.items.append((loss, ids.clone()))
        elif loss < self.items[-1][0]:
            self.items[-1] = (loss, ids.clone())
        else:
            return
        self.items.sort(key=lambda x: x[0])

    @property
    def best_ids(self) -> torch.Tensor:
        return self.items[0][1]

    @property
    def best_loss(self) -> float:
        return self.items[0][0]
