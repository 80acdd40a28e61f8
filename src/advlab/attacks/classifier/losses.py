"""Per-sample attack objectives (to be maximised). ``logits`` [N, K], labels [N].

- ``ce``: cross-entropy of the true label, CE(z, y);
- ``dlr``: difference of logits ratio (Croce & Hein 2020, eq. 5), −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3);
- ``dlr-targeted``: −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4)) (their eq. 6);
- ``margin``: max_{i≠y} z_i − z_y (the C&W margin).

For a targeted attack with CE the objective is −CE(z, t).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from advlab.errors import ConfigError

LOSSES = ("ce", "dlr", "dlr-targeted", "margin")


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _best_other(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    other = logits.clone()
    other[torch.arange(len(y), device=logits.device), y] = -torch.inf
    return other.amax(dim=1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    zy = logits.gather(1, y[:, None]).squeeze(1)
    return _best_other(logits, y) - zy


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = logits.sort(dim=1).values
    zy = logits.gather(1, y[:, None]).squeeze(1)
    return -(zy - _best_other(logits, y)) / (s[:, -1] - s[:, -3] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    s = logits.sort(dim=1).values
    zy = logits.gather(1, y[:, None]).squeeze(1)
    zt = logits.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (s[:, -1] - 0.5 * (s[:, -3] + s[:, -4]) + 1e-12)


def make_objective(
    loss: str, targeted: bool
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``objective(logits, y, target) -> per-sample value to maximise``."""
    if loss not in LOSSES:
        raise ConfigError(f"unknown attack loss {loss!r}; use one of {', '.join(LOSSES)}")
    if loss == "dlr-targeted" and not targeted:
        raise ConfigError("loss 'dlr-targeted' needs targeted=True; use loss 'dlr' for an untargeted attack")
    if targeted and loss in ("dlr", "margin"):
        raise ConfigError(f"loss {loss!r} is untargeted; use 'ce' or 'dlr-targeted' with targeted=True")
    if loss == "ce":
        if targeted:
            return lambda z, y, t: -ce(z, t)
        return lambda z, y, t: ce(z, y)
    if loss == "margin":
        return lambda z, y, t: margin(z, y)
    if loss == "dlr":
        return lambda z, y, t: dlr(z, y)
    return lambda z, y, t: dlr_targeted(z, y, t)


def min_classes(loss: str) -> int:
    """DLR needs the third largest logit, targeted DLR the fourth."""
    return {"dlr": 3, "dlr-targeted": 4}.get(loss, 2)
