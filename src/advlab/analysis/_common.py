"""Helpers shared by the analysis measures: layer lookup and capturing a layer's input and output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.torchutil import eval_mode


def module_names(model: nn.Module) -> list[str]:
    """Names of all sub-modules (as in ``model.named_modules()``), without the root."""
    return [name for name, _ in model.named_modules() if name]


def get_layer(model: nn.Module, layer: str) -> nn.Module:
    """The sub-module called ``layer``; a missing name raises ConfigError listing the available ones."""
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = module_names(model)
        shown = ", ".join(names[:40]) + (" …" if len(names) > 40 else "")
        raise ConfigError(f"layer {layer!r} is not a module of this model; choose one of: {shown}")
    return modules[layer]


def linear_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if n and isinstance(m, nn.Linear)]


def get_linear(model: nn.Module, layer: str) -> nn.Linear:
    """The ``nn.Linear`` called ``layer`` (ConfigError if missing or not linear)."""
    mod = get_layer(model, layer)
    if not isinstance(mod, nn.Linear):
        raise ConfigError(
            f"layer {layer!r} is a {type(mod).__name__}, not a linear layer; relative flatness needs an nn.Linear "
            f"(linear layers here: {', '.join(linear_layer_names(model)) or 'none'})"
        )
    return mod


@contextlib.contextmanager
def capture_io(module: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record the input and output of ``module`` during the forward passes inside the block."""
    store: dict[str, torch.Tensor] = {}

    def hook(_mod, inputs, output):
        store["input"] = inputs[0]
        store["output"] = output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def logits_layer_name(model: nn.Module, x: torch.Tensor) -> str:
    """Name of the nn.Linear whose output is the model's output (the logits layer)."""
    for name in reversed(linear_layer_names(model)):
        mod = dict(model.named_modules())[name]
        with eval_mode(model), capture_io(mod) as io, torch.no_grad():
            out = model(x[:1])
        if "output" in io and _is_same(io["output"], out):
            return name
    raise ConfigError("no nn.Linear produces this model's logits; pass --layer with a linear layer's name")


def _is_same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))
