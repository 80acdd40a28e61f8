"""Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness ...").

APGD-CE (untargeted, cross-entropy) and APGD-T (targeted DLR) with the reference defaults: 100
iterations, initial step η = 2ε, momentum α = 0.75, checkpoints w_j = ⌈p_j·N⌉ with p₀ = 0,
p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), and ρ = 0.75. At each checkpoint the
step size of a sample is halved (and it restarts from its best point) if

1. the loss grew in at most ρ·(w_j − w_{j−1}) of the steps since the last checkpoint, or
2. its step size was not reduced at the last checkpoint and its best loss has not improved since.

Update (eq. 2): z = P(x_k + η·d(∇)), x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1})), with
plain steps at k = 0. The random start follows the reference (a random point on the L∞ box surface
scaled to ε, or an L2 point at radius ε), clipped to [0, 1]. APGD-T runs once per target class, the
2nd … (n+1)-th most likely classes at the clean input, n = min(9, K − 1), on the points still robust.
The schedule follows the reference implementation (auto-attack, ``autopgd_base.py``), as an
``(i, x_i, ∇_i, ℓ_i) -> x_{i+1}`` step rule of the shared loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.base import AttackResult, check_common, mode_of, prepare, to_result
from advlab.attacks.classifier.constraints import Box, L2Ball, LinfBall, _flat, _rand, _view, make_ball
from advlab.attacks.classifier.loop import Callback, LoopResult, combine, gradient_loop, make_generator
from advlab.attacks.classifier.losses import make_objective, min_classes
from advlab.attacks.classifier.validate import check_steps
from advlab.errors import ConfigError


def checkpoints(n_iter: int) -> list[int]:
    """The iterations w_j at which APGD may halve its step (Croce & Hein 2020, sec. 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * n_iter, 9)) for q in p if q <= 1})


def reference_start(x: torch.Tensor, ball: LinfBall | L2Ball, gen: torch.Generator | None) -> torch.Tensor:
    """The reference random start: x + ε·t/‖t‖ (t uniform in [−1, 1] for L∞, Gaussian for L2)."""
    if isinstance(ball, LinfBall):
        t = 2 * _rand(x.shape, x, gen) - 1
        t = t / _view(_flat(t).abs().amax(dim=1).clamp_min(1e-12), t)
    else:
        t = _rand(x.shape, x, gen, normal=True)
        t = t / _view(_flat(t).norm(dim=1).clamp_min(1e-12), t)
    return torch.clamp(x + ball.eps * t, 0.0, 1.0)


class APGDStep:
    """The APGD step rule with momentum and the checkpoint step-size schedule (state per sample)."""

    def __init__(
        self,
        x: torch.Tensor,
        ball: LinfBall | L2Ball,
        box: Box,
        n_iter: int,
        rho: float = 0.75,
        momentum: float = 0.75,
    ) -> None:
        self.x, self.ball, self.box = x, ball, box
        self.rho, self.momentum = rho, momentum
        n = x.shape[0]
        self.eta = torch.full((n,), 2.0 * ball.eps, device=x.device, dtype=x.dtype)
        # reference: first check after n_iter_2 = max(⌊0.22 N⌋, 1) steps, interval shrinking by
        # size_decr = max(⌊0.03 N⌋, 1) down to n_iter_min = max(⌊0.06 N⌋, 1)
        self.k = max(int(0.22 * n_iter), 1)
        self.size_decr = max(int(0.03 * n_iter), 1)
        self.k_min = max(int(0.06 * n_iter), 1)
        self.counter = 0
        self.losses: list[torch.Tensor] = []  # ℓ(x_0), ℓ(x_1), ...
        self.best_loss: torch.Tensor | None = None
        self.best_x: torch.Tensor | None = None
        self.best_grad: torch.Tensor | None = None
        self.best_at_check: torch.Tensor | None = None
        self.reduced_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
        self.x_prev: torch.Tensor | None = None
        self.checked_at: list[int] = []  # iterations at which the schedule was checked (for tests)

    def _p(self, z: torch.Tensor) -> torch.Tensor:
        return self.box.clip(self.ball.project(z, self.x))

    def _track(self, i: int, x_adv: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor) -> tuple:
        self.losses.append(loss)
        if self.best_loss is None:  # x_0
            self.best_loss, self.best_x, self.best_grad = loss.clone(), x_adv.clone(), grad.clone()
            self.best_at_check = loss.clone()
            return x_adv, grad
        better = loss > self.best_loss
        self.best_x = torch.where(_view(better, x_adv), x_adv, self.best_x)
        self.best_grad = torch.where(_view(better, grad), grad, self.best_grad)
        self.best_loss = torch.where(better, loss, self.best_loss)
        self.counter += 1
        if self.counter == self.k:
            self.checked_at.append(i)
            # condition 1: the loss increased in at most ρ·k of the last k steps
            recent = torch.stack(self.losses[-(self.k + 1) :])
            if len(self.losses) == self.k + 1:
                # the reference keeps no ℓ(x₀) in this window and compares ℓ(x₁) with 0 (kept for parity)
                recent[0] = 0.0
            increases = (recent[1:] > recent[:-1]).float().sum(0)
            osc = increases <= self.k * self.rho
            # condition 2: not reduced at the last check, and the best loss did not improve since
            no_impr = ~self.reduced_at_check & (self.best_at_check >= self.best_loss)
            reduce = osc | no_impr
            self.reduced_at_check = reduce.clone()
            self.best_at_check = self.best_loss.clone()
            self.eta = torch.where(reduce, self.eta / 2.0, self.eta)
            x_adv = torch.where(_view(reduce, x_adv), self.best_x, x_adv)
            grad = torch.where(_view(reduce, grad), self.best_grad, grad)
            self.k = max(self.k - self.size_decr, self.k_min)
            self.counter = 0
        return x_adv, grad

    def __call__(self, i: int, x_adv: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        x_adv, grad = self._track(i, x_adv, grad, loss)
        a = 1.0 if i == 0 else self.momentum
        prev = x_adv if self.x_prev is None else self.x_prev
        diff = x_adv - prev
        self.x_prev = x_adv.clone()
        z = self._p(x_adv + _view(self.eta, x_adv) * self.ball.direction(grad))
        return self._p(x_adv + a * (z - x_adv) + (1 - a) * diff)


@dataclass
class APGD:
    """APGD: ``APGD(eps=0.1, steps=100, norm="linf")(model, x, y) -> x_adv`` (APGD-CE by default).

    ``loss="dlr"`` gives APGD-DLR; ``targeted=True`` (loss ``dlr-targeted`` by default) gives APGD-T over
    ``n_target_classes`` targets (min(9, K − 1)). Called with ``target=``, a targeted APGD attacks that
    target only. Returns per sample a successful iterate when one was found, else the best-loss iterate.
    """

    eps: float = 8 / 255
    steps: int = 100
    norm: str = "linf"
    loss: str | None = None
    targeted: bool = False
    n_target_classes: int = 9
    restarts: int = 1
    rho: float = 0.75
    momentum: float = 0.75
    callback: Callback | None = None
    seed: int | None = None
    model_mode: str = "eval"

    def __post_init__(self) -> None:
        self.eps, self.norm = check_common(self.eps, self.norm, "best", self.model_mode)
        check_steps(self.steps)
        check_steps(self.restarts, "restarts")
        check_steps(self.n_target_classes, "n_target_classes")
        if self.loss is None:
            self.loss = "dlr-targeted" if self.targeted else "ce"
        if not (0 < self.rho <= 1) or not (0 < self.momentum <= 1):
            raise ConfigError(
                f"rho={self.rho} and momentum={self.momentum} must lie in (0, 1]; the defaults are 0.75"
            )
        make_objective(self.loss, self.targeted)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ):
        return self.run(model, x, y, target).x_adv

    def _once(self, model, x, y, target, gen) -> LoopResult:
        ball, box = make_ball(self.norm, self.eps), Box()
        return gradient_loop(
            model,
            x,
            y,
            objective=make_objective(self.loss, self.targeted),
            steps=self.steps,
            start=reference_start(x, ball, gen) if self.eps > 0 else x,
            step_rule=APGDStep(x, ball, box, self.steps, self.rho, self.momentum),
            target=target,
            targeted=self.targeted,
            keep="best",
            callback=self.callback,
            min_classes=min_classes(self.loss),
        )

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> AttackResult:
        explicit_target = target is not None
        x, y, target = prepare(model, x, y, target, targeted=False)
        gen = make_generator(self.seed)
        with mode_of(model, self.model_mode):
            if not self.targeted or explicit_target:
                result = None
                for _ in range(self.restarts):
                    res = self._once(model, x, y, target, gen)
                    result = res if result is None else combine(result, res)
                return to_result(result, x, self.norm)
            return self._run_targets(model, x, y, gen)

    def _run_targets(self, model, x, y, gen) -> AttackResult:
        """APGD-T: each target class in turn (2nd most likely first), on the points not yet fooled."""
        with torch.no_grad():
            clean_logits = model(x)
        k = clean_logits.shape[1]
        if k < min_classes(self.loss):
            raise ConfigError(
                f"loss {self.loss!r} needs at least {min_classes(self.loss)} classes, the model has {k}"
            )
        order = clean_logits.argsort(dim=1, descending=True)
        n_targets = min(self.n_target_classes, k - 1)
        x_adv = x.clone()
        success = clean_logits.argmax(1) != y  # already misclassified: nothing to do
        objective = torch.full((x.shape[0],), -torch.inf, device=x.device)
        fwd, bwd = 1, 0
        for t_idx in range(1, n_targets + 1):
            todo = ~success
            if not todo.any():
                break
            for _ in range(self.restarts):
                idx = todo.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                res = self._once(model, x[idx], y[idx], order[idx, t_idx], gen)
                # success of a targeted run = hits the target; any misclassification counts for robustness
                with torch.no_grad():
                    fooled = model(res.x_adv).argmax(1) != y[idx]
                fwd += res.forward_passes + 1
                bwd += res.backward_passes
                better = fooled | (res.objective > objective[idx])
                upd = idx[better & ~success[idx]]
                x_adv[upd] = res.x_adv[(better & ~success[idx])]
                objective[upd] = res.objective[(better & ~success[idx])]
                success[idx[fooled]] = True
                todo = ~success
        norms = make_ball(self.norm, self.eps).norms(x_adv - x)
        return AttackResult(x_adv, success, objective, norms, fwd, bwd)


def apgd_ce(eps: float, steps: int = 100, norm: str = "linf", **kw) -> APGD:
    """APGD with cross-entropy (AutoAttack's first attack)."""
    return APGD(eps=eps, steps=steps, norm=norm, loss="ce", **kw)


def apgd_t(eps: float, steps: int = 100, norm: str = "linf", n_target_classes: int = 9, **kw) -> APGD:
    """Targeted APGD with the DLR loss over the most likely wrong classes (AutoAttack's second attack)."""
    return APGD(
        eps=eps,
        steps=steps,
        norm=norm,
        loss="dlr-targeted",
        targeted=True,
        n_target_classes=n_target_classes,
        **kw,
    )
