"""Robustness-congruent adversarial training (RCAT; Angioni et al. 2024, arXiv 2402.17390).

Fine-tune a new model f (initialised from f_new0) so that it keeps what the old model f_old got right,
on clean and on adversarial inputs. With x* an adversarial example against the model being trained
(FGSM with random start by default, PGD available), the loss on a batch is

    L = (1 − α − β)·CE(f(x*), y) + α·D_{S_new}(f(x*), f_new0(x*)) + β·D_{S_old}(f(x*), f_old(x*)),

S_new = {i : argmax f_new0(x*_i) = y_i}, S_old = {i : argmax f_old(x*_i) = y_i}, and the logit distance

    D_S(a, b) = ½ · 1/(|S|·K) · Σ_{i∈S} Σ_{k=1..K} (a_ik − b_ik)²

i.e. half the mean squared logit difference over the selected rows and the K classes (½·``MSELoss`` on
the selected rows). When S is empty the term is exactly 0 (the reference code divides by |S| and gives
NaN). Defaults α = 0.5, β = 0.4; α, β ≥ 0 and α + β ≤ 1 so that the CE weight is not negative.

The training attack uses FGSM's usual step 1.25·ε (Wong et al. 2020) with projection onto the ε-ball,
not the reference code's absolute step of 1.25 (which always lands on a corner ±ε).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.classifier.registry import make_attack
from advlab.errors import ConfigError
from advlab.torchutil import eval_mode
from advlab.training.classifier.objective import LossTerms, TermLoss

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
TRAIN_ATTACKS = ("fgsm", "pgd")


def row_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """D_i = ½·(1/K)·Σ_k (a_ik − b_ik)² per row ([N]); ``b`` is a fixed reference (no gradient)."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"row_distance needs two [N, K] tensors of one shape, got {a.shape} and {b.shape}")
    return 0.5 * ((a - b.detach()) ** 2).mean(dim=1)


def logit_distance(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """D_S(a, b) = ½·mean over selected rows and classes of (a − b)²; exactly 0 when ``mask`` selects none."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"logit_distance needs two [N, K] tensors of one shape, got {a.shape} and {b.shape}")
    diff2 = (a - b.detach()) ** 2
    if mask is not None:
        mask = mask.to(device=a.device, dtype=torch.bool).flatten()
        diff2 = diff2[mask]
    if diff2.shape[0] == 0:
        return a.sum() * 0.0  # keeps the graph and dtype, no 0/0
    return 0.5 * diff2.mean()


def check_weights(alpha: float, beta: float, *, sum_at_most_one: bool = True, what: str = "RCAT") -> None:
    """α, β finite and ≥ 0 (and α + β ≤ 1 for RCAT, whose CE weight is 1 − α − β)."""
    for name, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(
                f"{what} {name}={v!r} must be a finite number >= 0 (paper default alpha 0.5, beta 0.4)"
            )
    if sum_at_most_one and alpha + beta > 1 + 1e-9:
        raise ConfigError(
            f"{what} alpha + beta = {alpha + beta:g} > 1 would make the CE weight 1 - alpha - beta negative; "
            "pick alpha + beta <= 1, e.g. --alpha 0.5 --beta 0.4"
        )


@dataclass
class RCATConfig:
    """RCAT weights (α toward the pre-update new model, β toward the old model)."""

    alpha: float = 0.5
    beta: float = 0.4

    def __post_init__(self) -> None:
        check_weights(self.alpha, self.beta)


def rcat_terms(
    logits: torch.Tensor,
    y: torch.Tensor,
    logits_new0: torch.Tensor,
    logits_old: torch.Tensor,
    alpha: float,
    beta: float,
) -> LossTerms:
    """The RCAT loss as normalised sums: (1−α−β)·mean CE, α·Σ_{S_new} D_i/|S_new|, β·Σ_{S_old} D_i/|S_old|."""
    s_new = logits_new0.argmax(dim=1) == y
    s_old = logits_old.argmax(dim=1) == y
    return (
        LossTerms()
        .add(1.0 - alpha - beta, F.cross_entropy(logits, y, reduction="none"))
        .add(alpha, row_distance(logits, logits_new0), s_new)
        .add(beta, row_distance(logits, logits_old), s_old)
    )


def rcat_objective(
    logits: torch.Tensor,
    y: torch.Tensor,
    logits_new0: torch.Tensor,
    logits_old: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """The RCAT loss from logits at x*: (1−α−β)·CE + α·D_{S_new}(·, new0) + β·D_{S_old}(·, old)."""
    return rcat_terms(logits, y, logits_new0, logits_old, alpha, beta).total()


def make_train_attack(name: str = "fgsm", eps: float = 0.1, steps: int = 10, norm: str = "linf") -> Attack:
    """The attack that builds x* during fine-tuning: FGSM with random start (step 1.25·ε) or PGD-``steps``
    (last iterate)."""
    if name not in TRAIN_ATTACKS:
        raise ConfigError(f"unknown training attack {name!r}; use one of {', '.join(TRAIN_ATTACKS)}")
    return make_attack(name, eps=eps, steps=steps, norm=norm, random_start=True, keep="last")


def frozen_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of a reference model (eval mode, no gradient)."""
    with eval_mode(model), torch.no_grad():
        return model(x)


def rcat_loss(
    old: nn.Module, new0: nn.Module, alpha: float = 0.5, beta: float = 0.4, attack: Attack | None = None
) -> TermLoss:
    """``loss_fn(model, x, y)`` for ``train_epoch``: RCAT on x* = attack(model, x, y)."""
    check_weights(alpha, beta)
    attack = attack or make_train_attack()

    def terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        x_adv = attack(model, x, y).detach()
        return rcat_terms(model(x_adv), y, frozen_logits(new0, x_adv), frozen_logits(old, x_adv), alpha, beta)

    return TermLoss(terms)


def adversarial_finetune_loss(attack: Attack | None = None) -> TermLoss:
    """Plain adversarial fine-tuning: CE(f(x*), y) with x* = attack(model, x, y) (RCAT with α = β = 0)."""
    attack = attack or make_train_attack()

    def terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        logits = model(attack(model, x, y).detach())
        return LossTerms().add(1.0, F.cross_entropy(logits, y, reduction="none"))

    return TermLoss(terms)
