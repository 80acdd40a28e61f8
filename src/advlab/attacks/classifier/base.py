"""What every classifier attack shares: option checks, the result type, and the call protocol.

An attack is a dataclass of options; calling it, ``attack(model, x, y)``, returns adversarial inputs
of the same shape on the same device; ``attack.run(model, x, y)`` returns an :class:`AttackResult`
with per-sample success, objective and query counts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.constraints import canonical_norm, perturbation_norms
from advlab.attacks.classifier.loop import KEEP, LoopResult, attack_mode
from advlab.attacks.classifier.validate import check_eps, check_inputs
from advlab.errors import ConfigError


@dataclass
class AttackResult:
    """Adversarial inputs and what is known about them, per sample."""

    x_adv: torch.Tensor
    success: torch.Tensor  # bool [N]: the attack's goal is met (misclassified / hits the target)
    objective: torch.Tensor  # float [N]: attack objective at x_adv (nan if not evaluated)
    norms: torch.Tensor  # float [N]: ‖x_adv − x‖ in the attack's norm
    forward_passes: int
    backward_passes: int


def check_common(eps: float, norm: str, keep: str = "best", model_mode: str = "eval") -> tuple[float, str]:
    eps = check_eps(eps)
    norm = canonical_norm(norm)
    if keep not in KEEP:
        raise ConfigError(
            f"keep={keep!r}: use 'best' (best iterate per sample) or 'last' (the final iterate)"
        )
    if model_mode not in ("eval", "keep"):
        raise ConfigError(f"model_mode={model_mode!r}: use 'eval' (attack the model in eval mode) or 'keep'")
    return eps, norm


def prepare(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, targeted: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate the batch and move labels to the inputs' device."""
    if not isinstance(model, nn.Module) and not callable(model):
        raise ConfigError("model must be a torch nn.Module (or a callable) returning logits")
    if targeted and target is None:
        raise ConfigError("a targeted attack needs target labels: attack(model, x, y, target=t)")
    check_inputs(x, y, target)
    y = y.to(x.device)
    if target is not None:
        target = target.to(x.device)
    return x.detach(), y, target


def to_result(res: LoopResult, x: torch.Tensor, norm: str) -> AttackResult:
    return AttackResult(
        x_adv=res.x_adv,
        success=res.success,
        objective=res.objective,
        norms=perturbation_norms(res.x_adv, x, norm),
        forward_passes=res.forward_passes,
        backward_passes=res.backward_passes,
    )


def mode_of(model: nn.Module, mode: str):
    """``attack_mode`` for modules; a no-op for plain callables."""
    return attack_mode(model, mode) if isinstance(model, nn.Module) else contextlib.nullcontext()
