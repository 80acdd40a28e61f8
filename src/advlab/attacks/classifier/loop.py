"""The one gradient attack loop shared by FGSM, PGD and APGD (cf. Foolbox 3's gradient-descent base).

The loop owns the forward/backward passes, the callback, per-sample best tracking and early
stopping; an attack supplies small hooks:

- ``start``: the first iterate x₀ (the clean input, or a random point of the ball);
- ``step_rule(i, x_i, grad_i, objective_i) -> x_{i+1}``: the update, which uses the threat model's
  ``direction`` (steepest ascent), ``project`` (onto the ball) and the box ``clip`` (domain).
  The default, :class:`SignStep`, is PGD's x_{i+1} = clip(Π_ball(x_i + α·direction(∇ℓ(x_i)))).

The objective ℓ is maximised (for targeted attacks it is −CE to the target). Gradients are taken
with ``torch.autograd.grad`` with respect to the input only, so model parameters never get ``.grad``;
the model runs in eval mode during the attack and its modes are restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.classifier.constraints import Box, L2Ball, LinfBall, _view
from advlab.attacks.classifier.validate import check_logits
from advlab.torchutil import eval_mode

# callback(step, x_adv, objective, logits) -> optional True to stop the attack early
Callback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], "bool | None"]
Objective = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
KEEP = ("best", "last")


@dataclass
class LoopResult:
    """Output of one run of the loop (one restart)."""

    x_adv: torch.Tensor  # [N, ...] the kept iterate per sample
    objective: torch.Tensor  # [N] objective at the kept iterate (nan if it was never evaluated)
    success: torch.Tensor  # [N] bool: misclassified (untargeted) / classified as target (targeted)
    logits: torch.Tensor | None  # [N, K] at the kept iterate (None if never evaluated)
    forward_passes: int
    backward_passes: int


def attack_mode(model: nn.Module, mode: str = "eval") -> contextlib.AbstractContextManager:
    """Run ``model`` in eval mode (``mode="eval"``, every module's mode restored after) or as it is (``"keep"``)."""
    return eval_mode(model) if mode == "eval" else contextlib.nullcontext(model)


def make_generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator for ``seed`` (same seed, same noise on every device), or None for the global RNG."""
    if seed is None:
        return None
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def success_of(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, targeted: bool
) -> torch.Tensor:
    pred = logits.argmax(dim=1)
    return pred == target if targeted else pred != y


class SignStep:
    """x_{i+1} = clip(Π(x_i + α·direction(g))): PGD's step under any ball (α per sample or scalar)."""

    def __init__(
        self, x: torch.Tensor, ball: LinfBall | L2Ball, step_size: float | torch.Tensor, box: Box
    ) -> None:
        self.x, self.ball, self.box = x, ball, box
        self.alpha = step_size if not torch.is_tensor(step_size) else _view(step_size.to(x), x)

    def __call__(
        self, i: int, x_adv: torch.Tensor, grad: torch.Tensor, objective: torch.Tensor
    ) -> torch.Tensor:
        return self.box.clip(self.ball.project(x_adv + self.alpha * self.ball.direction(grad), self.x))


def _better(obj_new, succ_new, obj_old, succ_old) -> torch.Tensor:
    """Per-sample preference: success first, then a higher objective."""
    return (succ_new & ~succ_old) | ((succ_new == succ_old) & (obj_new > obj_old))


def gradient_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    objective: Objective,
    steps: int,
    start: torch.Tensor,
    step_rule: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    target: torch.Tensor | None = None,
    targeted: bool = False,
    keep: str = "best",
    stop_at_flip: bool = False,
    callback: Callback | None = None,
    min_classes: int = 2,
    final_eval: bool = True,
) -> LoopResult:
    """Run ``steps`` updates from ``start``; evaluate (and call ``callback``) at x₀ … x_steps.

    ``keep="best"`` returns per sample the best iterate seen (a successful one first, then the highest
    objective); ``keep="last"`` returns x_steps. ``stop_at_flip`` freezes a sample once the attack
    succeeds and stops when all have succeeded. ``final_eval=False`` skips the forward pass at x_steps
    when nothing needs it (``keep="last"``, no callback, no early stop): success is then unknown (False).
    The model must already be in the wanted mode.
    """
    x_adv = start.detach().clone()
    best_x = x_adv.clone()
    n = x.shape[0]
    best_obj = torch.full((n,), -torch.inf, device=x.device, dtype=torch.float32)
    best_succ = torch.zeros(n, dtype=torch.bool, device=x.device)
    best_logits: torch.Tensor | None = None
    frozen = torch.zeros(n, dtype=torch.bool, device=x.device)
    fwd = bwd = 0
    # the last iterate needs a forward pass only when something looks at it
    final_eval = final_eval or keep == "best" or stop_at_flip or callback is not None
    for i in range(steps + 1):
        last = i == steps
        if last and not final_eval:
            break
        need_grad = not last
        with torch.enable_grad():
            xg = x_adv.detach().requires_grad_(need_grad)
            logits = model(xg)
            if i == 0:
                check_logits(logits, y, target, min_classes)
            obj = objective(logits, y, target)
            grad = torch.autograd.grad(obj.sum(), xg)[0].detach() if need_grad else None
        fwd += 1
        bwd += int(need_grad)
        logits, obj = logits.detach(), obj.detach().float()
        succ = success_of(logits, y, target, targeted)
        if best_logits is None:
            best_logits = logits.clone()
        if keep == "best":
            upd = _better(obj, succ, best_obj, best_succ) & ~frozen
        else:
            upd = ~frozen
        best_x = torch.where(_view(upd, x_adv), x_adv, best_x)
        best_obj = torch.where(upd, obj, best_obj)
        best_succ = torch.where(upd, succ, best_succ)
        best_logits = torch.where(upd[:, None], logits, best_logits)
        stop = False
        if callback is not None:
            stop = bool(callback(i, x_adv, obj, logits))
        if stop_at_flip:
            frozen |= succ
            stop = stop or bool(frozen.all())
        if last or stop:
            break
        x_new = step_rule(i, x_adv, grad, obj).detach()
        x_adv = torch.where(_view(frozen, x_adv), x_adv, x_new) if stop_at_flip else x_new
    if not final_eval:
        best_x = x_adv
        best_obj = torch.full((n,), torch.nan, device=x.device)
        best_succ = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_logits = None
    return LoopResult(best_x.detach(), best_obj, best_succ, best_logits, fwd, bwd)


def combine(a: LoopResult, b: LoopResult) -> LoopResult:
    """Per-sample best of two runs (restarts): success first, then the higher objective."""
    if a.logits is None or b.logits is None:
        return b
    upd = _better(b.objective, b.success, a.objective, a.success)
    x = torch.where(_view(upd, a.x_adv), b.x_adv, a.x_adv)
    return LoopResult(
        x,
        torch.where(upd, b.objective, a.objective),
        torch.where(upd, b.success, a.success),
        torch.where(upd[:, None], b.logits, a.logits),
        a.forward_passes + b.forward_passes,
        a.backward_passes + b.backward_passes,
    )
