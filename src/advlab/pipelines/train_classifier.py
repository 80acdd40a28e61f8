"""``advlab train classifier``: the job ``train-classifier`` (wiring only; see :mod:`advlab.training.classifier`).

Items are the epochs; every process runs every epoch (data-parallel, ``replicated``), rank 0 records it.
``out`` is a run directory that is also a model directory: ``model.safetensors`` + ``classifier.json``
(``load_classifier(out)``), one record per epoch (train loss, clean and PGD validation accuracy),
``metrics.json``, ``checkpoint/`` (the last finished epoch, with optimizer state) and a report. Re-running
with the same config resumes after the last checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab import distributed
from advlab.jobs import check_writable, run_job
from advlab.models.classifiers import build_classifier, save_classifier
from advlab.training.classifier.checkpoint import checkpoint_record, load_checkpoint, save_checkpoint
from advlab.training.classifier.epoch import LossFn, evaluate_accuracy, train_epoch
from advlab.training.classifier.train_config import (
    EpochRecord,
    TrainConfig,
    classifier_meta,
    eval_attack,
    load_train_data,
    loss_for,
    make_optimizer,
)
from advlab.utils import seed_everything


class TrainClassifierJob:
    name = "train-classifier"
    replicated = True

    def __init__(self, cfg: TrainConfig, out: Path, data, device: torch.device, loss_fn: LossFn, show: bool) -> None:
        self.cfg, self.out, self.data, self.loss_fn, self.show = cfg, out, data, loss_fn, show
        xtr, ytr, xva, yva = data
        self.input_shape, self.num_classes = tuple(xtr.shape[1:]), int(max(int(ytr.max()), int(yva.max())) + 1)
        self.config = {**asdict(cfg), "input_shape": list(self.input_shape), "num_classes": self.num_classes}
        self.seed, self.device = cfg.seed, device
        self.shard = distributed.init_from_env(device)
        self.meta = classifier_meta(cfg, self.input_shape, self.num_classes)
        self.attack = eval_attack(cfg)
        self.model: nn.Module | None = None

    def _ensure_model(self, broadcast: bool = True) -> None:
        """Build the model, or restore it and the optimizer from the checkpoint (once)."""
        if self.model is not None:
            return
        seed_everything(self.cfg.seed)
        cfg = self.cfg
        self.model = build_classifier(cfg.arch, self.input_shape, self.num_classes, **cfg.model_kwargs).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.start = load_checkpoint(self.out / "checkpoint", self.model, self.optimizer)
        self.model.to(self.device)
        if broadcast:
            distributed.broadcast_module(self.model)  # every process starts from rank 0's weights

    def items(self) -> list[dict[str, Any]]:
        return [{"id": f"epoch-{e}", "epoch": e} for e in range(1, self.cfg.epochs + 1)]

    def item_steps(self, item: dict[str, Any]) -> int:
        return int(self.data[0].shape[0])

    def run_item(self, item: dict[str, Any], tick) -> dict[str, Any]:
        self._ensure_model()
        cfg, epoch, (xtr, ytr, xva, yva) = self.cfg, item["epoch"], self.data
        if epoch <= self.start:  # trained and checkpointed, but its record was not written
            tick(int(xtr.shape[0]))
            return checkpoint_record(self.out / "checkpoint")
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        loss = train_epoch(self.model, xtr, ytr, self.loss_fn, self.optimizer, batch_size=cfg.batch_size,
                           device=self.device, progress=tick, shard=self.shard)
        clean = evaluate_accuracy(self.model, xva, yva, device=self.device, shard=self.shard)
        robust = evaluate_accuracy(self.model, xva, yva, self.attack, device=self.device, shard=self.shard)
        rec = EpochRecord(epoch, loss, clean, robust, cfg.radius_eval, time.perf_counter() - t0).as_record()
        if self.shard.is_main:
            save_checkpoint(self.out / "checkpoint", self.model, self.optimizer, self.meta, epoch, rec)
            if self.show:
                print(f"epoch {epoch}/{cfg.epochs}: loss {loss:.3f}, val clean {clean:.3f}, "
                      f"val PGD-{cfg.eval_steps}@{cfg.radius_eval:g} {robust:.3f}", flush=True)
        return rec

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        records = sorted(records, key=lambda r: r["epoch"])
        last = records[-1]
        return {
            "method": self.cfg.method,
            "arch": self.cfg.arch,
            "epochs": len(records),
            "final_train_loss": last["train_loss"],
            "val_clean_accuracy": last["clean_accuracy"],
            "val_robust_accuracy": last["robust_accuracy"],
            "eval_eps": self.cfg.radius_eval,
            "best_val_robust_accuracy": max(r["robust_accuracy"] for r in records),
        }

    def finish(self, path: Path, records: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
        """Rank 0: the final model directory."""
        self._ensure_model(broadcast=False)
        trained = {**self.meta["trained"], "val_clean_accuracy": metrics["val_clean_accuracy"],
                   "val_robust_accuracy": metrics["val_robust_accuracy"], "eval_attack": f"pgd-{self.cfg.eval_steps}",
                   "eval_eps": self.cfg.radius_eval}
        save_classifier(self.model, path, {**self.meta, "trained": trained})


def run_training(
    cfg: TrainConfig,
    out: str | Path,
    device: torch.device | str = "cpu",
    *,
    argv: list[str] | None = None,
    progress: bool = True,
    loss_fn: LossFn | None = None,
) -> dict[str, Any]:
    """Train a classifier into ``out`` (see the module docstring); returns the metrics (on every process).

    Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) every process trains its share of each
    batch (:func:`advlab.training.classifier.epoch.train_epoch_sharded`); rank 0 alone writes ``out``.
    """
    check_writable(out)
    data = load_train_data(cfg)
    device = distributed.local_device(device)
    job = TrainClassifierJob(cfg, Path(out), data, device, loss_fn or loss_for(cfg), progress and distributed.is_main())
    return run_job(job, out, argv=argv, progress=progress).metrics
