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
    full = demo_steps(tmp_path, tmp_path, 0, "cpu", quick=False)
    assert {"continuous-at", "poisoning"} <= {s.name for s in full}  # ../shared/data/sst2 is there in tests
    assert not {"continuous-at", "poisoning"} & {s.name for s in demo_steps(tmp_path, tmp_path, 0, "cpu", True)}
    for step in demo_steps(tmp_path, tmp_path, 0, "cpu", quick=True) + full:
        cmd, rest, ctx, name = root, list(step.args), None, "advlab"
        while hasattr(cmd, "get_command"):
            ctx = cmd.make_context(rest[0], [], parent=ctx, resilient_parsing=True)
            name, rest = rest[0], rest[1:]
            cmd = cmd.get_command(ctx, name)
            assert cmd is not None, f"unknown command {name!r} in {step.args}"
        sub = cmd.make_context(name, rest, parent=ctx)  # parses and converts every option
        assert not sub.args, f"unexpected arguments {sub.args} in {step.args}"


def test_demo_prints_pastable_steps_and_its_report_is_the_entry_page(tmp_path):
    gym = tmp_path / "gym"
    gym.mkdir()
    out = tmp_path / "demo"
    said: list[str] = []
    run_demo(out, gym=gym, quick=True, invoke=_fake_invoke([]), echo=said.append, prog=".venv/bin/advlab")
    commands = [line.strip()[2:] for line in "\n".join(said).splitlines() if line.strip().startswith("$ ")]
    assert len(commands) == len(demo_steps(out, gym, 0, "auto", True))
    assert all(c.startswith(".venv/bin/advlab ") for c in commands)  # as they can be pasted
    report = (out / "report.html").read_text()
    assert report == (out / "index.html").read_text()
    assert "href='eval-llm/report.html'" not in report  # the fake steps wrote no reports: no dead links
    n = len(demo_steps(out, gym, 0, "auto", True))
    assert f"{n} of {n} steps done" in report and ".venv/bin/advlab attack llm --method gcg" in report


def test_demo_headlines_read_the_step_metrics_with_intervals():
    from advlab.pipelines.demo import _attack_asr, _eval

    m = {"asr": 0.5, "asr_by_judge": {"compliance": 0.5, "refusal": 1.0}, "default_judge": "compliance", "n": 6}
    assert _attack_asr(m) == "ASR (compliance) 50 % [19–81 %], n = 6; ASR (no refusal phrase) 100 % [61–100 %], n = 6"
    e = {"refusal_rate": 1.0, "n_harmful": 12, "utility": 0.25, "n_task": 12, "over_refusal": 0.0, "n_harmless": 12}
    assert _eval(e) == ("refused harmful 100 % [76–100 %], n = 12; utility 25 % [9–53 %], n = 12; "
                        "over-refusal 0 % [0–24 %], n = 12")


def test_continuous_at_headline_puts_cat_beside_the_base_and_the_stronger_attacks():
    from advlab.pipelines.demo import _continuous_at

    table = [{"model": "base", "asr_gcg": 0.5, "asr_embedding": 1.0, "utility": 0.9, "n_attack": 4},
             {"model": "cat", "asr_gcg": 0.25, "asr_gcg_2x": 0.75, "asr_embedding": 0.0, "asr_embedding_4x": 0.5,
              "utility": 0.85, "over_refusal": 0.1, "n_attack": 4}]
    assert _continuous_at({"table": table}) == (
        "CAT vs base, ASR (n = 4): GCG 25 % vs 50 % (2x steps 75 %), embedding 0 % vs 100 % (4x radius 50 %); "
        "utility 85 % vs 90 %, over-refusal 10 %")
    assert _continuous_at({"table": table[:1]}) == ""


def test_poisoning_headline_reads_pdr_per_kind_and_onion():
    from advlab.pipelines.demo import _poisoning

    m = {"table": [{"trigger_kind": "learned", "rate": 0.01, "pdr": 0.9}, {"trigger_kind": "random_word", "rate": 0.01,
                                                                          "pdr": 0.1}],
         "triggers": {"learned": "guitar", "random_word": "license"}, "clean_tuned_accuracy": 0.64,
         "defences": [{"defence": "onion", "pdr_before": 0.9, "pdr_after": 0.05}]}
    assert _poisoning(m) == ("PDR of learned 'guitar': 90 % at 1 %; random word 'license': 10 % at 1 %; "
                             "clean-tuned accuracy 64 %; ONION: PDR 90 % -> 5 %")
    assert _poisoning({}) == ""
