"""Training losses as normalised sums, so that data-parallel training optimises the one-process objective.

A loss over a batch B is written as

    L(B) = Σ_k w_k · S_k(B) / N_k(B),    S_k(B) = Σ_{i∈B} m_ik·ℓ_ik,    N_k(B) = Σ_{i∈B} m_ik,

with per-sample terms ℓ_ik, 0/1 selections m_ik (all ones for a per-sample mean) and a term that is 0 when
its selection is empty. Cross-entropy is one term with N = |B|; RCAT's masked distances have N = |S|.
Split over processes (B = ∪_r B_r), the normalisers are summed first, N_k = Σ_r N_k(B_r), and each process
back-propagates Σ_k w_k·S_k(B_r)/N_k; the sum of those gradients over processes is exactly ∇L(B). Weighting
each process's own L(B_r) by |B_r|/|B| instead would be right only when every N_k is |B|.

A training loss is ``loss_fn(model, x, y) -> scalar``. A plain function is taken to be a per-sample mean
(N = |B|). A :class:`TermLoss` also gives its :class:`LossTerms` (``loss_fn.terms(model, x, y)``), which
the data-parallel trainer uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

MAX_TERMS = 8  # normalisers are all-reduced as one fixed-size vector (a process without rows sends zeros)


class LossTerms:
    """Σ_k w_k · S_k / N_k: the sums S_k keep the graph, the normalisers N_k are counts."""

    def __init__(self) -> None:
        self.weights: list[float] = []
        self.sums: list[torch.Tensor] = []
        self.counts: list[float] = []

    def add(self, weight: float, per_sample: torch.Tensor, mask: torch.Tensor | None = None) -> LossTerms:
        """Add w·(Σ_i m_i·ℓ_i)/(Σ_i m_i); ``mask`` None selects every sample (a per-sample mean)."""
        if mask is None:
            total, count = per_sample.sum(), float(per_sample.shape[0])
        else:
            m = mask.to(device=per_sample.device, dtype=torch.bool).flatten()
            total, count = per_sample[m].sum() if m.any() else per_sample.sum() * 0.0, float(m.sum())
        if len(self.sums) == MAX_TERMS:
            raise ValueError(f"a loss may have at most {MAX_TERMS} terms")
        self.weights.append(float(weight))
        self.sums.append(total)
        self.counts.append(count)
        return self

    def total(self, counts: list[float] | None = None) -> torch.Tensor:
        """Σ_k w_k·S_k/N_k with the given normalisers (default: this batch's own); a term with N_k = 0 is 0."""
        counts = self.counts if counts is None else counts
        out = self.sums[0] * 0.0
        for w, s, n in zip(self.weights, self.sums, counts):
            if n > 0 and w != 0:
                out = out + w * s / n
        return out

    @classmethod
    def mean(cls, value: torch.Tensor, n: int) -> LossTerms:
        """A scalar per-sample mean over ``n`` rows as one term (S = n·value, N = n)."""
        out = cls()
        out.weights.append(1.0)
        out.sums.append(value * n)
        out.counts.append(float(n))
        return out


class TermLoss:
    """A training loss from a ``terms(model, x, y) -> LossTerms`` function; calling it gives the scalar."""

    def __init__(self, terms: Callable[[nn.Module, torch.Tensor, torch.Tensor], LossTerms]) -> None:
        self.terms = terms

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.terms(model, x, y).total()


def loss_terms(loss_fn: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
    """The terms of ``loss_fn`` on a batch: its own (a :class:`TermLoss`) or one per-sample mean term."""
    terms = getattr(loss_fn, "terms", None)
    if terms is not None:
        return terms(model, x, y)
    return LossTerms.mean(loss_fn(model, x, y), int(x.shape[0]))
