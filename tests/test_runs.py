"""The run-directory contract: manifest, config, append-only records, resume, lock, config diff."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest
import yaml

from advlab.errors import RunDirError
from advlab.runs import RunDir, config_diff, load_run, read_records


def _run(path, cfg=None, **kw):
    return RunDir(path, "test-job", cfg or {"a": 1, "nested": {"b": 2}}, seed=3, device="cpu", argv=["x"], **kw)


def test_manifest_config_and_records(tmp_path):
    out = tmp_path / "run"
    with _run(out) as run:
        run.append({"id": "1", "v": 1.5})
        run.append({"id": "2", "v": float("nan")})
        run.write_metrics({"m": 0.5})
    manifest, config, records, metrics = load_run(out)
    assert manifest["status"] == "done" and manifest["seed"] == 3 and manifest["device"] == "cpu"
    assert manifest["versions"]["torch"] and manifest["ended"]
    assert config == {"a": 1, "nested": {"b": 2}}
    assert [r["id"] for r in records] == ["1", "2"]
    assert records[1]["v"] is None  # NaN is not valid JSON; it is written as null
    assert metrics == {"m": 0.5}
    assert not (out / ".lock").exists()


def test_resume_skips_done_items_and_never_duplicates(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), _run(out) as run:
        for i in range(5):
            if i == 3:
                raise KeyboardInterrupt
            run.append({"id": str(i)})
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    with _run(out) as run:
        assert run.resumed
        todo = [i for i in run.share([str(i) for i in range(5)]) if not run.is_done(i)]
        assert todo == ["3", "4"]
        for i in todo:
            run.append({"id": i})
        with pytest.raises(ValueError):
            run.append({"id": "0"})
    assert [r["id"] for r in read_records(out / "results.jsonl")] == ["0", "1", "2", "3", "4"]


def test_partial_last_line_is_discarded_on_resume(tmp_path):
    out = tmp_path / "run"
    with _run(out) as run:
        run.append({"id": "a"})
    with open(out / "results.jsonl", "a") as fh:
        fh.write('{"id": "b", "trunc')  # a crash in the middle of a write
    assert [r["id"] for r in read_records(out / "results.jsonl")] == ["a"]
    with _run(out) as run:
        assert run.done_ids() == {"a"}
        run.append({"id": "b"})
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "b"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    p = tmp_path / "results.jsonl"
    p.write_text('{"id": 1}\nnot json\n{"id": 2}\n')
    with pytest.raises(RunDirError, match="line 2"):
        read_records(p)


def test_config_differs_names_the_keys(tmp_path):
    out = tmp_path / "run"
    with _run(out):
        pass
    with pytest.raises(RunDirError, match=r"different config \(a, nested\.b\)"), _run(
        out, cfg={"a": 2, "nested": {"b": 3}}
    ):
        pass
    # keys declared as ignorable may change on resume
    with _run(out, cfg={"a": 1, "nested": {"b": 2}, "device": "cuda"}, resume_ignore=("device",)):
        pass


def test_config_diff_pure():
    assert config_diff({"a": 1, "b": {"c": 1}}, {"a": 1, "b": {"c": 2}, "d": 0}) == ["b.c", "d"]
    assert config_diff({"limit": 1}, {"limit": 5}, ignore=["limit"]) == []


def _hold_lock(path, ready, release):
    with _run(path):
        ready.set()
        release.wait(10)


def test_lock_refuses_a_second_writer_and_stale_locks_are_taken_over(tmp_path):
    out = tmp_path / "run"
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(out, ready, release))
    p.start()
    try:
        assert ready.wait(10)
        with pytest.raises(RunDirError, match="in use by process"), _run(out):
            pass
    finally:
        release.set()
        p.join(10)
    # a lock left by a process that died is stale and taken over
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": os.uname().nodename}))
    with _run(out):
        pass


def test_out_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file"), _run(f):
        pass
    assert f.read_text() == "x"


def test_job_mismatch_refused(tmp_path):
    out = tmp_path / "run"
    with _run(out):
        pass
    with pytest.raises(RunDirError, match="holds a 'test-job' run"), RunDir(
        out, "other-job", {"a": 1, "nested": {"b": 2}}
    ):
        pass
    assert yaml.safe_load((out / "config.yaml").read_text())["a"] == 1


def test_share_is_round_robin_over_ranks_and_whole_when_replicated(tmp_path):
    items = list("abcde")
    shares = [_run(tmp_path / "r", rank=r, world_size=2).share(items) for r in (0, 1)]
    assert shares == [["a", "c", "e"], ["b", "d"]]
    assert _run(tmp_path / "r", rank=1, world_size=2).share(items, replicated=True) == items
