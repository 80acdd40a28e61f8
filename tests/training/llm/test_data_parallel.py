"""2 CPU processes (gloo, torchrun) train CAT: replicas bit-identical, equal to 1 process on the same batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.mark.slow
def test_two_processes_equal_one(gym_dir, tmp_path):
    sys.path.insert(0, str(HERE))
    from ddp_worker import train

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_worker.py"), str(gym_dir), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all((r0[k] == r1[k]).all() for k in r0)  # replicas bit-identical
    one = train(str(gym_dir), None)
    diff = max(float((r0[k] - one[k]).abs().max()) for k in r0)
    assert diff <= 1e-6, diff
    lora = [k for k in r0 if "lora_B" in k]
    assert lora and max(float(r0[k].abs().max()) for k in lora) > 0  # LoRA trained (B starts at 0)
