"""Input checks shared by every classifier attack: a bad input is a clear error, never a wrong number."""

from __future__ import annotations

import math
import warnings

import torch

from advlab.errors import ConfigError, DataError


class RobustnessWarning(UserWarning):
    """A sign that a robustness number may be wrong (softmax outputs, randomness, masked gradients)."""


def check_eps(eps: float, name: str = "eps") -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={eps!r} is not a number; pass e.g. {name}=0.1") from None
    if not value == value or value < 0 or value == float("inf"):  # NaN, negative or infinite
        raise ConfigError(f"{name}={eps} must be a finite number >= 0 (inputs are in [0, 1]); pass e.g. 0.1")
    return value


def check_steps(steps: int, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"{name}={steps!r} must be an integer >= 1; pass e.g. {name}=10")
    return steps


def check_number(value: float, name: str, *, positive: bool = False) -> float:
    """A finite number >= 0 (> 0 with ``positive``); ConfigError naming ``name`` otherwise."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    if not ok or (positive and value == 0):
        raise ConfigError(f"{name}={value!r} must be a finite number {'>' if positive else '>='} 0")
    return float(value)


def check_inputs(x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> None:
    """Inputs are a float batch in [0, 1]; labels are integers, one per input."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise DataError("attack inputs must be torch tensors: x [N, ...] in [0, 1] and integer labels y [N]")
    if not x.is_floating_point():
        raise DataError(f"inputs have dtype {x.dtype}; pass floats in [0, 1] (e.g. x.float() / 255)")
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(f"inputs have shape {tuple(x.shape)}; pass a non-empty batch [N, ...]")
    for name, lab in (("labels", y), ("targets", target)):
        if lab is None:
            continue
        if lab.dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.bool):
            raise DataError(f"{name} have dtype {lab.dtype}; pass integer class indices (e.g. y.long())")
        if lab.dim() != 1 or lab.shape[0] != x.shape[0]:
            raise DataError(
                f"batch size mismatch: {x.shape[0]} inputs but {name} of shape {tuple(lab.shape)}; "
                "pass one class index per input"
            )
        if lab.numel() and int(lab.min()) < 0:
            raise DataError(f"{name} contain {int(lab.min())}; class indices must be >= 0")
    if not torch.isfinite(x).all():
        raise DataError("inputs contain NaN or inf; pass finite values in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"inputs span [{lo:.4g}, {hi:.4g}], outside [0, 1]; pass unnormalised images in [0, 1] "
            "(normalisation belongs inside the model)"
        )


def check_logits(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None, min_classes: int = 2
) -> None:
    """Labels in range for the model's classes; warn when the model seems to return probabilities."""
    if logits.dim() != 2:
        raise DataError(
            f"the model returned shape {tuple(logits.shape)}; a classifier must return logits [N, K]"
        )
    if logits.shape[0] != y.shape[0]:
        raise DataError(f"the model returned {logits.shape[0]} rows for {y.shape[0]} inputs; check the model")
    k = logits.shape[1]
    for name, lab in (("labels", y), ("targets", target)):
        if lab is not None and lab.numel() and int(lab.max()) >= k:
            raise DataError(
                f"{name} contain {int(lab.max())} but the model has {k} classes (0..{k - 1}); fix the labels"
            )
    if k < min_classes:
        raise ConfigError(
            f"this loss needs at least {min_classes} classes but the model has {k}; use loss='ce'"
        )
    warn_if_probabilities(logits)


def warn_if_probabilities(logits: torch.Tensor) -> bool:
    """AutoAttack's check: rows in [0, 1] summing to 1 look like softmax outputs, not logits."""
    with torch.no_grad():
        z = logits.detach().float()
        probs = bool(
            (z >= 0).all()
            and (z <= 1).all()
            and torch.allclose(z.sum(1), torch.ones_like(z[:, 0]), atol=1e-4)
        )
    if probs:
        warnings.warn(
            "the model's outputs are in [0, 1] and sum to 1: it seems to return probabilities; attacks and "
            "losses expect logits (remove the final softmax), otherwise gradients vanish and "
            "robustness is overstated",
            RobustnessWarning,
            stacklevel=3,
        )
    return probs
