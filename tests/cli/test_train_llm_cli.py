"""``advlab train llm``: help that teaches, bad options as one line with exit 2 before any file is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "advlab.cli.main", "train", "llm", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_help_names_the_methods_and_options():
    res = _run("--help")
    assert res.returncode == 0
    for word in ("cat", "capo", "r2d2", "--eps", "--attack-steps", "--adversary", "--layers", "--lora-rank",
                 "--lora-target-modules", "--behaviors", "--utility", "--eval-behaviors", "--save-every", "Example"):
        assert word in res.stdout, word


@pytest.mark.parametrize("args, words", [
    (["--eps", "-1"], "--eps"),
    (["--layers", "one,two"], "--layers"),
    (["--method", "dpo"], "--method"),
])
def test_bad_options_one_line_exit_2(gym_dir, tmp_path, args, words):
    out = tmp_path / "never"
    res = _run("--model", str(gym_dir), "--out", str(out), *args)
    assert res.returncode == 2, res.stderr[-2000:]
    assert words in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert not out.exists()
