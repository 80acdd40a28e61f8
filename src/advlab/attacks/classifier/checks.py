"""Sanity checks in the spirit of AutoAttack's ``checks.py``: each warns (RobustnessWarning) when a
robustness number is likely overstated.

- the model returns probabilities instead of logits (softmax: gradients vanish);
- the forward pass is random (two passes differ: use EOT or fix the randomness);
- the gradient of the loss is exactly zero for some inputs (masked or shattered gradients);
- a black-box attack fools points that the white-box attacks could not (gradient masking).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from advlab.attacks.classifier.losses import ce
from advlab.attacks.classifier.validate import RobustnessWarning, warn_if_probabilities


def _warn(msg: str) -> str:
    warnings.warn(msg, RobustnessWarning, stacklevel=3)
    return msg


def check_randomized(model: nn.Module, x: torch.Tensor) -> str | None:
    with torch.no_grad():
        a, b = model(x), model(x)
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-6):
        return _warn(
            "the model's output changes between two forward passes on the same input (randomness, e.g. "
            "dropout in train mode); deterministic attacks then overstate robustness: use EOT or make "
            "the model deterministic"
        )
    return None


def check_zero_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        grad = torch.autograd.grad(ce(model(xg), y).sum(), xg)[0]
    zero = (grad.reshape(grad.shape[0], -1).abs().amax(dim=1) == 0).float().mean().item()
    if zero > 0:
        return _warn(
            f"the loss gradient is exactly zero for {zero:.1%} of the inputs: gradient-based attacks "
            "cannot move them (masked gradients?); check with a black-box or transfer attack"
        )
    return None


def check_probabilities(model: nn.Module, x: torch.Tensor) -> str | None:
    with torch.no_grad():
        logits = model(x)
    if warn_if_probabilities(logits):
        return "the model seems to return probabilities instead of logits"
    return None


def check_black_box(n_black_box_only: int, n: int, name: str) -> str | None:
    if n_black_box_only > 0:
        return _warn(
            f"the black-box attack {name} fooled {n_black_box_only} of {n} points that every white-box "
            "attack left robust: the gradients are probably masked, so the white-box robust accuracy "
            "is overstated"
        )
    return None


def run_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """Run the input-level checks on a batch; returns the warnings issued (also raised as warnings)."""
    out = []
    for msg in (check_probabilities(model, x), check_randomized(model, x), check_zero_gradients(model, x, y)):
        if msg:
            out.append(msg)
    return out
