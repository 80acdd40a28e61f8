"""The RCAT reproduction on digits (``advlab reproduce rcat``): a model sequence, every update method on every
(old, new) pair, over several seeds, and how sure the comparison with plain adversarial fine-tuning is.

Per seed s the model sequence is trained with seed s and every method fine-tunes with seed s
(:func:`run_seed`). :func:`recipe_summary` reports, per pair and method, the mean ± std over seeds of the
selected setting's NFR, RNFR, S-NFR and accuracies, and the paired comparison with AT (per-seed
differences, how many seeds are lower, the exact sign test). RCAT "wins" a pair when its mean RNFR and
mean S-NFR are lower than AT's and its mean robust accuracy is at most 2 points lower.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab import metrics as M
from advlab.analysis.update_check import CheckConfig, measure
from advlab.errors import ConfigError
from advlab.models.classifiers import build_classifier, load_classifier, save_classifier
from advlab.training.classifier.epoch import train_epoch
from advlab.training.classifier.pgd_at import pgd_at_loss
from advlab.training.classifier.standard import standard_loss
from advlab.training.classifier.trades import trades_loss
from advlab.training.classifier.update import Baseline, Splits, update_classifier
from advlab.training.classifier.update_config import DEFAULT_WEIGHTS, METHODS, UpdateConfig

SUMMARY_KEYS = ("nfr", "rnfr", "s_nfr", "clean_accuracy", "robust_accuracy")


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
    sweep: bool = True
    seeds: list[int] = field(default_factory=lambda: list(range(5)))

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={self.seeds!r}: pass one or more distinct seeds, e.g. --seeds 5")
        names = {m.name for m in self.models}
        for a, b in self.pairs:
            if a not in names or b not in names:
                raise ConfigError(f"pair ({a}, {b}) names a model that is not in the recipe")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"unknown method {m!r}; use {', '.join(METHODS)}")

    def update_config(self, method: str, seed: int = 0) -> UpdateConfig:
        kw = dict(self.update)
        if not self.sweep:
            a, b = DEFAULT_WEIGHTS[method]
            if method != "at":
                kw.update(alpha=a, beta=b)
        return UpdateConfig(method=method, check=CheckConfig(**self.check), seed=seed, **kw)


def recipe_config(quick: bool = False, seed: int = 0, seeds: int | None = None) -> RecipeConfig:
    """The default sequence: each later model is larger, trained longer and/or more robustly; ``seeds``
    seeds from ``seed`` on (default 5, 3 with ``quick``).

    eps = 0.15 (pixels in [0, 1]) instead of 0.1 so that the pairs show enough robust flips to fix.
    """
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"--seeds {seeds!r}: pass a number of seeds >= 1 (default 5, 3 with --quick)")
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
            sweep=False,
            seeds=list(range(seed, seed + (seeds if seeds is not None else 3))),
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
        seeds=list(range(seed, seed + (seeds if seeds is not None else 5))),
    )


def train_spec(spec: ModelSpec, splits: Splits, device, seed: int = 0) -> nn.Module:
    """Train one recipe model (Adam; PGD-AT with ``spec.steps`` steps, or standard / TRADES)."""
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


def model_meta(spec: ModelSpec, splits: Splits, seed: int) -> dict[str, Any]:
    return {"arch": spec.arch, "input_shape": list(splits.x_train.shape[1:]),
            "num_classes": int(splits.y_train.max()) + 1, "kwargs": spec.kwargs, "data": "digits",
            "trained": {"method": spec.method, "eps": spec.eps, "epochs": spec.epochs, "seed": seed}}


def run_seed(
    cfg: RecipeConfig, seed: int, splits: Splits, device, models_dir: Path, progress=None
) -> list[dict[str, Any]]:
    """One seed of the recipe: train (or reload from ``models_dir``) the sequence, run every method on every
    pair; records ``kind: model`` (one per model) and ``kind: row`` (one per row of each pair's table)."""
    check = CheckConfig(**cfg.check)
    models: dict[str, nn.Module] = {}
    records: list[dict[str, Any]] = []
    for spec in cfg.models:
        d = models_dir / spec.name
        t0 = time.perf_counter()
        if (d / "model.safetensors").exists():
            model = load_classifier(d, device)
        else:
            model = train_spec(spec, splits, device, seed)
            save_classifier(model, d, model_meta(spec, splits, seed))
        f = measure(model, splits.x_test, splits.y_test, check, device)
        records.append({"id": f"seed{seed}/model-{spec.name}", "kind": "model", "seed": seed, **asdict(spec),
                        "clean_accuracy": f.accuracy, "robust_accuracy": f.robust_accuracy,
                        "seconds": round(time.perf_counter() - t0, 2)})
        models[spec.name] = model
    for a, b in cfg.pairs:
        pid = f"{a}->{b}"
        base = Baseline.measure(models[a], models[b], splits, check, device)
        for method in cfg.methods:
            res = update_classifier(models[a], models[b], splits, cfg.update_config(method, seed), device,
                                    baseline=base, progress=progress)
            for r in res.table:
                if method == cfg.methods[0] or r.get("role") == "candidate":
                    records.append({"id": f"seed{seed}/{pid}:{r['model']}", "kind": "row", "seed": seed, "pair": pid,
                                    "method": r.get("method", r["role"]),
                                    **{k: v for k, v in r.items() if k != "method"}})
    return records


def _selected(rows: list[dict[str, Any]], pid: str, method: str) -> dict[int, dict[str, Any]]:
    """Per seed, the row of ``method`` on pair ``pid`` (its selected setting; the model itself for old/new)."""
    return {int(r["seed"]): r for r in rows if r["pair"] == pid and r["method"] == method
            and (r.get("role") != "candidate" or r.get("selected"))}


def _column(by_seed: dict[int, dict[str, Any]], seeds: list[int], key: str) -> list[float]:
    return [float(by_seed[s][key]) for s in seeds]


def recipe_summary(rows: list[dict[str, Any]], pairs: list[tuple[str, str]], methods: tuple[str, ...]) -> dict:
    """Per pair: each method's mean ± std over seeds, the paired comparison with AT, and whether RCAT wins
    (lower mean RNFR and S-NFR than AT, mean robust accuracy at most 2 points lower)."""
    out = []
    for a, b in pairs:
        pid = f"{a}->{b}"
        per = {m: _selected(rows, pid, m) for m in ("old", "new", *methods)}
        seeds = sorted(set.intersection(*(set(v) for v in per.values()))) if per else []
        if not seeds:
            continue
        stats = {m: {k: M.mean_std(_column(per[m], seeds, k)) for k in SUMMARY_KEYS} for m in per}
        entry: dict[str, Any] = {"pair": pid, "seeds": seeds, "methods": stats}
        if "at" in per:
            entry["vs_at"] = {m: {k: M.paired_difference(_column(per[m], seeds, k), _column(per["at"], seeds, k))
                                  for k in ("rnfr", "s_nfr", "robust_accuracy")} for m in methods if m != "at"}
        new, old = stats["new"], stats["old"]
        entry["new_better_than_old"] = (new["clean_accuracy"]["mean"] > old["clean_accuracy"]["mean"]
                                        and new["robust_accuracy"]["mean"] > old["robust_accuracy"]["mean"])
        if "rcat" in per and "at" in per:
            r, t = stats["rcat"], stats["at"]
            entry.update(rcat_rnfr=r["rnfr"]["mean"], at_rnfr=t["rnfr"]["mean"], rcat_s_nfr=r["s_nfr"]["mean"],
                         at_s_nfr=t["s_nfr"]["mean"], lower_rnfr=r["rnfr"]["mean"] < t["rnfr"]["mean"],
                         lower_s_nfr=r["s_nfr"]["mean"] < t["s_nfr"]["mean"],
                         robust_within_2pt=r["robust_accuracy"]["mean"] >= t["robust_accuracy"]["mean"] - 0.02)
        out.append(entry)
    wins = sum(1 for s in out if s.get("lower_rnfr") and s.get("lower_s_nfr") and s.get("robust_within_2pt"))
    return {"pairs": out, "rcat_wins": wins, "n_pairs": len(out)}
