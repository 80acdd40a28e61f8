"""Options of ``advlab update classifier``: the fine-tuning method, its (α, β) candidates, training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from advlab.analysis.update_check import CheckConfig
from advlab.attacks.classifier.validate import check_number, check_steps
from advlab.errors import ConfigError
from advlab.training.classifier.rcat import TRAIN_ATTACKS, check_weights

METHODS = ("rcat", "pct", "pct-at", "at")
DEFAULT_SWEEPS: dict[str, list[tuple[float, float]]] = {
    "rcat": [(0.75, 0.2), (0.7, 0.2), (0.5, 0.4), (0.3, 0.6)],
    "pct": [(1.0, 1.0), (1.0, 2.0), (1.0, 5.0), (1.0, 10.0)],
    "pct-at": [(1.0, 1.0), (1.0, 2.0), (1.0, 5.0), (1.0, 10.0)],
    "at": [(0.0, 0.0)],
}
DEFAULT_WEIGHTS = {"rcat": (0.5, 0.4), "pct": (1.0, 1.0), "pct-at": (1.0, 1.0), "at": (0.0, 0.0)}

@dataclass
class UpdateConfig:
    """Options of ``advlab update classifier``.

    ``alpha``/``beta`` given: that one pair is used; otherwise the method's sweep (RCAT: (0.75, 0.2),
    (0.7, 0.2), (0.5, 0.4), (0.3, 0.6); PCT and PCT-AT: α = 1, β ∈ {1, 2, 5, 10}) is run and the pair with
    the lowest validation S-NFR wins (ties: higher validation robust accuracy). Fine-tuning follows the
    reference: SGD with momentum 0.9, lr 1e-3, batch 128, 10 epochs; the training attack is FGSM with
    random start at ``train_eps`` (or PGD-``train_steps``).
    """

    method: str = "rcat"
    data: str = "digits"
    alpha: float | None = None
    beta: float | None = None
    sweep: list[list[float]] | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.9
    train_attack: str = "fgsm"
    train_eps: float = 0.1
    train_steps: int = 10
    check: CheckConfig = field(default_factory=CheckConfig)
    val_limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.check, dict):
            self.check = CheckConfig(**self.check)
        if self.method not in METHODS:
            raise ConfigError(f"unknown update method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.train_attack not in TRAIN_ATTACKS:
            raise ConfigError(f"unknown training attack {self.train_attack!r}; use fgsm or pgd")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use sgd or adam")
        for name in ("epochs", "batch_size", "train_steps"):
            check_steps(getattr(self, name), name)
        check_number(self.lr, "lr", positive=True)
        check_number(self.train_eps, "train_eps", positive=True)
        check_number(self.momentum, "momentum")
        if self.val_limit is not None:
            check_steps(self.val_limit, "val_limit")
        if self.method == "at" and (self.alpha or self.beta):
            raise ConfigError("--method at has no alpha/beta (plain adversarial fine-tuning); drop them")
        if self.check.data != self.data:
            self.check.data = self.data
        what = self.method.upper()
        for a, b in self.candidates():
            check_weights(a, b, sum_at_most_one=self.method == "rcat", what=what)

    def candidates(self) -> list[tuple[float, float]]:
        """The (α, β) pairs to try."""
        if self.alpha is not None or self.beta is not None:
            da, db = DEFAULT_WEIGHTS[self.method]
            return [
                (
                    float(self.alpha if self.alpha is not None else da),
                    float(self.beta if self.beta is not None else db),
                )
            ]
        if self.sweep is not None:
            if not self.sweep or any(len(p) != 2 for p in self.sweep):
                raise ConfigError("sweep must be a non-empty list of [alpha, beta] pairs")
            return [(float(a), float(b)) for a, b in self.sweep]
        return list(DEFAULT_SWEEPS[self.method])
