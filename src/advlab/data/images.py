"""Image sets. The embedded default is scikit-learn's digits (1,797 real 8x8 handwritten digits).

Splits are fixed (stratified, seed 0): train 60 %, val 20 %, test 20 %. Images are
returned as float tensors of shape [N, 1, 8, 8] with values in [0, 1] (the raw
pixel intensities 0..16 divided by 16) and integer labels of shape [N].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from advlab.data import vision
from advlab.errors import ConfigError

SPLITS = ("train", "val", "test")


@lru_cache(maxsize=1)
def _digits_arrays():
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    tr, rest = train_test_split(idx, test_size=0.4, random_state=0, stratify=y)
    va, te = train_test_split(rest, test_size=0.5, random_state=0, stratify=y[rest])
    return x, y, {"train": tr, "val": va, "test": te}


def load_digits_split(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` for a fixed split of scikit-learn's digits; x in [0, 1], shape [N, 1, 8, 8]."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    x, y, idx = _digits_arrays()
    i = idx[split]
    return torch.from_numpy(x[i].copy()), torch.from_numpy(y[i].copy())


def load_image_split(data: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on a data name: ``digits`` is built in; the others (MNIST, CIFAR-10, synthetic sets)
    are read by :mod:`advlab.data.vision`."""
    name, _ = vision.parse_name(data)
    if name == "digits":
        return load_digits_split(split)
    return vision.load(data, split)
