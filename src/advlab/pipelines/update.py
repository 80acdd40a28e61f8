"""Safe model updates: negative-flip checks and robustness-congruent fine-tuning (Angioni et al. 2024).

- :func:`check_update` attacks the old and the new model, each white-box on its own with the same attack and
  budget (APGD-CE, 50 iterations by default), and returns per-sample ``old_correct``, ``new_correct``,
  ``old_robust``, ``new_robust`` (robust = correct on the clean input and on its own adversarial input).
- :func:`update_classifier` fine-tunes the new model with RCAT, PCT, PCT-AT or plain adversarial
  fine-tuning ("at"), picks (α, β) from a sweep by S-NFR on validation data, and returns a table of clean
  accuracy, robust accuracy, NFR, PFR, RNFR and S-NFR against the old model on test data.
- :func:`run_check_update` / :func:`run_update` write run directories (jobs ``check-update`` and
  ``update-classifier``); :func:`rcat_recipe` is ``advlab reproduce rcat``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab import metrics as M
from advlab.errors import ConfigError, ModelError

METHODS = ("rcat", "pct", "pct-at", "at")
EVAL_ATTACKS = ("apgd", "pgd", "fgsm")
DEFAULT_SWEEPS: dict[str, list[tuple[float, float]]] = {
    "rcat": [(0.75, 0.2), (0.7, 0.2), (0.5, 0.4), (0.3, 0.6)],
    "pct": [(1.0, 1.0), (1.0, 2.0), (1.0, 5.0), (1.0, 10.0)],
    "pct-at": [(1.0, 1.0), (1.0, 2.0), (1.0, 5.0), (1.0, 10.0)],
    "at": [(0.0, 0.0)],
}
DEFAULT_WEIGHTS = {"rcat": (0.5, 0.4), "pct": (1.0, 1.0), "pct-at": (1.0, 1.0), "at": (0.0, 0.0)}
METRIC_KEYS = (
    "nfr", "pfr", "rnfr", "rpfr", "b_nfr", "s_nfr",
    "old_accuracy", "new_accuracy", "old_robust_accuracy", "new_robust_accuracy",
)  # fmt: skip


def _pos_int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{name}={v!r} must be an integer >= 1")


def _pos_float(name: str, v: Any, allow_zero: bool = False) -> None:
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float))
        or not math.isfinite(v)
        or v < 0
        or (v == 0 and not allow_zero)
    ):
        raise ConfigError(f"{name}={v!r} must be a finite number {'>=' if allow_zero else '>'} 0")


# ---- configuration --------------------------------------------------------------------------------
@dataclass
class CheckConfig:
    """How a model pair is measured: the attack (same for both models), its budget, the data split."""

    data: str = "digits"
    split: str = "test"
    eps: float = 0.1
    norm: str = "linf"
    attack: str = "apgd"
    steps: int = 50
    batch_size: int = 256
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from advlab.attacks.classifier.constraints import canonical_norm

        if self.attack not in EVAL_ATTACKS:
            raise ConfigError(f"unknown attack {self.attack!r}; use one of {', '.join(EVAL_ATTACKS)}")
        _pos_float("eps", self.eps)
        _pos_int("steps", self.steps)
        _pos_int("batch_size", self.batch_size)
        if self.limit is not None:
            _pos_int("limit", self.limit)
        self.norm = canonical_norm(self.norm)

    def make_attack(self) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The white-box attack run on each model on its own (fixed seed: both get the same random start)."""
        from advlab.attacks.classifier import APGD, FGSM, PGD

        if self.attack == "apgd":
            return APGD(eps=self.eps, steps=self.steps, norm=self.norm, seed=self.seed)
        if self.attack == "pgd":
            return PGD(eps=self.eps, steps=self.steps, norm=self.norm, seed=self.seed)
        return FGSM(eps=self.eps, norm=self.norm)


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
        from advlab.training.classifier.rcat import TRAIN_ATTACKS, check_weights

        if isinstance(self.check, dict):
            self.check = CheckConfig(**self.check)
        if self.method not in METHODS:
            raise ConfigError(f"unknown update method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.train_attack not in TRAIN_ATTACKS:
            raise ConfigError(f"unknown training attack {self.train_attack!r}; use fgsm or pgd")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use sgd or adam")
        for name in ("epochs", "batch_size", "train_steps"):
            _pos_int(name, getattr(self, name))
        _pos_float("lr", self.lr)
        _pos_float("train_eps", self.train_eps)
        _pos_float("momentum", self.momentum, allow_zero=True)
        if self.val_limit is not None:
            _pos_int("val_limit", self.val_limit)
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


# ---- measuring ------------------------------------------------------------------------------------
@dataclass
class Flags:
    """Per-sample outcome of one model: clean correct, and robust (correct clean and under its own attack)."""

    correct: torch.Tensor
    robust: torch.Tensor

    @property
    def accuracy(self) -> float:
        return M.accuracy(self.correct.long(), torch.ones_like(self.correct, dtype=torch.long))

    @property
    def robust_accuracy(self) -> float:
        return M.robust_accuracy(self.robust)


def model_flags(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable | None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Flags:
    """Per-sample clean correctness and robustness of ``model``; ``attack(model, x, y)`` attacks it."""
    device = torch.device(device)
    was = model.training
    model.eval()
    correct, robust = [], []
    try:
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            with torch.no_grad():
                c = model(xb).argmax(1) == yb
            if attack is None:
                r = c
            else:
                xa = attack(model, xb, yb).detach()
                with torch.no_grad():
                    r = c & (model(xa).argmax(1) == yb)
            correct.append(c.cpu())
            robust.append(r.cpu())
    finally:
        model.train(was)
    return Flags(torch.cat(correct), torch.cat(robust))


def flip_metrics(old: Flags, new: Flags) -> dict[str, float]:
    """NFR, PFR, RNFR, RPFR, B-NFR, S-NFR of ``new`` against ``old`` plus both models' accuracies."""
    return {
        "nfr": M.nfr(old.correct, new.correct),
        "pfr": M.pfr(old.correct, new.correct),
        "rnfr": M.rnfr(old.robust, new.robust),
        "rpfr": M.rpfr(old.robust, new.robust),
        "b_nfr": M.b_nfr(old.correct, new.correct, old.robust, new.robust),
        "s_nfr": M.s_nfr(old.correct, new.correct, old.robust, new.robust),
        "old_accuracy": old.accuracy,
        "new_accuracy": new.accuracy,
        "old_robust_accuracy": old.robust_accuracy,
        "new_robust_accuracy": new.robust_accuracy,
    }


@dataclass
class UpdateCheck:
    """Per-sample flags of an old and a new model on the same data, and their flip metrics."""

    old: Flags
    new: Flags

    @property
    def old_correct(self) -> torch.Tensor:
        return self.old.correct

    @property
    def new_correct(self) -> torch.Tensor:
        return self.new.correct

    @property
    def old_robust(self) -> torch.Tensor:
        return self.old.robust

    @property
    def new_robust(self) -> torch.Tensor:
        return self.new.robust

    def metrics(self) -> dict[str, float]:
        return flip_metrics(self.old, self.new)

    def records(self, ids: list[str] | None = None, y: torch.Tensor | None = None) -> list[dict[str, Any]]:
        n = self.old.correct.shape[0]
        ids = ids or [f"sample-{i}" for i in range(n)]
        out = []
        for i in range(n):
            rec: dict[str, Any] = {"id": ids[i], "index": i}
            if y is not None:
                rec["label"] = int(y[i])
            rec.update(
                old_correct=bool(self.old.correct[i]),
                new_correct=bool(self.new.correct[i]),
                old_robust=bool(self.old.robust[i]),
                new_robust=bool(self.new.robust[i]),
            )
            out.append(rec)
        return out


def check_update(
    old: nn.Module,
    new: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> UpdateCheck:
    """Measure an update: each model attacked white-box on its own (default APGD-CE-50, ε = 0.1)."""
    attack = attack if attack is not None else CheckConfig().make_attack()
    return UpdateCheck(
        model_flags(old, x, y, attack, batch_size=batch_size, device=device),
        model_flags(new, x, y, attack, batch_size=batch_size, device=device),
    )


# ---- loading and validating a model pair ----------------------------------------------------------
def check_pair_meta(old_meta: dict, new_meta: dict, x: torch.Tensor, y: torch.Tensor, data: str) -> None:
    """Refuse pairs with different classes or input shapes, or a model that is no classifier of ``data``."""
    if int(old_meta["num_classes"]) != int(new_meta["num_classes"]):
        raise ModelError(
            f"--old has {old_meta['num_classes']} classes but --new has {new_meta['num_classes']}; "
            "an update must keep the label set, pass two classifiers of the same task"
        )
    if list(old_meta["input_shape"]) != list(new_meta["input_shape"]):
        raise ModelError(
            f"--old takes inputs of shape {list(old_meta['input_shape'])} "
            f"but --new {list(new_meta['input_shape'])}; "
            "pass two classifiers of the same data"
        )
    n_classes = int(y.max()) + 1 if y.numel() else 0
    for flag, meta in (("--old", old_meta), ("--new", new_meta)):
        if list(meta["input_shape"]) != list(x.shape[1:]) or int(meta["num_classes"]) < n_classes:
            raise ModelError(
                f"{flag} is not a classifier of --data {data} (it takes {list(meta['input_shape'])} with "
                f"{meta['num_classes']} classes; the data has {list(x.shape[1:])} with {n_classes}); "
                "pass a model trained on this data"
            )
        if meta.get("data") not in (None, data):
            raise ModelError(
                f"{flag} was trained on {meta['data']!r}, not on --data {data}; "
                f"pass a model trained on {data}"
            )


def read_pair_meta(old_path: str | Path, new_path: str | Path) -> tuple[dict, dict]:
    """Both models' ``classifier.json`` (ModelError naming the flag when one is not an advlab classifier)."""
    from advlab.models.classifiers import read_classifier_meta

    metas = []
    for flag, p in (("--old", old_path), ("--new", new_path)):
        try:
            meta = read_classifier_meta(p)
        except ModelError as exc:
            raise ModelError(f"{flag}: {exc}") from None
        missing = [k for k in ("arch", "input_shape", "num_classes") if k not in meta]
        if missing or not (Path(p) / "model.safetensors").exists():
            raise ModelError(
                f"{flag} {p} is not a complete advlab classifier "
                f"(missing {', '.join(missing) or 'model.safetensors'}); "
                "pass a directory written by `advlab train classifier`"
            )
        metas.append(meta)
    return metas[0], metas[1]


def load_split(data: str, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    from advlab.data.images import load_image_split

    x, y = load_image_split(data, split)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def load_models(old_path, new_path, device) -> tuple[nn.Module, nn.Module]:
    from advlab.models.classifiers import load_classifier

    return load_classifier(old_path, device), load_classifier(new_path, device)


# ---- fine-tuning ----------------------------------------------------------------------------------
def method_loss(method: str, old: nn.Module, new0: nn.Module, alpha: float, beta: float, cfg: UpdateConfig):
    """The ``loss_fn(model, x, y)`` of an update method."""
    from advlab.training.classifier.pct import pct_at_loss, pct_loss
    from advlab.training.classifier.rcat import adversarial_finetune_loss, make_train_attack, rcat_loss

    attack = make_train_attack(cfg.train_attack, cfg.train_eps, cfg.train_steps, cfg.check.norm)
    if method == "rcat":
        return rcat_loss(old, new0, alpha, beta, attack)
    if method == "pct":
        return pct_loss(old, alpha, beta)
    if method == "pct-at":
        return pct_at_loss(old, alpha, beta, attack)
    return adversarial_finetune_loss(attack)


def finetune(
    old: nn.Module,
    new0: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    alpha: float,
    beta: float,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> nn.Module:
    """A copy of ``new0`` fine-tuned with ``method`` for ``cfg.epochs`` epochs (same seed, same model)."""
    from advlab.training.classifier.loop import train_epoch

    device = torch.device(device)
    model = copy.deepcopy(new0).to(device)
    for p in model.parameters():
        p.requires_grad_(True)
    old, new0 = old.to(device).eval(), new0.to(device).eval()
    loss_fn = method_loss(method, old, new0, alpha, beta, cfg)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in range(cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        train_epoch(
            model,
            x,
            y,
            loss_fn,
            opt,
            batch_size=cfg.batch_size,
            device=device,
            generator=gen,
            progress=progress,
        )
    return model.eval()


def candidate_id(method: str, alpha: float, beta: float) -> str:
    return method if method == "at" else f"{method}-a{alpha:g}-b{beta:g}"


@dataclass
class Splits:
    """Train / validation / test tensors of one data set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def load(cls, data: str, val_limit: int | None = None, test_limit: int | None = None) -> Splits:
        return cls(
            *load_split(data, "train"),
            *load_split(data, "val", val_limit),
            *load_split(data, "test", test_limit),
        )


@dataclass
class Baseline:
    """Flags of the old and the pre-update new model on validation and test data (computed once)."""

    old_val: Flags
    new_val: Flags
    old_test: Flags
    new_test: Flags

    @classmethod
    def measure(cls, old, new, splits: Splits, check: CheckConfig, device) -> Baseline:
        attack, bs = check.make_attack(), check.batch_size
        return cls(
            model_flags(old, splits.x_val, splits.y_val, attack, batch_size=bs, device=device),
            model_flags(new, splits.x_val, splits.y_val, attack, batch_size=bs, device=device),
            model_flags(old, splits.x_test, splits.y_test, attack, batch_size=bs, device=device),
            model_flags(new, splits.x_test, splits.y_test, attack, batch_size=bs, device=device),
        )


def table_row(name: str, old: Flags, model: Flags, **extra: Any) -> dict[str, Any]:
    """One row of the update table: the model's clean/robust accuracy and its flips against the old model."""
    m = flip_metrics(old, model)
    return {
        "model": name,
        "clean_accuracy": m["new_accuracy"],
        "robust_accuracy": m["new_robust_accuracy"],
        "nfr": m["nfr"],
        "pfr": m["pfr"],
        "rnfr": m["rnfr"],
        "b_nfr": m["b_nfr"],
        "s_nfr": m["s_nfr"],
        **extra,
    }


@dataclass
class UpdateResult:
    """What :func:`update_classifier` returns: the selected model, its test flags, and the full table."""

    model: nn.Module
    method: str
    alpha: float
    beta: float
    test_flags: Flags
    baseline: Baseline
    table: list[dict[str, Any]]
    candidates: list[dict[str, Any]]

    def metrics(self) -> dict[str, Any]:
        """Flip metrics of the selected fine-tuned model against the old one (test data) plus the table."""
        m = flip_metrics(self.baseline.old_test, self.test_flags)
        return {
            **m,
            "method": self.method,
            "alpha": self.alpha,
            "beta": self.beta,
            "before_update": flip_metrics(self.baseline.old_test, self.baseline.new_test),
            "table": self.table,
        }


def update_classifier(
    old: nn.Module,
    new: nn.Module,
    splits: Splits,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    *,
    baseline: Baseline | None = None,
    on_candidate: Callable[[dict[str, Any], nn.Module], None] | None = None,
    load_candidate: Callable[[str], nn.Module | None] | None = None,
    progress: bool = False,
) -> UpdateResult:
    """Fine-tune ``new`` with ``cfg.method`` for each candidate (α, β); keep the lowest validation S-NFR.

    Returns the table (old, new, each fine-tuned candidate: clean/robust accuracy, NFR, PFR, RNFR, S-NFR
    against ``old`` on test data, plus the validation S-NFR used for selection). ``load_candidate(id)``
    may return an already fine-tuned model (resume); ``on_candidate(row, model)`` is called after each.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    device = torch.device(device)
    old, new = old.to(device).eval(), new.to(device).eval()
    base = baseline or Baseline.measure(old, new, splits, cfg.check, device)
    attack, bs = cfg.check.make_attack(), cfg.check.batch_size
    rows = [
        table_row("old", base.old_test, base.old_test, role="old"),
        table_row(
            "new",
            base.old_test,
            base.new_test,
            role="new",
            val_s_nfr=flip_metrics(base.old_val, base.new_val)["s_nfr"],
        ),
    ]
    cands: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], dict, nn.Module, Flags] | None = None
    todo = cfg.candidates()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        for alpha, beta in todo:
            cid = candidate_id(cfg.method, alpha, beta)
            task = bar.add_task(f"{cid}", total=cfg.epochs * splits.x_train.shape[0])
            t0 = time.perf_counter()
            model = load_candidate(cid) if load_candidate else None
            if model is None:
                model = finetune(
                    old,
                    new,
                    splits.x_train,
                    splits.y_train,
                    cfg.method,
                    alpha,
                    beta,
                    cfg,
                    device,
                    progress=lambda n, t=task: bar.advance(t, n),
                )
            bar.update(task, completed=cfg.epochs * splits.x_train.shape[0])
            val = model_flags(model, splits.x_val, splits.y_val, attack, batch_size=bs, device=device)
            test = model_flags(model, splits.x_test, splits.y_test, attack, batch_size=bs, device=device)
            vm = flip_metrics(base.old_val, val)
            row = table_row(
                cid,
                base.old_test,
                test,
                role="candidate",
                method=cfg.method,
                alpha=alpha,
                beta=beta,
                val_s_nfr=vm["s_nfr"],
                val_robust_accuracy=vm["new_robust_accuracy"],
                seconds=round(time.perf_counter() - t0, 2),
            )
            cands.append(row)
            key = (vm["s_nfr"], -vm["new_robust_accuracy"])
            if best is None or key < best[0]:
                best = (key, row, model, test)
            if on_candidate:
                on_candidate(row, model)
    assert best is not None
    for r in cands:
        r["selected"] = r is best[1]
    _, row, model, test = best
    return UpdateResult(model, cfg.method, row["alpha"], row["beta"], test, base, rows + cands, cands)


# ---- run directories ------------------------------------------------------------------------------
def _write_flip_records(run, check: UpdateCheck, y: torch.Tensor, split: str, prefix: str = "") -> None:
    for rec in check.records([f"{prefix}{split}-{i}" for i in range(y.shape[0])], y):
        if not run.is_done(rec["id"]):
            run.append({**rec, "split": split})


def run_check_update(
    old_path: str | Path,
    new_path: str | Path,
    out: str | Path,
    cfg: CheckConfig,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """``advlab check-update``: per-sample flags and flip metrics of an update, in run directory ``out``."""
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import seed_everything

    check_out_path(out)
    old_meta, new_meta = read_pair_meta(old_path, new_path)
    x, y = load_split(cfg.data, cfg.split, cfg.limit)
    check_pair_meta(old_meta, new_meta, x, y, cfg.data)
    attack = cfg.make_attack()
    device = torch.device(device)
    config = {**asdict(cfg), "old": str(old_path), "new": str(new_path)}
    with RunDir(out, "check-update", config, seed=cfg.seed, device=str(device), argv=argv) as run:
        seed_everything(cfg.seed)
        old, new = load_models(old_path, new_path, device)
        run.update_manifest(attack={"name": cfg.attack, "eps": cfg.eps, "norm": cfg.norm, "steps": cfg.steps})
        result = check_update(old, new, x, y, attack, batch_size=cfg.batch_size, device=device)
        _write_flip_records(run, result, y, cfg.split)
        metrics = {
            **result.metrics(),
            "n": int(y.shape[0]),
            "attack": f"{cfg.attack}-{cfg.steps}",
            "eps": cfg.eps,
        }
        run.write_metrics(metrics)
    write_report(out)
    return metrics


def run_update(
    old_path: str | Path,
    new_path: str | Path,
    out: str | Path,
    cfg: UpdateConfig,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``advlab update classifier``: fine-tune, select, write the model (``load_classifier(out)``), metrics.

    ``out`` holds the selected model (``model.safetensors`` + ``classifier.json``), every candidate under
    ``candidates/<id>/`` (resume skips finished ones), a record per candidate, a record per test sample
    (``old_correct``, ``new_correct``, ``old_robust``, ``new_robust`` for the selected model) and metrics.
    """
    from advlab.models.classifiers import load_classifier, save_classifier
    from advlab.report import write_report
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import seed_everything

    check_out_path(out)
    old_meta, new_meta = read_pair_meta(old_path, new_path)
    splits = Splits.load(cfg.data, cfg.val_limit, cfg.check.limit)
    check_pair_meta(old_meta, new_meta, splits.x_test, splits.y_test, cfg.data)
    device = torch.device(device)
    config = {**asdict(cfg), "old": str(old_path), "new": str(new_path)}
    with RunDir(out, "update-classifier", config, seed=cfg.seed, device=str(device), argv=argv) as run:
        seed_everything(cfg.seed)
        old, new = load_models(old_path, new_path, device)

        def meta_for(row: dict) -> dict:
            trained = {
                "method": f"update-{cfg.method}",
                "alpha": row["alpha"],
                "beta": row["beta"],
                "epochs": cfg.epochs,
                "train_attack": cfg.train_attack,
                "eps": cfg.train_eps,
                "norm": cfg.check.norm,
                "seed": cfg.seed,
                "old": str(old_path),
                "new": str(new_path),
            }
            return {
                **{k: v for k, v in new_meta.items() if k not in ("format", "trained", "epoch")},
                "trained": trained,
            }

        def load_candidate(cid: str):
            d = run.path / "candidates" / cid
            if run.is_done(f"candidate-{cid}") and (d / "model.safetensors").exists():
                return load_classifier(d, device)
            return None

        def on_candidate(row: dict, model: nn.Module) -> None:
            cid = row["model"]
            if not run.is_done(f"candidate-{cid}"):
                save_classifier(model, run.path / "candidates" / cid, meta_for(row))
                run.append({"id": f"candidate-{cid}", "kind": "candidate", **row})

        result = update_classifier(
            old,
            new,
            splits,
            cfg,
            device,
            on_candidate=on_candidate,
            load_candidate=load_candidate,
            progress=progress,
        )
        best_row = next(r for r in result.candidates if r["selected"])
        save_classifier(result.model, run.path, meta_for(best_row))
        chk = UpdateCheck(result.baseline.old_test, result.test_flags)
        for rec in chk.records([f"test-{i}" for i in range(splits.y_test.shape[0])], splits.y_test):
            if not run.is_done(rec["id"]):
                run.append(
                    {
                        **rec,
                        "kind": "sample",
                        "split": "test",
                        "before_correct": bool(result.baseline.new_test.correct[rec["index"]]),
                        "before_robust": bool(result.baseline.new_test.robust[rec["index"]]),
                    }
                )
        metrics = {
            **result.metrics(),
            "n": int(splits.y_test.shape[0]),
            "attack": f"{cfg.check.attack}-{cfg.check.steps}",
            "eps": cfg.check.eps,
        }
        run.write_metrics(metrics)
    write_report(out)
    return metrics


# ---- the recipe (advlab reproduce rcat) -----------------------------------------------------------
@dataclass
class ModelSpec:
    """One model of the recipe's sequence: architecture, size, training method, length and radius."""

    name: str
    arch: str
    method: str  # standard | pgd-at | trades
    epochs: int
    eps: float = 0.1
    kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 3e-3
    steps: int = 5


@dataclass
class RecipeConfig:
    """The RCAT reproduction on digits: models, pairs (old, new), methods, fine-tuning and evaluation."""

    models: list[ModelSpec]
    pairs: list[tuple[str, str]]
    methods: tuple[str, ...] = ("at", "rcat", "pct", "pct-at")
    update: dict[str, Any] = field(default_factory=dict)  # UpdateConfig overrides (no method)
    check: dict[str, Any] = field(default_factory=dict)  # CheckConfig overrides
    seed: int = 0
    sweep: bool = True

    def __post_init__(self) -> None:
        names = {m.name for m in self.models}
        for a, b in self.pairs:
            if a not in names or b not in names:
                raise ConfigError(f"pair ({a}, {b}) names a model that is not in the recipe")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"unknown method {m!r}; use {', '.join(METHODS)}")

    def update_config(self, method: str) -> UpdateConfig:
        kw = dict(self.update)
        if not self.sweep:
            a, b = DEFAULT_WEIGHTS[method]
            if method != "at":
                kw.update(alpha=a, beta=b)
        return UpdateConfig(method=method, check=CheckConfig(**self.check), seed=self.seed, **kw)


def recipe_config(quick: bool = False, seed: int = 0) -> RecipeConfig:
    """The default sequence: each later model is larger, trained longer and/or more robustly.

    eps = 0.15 (pixels in [0, 1]) instead of 0.1 so that the pairs show enough robust flips to fix.
    """
    eps = 0.15
    # Adam keeps the step size independent of the loss scale, so PCT's large β does not diverge on digits
    ft = {"epochs": 5, "lr": 1e-3, "optimizer": "adam", "batch_size": 64, "train_eps": eps}
    if quick:
        models = [
            ModelSpec("mlp32-at2", "mlp", "pgd-at", 2, eps, {"hidden": 32, "depth": 1}, steps=3),
            ModelSpec("mlp64-at6", "mlp", "pgd-at", 6, eps, {"hidden": 64, "depth": 1}, steps=3),
        ]
        return RecipeConfig(
            models,
            [("mlp32-at2", "mlp64-at6")],
            update={**ft, "epochs": 3},
            check={"eps": eps, "steps": 20},
            seed=seed,
            sweep=False,
        )
    models = [
        ModelSpec("mlp32-at3", "mlp", "pgd-at", 3, eps, {"hidden": 32, "depth": 1}),
        ModelSpec("mlp128-at15", "mlp", "pgd-at", 15, eps, {"hidden": 128, "depth": 2}),
        ModelSpec("cnn16-at6", "cnn", "pgd-at", 6, eps, {"width": 16, "hidden": 64}),
        ModelSpec("cnn16-at20", "cnn", "pgd-at", 20, eps, {"width": 16, "hidden": 64}),
    ]
    # the first and last pair have a weak old model (few robust flips left to fix); the middle two are
    # closer in accuracy (another architecture, or the same one trained shorter): more flips to fix
    pairs = [
        ("mlp32-at3", "mlp128-at15"),
        ("mlp128-at15", "cnn16-at20"),
        ("cnn16-at6", "cnn16-at20"),
        ("mlp32-at3", "cnn16-at20"),
    ]
    return RecipeConfig(
        models,
        pairs,
        update=ft,
        check={"eps": eps, "steps": 50},
        seed=seed,
    )


def train_spec(spec: ModelSpec, splits: Splits, device, seed: int = 0) -> nn.Module:
    """Train one recipe model (Adam; PGD-AT with ``spec.steps`` steps, or standard / TRADES)."""
    from advlab.models.classifiers import build_classifier
    from advlab.training.classifier.loop import train_epoch
    from advlab.training.classifier.pgd_at import pgd_at_loss
    from advlab.training.classifier.standard import standard_loss
    from advlab.training.classifier.trades import trades_loss

    torch.manual_seed(seed)
    shape, k = tuple(splits.x_train.shape[1:]), int(splits.y_train.max()) + 1
    model = build_classifier(spec.arch, shape, k, **spec.kwargs).to(device)
    loss = {
        "standard": lambda: standard_loss,
        "pgd-at": lambda: pgd_at_loss(spec.eps, spec.steps),
        "trades": lambda: trades_loss(spec.eps, 6.0, spec.steps),
    }[spec.method]()
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    for epoch in range(spec.epochs):
        torch.manual_seed(seed * 100_003 + epoch)
        train_epoch(
            model,
            splits.x_train,
            splits.y_train,
            loss,
            opt,
            batch_size=64,
            device=device,
            generator=torch.Generator().manual_seed(seed * 100_003 + epoch),
        )
    return model.eval()


def _summary(rows: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Per pair: does RCAT get lower RNFR and S-NFR than plain AT fine-tuning, robust accuracy within 2 pt?"""
    out = []
    for a, b in pairs:
        pid = f"{a}->{b}"
        sel = {r["method"]: r for r in rows if r.get("pair") == pid and r.get("selected")}
        if "rcat" not in sel or "at" not in sel:
            continue
        r, t = sel["rcat"], sel["at"]
        base = {x["role"]: x for x in rows if x.get("pair") == pid and x.get("role") in ("old", "new")}
        out.append(
            {
                "pair": pid,
                "new_better_than_old": bool(
                    base
                    and base["new"]["clean_accuracy"] > base["old"]["clean_accuracy"]
                    and base["new"]["robust_accuracy"] > base["old"]["robust_accuracy"]
                ),
                "new_rnfr": base["new"]["rnfr"] if base else None,
                "rcat_rnfr": r["rnfr"],
                "at_rnfr": t["rnfr"],
                "rcat_s_nfr": r["s_nfr"],
                "at_s_nfr": t["s_nfr"],
                "rcat_robust_accuracy": r["robust_accuracy"],
                "at_robust_accuracy": t["robust_accuracy"],
                "lower_rnfr": r["rnfr"] < t["rnfr"],
                "lower_s_nfr": r["s_nfr"] < t["s_nfr"],
                # "within 2 points": RCAT may not lose more than 2 points of robust accuracy to AT
            "robust_within_2pt": r["robust_accuracy"] >= t["robust_accuracy"] - 0.02,
            }
        )
    wins = sum(1 for s in out if s["lower_rnfr"] and s["lower_s_nfr"] and s["robust_within_2pt"])
    return {"pairs": out, "rcat_wins": wins, "n_pairs": len(out)}


def rcat_recipe(
    out: str | Path,
    quick: bool = False,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    argv: list[str] | None = None,
    progress: bool = True,
    cfg: RecipeConfig | None = None,
) -> dict[str, Any]:
    """``advlab reproduce rcat``: train the model sequence, run every method on every pair, write the table.

    ``quick=True`` is the demo's short form (one pair, one (α, β) per method, short training; < 1 min on CPU).
    Records: one per model (``kind: model``), one per (pair, model) row of the table (``kind: row``).
    """
    from advlab.models.classifiers import load_classifier, save_classifier
    from advlab.report import write_report
    from advlab.report.update import recipe_figures
    from advlab.runs import RunDir, check_out_path
    from advlab.utils import seed_everything

    check_out_path(out)
    cfg = cfg or recipe_config(quick, seed)
    for m in cfg.methods:  # validate every method's options before work starts
        cfg.update_config(m)
    device = torch.device(device)
    splits = Splits.load("digits")
    config = {**asdict(cfg), "quick": quick}
    with RunDir(out, "reproduce-rcat", config, seed=seed, device=str(device), argv=argv) as run:
        seed_everything(seed)
        models: dict[str, nn.Module] = {}
        check = CheckConfig(**cfg.check)
        for spec in cfg.models:
            d = run.path / "models" / spec.name
            if run.is_done(f"model-{spec.name}") and (d / "model.safetensors").exists():
                models[spec.name] = load_classifier(d, device)
                continue
            t0 = time.perf_counter()
            model = train_spec(spec, splits, device, seed)
            save_classifier(
                model,
                d,
                {
                    "arch": spec.arch,
                    "input_shape": list(splits.x_train.shape[1:]),
                    "num_classes": int(splits.y_train.max()) + 1,
                    "kwargs": spec.kwargs,
                    "data": "digits",
                    "trained": {"method": spec.method, "eps": spec.eps, "epochs": spec.epochs, "seed": seed},
                },
            )
            f = model_flags(model, splits.x_test, splits.y_test, check.make_attack(), device=device)
            run.append(
                {
                    "id": f"model-{spec.name}",
                    "kind": "model",
                    **asdict(spec),
                    "clean_accuracy": f.accuracy,
                    "robust_accuracy": f.robust_accuracy,
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            models[spec.name] = model
        for a, b in cfg.pairs:
            pid = f"{a}->{b}"
            if all(run.is_done(f"{pid}:done:{m}") for m in cfg.methods):
                continue
            base = Baseline.measure(models[a], models[b], splits, check, device)
            for method in cfg.methods:
                if run.is_done(f"{pid}:done:{method}"):
                    continue
                ucfg = cfg.update_config(method)
                res = update_classifier(
                    models[a], models[b], splits, ucfg, device, baseline=base, progress=progress
                )
                rows = [r for r in res.table if method == cfg.methods[0] or r.get("role") == "candidate"]
                for r in rows:
                    run.append(
                        {
                            "id": f"{pid}:{r['model']}",
                            "kind": "row",
                            "pair": pid,
                            "method": r.get("method", r["role"]),
                            **{k: v for k, v in r.items() if k != "method"},
                        }
                    )
                run.append({"id": f"{pid}:done:{method}", "kind": "done", "pair": pid, "method": method})
        records = run.records
        rows = [r for r in records if r.get("kind") == "row"]
        metrics = {
            "models": [
                {k: r[k] for k in ("name", "arch", "method", "epochs", "clean_accuracy", "robust_accuracy")}
                for r in records
                if r.get("kind") == "model"
            ],
            "table": rows,
            "summary": _summary(rows, cfg.pairs),
            "eps": check.eps,
            "attack": f"{check.attack}-{check.steps}",
        }
        run.write_metrics(metrics)
        recipe_figures(run.path, rows)
    write_report(out)
    return metrics
