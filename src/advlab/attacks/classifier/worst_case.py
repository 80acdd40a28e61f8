"""Worst-case evaluation over a list of attacks, in the manner of AutoAttack (Croce & Hein 2020).

The attacks run in order; each runs only on the points still robust (correct on the clean input and
not fooled by an earlier attack). A point is robust iff every attack failed on it, so the overall
robust accuracy is the per-sample worst case. Robust accuracy is reported after each attack
(cumulative) and for each attack alone on the points it saw. Sanity checks warn about softmax
outputs, randomness in the forward pass, zero gradients and a black-box attack beating the white-box
ones (see :mod:`advlab.attacks.classifier.checks`). With fewer than 4 classes, APGD-T uses targeted
cross-entropy instead of targeted DLR (which needs the 4th largest logit).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advlab.attacks.classifier.apgd import APGD
from advlab.attacks.classifier.base import prepare
from advlab.attacks.classifier.checks import check_black_box, run_checks
from advlab.attacks.classifier.loop import attack_mode
from advlab.attacks.classifier.losses import min_classes
from advlab.attacks.classifier.noise import RandomNoise
from advlab.attacks.classifier.validate import RobustnessWarning, check_eps
from advlab.errors import ConfigError


@dataclass
class WorstCaseResult:
    x_adv: torch.Tensor  # per sample: the first successful adversarial input, else the clean input
    clean_correct: torch.Tensor  # bool [N]
    robust: torch.Tensor  # bool [N]: correct under every attack
    fooled_by: list[
        str | None
    ]  # name of the first attack that fooled the sample (None: robust or clean error)
    clean_accuracy: float
    robust_accuracy: float
    robust_accuracy_after: dict[str, float]  # cumulative, after each attack
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "robust_accuracy_after": dict(self.robust_accuracy_after),
            "warnings": list(self.warnings),
        }


def default_attacks(
    eps: float, norm: str = "linf", steps: int = 100, seed: int | None = 0
) -> list[tuple[str, Any]]:
    """AutoAttack-style list: APGD-CE, APGD-T (targeted DLR), then a black-box random-noise check."""
    return [
        ("apgd-ce", APGD(eps=eps, steps=steps, norm=norm, loss="ce", seed=seed)),
        ("apgd-t", APGD(eps=eps, steps=steps, norm=norm, loss="dlr-targeted", targeted=True, seed=seed)),
        ("random-noise", RandomNoise(eps=eps, norm=norm, tries=20, seed=seed)),
    ]


def fit_to_classes(attack: Any, n_classes: int) -> Any:
    """DLR needs ≥ 3 classes (targeted DLR ≥ 4): with fewer, the attack falls back to (targeted) CE."""
    loss = getattr(attack, "loss", None)
    if isinstance(loss, str) and min_classes(loss) > n_classes:
        return dataclasses.replace(attack, loss="ce")
    return attack


@dataclass
class WorstCase:
    """``WorstCase(eps=0.1)(model, x, y) -> x_adv``; ``.evaluate(model, x, y)`` for the full result.

    ``attacks``: list of ``(name, attack)``; by default :func:`default_attacks`. An attack with
    ``black_box = True`` feeds the gradient-masking check. ``checks=False`` skips the sanity checks.
    """

    eps: float = 8 / 255
    norm: str = "linf"
    attacks: list[tuple[str, Any]] | None = None
    steps: int = 100
    checks: bool = True
    seed: int | None = 0

    def __post_init__(self) -> None:
        self.eps = check_eps(self.eps)
        if self.attacks is None:
            self.attacks = default_attacks(self.eps, self.norm, self.steps, self.seed)
        if not self.attacks:
            raise ConfigError("worst-case evaluation needs at least one attack")
        names = [n for n, _ in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"attack names must be unique, got {names}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.evaluate(model, x, y).x_adv

    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> WorstCaseResult:
        x, y, _ = prepare(model, x, y, None, False)
        issued: list[str] = []
        with attack_mode(model, "eval"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RobustnessWarning)
            if self.checks:
                run_checks(model, x, y)
            with torch.no_grad():
                clean_logits = model(x)
            clean_correct = clean_logits.argmax(1) == y
            n_classes = clean_logits.shape[1]
            robust = clean_correct.clone()
            x_adv = x.clone()
            fooled_by: list[str | None] = [None] * x.shape[0]
            after: dict[str, float] = {}
            white_robust_idx = None
            for name, attack in self.attacks:
                is_bb = bool(getattr(attack, "black_box", False))
                if is_bb and white_robust_idx is None:
                    white_robust_idx = robust.nonzero().squeeze(1)
                idx = robust.nonzero().squeeze(1)
                if idx.numel():
                    xa = fit_to_classes(attack, n_classes)(model, x[idx], y[idx])
                    with torch.no_grad():
                        fooled = model(xa).argmax(1) != y[idx]
                    hit = idx[fooled]
                    x_adv[hit] = xa[fooled]
                    robust[hit] = False
                    for j in hit.tolist():
                        fooled_by[j] = name
                    if is_bb and self.checks:
                        check_black_box(int(fooled.sum()), int(idx.numel()), name)
                after[name] = float(robust.float().mean())
        for w in caught:
            if issubclass(w.category, RobustnessWarning):
                issued.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return WorstCaseResult(
            x_adv=x_adv,
            clean_correct=clean_correct,
            robust=robust,
            fooled_by=fooled_by,
            clean_accuracy=float(clean_correct.float().mean()),
            robust_accuracy=float(robust.float().mean()),
            robust_accuracy_after=after,
            warnings=list(dict.fromkeys(issued)),
        )
