"""MNIST / CIFAR-10 loaders on tiny fake directories in torchvision's on-disk format; synthetic sets."""

from __future__ import annotations

import ast
import gzip
import inspect
import pickle
import struct

import numpy as np
import pytest
import torch

from advlab.data import images, load_image_split, vision
from advlab.errors import ConfigError, DataError


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


@pytest.fixture
def fake_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", 30), ("t10k", 10)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(x))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(y)))  # gz works too
        data[prefix] = (x, y)
    vision._on_disk.cache_clear()
    return tmp_path, data


def test_mnist_from_torchvision_layout(fake_mnist):
    root, data = fake_mnist
    x, y = load_image_split(f"mnist:{root}", "test")
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(data["t10k"][0][:, None].astype(np.float32) / 255))
    assert torch.equal(y, torch.from_numpy(data["t10k"][1].astype(np.int64)))
    xtr, ytr = load_image_split(f"mnist:{root}", "train")
    xva, yva = load_image_split(f"mnist:{root}", "val")
    assert len(xtr) == 27 and len(xva) == 3  # a tenth of a small training set is held out
    assert torch.equal(torch.cat([ytr, yva]), torch.from_numpy(data["train"][1].astype(np.int64)))


def test_mnist_root_from_environment(fake_mnist, monkeypatch):
    root, _ = fake_mnist
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(root))
    assert load_image_split("mnist", "test")[0].shape[0] == 10


def test_truncated_or_missing_mnist_is_a_data_error(fake_mnist, tmp_path):
    root, _ = fake_mnist
    f = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    vision._on_disk.cache_clear()
    with pytest.raises(DataError, match="truncated"):
        load_image_split(f"mnist:{root}", "test")
    with pytest.raises(DataError, match="does not exist"):
        load_image_split(f"mnist:{tmp_path / 'nowhere'}", "test")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="torchvision's layout"):
        load_image_split(f"mnist:{empty}", "test")


def test_cifar10_from_torchvision_layout(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=4)]
        with open(base / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": x, b"filenames": []}, fh)
        batches[name] = (x, y)
    vision._on_disk.cache_clear()
    x, y = load_image_split(f"cifar10:{tmp_path}", "test")
    assert x.shape == (4, 3, 32, 32)
    assert torch.equal(
        x, torch.from_numpy(batches["test_batch"][0].reshape(4, 3, 32, 32).astype(np.float32) / 255)
    )
    assert y.tolist() == batches["test_batch"][1]
    xtr, _ = load_image_split(f"cifar-10:{tmp_path}", "train")
    assert xtr.shape[0] == 18  # 20 training images, 2 held out for val


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_loader_refuses_arbitrary_pickles(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    with open(base / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh)
    vision._on_disk.cache_clear()
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_image_split(f"cifar10:{tmp_path}", "test")


def test_synthetic_sets_are_fixed_disjoint_and_in_unit_box():
    for name, shape in (("two-moons", (2,)), ("stripes", (1, 8, 8))):
        parts = [load_image_split(name, s) for s in ("train", "val", "test")]
        assert sum(len(p[1]) for p in parts) == 600
        for x, y in parts:
            assert tuple(x.shape[1:]) == shape
            assert float(x.min()) >= 0 and float(x.max()) <= 1
            assert set(y.tolist()) == {0, 1}
        again = load_image_split(name, "train")
        assert torch.equal(again[0], parts[0][0])


def test_unknown_names_and_splits():
    with pytest.raises(ConfigError, match="unknown data"):
        load_image_split("imagenet", "test")
    with pytest.raises(ConfigError, match="unknown split"):
        load_image_split("stripes", "dev")


def test_digits_go_through_images_and_vision_never_imports_images():
    """The images -> vision import points one way: vision holds only the other sets."""
    x, y = load_image_split("Digits", "val")
    ex, ey = images.load_digits_split("val")
    assert torch.equal(x, ex) and torch.equal(y, ey)
    with pytest.raises(ConfigError, match="load_image_split"):
        vision.load("digits")
    tree = ast.parse(inspect.getsource(vision))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "advlab.data.images" not in imported and "advlab.data" not in imported
