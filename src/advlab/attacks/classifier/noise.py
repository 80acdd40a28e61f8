"""A black-box baseline: random corners of the ball (L∞: ±ε per pixel; L2: random directions at radius ε).

It uses no gradient, only predictions. It is weak by design; its job in a worst-case evaluation is the
AutoAttack sanity check: if it fools points that every white-box attack left robust, the gradients are
likely masked and the white-box numbers overstate robustness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.base import AttackResult, check_common, mode_of, prepare
from advlab.attacks.classifier.constraints import Box, LinfBall, _flat, _rand, _view, make_ball
from advlab.attacks.classifier.loop import make_generator
from advlab.attacks.classifier.losses import ce
from advlab.attacks.classifier.validate import check_logits, check_steps


@dataclass
class RandomNoise:
    """``RandomNoise(eps=0.1, tries=20)(model, x, y)``: best of ``tries`` random points on the ball."""

    eps: float = 8 / 255
    norm: str = "linf"
    tries: int = 20
    seed: int | None = None
    model_mode: str = "eval"
    black_box = True  # used by the worst-case sanity check

    def __post_init__(self) -> None:
        self.eps, self.norm = check_common(self.eps, self.norm, "best", self.model_mode)
        check_steps(self.tries, "tries")

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ):
        return self.run(model, x, y).x_adv

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> AttackResult:
        x, y, _ = prepare(model, x, y, None, False)
        ball, box = make_ball(self.norm, self.eps), Box()
        gen = make_generator(self.seed)
        n = x.shape[0]
        best_x = x.clone()
        best_loss = torch.full((n,), -torch.inf, device=x.device)
        best_succ = torch.zeros(n, dtype=torch.bool, device=x.device)
        with torch.no_grad(), mode_of(model, self.model_mode):
            for t in range(self.tries):
                if isinstance(ball, LinfBall):
                    d = self.eps * (2 * (_rand(x.shape, x, gen) > 0.5).to(x.dtype) - 1)
                else:
                    g = _rand(x.shape, x, gen, normal=True)
                    d = self.eps * g / _view(_flat(g).norm(dim=1).clamp_min(1e-12), g)
                cand = box.clip(x + d)
                logits = model(cand)
                if t == 0:
                    check_logits(logits, y)
                loss = ce(logits, y).float()
                succ = logits.argmax(1) != y
                upd = (succ & ~best_succ) | ((succ == best_succ) & (loss > best_loss))
                best_x[upd], best_loss[upd], best_succ[upd] = cand[upd], loss[upd], succ[upd]
        return AttackResult(best_x, best_succ, best_loss, ball.norms(best_x - x), self.tries, 0)
