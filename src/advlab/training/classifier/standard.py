"""Standard (empirical risk minimisation) training: minimise E[CE(f(x), y)]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def standard_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy on clean inputs (a per-sample mean: the data-parallel trainer weights it by rows)."""
    return F.cross_entropy(model(x), y)
