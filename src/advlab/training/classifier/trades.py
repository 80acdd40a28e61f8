"""TRADES (Zhang et al., ICML 2019): min_θ E[CE(f(x), y) + β·max_{‖x'−x‖≤ε} KL(p(x) ‖ p(x'))].

As in the reference code: the inner maximisation starts at x + 0.001·N(0, I), takes ``steps`` sign
(L∞) or normalised (L2) steps on KL(p(x) ‖ p(x')) with the model in eval mode and p(x) fixed, and
projects onto the ball and [0, 1]; the KL term is summed over classes and averaged over the batch.
Default β = 6. The inner loop is the shared attack loop with a KL objective.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.classifier.constraints import Box, make_ball
from advlab.attacks.classifier.loop import SignStep, attack_mode, gradient_loop
from advlab.training.classifier.objective import LossTerms, TermLoss


def kl_per_sample(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """KL(p_clean ‖ softmax(logits_adv)) per sample."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="none").sum(dim=1)


def trades_adversary(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
) -> torch.Tensor:
    """x' maximising KL(p(x) ‖ p(x')) within the ball (TRADES' inner problem)."""
    ball, box = make_ball(norm, eps), Box()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    with attack_mode(model, "eval"):
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)
        y_dummy = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        start = box.clip(ball.project(x + 0.001 * torch.randn_like(x), x))
        res = gradient_loop(
            model,
            x,
            y_dummy,
            objective=lambda z, y, t: kl_per_sample(z, p_clean),
            steps=steps,
            start=start,
            step_rule=SignStep(x, ball, alpha, box),
            keep="last",
            final_eval=False,
        )
    return res.x_adv


def trades_loss(
    eps: float,
    beta: float = 6.0,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    adversary: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> TermLoss:
    """``loss_fn(model, x, y)`` = CE(f(x), y) + β·mean KL(p(x) ‖ p(x')); x' = ``adversary(model, x)``
    (default :func:`trades_adversary`). Both terms are per-sample means."""
    adversary = adversary or (lambda model, x: trades_adversary(model, x, eps, steps, step_size, norm))

    def terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LossTerms:
        x_adv = adversary(model, x)
        logits = model(x)
        robust = kl_per_sample(model(x_adv), F.softmax(logits, dim=1))
        return LossTerms().add(1.0, F.cross_entropy(logits, y, reduction="none")).add(beta, robust)

    return TermLoss(terms)
