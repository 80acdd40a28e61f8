"""The classifier training loop, shared by standard training, PGD-AT, TRADES and RCAT fine-tuning.

Reusable pieces:

- :func:`iterate_batches`: shuffled mini-batches from tensors (seeded);
- :func:`train_epoch`: one epoch of ``loss_fn(model, x, y) -> scalar`` with an optimizer;
- :func:`evaluate_accuracy`: clean accuracy, or accuracy under an attack, in batches;
- :func:`fit`: the epoch loop with per-epoch clean + PGD evaluation, safetensors checkpoints
  (model and optimizer state) and resume from the last finished epoch.

Randomness: the global torch RNG is re-seeded with ``seed + epoch`` at the start of every epoch
(shuffling, random starts), so a resumed run repeats exactly what an uninterrupted run would do.

Several processes (``torchrun`` / ``accelerate launch``, see :mod:`advlab.distributed`): every process
draws the same permutation and takes rows ``rank, rank + W, …`` of each global batch of ``batch_size``;
the loss's normalisers and then its gradients are summed over processes (see :func:`train_epoch_sharded`),
which gives the one-process gradient of the whole global batch, so with a deterministic loss the weights
match a one-process run up to float rounding. Evaluation batches are split between processes and the
correct counts summed. Only rank 0 writes the run directory, checkpoints and the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab import distributed
from advlab.distributed import DistInfo
from advlab.errors import ConfigError, ModelError
from advlab.training.classifier.objective import MAX_TERMS, loss_terms

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("standard", "pgd-at", "trades")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Options of ``advlab train classifier`` (validated on creation)."""

    method: str = "standard"
    arch: str = "cnn"
    data: str = "digits"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    eps: float = 0.1  # training radius (pgd-at, trades)
    norm: str = "linf"
    attack_steps: int = 10
    step_size: float | None = None  # None: 2.5·eps/attack_steps
    beta: float = 6.0  # TRADES trade-off (Zhang et al. 2019)
    eval_eps: float | None = None  # None: same as eps (or 0.1 for standard training)
    eval_steps: int = 20
    eval_limit: int = 1000  # val samples evaluated per epoch
    seed: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from advlab.attacks.classifier.constraints import canonical_norm
        from advlab.models.classifiers import ARCHITECTURES

        if self.method not in METHODS:
            raise ConfigError(f"unknown training method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown model {self.arch!r}; use one of {', '.join(ARCHITECTURES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use adam or sgd")
        for name in ("epochs", "batch_size", "attack_steps", "eval_steps", "eval_limit"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name}={v!r} must be an integer >= 1")
        for name in ("lr", "eps", "beta", "weight_decay", "momentum"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name}={v!r} must be a finite number >= 0")
        if self.lr == 0:
            raise ConfigError("lr=0 would not train; pass e.g. --lr 0.001")
        if self.method != "standard" and self.eps == 0:
            raise ConfigError(f"--method {self.method} needs --eps > 0 (the training radius), e.g. --eps 0.1")
        for name in ("step_size", "eval_eps"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
                raise ConfigError(f"{name}={v!r} must be a finite number >= 0")
        self.norm = canonical_norm(self.norm)

    @property
    def alpha(self) -> float:
        return float(self.step_size) if self.step_size is not None else 2.5 * self.eps / self.attack_steps

    @property
    def radius_eval(self) -> float:
        if self.eval_eps is not None:
            return float(self.eval_eps)
        return self.eps if self.eps > 0 else 0.1


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``(x, y)`` (a random permutation when ``shuffle``; the last batch may be smaller)."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


def train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    shard: DistInfo | None = None,
) -> float:
    """One epoch: for each shuffled batch, ``loss_fn(model, xb, yb).backward()`` and an optimizer step.

    The model is in train mode for the loss (attacks inside ``loss_fn`` switch to eval mode and back).
    Returns the mean loss over samples. ``progress(n)`` is called with each batch size.
    With ``shard`` of world size > 1 (``torch.distributed`` initialised) see :func:`train_epoch_sharded`.
    """
    if shard is not None and shard.active:
        return train_epoch_sharded(
            model,
            x,
            y,
            loss_fn,
            optimizer,
            shard,
            batch_size=batch_size,
            device=device,
            generator=generator,
            progress=progress,
        )
    model.train()
    total, count = 0.0, 0
    for xb, yb in iterate_batches(x, y, batch_size, True, generator):
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, xb, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError("training loss is not finite; lower --lr")
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * xb.shape[0]
        count += xb.shape[0]
        if progress is not None:
            progress(xb.shape[0])
    return total / max(count, 1)


def train_epoch_sharded(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    shard: DistInfo,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> float:
    """One epoch of data-parallel training over ``shard.world_size`` processes (torch.distributed initialised).

    Every process draws the same permutation (same seed) and splits each global batch B of ``batch_size``
    rows as B_r = B[r::W]. The loss is taken as normalised sums L = Σ_k w_k·S_k/N_k
    (:mod:`advlab.training.classifier.objective`): the normalisers N_k are summed over processes first,
    each process back-propagates Σ_k w_k·S_k(B_r)/N_k, and the gradients are summed, which is ∇L(B), the
    one-process gradient, for every loss (masked means such as RCAT's included) and any split of B.
    A parameter keeps ``grad=None`` only if it got no gradient on any process. Buffers (BatchNorm
    statistics) are copied from rank 0 after each step, as DDP does. After the permutation the global RNG
    is re-seeded per rank, so random starts inside ``loss_fn`` differ between processes. Returns the mean
    over batches of L(B), weighted by |B|.
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    torch.manual_seed((torch.initial_seed() * 1_000_003 + shard.rank + 1) % (2**63))
    params = [p for p in model.parameters() if p.requires_grad]
    has_buffers = any(True for _ in model.buffers())
    model.train()
    total, count = 0.0, 0
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        mine = idx[shard.rank :: shard.world_size]
        big = int(idx.numel())
        optimizer.zero_grad(set_to_none=True)
        terms = None
        counts = torch.zeros(MAX_TERMS, dtype=torch.float64)
        if mine.numel() > 0:
            terms = loss_terms(loss_fn, model, x[mine].to(device), y[mine].to(device))
            counts[: len(terms.counts)] = torch.tensor(terms.counts, dtype=torch.float64)
        counts = distributed.all_reduce_sum(counts.to(device)).cpu()
        loss_part = 0.0
        if terms is not None:
            local = terms.total(counts[: len(terms.counts)].tolist())
            local.backward()
            loss_part = float(local.detach())
        # one float64 vector: [this process's share of L(B), has-grad flags]; one vector of the gradients
        side = torch.tensor([loss_part] + [float(p.grad is not None) for p in params], dtype=torch.float64)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        side = distributed.all_reduce_sum(side.to(flat.device)).cpu()
        distributed.all_reduce_sum(flat)
        if not math.isfinite(float(side[0])):
            raise FloatingPointError("training loss is not finite; lower --lr")
        offset = 0
        for p, flag in zip(params, side[1:].tolist()):
            k = p.numel()
            p.grad = flat[offset : offset + k].view_as(p).clone() if flag > 0 else None
            offset += k
        optimizer.step()
        if has_buffers:
            distributed.broadcast_module(model, buffers_only=True)
        total += float(side[0]) * big
        count += big
        if progress is not None:
            progress(big)
    return total / max(count, 1)


def evaluate_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    shard: DistInfo | None = None,
) -> float:
    """Accuracy of ``model`` on ``(x, y)``, or on ``attack(model, x, y)`` when an attack is given.

    With ``shard`` of world size W > 1, process r evaluates batches r, r + W, … and the correct counts
    are summed over processes: the same batches as one process, so a seeded attack gives the same number.
    """
    active = shard is not None and shard.active
    was = model.training
    model.eval()
    correct = 0
    try:
        for b, (xb, yb) in enumerate(iterate_batches(x, y, batch_size, shuffle=False)):
            if active and b % shard.world_size != shard.rank:
                continue
            xb, yb = xb.to(device), yb.to(device)
            if attack is not None:
                xb = attack(model, xb, yb)
            with torch.no_grad():
                correct += int((model(xb).argmax(1) == yb).sum())
    finally:
        model.train(was)
    if active:
        from advlab import distributed

        correct = int(distributed.all_reduce_sum(torch.tensor([correct], dtype=torch.int64, device=device))[0])
    return correct / max(x.shape[0], 1)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


# ---- checkpoints (safetensors only) -------------------------------------------------------------
def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Optimizer state as safetensors (tensors) plus JSON (scalars and hyper-parameters)."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{k}"] = v
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"scalars": scalars, "param_groups": sd["param_groups"]}))


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path.with_suffix(".safetensors")))
    extra = json.loads(path.with_suffix(".json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(extra["scalars"].items()):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def classifier_meta(cfg: TrainConfig, input_shape, num_classes: int, **extra: Any) -> dict[str, Any]:
    """``classifier.json`` content: architecture, shapes, and how the model was trained."""
    return {
        "arch": cfg.arch,
        "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "kwargs": dict(cfg.model_kwargs),
        "data": cfg.data,
        "trained": {
            "method": cfg.method,
            "eps": cfg.eps if cfg.method != "standard" else 0.0,
            "norm": cfg.norm,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            **extra,
        },
    }


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    clean_accuracy: float
    robust_accuracy: float
    eval_eps: float
    seconds: float

    def as_record(self) -> dict[str, Any]:
        return {"id": f"epoch-{self.epoch}", **asdict(self)}


def save_checkpoint(ckpt_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict, epoch: int) -> None:
    """Model (``advlab.models.save_classifier``) and optimizer state after ``epoch``, written atomically."""
    from advlab.models.classifiers import save_classifier
    from advlab.runs import atomic_write_json

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(model, ckpt_dir, {**meta, "epoch": epoch})
    save_optimizer(optimizer, ckpt_dir / "optimizer")
    atomic_write_json(ckpt_dir / "epoch.json", {"epoch": epoch})


def load_checkpoint(ckpt_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer from ``ckpt_dir``; return the last finished epoch (0 if none)."""
    from safetensors.torch import load_file

    marker = ckpt_dir / "epoch.json"
    if not marker.exists():
        return 0
    try:
        epoch = int(json.loads(marker.read_text())["epoch"])
        model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors"), device="cpu"))
        load_optimizer(optimizer, ckpt_dir / "optimizer")
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"checkpoint {ckpt_dir} is unreadable ({exc}); delete it to restart training") from exc
    return epoch


def loss_for(cfg: TrainConfig) -> LossFn:
    """The training loss of ``cfg.method``."""
    if cfg.method == "pgd-at":
        from advlab.training.classifier.pgd_at import pgd_at_loss

        return pgd_at_loss(cfg.eps, cfg.attack_steps, cfg.alpha, cfg.norm)
    if cfg.method == "trades":
        from advlab.training.classifier.trades import trades_loss

        return trades_loss(cfg.eps, cfg.beta, cfg.attack_steps, cfg.alpha, cfg.norm)
    from advlab.training.classifier.standard import standard_loss

    return standard_loss


def eval_attack(cfg: TrainConfig):
    """The per-epoch evaluation attack: PGD-``eval_steps`` at ``radius_eval`` (fixed seed)."""
    from advlab.attacks.classifier import PGD

    return PGD(eps=cfg.radius_eval, steps=cfg.eval_steps, norm=cfg.norm, random_start=True, seed=0)


def load_train_data(cfg: TrainConfig):
    """Train and validation splits of ``cfg.data`` (raises DataError/ConfigError before any work)."""
    from advlab.data.images import load_image_split

    xtr, ytr = load_image_split(cfg.data, "train")
    xva, yva = load_image_split(cfg.data, "val")
    return xtr, ytr, xva[: cfg.eval_limit], yva[: cfg.eval_limit]


def run_training(
    cfg: TrainConfig,
    out: str | Path,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
    progress: bool = True,
    loss_fn: LossFn | None = None,
) -> dict[str, Any]:
    """Train a classifier into ``out`` (a run directory that is also a model directory).

    ``out`` gets ``model.safetensors`` + ``classifier.json`` (loadable with ``load_classifier(out)``),
    ``results.jsonl`` (one record per epoch: train loss, clean and PGD validation accuracy),
    ``metrics.json``, ``checkpoint/`` (the last finished epoch, with optimizer state) and a report.
    Re-running with the same config resumes after the last checkpoint. Returns the metrics.

    Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) every process trains its share of
    each batch (see :func:`train_epoch_sharded`); rank 0 alone writes ``out``; all return the metrics.
    """
    from advlab import distributed
    from advlab.runs import RunDir, check_out_path

    check_out_path(out)
    xtr, ytr, xva, yva = load_train_data(cfg)
    input_shape, num_classes = tuple(xtr.shape[1:]), int(max(int(ytr.max()), int(yva.max())) + 1)
    device = distributed.local_device(device)
    shard = distributed.init_from_env(device)
    loss_fn = loss_fn or loss_for(cfg)
    attack = eval_attack(cfg)
    config = {**asdict(cfg), "input_shape": list(input_shape), "num_classes": num_classes}
    run = RunDir(
        out,
        "train-classifier",
        config,
        seed=cfg.seed,
        device=str(device),
        argv=argv,
        rank=shard.rank,
        world_size=shard.world_size,
    )
    with run:  # opened on every rank, rank 0 first (RunDir.open_all_ranks)
        metrics = _train(cfg, run, shard, device, loss_fn, attack, (xtr, ytr, xva, yva), progress)
    if shard.is_main:
        from advlab.report import write_report

        write_report(run.path)
    return metrics


def _train(
    cfg: TrainConfig,
    run: Any,
    shard: DistInfo,
    device: torch.device,
    loss_fn: LossFn,
    attack: Callable,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    progress: bool,
) -> dict[str, Any]:
    """The epoch loop of :func:`run_training` inside an open run directory."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from advlab import distributed
    from advlab.models.classifiers import build_classifier
    from advlab.utils import seed_everything

    xtr, ytr, xva, yva = data
    input_shape, num_classes = run.config["input_shape"], run.config["num_classes"]
    seed_everything(cfg.seed)
    model = build_classifier(cfg.arch, tuple(input_shape), num_classes, **cfg.model_kwargs).to(device)
    optimizer = make_optimizer(model, cfg)
    ckpt = run.path / "checkpoint"
    start = load_checkpoint(ckpt, model, optimizer)
    model.to(device)
    distributed.broadcast_module(model)  # every process starts from rank 0's weights
    meta = classifier_meta(cfg, input_shape, num_classes)
    show = progress and shard.is_main
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{cfg.method} {cfg.arch}", total=(cfg.epochs - start) * xtr.shape[0])
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            train_loss = train_epoch(
                model,
                xtr,
                ytr,
                loss_fn,
                optimizer,
                batch_size=cfg.batch_size,
                device=device,
                progress=lambda n: bar.advance(task, n),
                shard=shard,
            )
            clean = evaluate_accuracy(model, xva, yva, device=device, shard=shard)
            robust = evaluate_accuracy(model, xva, yva, attack, device=device, shard=shard)
            rec = EpochRecord(epoch, train_loss, clean, robust, cfg.radius_eval, time.perf_counter() - t0)
            if shard.is_main:
                if not run.is_done(f"epoch-{epoch}"):
                    run.append(rec.as_record())
                save_checkpoint(ckpt, model, optimizer, meta, epoch)
            if show:
                bar.console.print(
                    f"epoch {epoch}/{cfg.epochs}: loss {train_loss:.3f}, val clean {clean:.3f}, "
                    f"val PGD-{cfg.eval_steps}@{cfg.radius_eval:g} {robust:.3f}"
                )
    metrics = distributed.main_first(lambda: _finish(cfg, run, model, meta))
    return distributed.broadcast_object(metrics)


def _finish(cfg: TrainConfig, run: Any, model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """Rank 0: the final model directory and ``metrics.json`` from the epoch records."""
    from advlab.models.classifiers import save_classifier

    records = sorted(run.records, key=lambda r: r["epoch"])
    last = records[-1]
    final_meta = {**meta}
    final_meta["trained"] = {
        **meta["trained"],
        "val_clean_accuracy": last["clean_accuracy"],
        "val_robust_accuracy": last["robust_accuracy"],
        "eval_attack": f"pgd-{cfg.eval_steps}",
        "eval_eps": cfg.radius_eval,
    }
    save_classifier(model, run.path, final_meta)
    metrics = {
        "method": cfg.method,
        "arch": cfg.arch,
        "epochs": len(records),
        "final_train_loss": last["train_loss"],
        "val_clean_accuracy": last["clean_accuracy"],
        "val_robust_accuracy": last["robust_accuracy"],
        "eval_eps": cfg.radius_eval,
        "best_val_robust_accuracy": max(r["robust_accuracy"] for r in records),
    }
    run.write_metrics(metrics)
    return metrics
