"""Inputs of the analysis commands: a saved classifier with one split of its data, the layer to analyse, and
the examples to attack; each checked before any work."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from advlab.analysis._common import get_linear, logits_layer_name
from advlab.analysis.valley import ValleyConfig
from advlab.data.images import load_image_split
from advlab.errors import ConfigError
from advlab.models.classifiers import load_classifier


def load_model_and_data(model_dir: str | Path, data: str, split: str, device: torch.device):
    """Load a saved classifier (eval mode, on ``device``) and one split of an image set."""
    model = load_classifier(model_dir, device=device)
    x, y = load_image_split(data, split)
    shape = tuple(model.meta.get("input_shape", x.shape[1:]))  # type: ignore[union-attr]
    if tuple(x.shape[1:]) != shape:
        raise ConfigError(
            f"the model expects inputs of shape {shape} but --data {data} has {tuple(x.shape[1:])}; "
            "pass the data set the model was trained on"
        )
    return model, x, y


def resolve_layer(model: nn.Module, layer: str | None, method: str, x: torch.Tensor) -> str:
    name = layer or logits_layer_name(model, x)
    get_linear(model, name)
    if method == "exact" and name != logits_layer_name(model, x):
        raise ConfigError(
            f"layer {name!r} does not produce the logits, so the exact closed form does not apply; "
            "use --method hutchinson (or brute for tiny layers)"
        )
    return name


@torch.no_grad()
def correct_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device, batch: int = 512) -> torch.Tensor:
    preds = [model(x[i : i + batch].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch)]
    return torch.cat(preds) == y


def select_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: ValleyConfig, device) -> list[int]:
    """Indices of the examples to attack: the first ``n_examples`` (correctly classified ones if asked)."""
    if cfg.only_correct:
        ok = correct_mask(model, x, y, device)
        idx = torch.nonzero(ok).flatten().tolist()
    else:
        idx = list(range(x.shape[0]))
    return idx[: cfg.n_examples]
