"""Data-parallel training optimises the one-process objective for every loss the trainer accepts.

RCAT's distance terms are means over the samples a reference model gets right; weighting each process's
loss by its share of rows (|B_r|/|B|) would make a sample's weight depend on which samples share its
process. With normalisers summed before dividing (``advlab.training.classifier.objective``), 2 gloo
processes must give the weights of 1 process to 1e-6, for RCAT, PCT and TRADES (float64, deterministic
input perturbations; batch 25 splits 13/12, the masks split unevenly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dp_worker
import pytest
import torch

from advlab.distributed import launch_argv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_process_weights(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dp")
    cmd = [*launch_argv("torchrun", 2)[:-1], str(Path(dp_worker.__file__)), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", dp_worker.LOSSES)
def test_two_processes_give_the_one_process_weights(name, two_process_weights):
    torch.set_num_threads(1)
    one = dp_worker.train(name)
    two = torch.load(two_process_weights / f"{name}.pt")
    start = dp_worker._model(2).state_dict()
    assert max(float((one[k] - start[k]).abs().max()) for k in one) > 1e-2  # training moved the weights
    for k in one:
        assert float((one[k] - two[k]).abs().max()) < 1e-6, (name, k, float((one[k] - two[k]).abs().max()))
