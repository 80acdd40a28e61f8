"""Shared fixtures. The quick safety-gym chat model is built once per test run (and reused
across runs while its source is unchanged), shared by all xdist workers through a file lock."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from advlab.models.zoo_cache import recipe_files

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests use tiny models: one intra-op thread per test process is much faster than several
# processes (xdist workers) each fighting over both cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def _gym_source_hash() -> str:
    """Bytes of every file of the gym's recipe (any edit, docs included, rebuilds the test gym)."""
    h = hashlib.sha256()
    src = ROOT / "src" / "advlab"
    for p in recipe_files(src):
        h.update(p.relative_to(src).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data in ../shared/data (skip tests that need it when it is absent)."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gym_dir() -> Path:
    """Directory of the quick safety-gym model (HF format), built once and cached by source hash."""
    from filelock import FileLock

    from advlab.models.zoo import build_safety_gym

    if os.environ.get("ADVLAB_TEST_GYM"):  # a fixed build (e.g. while the gym recipe is being edited)
        return Path(os.environ["ADVLAB_TEST_GYM"])
    cache = Path(os.environ.get("ADVLAB_TEST_CACHE", ROOT / ".pytest_cache" / "advlab"))
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"gym-quick-{_gym_source_hash()}"
    with FileLock(str(out) + ".lock"):
        if not (out / "model.safetensors").exists():
            build_safety_gym(out, quick=True, seed=0)
    return out


@pytest.fixture(scope="session")
def gym(gym_dir):
    """``(model, tokenizer)`` of the quick safety gym on CPU, in eval mode."""
    from advlab.models import load_chat_model

    model, tok = load_chat_model(str(gym_dir), device="cpu")
    return model, tok
