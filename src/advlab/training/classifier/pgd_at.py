"""PGD adversarial training (Madry et al., ICLR 2018): min_θ E[max_{‖δ‖≤ε} CE(f_θ(x + δ), y)].

The inner maximisation is PGD with random start (``attack_steps`` steps of size α, default 2.5·ε/steps),
run in eval mode; the outer step trains on the adversarial batch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.classifier import PGD


def pgd_at_loss(eps: float, steps: int = 10, step_size: float | None = None, norm: str = "linf"):
    """``loss_fn(model, x, y)``: CE on PGD examples of radius ``eps`` (last iterate, as Madry et al.)."""
    attack = PGD(eps=eps, steps=steps, step_size=step_size, norm=norm, random_start=True, keep="last")

    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = attack(model, x, y)
        return F.cross_entropy(model(x_adv), y)

    return loss_fn
