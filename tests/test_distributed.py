"""advlab.distributed: helpers in one process; ``attack llm`` sharded over 2 CPU processes (accelerate)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from advlab import distributed
from advlab.errors import ConfigError, RunDirError

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_launcher_everything_is_one_process(no_launcher):
    assert distributed.env_info() == distributed.DistInfo(0, 1, 0)
    assert distributed.init_from_env("cpu") == distributed.DistInfo(0, 1, 0)
    assert not distributed.is_initialized()
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    distributed.barrier()
    assert distributed.main_first(lambda: 7) == 7
    with pytest.raises(RunDirError, match="boom"):
        distributed.main_first(lambda: (_ for _ in ()).throw(RunDirError("boom")))
    assert distributed.local_device("cpu") == torch.device("cpu")


def test_environment_of_a_launcher_is_read(no_launcher):
    no_launcher.setenv("WORLD_SIZE", "4")
    no_launcher.setenv("RANK", "3")
    no_launcher.setenv("LOCAL_RANK", "1")
    d = distributed.env_info()
    assert (d.rank, d.world_size, d.local_rank, d.is_main, d.active) == (3, 4, 1, False, True)
    if torch.cuda.device_count() > 1:
        assert distributed.local_device("cuda") == torch.device("cuda", 1)  # one GPU per process
    else:
        with pytest.raises(ConfigError, match="LOCAL_RANK=1"):
            distributed.local_device("cuda")
    assert distributed.local_device("cpu") == torch.device("cpu")


def test_bad_launcher_environment_is_a_config_error(no_launcher):
    no_launcher.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        distributed.env_info()
    no_launcher.setenv("WORLD_SIZE", "2")  # no MASTER_ADDR/PORT: refused before torch.distributed is touched
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        distributed.init_from_env("cpu")
    assert not distributed.is_initialized()


def test_launch_argv():
    acc = distributed.launch_argv("accelerate", 2, python="py")
    assert acc[:3] == ["py", "-m", "accelerate.commands.launch"] and acc[-1] == "-m"
    assert "--multi_gpu" in acc and acc[acc.index("--num_processes") + 1] == "2"
    tr = distributed.launch_argv("torchrun", 3, python="py")
    assert tr == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "3", "-m"]
    with pytest.raises(ConfigError, match="launcher"):
        distributed.launch_argv("mpirun", 2)
    with pytest.raises(ConfigError, match="nproc"):
        distributed.launch_argv("accelerate", 1)


@pytest.mark.slow
def test_accelerate_launch_shards_attack_llm_without_loss_or_duplicates(gym_dir, tmp_path):
    """``accelerate launch`` with 2 CPU processes: 3 behaviours split 2 + 1, every one recorded exactly once,
    rank 0 writes the merged metrics after a barrier."""
    from advlab.pipelines.attack_llm import AttackLLMConfig, load_attack_behaviors

    expected = [
        str(b.id) for b in load_attack_behaviors(AttackLLMConfig(method="embedding", model=str(gym_dir), limit=3))
    ]
    out = tmp_path / "dist"
    cmd = [
        *distributed.launch_argv("accelerate", 2),
        "advlab.cli.main",
        "attack",
        "llm",
        "--method",
        "embedding",
        "--model",
        str(gym_dir),
        "--limit",
        "3",
        "--steps",
        "2",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids)) == 3
    assert json.loads((out / "metrics.json").read_text())["n"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "done"
    assert not (out / ".lock").exists()


def test_shutdown_alone_is_a_no_op(no_launcher):
    distributed.shutdown()
    assert not distributed.is_initialized()


@pytest.mark.slow
def test_shutdown_waits_for_every_process_then_destroys_the_group(tmp_path):
    """Two CPU processes (torchrun): rank 1 leaves ``shutdown`` only after rank 0, busy for 1 s, entered it;
    afterwards neither process keeps a process group nor a gloo thread, so none is left to abort the
    interpreter's shutdown (a gloo worker freeing a tensor there: SIGABRT, seen in CI)."""
    from pathlib import Path

    worker = Path(__file__).with_name("dist_shutdown_worker.py")
    cmd = [*distributed.launch_argv("torchrun", 2)[:-1], str(worker), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1["after"] >= r0["before"]
    assert not r0["initialized"] and not r1["initialized"]
    for r in (r0, r1):
        if r["threads_before"] is not None:  # Linux: the group's threads existed, and are joined
            assert r["threads_before"] and r["threads_after"] == [], r
