"""Training checkpoints in safetensors only: model (``save_classifier``), optimizer state, and the last epoch.

``checkpoint/epoch.json`` holds the last finished epoch and its record, so a run interrupted after the
checkpoint but before the record was written resumes without training that epoch twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from advlab.errors import ModelError
from advlab.models.classifiers import save_classifier
from advlab.runs import atomic_write_json


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Optimizer state as safetensors (tensors) plus JSON (scalars and hyper-parameters)."""
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
    tensors = load_file(str(path.with_suffix(".safetensors")))
    extra = json.loads(path.with_suffix(".json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(extra["scalars"].items()):
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def save_checkpoint(
    ckpt_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict,
    epoch: int,
    record: dict[str, Any] | None = None,
) -> None:
    """Model (``advlab.models.save_classifier``) and optimizer state after ``epoch`` (and the epoch's record);
    ``epoch.json`` is written last and atomically."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(model, ckpt_dir, {**meta, "epoch": epoch})
    save_optimizer(optimizer, ckpt_dir / "optimizer")
    atomic_write_json(ckpt_dir / "epoch.json", {"epoch": epoch, **({"record": record} if record else {})})


def checkpoint_record(ckpt_dir: Path) -> dict[str, Any] | None:
    """The record of the checkpoint's epoch (None without a checkpoint or a record)."""
    marker = ckpt_dir / "epoch.json"
    return json.loads(marker.read_text()).get("record") if marker.exists() else None


def load_checkpoint(ckpt_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer from ``ckpt_dir``; return the last finished epoch (0 if none)."""
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
