"""``advlab reproduce continuous-at``: help that teaches, a bad option as one line with exit 2 before any file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "advlab.cli.main", "reproduce", "continuous-at", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_help_names_the_recipe_and_options():
    res = _run("--help")
    assert res.returncode == 0
    for word in ("CAT", "CAPO", "R2D2", "table.csv", "--quick", "--behaviors", "--out", "Example"):
        assert word in res.stdout, word


def test_missing_behaviours_file_one_line_exit_2(gym_dir, tmp_path):
    out = tmp_path / "never"
    res = _run("--model", str(gym_dir), "--behaviors", str(tmp_path / "nope.csv"), "--out", str(out))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "nope.csv" in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert not out.exists()
