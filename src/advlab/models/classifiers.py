"""Small image classifiers, a registry by name, and safetensors save/load.

A classifier maps inputs in [0, 1] of shape [N, C, H, W] to logits [N, K]; any
normalisation lives inside the model. A saved classifier is a directory with
``model.safetensors`` and ``classifier.json`` (architecture, input shape, classes,
how it was trained).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from advlab.errors import ConfigError, ModelError
from advlab.models.weights import check_safetensors
from advlab.runs import atomic_write_json


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 128, depth: int = 2):
        super().__init__()
        d = 1
        for s in input_shape:
            d *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head; works for 8x8 digits and 28x28/32x32 images alike."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 32, hidden: int = 128):
        super().__init__()
        c = input_shape[0]
        self.conv = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4) if input_shape[1] > 8 else nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            d = self.conv(torch.zeros(1, *input_shape)).shape[1]
        self.features = nn.Sequential(nn.Linear(d, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(self.conv(x)))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(h)) + self.short(x))


class SmallResNet(nn.Module):
    """A ResNet with three stages of one basic block each (BatchNorm: evaluate in eval mode)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 16):
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(
            _Block(width, width, 1), _Block(width, 2 * width, 2), _Block(2 * width, 4 * width, 2)
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))))


class Linear(nn.Module):
    """A linear classifier (used by tests with closed-form answers)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        d = 1
        for s in input_shape:
            d *= s
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "linear": Linear,
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet": SmallResNet,
}


def build_classifier(
    arch: str, input_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, **kwargs: Any
) -> nn.Module:
    """Build a registered architecture by name (``linear``, ``mlp``, ``cnn``, ``resnet``)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](tuple(input_shape), num_classes, **kwargs)


def save_classifier(model: nn.Module, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Save weights as safetensors plus ``classifier.json`` (must include arch, input_shape, num_classes)."""

    for key in ("arch", "input_shape", "num_classes"):
        if key not in meta:
            raise ValueError(f"classifier meta needs {key!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(out / "model.safetensors")

    atomic_write_json(out / "classifier.json", {"format": "advlab-classifier/1", **meta})
    return out


def read_classifier_meta(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model path {p} does not exist; pass a directory written by `advlab train classifier`")
    if not p.is_dir():
        raise ModelError(f"model path {p} is a file; pass the directory that holds classifier.json")
    meta_path = p / "classifier.json"
    if not meta_path.exists():
        raise ModelError(
            f"{p} has no classifier.json, so it is not an advlab classifier; train one with `advlab train classifier`"
        )
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_path} is not valid JSON; re-train or restore the model directory") from exc


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a classifier directory (safetensors only) in eval mode; it returns logits for inputs in [0, 1]."""

    meta = read_classifier_meta(path)
    weights = Path(path) / "model.safetensors"
    if not weights.exists():
        raise ModelError(f"{path} has no model.safetensors; advlab loads weights from safetensors only")

    check_safetensors(path)
    model = build_classifier(
        meta["arch"], tuple(meta["input_shape"]), int(meta["num_classes"]), **meta.get("kwargs", {})
    )
    try:
        model.load_state_dict(load_file(str(weights), device="cpu"))
    except RuntimeError as exc:
        raise ModelError(f"{weights} does not match architecture {meta['arch']!r}; the directory is corrupt") from exc
    model.meta = meta  # type: ignore[attr-defined]
    return model.to(device).eval()
