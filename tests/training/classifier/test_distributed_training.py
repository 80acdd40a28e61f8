"""``advlab train classifier`` under 2 CPU processes (gloo), started by ``accelerate launch`` and ``torchrun``.

Reference: the same command in one process. For standard training (deterministic loss, no BatchNorm,
no dropout) data-parallel training over 2 processes with each global batch B split as B[0::2], B[1::2]
gives the gradient Σ_r |B_r|·g_r / |B| = ∇ mean_{i∈B} ℓ_i, i.e. the one-process gradient, so the
weights agree up to float rounding. Batch size 63 makes every split uneven (32/31) and leaves a last
batch of 1078 − 17·63 = 7 rows (4/3), which plain DDP averaging (½·(g_0 + g_1)) would get wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advlab.distributed import launch_argv
from advlab.pipelines.train_classifier import run_training
from advlab.training.classifier import TrainConfig

pytestmark = pytest.mark.slow

ARGS = dict(method="standard", arch="mlp", data="digits", epochs=2, batch_size=63, seed=3)
CLI = [
    "advlab.cli.main",
    "train",
    "classifier",
    "--method",
    "standard",
    "--model",
    "mlp",
    "--data",
    "digits",
    "--epochs",
    "2",
    "--batch-size",
    "63",
    "--seed",
    "3",
    "--device",
    "cpu",
]
VAL_N = 359  # digits validation split


def _launch(launcher: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*launch_argv(launcher, 2), *CLI, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The one-process run of the same command."""
    out = tmp_path_factory.mktemp("dist-ref") / "one"
    run_training(TrainConfig(**ARGS), out, "cpu", progress=False)
    return out


def _same_run(one: Path, two: Path) -> None:
    """Same records (one per epoch, none twice), same metrics, weights equal up to float rounding."""
    r1, r2 = _records(one), _records(two)
    assert [r["id"] for r in r2] == ["epoch-1", "epoch-2"]
    for a, b in zip(r1, r2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert abs(b["clean_accuracy"] - a["clean_accuracy"]) <= 1 / VAL_N + 1e-12
        assert abs(b["robust_accuracy"] - a["robust_accuracy"]) <= 2 / VAL_N + 1e-12
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m2.keys() == m1.keys() and m2["epochs"] == 2
    assert m2["final_train_loss"] == pytest.approx(m1["final_train_loss"], rel=1e-5)
    w1, w2 = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=0, atol=1e-5), (k, (w1[k] - w2[k]).abs().max())
    ckpt = json.loads((two / "checkpoint" / "epoch.json").read_text())
    assert ckpt["epoch"] == 2 and ckpt["record"]["id"] == "epoch-2"  # the record lets a resume skip the epoch
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "done"
    assert not (two / ".lock").exists()
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_accelerate_launch_two_cpu_processes_match_one_process(reference, tmp_path):
    out = tmp_path / "two"
    proc = _launch("accelerate", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_run(reference, out)
    # training moved the weights: the comparison above is not between two untouched initialisations
    init = TrainConfig(**ARGS)
    torch.manual_seed(init.seed)
    from advlab.models import build_classifier

    w0 = build_classifier("mlp", (1, 8, 8), 10).state_dict()
    w2 = load_file(str(out / "model.safetensors"))
    assert max((w2[k] - w0[k]).abs().max().item() for k in w0) > 1e-2


def test_torchrun_resumes_an_interrupted_one_process_run(reference, tmp_path):
    """Epoch 1 in one process, interrupted in epoch 2; resumed by 2 processes: same result, no duplicate."""
    from advlab.training.classifier import standard_loss

    part = tmp_path / "part"
    calls = {"n": 0}

    def crashing(model, x, y):
        calls["n"] += 1
        if calls["n"] > 18 + 3:  # 18 batches per epoch: stop early in epoch 2
            raise KeyboardInterrupt
        return standard_loss(model, x, y)

    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(**ARGS), part, "cpu", progress=False, loss_fn=crashing)
    first = (part / "results.jsonl").read_text()
    assert len(first.splitlines()) == 1
    proc = _launch("torchrun", part)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (part / "results.jsonl").read_text().startswith(first)  # epoch 1 kept, not rewritten
    _same_run(reference, part)
    assert len(json.loads((part / "manifest.json").read_text())["resumed_at"]) == 1


def test_rank0_refusal_stops_every_process(tmp_path):
    """A run directory with another config: rank 0 refuses and the other rank exits too (no hang)."""
    from advlab.runs import RunDir

    out = tmp_path / "other"
    with RunDir(out, "train-classifier", {"epochs": 99}):
        pass
    before = sorted(p.name for p in out.iterdir())
    proc = _launch("torchrun", out)
    assert proc.returncode != 0
    assert proc.stderr.count("different config") >= 2, proc.stderr[-3000:]  # both ranks say why
    assert sorted(p.name for p in out.iterdir()) == before
