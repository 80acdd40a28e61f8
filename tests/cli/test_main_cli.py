"""The CLI's outer contract: help that teaches, and user errors as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "advlab"


def _advlab(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_lists_the_command_groups():
    res = _advlab("--help")
    assert res.returncode == 0
    for word in ("demo", "report", "attack"):
        assert word in res.stdout


def test_report_of_a_missing_run_is_one_line_exit_2(tmp_path):
    res = _advlab("report", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "not an advlab run directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_report_writes_self_contained_html(tmp_path):
    from advlab.runs import RunDir

    out = tmp_path / "run"
    with RunDir(out, "custom-job", {"x": 1}, seed=0) as run:
        run.append({"id": "a", "text": "<script>alert(1)</script>"})
        run.write_metrics({"score": 0.25, "per_class": {"a": 1}})
    res = _advlab("report", str(out))
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert "score" in html and "0.25" in html
    assert "<script>alert(1)</script>" not in html  # record text is escaped
    assert "http://" not in html and "https://" not in html  # no external assets
