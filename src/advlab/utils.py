"""Small shared helpers: seeding, device resolution, environment versions."""

from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import random
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from advlab.errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run is repeatable on one machine."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str | None) -> Any:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a ``torch.device``.

    Raises ConfigError for anything else, or for an accelerator that is not present.
    """
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is available here; use --device cpu or auto")
        try:
            dev = torch.device(name)
        except RuntimeError as exc:
            raise ConfigError(f"--device {device}: not a device name; use cpu, cuda, cuda:N or auto") from exc
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s); use cuda:0..."
            )
        return dev
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError("--device mps: MPS is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise ConfigError(f"--device {device}: unknown device; use cpu, cuda, cuda:N, mps or auto")


def git_commit(path: Path | None = None) -> str | None:
    """The git commit of the advlab source tree, if it is a checkout."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_versions() -> dict[str, Any]:
    """Versions of Python and the libraries a result depends on."""
    import advlab

    versions: dict[str, Any] = {
        "advlab": advlab.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for mod in ("torch", "transformers", "tokenizers", "numpy", "accelerate", "peft"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional library is just not recorded
            versions[mod] = None
    return versions


def cache_dir() -> Path:
    """The user's advlab cache directory (``$ADVLAB_CACHE`` or ``~/.cache/advlab``)."""
    env = os.environ.get("ADVLAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advlab"


T = TypeVar("T")


def _parameters(target: Callable[..., Any]) -> list[str]:
    if dataclasses.is_dataclass(target):
        return [f.name for f in dataclasses.fields(target) if f.init]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(target).parameters.values() if p.kind in kinds]


def fill(
    target: Callable[..., T],
    options: Mapping[str, Any],
    *,
    rename: Mapping[str, str] | None = None,
    convert: Mapping[str, Callable[[Any], Any]] | None = None,
    skip: Iterable[str] = (),
    **given: Any,
) -> T:
    """``target(**kwargs)``: each parameter of ``target`` from ``given``, else from the option of that name.

    ``rename`` maps option name -> parameter name; ``convert`` maps option name -> parser of its value;
    ``skip`` names options not to pass. A ``rename``/``convert``/``given`` key that matches nothing is a
    programming error (``TypeError``), so a renamed config field cannot silently stop being filled.
    """
    rename, convert, skipped = dict(rename or {}), dict(convert or {}), set(skip)
    params = _parameters(target)
    for key in [*rename, *convert]:
        if key not in options:
            raise TypeError(f"fill({getattr(target, '__name__', target)}): no option named {key!r}")
    for key in [*given, *rename.values()]:
        if key not in params:
            raise TypeError(f"fill({getattr(target, '__name__', target)}): no parameter named {key!r}")
    to_param = {opt: rename.get(opt, opt) for opt in options if opt not in skipped}
    kwargs: dict[str, Any] = {}
    for opt, param in to_param.items():
        if param in params and param not in given:
            value = options[opt]
            kwargs[param] = convert[opt](value) if opt in convert else value
    kwargs.update(given)
    return target(**kwargs)
