"""Positive-congruent training (PCT; Yan et al., CVPR 2021) and PCT on adversarial examples (PCT-AT).

Baselines of RCAT (Angioni et al. 2024, sec. 4). On inputs z (clean x for PCT; x* = FGSM with random
start against the model being trained for PCT-AT):

    L = CE(f(z), y) + α·(1/N) Σ_i D_i + β·(1/N) Σ_i 1[i ∈ S_old]·D_i,
    S_old = {i : argmax f_old(z_i) = y_i},   D_i = ½·(1/K) Σ_k (f(z_i)_k − f_old(z_i)_k)²,

over a batch of N samples and K classes. The first distance term distils toward the old model on every
sample, the second is the focal term on what the old model gets right. Both divide by the batch size N,
as Yan et al.'s PCT and the RCAT authors' reference ``PCTLoss`` do (not by |S_old|: that would inflate β
by N/|S_old|). Paper defaults α = 1, β ∈ {1, 2, 5, 10}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlab.training.classifier.objective import LossTerms, TermLoss
from advlab.training.classifier.rcat import (
    Attack,
    check_weights,
    frozen_logits,
    make_train_attack,
    row_distance,
)


def pct_terms(
    logits: torch.Tensor, y: torch.Tensor, logits_old: torch.Tensor, alpha: float = 1.0, beta: float = 1.0
) -> LossTerms:
    """CE + α·mean_i D_i + β·(1/N)·Σ_i 1[i∈S_old]·D_i as normalised sums (every term over the batch size N)."""
    s_old = (logits_old.argmax(dim=1) == y).to(logits.dtype)
    d = row_distance(logits, logits_old)
    return (
        LossTerms()
        .add(1.0, F.cross_entropy(logits, y, reduction="none"))
        .add(alpha, d)
        .add(beta, d * s_old)
    )


def pct_objective(
    logits: torch.Tensor, y: torch.Tensor, logits_old: torch.Tensor, alpha: float = 1.0, beta: float = 1.0
) -> torch.Tensor:
    """CE + α·mean_i D_i + β·(1/N)·Σ_{i∈S_old} D_i (focal term over the batch size N)."""
    return pct_terms(logits, y, logits_old, alpha, beta).total()


def pct_loss(old: nn.Module, alpha: float = 1.0, beta: float = 1.0) -> TermLoss:
    """``loss_fn(model, x, y)``: PCT on clean inputs."""
    check_weights(alpha, beta, sum_at_most_one=False, what="PCT")

    def terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        return pct_terms(model(x), y, frozen_logits(old, x), alpha, beta)

    return TermLoss(terms)


def pct_at_loss(old: nn.Module, alpha: float = 1.0, beta: float = 1.0, attack: Attack | None = None) -> TermLoss:
    """``loss_fn(model, x, y)``: PCT on x* = attack(model, x, y) (FGSM with random start by default)."""
    check_weights(alpha, beta, sum_at_most_one=False, what="PCT-AT")
    attack = attack or make_train_attack()

    def terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        x_adv = attack(model, x, y).detach()
        return pct_terms(model(x_adv), y, frozen_logits(old, x_adv), alpha, beta)

    return TermLoss(terms)
