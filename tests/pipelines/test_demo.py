"""The demo orchestration: every step runs once, in order; an interrupted demo resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advlab.pipelines.demo import demo_steps, run_demo


def _fake_invoke(calls: list[list[str]], fail_at: str | None = None):
    def invoke(args: list[str]) -> None:
        out = Path(args[args.index("--out") + 1])
        if fail_at and fail_at in args:
            raise KeyboardInterrupt
        calls.append(args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"asr": 0.5, "refusal_rate": 1.0}))

    return invoke


def test_demo_runs_each_step_once_and_resumes(tmp_path):
    gym = tmp_path / "gym"
    gym.mkdir()
    out = tmp_path / "demo"
    calls: list[list[str]] = []
    with pytest.raises(KeyboardInterrupt):
        run_demo(out, gym=gym, quick=True, invoke=_fake_invoke(calls, fail_at="analyze"),
                 echo=lambda m: None)
    n_before = len(calls)
    assert n_before > 0
    result = run_demo(out, gym=gym, quick=True, invoke=_fake_invoke(calls), echo=lambda m: None)
    steps = demo_steps(out, gym, 0, "auto", True)
    # every step ran exactly once over the two invocations, in the declared order
    assert [c[:2] for c in calls] == [s.args[:2] for s in steps]
    assert set(result["steps"]) == {s.name for s in steps}
    index = (out / "index.html").read_text()
    assert "advlab attack llm --method gcg" in index
    assert (out / "report.html").exists()


def test_demo_commands_are_valid_cli_invocations(tmp_path):
    """Each demo command parses with the real CLI (catches option drift)."""
    import typer

    from advlab.cli.main import app

    root = typer.main.get_command(app)
    for step in demo_steps(tmp_path, tmp_path, 0, "cpu", quick=True):
        cmd, rest, ctx, name = root, list(step.args), None, "advlab"
        while hasattr(cmd, "get_command"):
            ctx = cmd.make_context(rest[0], [], parent=ctx, resilient_parsing=True)
            name, rest = rest[0], rest[1:]
            cmd = cmd.get_command(ctx, name)
            assert cmd is not None, f"unknown command {name!r} in {step.args}"
        sub = cmd.make_context(name, rest, parent=ctx)  # parses and converts every option
        assert not sub.args, f"unexpected arguments {sub.args} in {step.args}"
