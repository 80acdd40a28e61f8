"""Accuracy under attack, per sample: the one place that attacks a classifier batch by batch and reads it out.

A sample is **robust** iff the model classifies it correctly both clean and at the attack's output, so
robust accuracy ≤ clean accuracy by construction. :func:`robust_flags` also keeps what the callers report
(predictions, cross-entropies, the adversarial inputs and, for the worst-case evaluation, which attack
fooled each sample).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab import metrics as M
from advlab.torchutil import eval_mode

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RobustFlags:
    """Per-sample outcome of one model on (x, y), on CPU."""

    correct: torch.Tensor  # bool [N]: clean prediction is right
    robust: torch.Tensor  # bool [N]: right clean and under the attack
    clean_pred: torch.Tensor  # long [N]
    adv_pred: torch.Tensor  # long [N]
    clean_loss: torch.Tensor  # float [N] cross-entropy
    adv_loss: torch.Tensor  # float [N]
    x_adv: torch.Tensor  # [N, ...] the attack's output (x itself without an attack)
    fooled_by: list[Any] = field(default_factory=list)  # worst case: the attack that fooled each sample

    @property
    def accuracy(self) -> float:
        return M.accuracy(self.correct.long(), torch.ones_like(self.correct, dtype=torch.long))

    @property
    def robust_accuracy(self) -> float:
        return M.robust_accuracy(self.robust)


def robust_flags(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack | None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> RobustFlags:
    """Attack ``model`` white-box on (x, y) in batches (``attack(model, xb, yb)``; an attack with an
    ``evaluate`` method, the worst case, also says which attack fooled each sample) and classify the clean
    and the adversarial inputs in eval mode. ``attack=None``: no attack (robust = correct)."""
    device = torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("c", "r", "pc", "pa", "lc", "la", "xa")}
    fooled: list[Any] = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            names: list[Any] = [None] * len(yb)
            if attack is None:
                xa = xb
            elif hasattr(attack, "evaluate"):
                res = attack.evaluate(model, xb, yb)
                xa, names = res.x_adv, list(res.fooled_by)
            else:
                xa = attack(model, xb, yb)
            xa = xa.detach()
            with torch.no_grad():
                lc, la = model(xb), model(xa)
            pc, pa = lc.argmax(1), la.argmax(1)
            for key, v in (("c", pc == yb), ("r", (pc == yb) & (pa == yb)), ("pc", pc), ("pa", pa),
                           ("lc", F.cross_entropy(lc, yb, reduction="none")),
                           ("la", F.cross_entropy(la, yb, reduction="none")), ("xa", xa)):
                parts[key].append(v.detach().cpu())
            fooled += names
    cat = {k: torch.cat(v) if v else torch.empty(0) for k, v in parts.items()}
    return RobustFlags(cat["c"].bool(), cat["r"].bool(), cat["pc"], cat["pa"], cat["lc"], cat["la"], cat["xa"],
                       fooled)
