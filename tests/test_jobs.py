"""The job layer on a tiny fake job: resume skips finished items, SIGINT says how to resume, and a
run without a terminal prints progress lines."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from advlab import jobs
from advlab.errors import RunDirError


@dataclass
class SquareConfig:
    n: int = 5


class SquareJob:
    """Squares 0..n-1; optionally raises KeyboardInterrupt (or sends itself SIGINT) at one item."""

    name = "square"
    seed = 0

    def __init__(self, n: int = 5, stop_at: int | None = None, signal_at: int | None = None) -> None:
        self.config = SquareConfig(n)
        self.stop_at, self.signal_at, self.ran = stop_at, signal_at, []

    def items(self):
        return [{"id": str(i), "x": i} for i in range(self.config.n)]

    def run_item(self, item, tick):
        if item["x"] == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C would
        if item["x"] == self.stop_at:
            raise KeyboardInterrupt
        self.ran.append(item["x"])
        tick(1)
        return {"id": item["id"], "y": item["x"] ** 2}

    def metrics(self, records):
        return {"sum": sum(r["y"] for r in records), "n": len(records)}


def test_resume_skips_done_items_and_says_how_many(tmp_path, capsys):
    out = tmp_path / "run"
    first = SquareJob(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(first, out, report=False)
    assert first.ran == [0, 1, 2]
    err = capsys.readouterr().err
    assert "interrupted; re-run the same command to resume" in err
    second = SquareJob()
    res = jobs.run_job(second, out, report=False)
    assert second.ran == [3, 4]  # only the unfinished items
    assert "3 of 5 items done" in capsys.readouterr().out
    assert res.resumed and res.metrics == {"sum": 0 + 1 + 4 + 9 + 16, "n": 5}
    assert json.loads((out / "metrics.json").read_text()) == res.metrics


def test_resume_message_names_done_and_total(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(SquareJob(stop_at=2), out, report=False)
    capsys.readouterr()
    jobs.run_job(SquareJob(), out, report=False)
    printed = capsys.readouterr().out
    assert "resuming" in printed and "2 of 5" in printed


def test_sigint_prints_the_resume_hint_once(tmp_path, capsys):
    # Python's Ctrl-C handler, also when the suite runs in the background (where SIGINT starts ignored)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            jobs.run_job(SquareJob(signal_at=1), tmp_path / "run", report=False)
    finally:
        signal.signal(signal.SIGINT, old)
    err = capsys.readouterr().err
    assert err.count("interrupted; re-run the same command to resume") == 1


def test_progress_lines_without_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(jobs._Progress.__init__, "__defaults__", (0.0,))  # every=0: a line per advance
    jobs.run_job(SquareJob(n=3), tmp_path / "run", report=False)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("square:")]
    assert lines and lines[-1].startswith("square: 3/3") and "ETA" in lines[-1]


def test_out_in_a_read_only_directory_is_refused_before_any_item_runs(tmp_path, monkeypatch):
    # tests run as root, which ignores permission bits: make the directory read-only as os.access sees it
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(jobs.os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    job = SquareJob()
    with pytest.raises(RunDirError, match="not writable"):
        jobs.run_job(job, ro / "run", report=False)
    assert job.ran == [] and not (ro / "run").exists()


class NestingJob(SquareJob):
    """Runs an inner job inside one of its items (as the demo runs each step)."""

    name = "outer"

    def __init__(self, inner_out) -> None:
        super().__init__(n=2)
        self.inner_out = inner_out

    def run_item(self, item, tick):
        jobs.run_job(SquareJob(stop_at=1), self.inner_out, report=False)
        return super().run_item(item, tick)


def test_nested_jobs_print_the_interrupt_hint_once(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(NestingJob(tmp_path / "inner"), tmp_path / "outer", report=False)
    assert capsys.readouterr().err.count("interrupted; re-run the same command to resume") == 1
