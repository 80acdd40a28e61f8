"""Projected gradient descent (Madry et al. 2018) under L∞ or L2, untargeted or targeted.

x_{i+1} = clip_[0,1](Π_{B_ε(x)}(x_i + α·d(∇ₓℓ(x_i)))), d = sign for L∞ and g/‖g‖₂ for L2, ℓ = CE
(or −CE to the target). Optional random start (uniform in the ball), restarts and per-sample
best-iterate tracking (success first, then highest loss). The step size is ``step_size`` (absolute)
or ``rel_step_size``·ε; by default 2.5·ε/steps (Madry et al.'s rule, enough to cross the ball).
It never stops at the label flip unless ``stop_at_flip=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.base import AttackResult, RunWithoutEvaluation, check_common, mode_of, prepare, to_result
from advlab.attacks.classifier.constraints import Box, make_ball
from advlab.attacks.classifier.loop import Callback, SignStep, combine, gradient_loop, make_generator
from advlab.attacks.classifier.losses import make_objective, min_classes
from advlab.attacks.classifier.validate import check_eps, check_steps
from advlab.errors import ConfigError


@dataclass
class PGD(RunWithoutEvaluation):
    """PGD: ``PGD(eps=0.1, steps=40, norm="linf")(model, x, y) -> x_adv``.

    ``keep="last"`` returns the final iterate (as torchattacks does); ``"best"`` the best one seen.
    ``callback(step, x_adv, loss, logits)`` is called at every iterate x₀ … x_steps (return True to stop).
    ``seed`` fixes the random start (None: torch's global RNG).
    """

    eps: float = 8 / 255
    steps: int = 40
    step_size: float | None = None
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    targeted: bool = False
    loss: str = "ce"
    keep: str = "best"
    stop_at_flip: bool = False
    callback: Callback | None = None
    seed: int | None = None
    rel_step_size: float | None = None
    model_mode: str = "eval"

    def __post_init__(self) -> None:
        self.eps, self.norm = check_common(self.eps, self.norm, self.keep, self.model_mode)
        check_steps(self.steps)
        check_steps(self.restarts, "restarts")
        if self.step_size is not None and self.rel_step_size is not None:
            raise ConfigError("pass step_size (absolute) or rel_step_size (times eps), not both")
        if self.step_size is not None:
            check_eps(self.step_size, "step_size")
        if self.rel_step_size is not None:
            check_eps(self.rel_step_size, "rel_step_size")
        make_objective(self.loss, self.targeted)  # validates the loss name

    @property
    def alpha(self) -> float:
        """The absolute step size α."""
        if self.step_size is not None:
            return float(self.step_size)
        rel = self.rel_step_size if self.rel_step_size is not None else 2.5 / self.steps
        return float(rel) * self.eps

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None = None,
        evaluate: bool = True,
    ) -> AttackResult:
        """Attack and report per-sample success (``evaluate=False`` may skip the final forward pass)."""
        x, y, target = prepare(model, x, y, target, self.targeted)
        ball, box = make_ball(self.norm, self.eps), Box()
        objective = make_objective(self.loss, self.targeted)
        gen = make_generator(self.seed)
        result = None
        with mode_of(model, self.model_mode):
            for _ in range(self.restarts):
                start = box.clip(ball.random_start(x, gen)) if self.random_start and self.eps > 0 else x
                res = gradient_loop(
                    model,
                    x,
                    y,
                    objective=objective,
                    steps=self.steps,
                    start=start,
                    step_rule=SignStep(x, ball, self.alpha, box),
                    target=target,
                    targeted=self.targeted,
                    keep=self.keep,
                    stop_at_flip=self.stop_at_flip,
                    callback=self.callback,
                    min_classes=min_classes(self.loss),
                    final_eval=evaluate or self.restarts > 1,
                )
                result = res if result is None else combine(result, res)
        return to_result(result, x, self.norm)
