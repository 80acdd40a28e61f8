"""``advlab attack llm`` from the command line: a real run, help text, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from advlab.cli.main import app

runner = CliRunner()


def test_help_lists_every_option():
    res = runner.invoke(app, ["attack", "llm", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for opt in (
        "--method",
        "--model",
        "--behaviors",
        "--out",
        "--limit",
        "--steps",
        "--search-width",
        "--topk",
        "--n-replace",
        "--eps",
        "--max-new-tokens",
        "--seed",
        "--device",
        "--judge",
    ):
        assert opt in res.output


@pytest.mark.slow
def test_cli_gcg_run(gym_dir, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "attack",
            "llm",
            "--method",
            "gcg",
            "--model",
            str(gym_dir),
            "--limit",
            "1",
            "--steps",
            "2",
            "--search-width",
            "8",
            "--topk",
            "8",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 1 and "asr" in metrics and "refusal" in metrics["asr_by_judge"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"


def test_bad_option_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "advlab.cli.main",
            "attack",
            "llm",
            "--method",
            "gcg",
            "--model",
            "x",
            "--search-width",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--search-width" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
