"""Image sets beyond the built-in digits: MNIST and CIFAR-10 from disk, and synthetic two-class sets.

MNIST and CIFAR-10 are read from a directory the user already has, in torchvision's on-disk format
(nothing is downloaded):

- MNIST: ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (optionally ``.gz``);
- CIFAR-10: ``ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (Python pickles, read with a
  restricted unpickler that only admits plain containers and NumPy arrays).

``ROOT`` comes from the data name (``mnist:/data/torchvision``), else ``$ADVLAB_DATA_DIR``, else
``<advlab cache>/data``. The files are parsed directly, so the optional ``vision`` extra (torchvision)
is only needed to download them. Splits are fixed: ``test`` is the official test set, ``val`` the last
5,000 training images (a tenth for smaller sets), ``train`` the rest.

Synthetic two-class sets for fast tests (seeded, 600 points, 60/20/20 splits):
``two-moons`` (x in [0, 1]², shape [N, 2]) and ``stripes`` (1×8×8 images: a bright top or bottom half).
"""

from __future__ import annotations

import gzip
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_moons

from advlab.errors import ConfigError, DataError
from advlab.utils import cache_dir

SPLITS = ("train", "val", "test")
ON_DISK = ("mnist", "cifar10")
SYNTHETIC = ("two-moons", "stripes")
NAMES = ("digits", *ON_DISK, *SYNTHETIC)


def data_root(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ADVLAB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def parse_name(data: str) -> tuple[str, str | None]:
    """``"mnist:/root"`` -> (``"mnist"``, ``"/root"``); ``"cifar-10"`` is accepted for ``cifar10``."""
    name, _, root = str(data).partition(":")
    name = name.strip().lower().replace("cifar-10", "cifar10").replace("_", "-")
    if name not in NAMES:
        raise ConfigError(
            f"unknown data {data!r}; use one of {', '.join(NAMES)} (on-disk sets: NAME:ROOT_DIR)"
        )
    return name, (root or None)


# ---- MNIST (IDX files) -----------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format): magic 0x00 0x00 dtype ndim, big-endian dims, then the data."""
    cands = [path, path.with_name(path.name + ".gz")]
    found = next((p for p in cands if p.exists()), None)
    if found is None:
        raise DataError(
            f"{path} not found; put MNIST in torchvision's layout (ROOT/MNIST/raw/*-ubyte) "
            "and pass --data mnist:ROOT"
        )
    raw = gzip.decompress(found.read_bytes()) if found.suffix == ".gz" else found.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{found} is not an unsigned-byte IDX file; re-download MNIST")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"{found} is truncated ({len(raw) - offset} bytes of {expected}); re-download MNIST")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _mnist(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    raw = root / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    x = _read_idx(raw / f"{prefix}-images-idx3-ubyte")
    y = _read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{raw}: images {x.shape} and labels {y.shape} do not match; re-download MNIST")
    return x[:, None, :, :], y.astype(np.int64)


# ---- CIFAR-10 (pickled batches) ---------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Admit only what CIFAR batches contain: builtin containers and NumPy array reconstruction."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: not a CIFAR-10 batch file")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise DataError(
            f"{path} not found; put CIFAR-10 in torchvision's layout (ROOT/cifar-10-batches-py/) "
            "and pass --data cifar10:ROOT"
        )
    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="latin1").load()
        data = d.get("data", d.get(b"data"))
        labels = d.get("labels", d.get(b"labels"))
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(labels, dtype=np.int64)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a broken file
        raise DataError(f"{path} is not a CIFAR-10 batch ({exc}); re-download CIFAR-10") from exc
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels; re-download CIFAR-10")
    return x, y


def _cifar10(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    base = root / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    parts = [_cifar_batch(base / f) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@lru_cache(maxsize=4)
def _on_disk(name: str, root: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    return (_mnist if name == "mnist" else _cifar10)(Path(root), train)


# ---- synthetic ------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _synthetic(name: str, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "two-moons":
        x, y = make_moons(n_samples=n, noise=0.1, random_state=0)
        x = (x - x.min(0)) / (x.max(0) - x.min(0))
        return x.astype(np.float32), y.astype(np.int64)
    y = rng.integers(0, 2, size=n)
    x = rng.uniform(0.0, 0.3, size=(n, 1, 8, 8))
    for i, c in enumerate(y):
        rows = slice(0, 4) if c == 0 else slice(4, 8)
        x[i, 0, rows, :] += 0.5
    return np.clip(x, 0, 1).astype(np.float32), y.astype(np.int64)


def _split_indices(n: int, split: str) -> np.ndarray:
    perm = np.random.default_rng(0).permutation(n)
    a, b = int(0.6 * n), int(0.8 * n)
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}[split]


def load(data: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` for ``split`` of ``data``; x float in [0, 1] ([N, C, H, W] for images), y int64 [N]."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    name, root = parse_name(data)
    if name == "digits":
        raise ConfigError("digits is built in: load it with advlab.data.load_image_split('digits')")
    if name in SYNTHETIC:
        x, y = _synthetic(name)
        i = _split_indices(len(y), split)
        return torch.from_numpy(x[i].copy()), torch.from_numpy(y[i].copy())
    base = data_root(root)
    if not base.is_dir():
        raise DataError(
            f"data directory {base} does not exist; pass --data {name}:DIR or set ADVLAB_DATA_DIR"
        )
    x, y = _on_disk(name, str(base), split != "test")
    if split != "test":
        n_val = min(5000, max(1, len(y) // 10))
        sl = slice(len(y) - n_val, None) if split == "val" else slice(0, len(y) - n_val)
        x, y = x[sl], y[sl]
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))
