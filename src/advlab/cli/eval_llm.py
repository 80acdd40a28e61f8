"""``advlab eval llm``: refusal, utility and over-refusal of a chat model."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import fill


def eval_llm(
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="A local Hugging Face model directory (safetensors) or a hub id, e.g. the --out of "
        "`advlab zoo build safety-gym`.",
    ),
    out: Path = out_option(),
    behaviors: str = typer.Option(
        "builtin:gym-harmful-test",
        "--behaviors",
        help="Harmful requests to measure refusal on: a behaviour file (AdvBench / HarmBench / "
        "StrongREJECT / JSON) or builtin:NAME; 'none' skips them.",
    ),
    harmless: str = typer.Option(
        "builtin:gym-harmless-test",
        "--harmless",
        help="Harmless requests to measure over-refusal on: a JSON / JSONL / TXT / CSV file or builtin:NAME; "
        "'none' skips them.",
    ),
    tasks: str = typer.Option(
        "builtin:gym-tasks-test",
        "--tasks",
        help="Checkable tasks with exact answers to measure utility on: builtin:NAME; 'none' skips them.",
    ),
    limit: int = typer.Option(
        None, "--limit", help="Evaluate N items of each set, spread evenly over it (default: all of them)."
    ),
    max_new_tokens: int = typer.Option(
        48, "--max-new-tokens", help="Maximum tokens generated per answer (greedy decoding)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Requests generated together in one batch."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Measure a chat model: refusal on harmful requests, utility on small tasks, over-refusal on harmless ones.

    Every answer is generated greedily. Refusal and over-refusal are the shares of harmful and harmless
    requests answered with a refusal; utility is the share of tasks answered with the exact expected
    answer. The defaults are the safety gym's held-out built-in sets.

    Writes results.jsonl (one record per request: kind, prompt, completion, judges; tasks also expected
    and correct), metrics.json (refusal_rate, utility, over_refusal and counts), figures and report.html
    into --out. Re-running the same command resumes.

    Example:
      advlab eval llm --model "$(advlab zoo path safety-gym)" \\
          --out runs/eval-gym --limit 100
    """
    opts = dict(locals())
    from advlab.pipelines.eval_llm import EvalLLMConfig, run_eval_llm
    from advlab.report.format import rate

    def spec(s: str | None) -> str | None:
        return None if s is None or s.strip().lower() in ("", "none") else s

    cfg = fill(EvalLLMConfig, opts, convert={"behaviors": spec, "harmless": spec, "tasks": spec})
    m = run_eval_llm(cfg, out, device=device, argv=argv(), progress=True)
    info(f"refused harmful requests: {rate(m['n_refused_harmful'], m['n_harmful'])}")
    info(f"utility (tasks answered exactly): {rate(m['n_correct_task'], m['n_task'])}")
    info(f"over-refusal (harmless requests refused): {rate(m['n_refused_harmless'], m['n_harmless'])}")
    done(out)
