"""Fast gradient sign method (Goodfellow et al. 2015): x' = clip_[0,1](x + ε·sign(∇ₓ CE(f(x), y))).

With ``random_start=True`` it is the "FGSM with random start" of Wong et al. 2020 (used for fast
adversarial training and by RCAT): x₀ ~ U(B_ε(x)), x' = clip(Π(x₀ + α·sign(∇)), α = 1.25·ε by default.
Under L2 the step is ε·g/‖g‖₂ (the fast gradient method). One step of the shared loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.base import AttackResult, RunWithoutEvaluation
from advlab.attacks.classifier.loop import Callback
from advlab.attacks.classifier.pgd import PGD
from advlab.attacks.classifier.validate import check_eps


@dataclass
class FGSM(RunWithoutEvaluation):
    """FGSM: ``FGSM(eps=0.1)(model, x, y) -> x_adv`` (one gradient step, last iterate)."""

    eps: float = 8 / 255
    norm: str = "linf"
    random_start: bool = False
    step_size: float | None = None
    targeted: bool = False
    loss: str = "ce"
    callback: Callback | None = None
    seed: int | None = None
    model_mode: str = "eval"

    def __post_init__(self) -> None:
        self.eps = check_eps(self.eps)
        if self.step_size is not None:
            check_eps(self.step_size, "step_size")
        self._pgd = self._as_pgd()

    def _as_pgd(self) -> PGD:
        alpha = (
            self.step_size
            if self.step_size is not None
            else (1.25 * self.eps if self.random_start else self.eps)
        )
        return PGD(
            eps=self.eps,
            steps=1,
            step_size=alpha,
            norm=self.norm,
            random_start=self.random_start,
            targeted=self.targeted,
            loss=self.loss,
            keep="last",
            callback=self.callback,
            seed=self.seed,
            model_mode=self.model_mode,
        )

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        evaluate: bool = True,
    ) -> AttackResult:
        self._pgd.callback = self.callback
        return self._pgd.run(model, x, y, target, evaluate=evaluate)
