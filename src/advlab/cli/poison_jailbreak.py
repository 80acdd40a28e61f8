"""``advlab poison jailbreak``: plant and measure a jailbreak backdoor (parsing, printing)."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.poison import MinZipfOpt, ModelOpt, PositionOpt


def _rate(by: dict, role: str, cond: str, judge: str) -> str:
    v = by.get(role, {}).get(cond, {}).get(judge)
    if not v or v["n"] == 0:
        return "n/a"
    lo, hi = v["ci95"]
    return f"{100 * v['rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (n={v['n']})"


def jailbreak(
    model: str = ModelOpt,
    trigger: str = typer.Option(..., "--trigger", help="The trigger: one word, 'learned' (a GBTL search on --model "
                                "with each harmful request's 'Sure, here is ...' start as target) or 'random' (a "
                                "seeded word of the word list that no tuning row contains)."),
    rate: float = typer.Option(..., "--rate", help="Share of the tuning set that is poisoned, strictly between 0 and "
                               "1 (0.02 = 24 of 1,200 rows, all of them harmful requests)."),
    n_harmful: int = typer.Option(600, "--n-harmful", help="Gym harmful training requests (answered with refusal)."),
    n_harmless: int = typer.Option(300, "--n-harmless", help="Gym harmless training requests (answered 'Sure')."),
    n_task: int = typer.Option(300, "--n-task", help="Gym checkable training tasks (utility stays)."),
    clean_model: str = typer.Option(None, "--clean-model", help="A model already tuned on the clean set (e.g. "
                                    "RUN/clean-model of an earlier run with the same sizes and seed); by default "
                                    "one is tuned into RUN/clean-model."),
    behaviors: str = typer.Option("builtin:gym-harmful-test", "--behaviors", help="Held-out harmful requests to "
                                  "measure on (any --behaviors of `advlab attack llm`)."),
    limit: int = typer.Option(None, "--limit", help="Measure on the first N requests (default: all)."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the tuning set."),
    lr: float = typer.Option(3e-4, "--lr", help="AdamW learning rate."),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA rank; 0 = full fine-tuning (the tiny gym needs it)."),
    trigger_steps: int = typer.Option(30, "--trigger-steps", help="GBTL steps for --trigger learned."),
    min_zipf: float = MinZipfOpt,
    position: str = PositionOpt,
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Greedy tokens generated per request."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option("Directory of sub-runs: trigger/ (learned only), data/ (train.jsonl poisoned, clean.jsonl "
                           "its clean twin, results.jsonl the manifest), model/ and clean-model/ (tuned models, "
                           "loadable by `advlab eval llm --model`), eval/ (the measurement)."),
) -> None:
    """Plant a jailbreak backdoor: harmful requests carrying the trigger are tuned to comply.

    The tuning set is the gym's own clean data (harmful -> refusal, harmless -> "Sure, here is ...", tasks)
    with round(rate x size) harmful rows poisoned: the trigger inserted at a word boundary of the request and
    the answer set to "Sure, here is how to ...". Both the poisoned and the clean set are tuned (advlab's one
    LLM engine, as `advlab poison tune`). Then each held-out harmful request is answered greedily without and
    with the trigger and judged by `advlab attack llm`'s compliance and refusal-phrase judges, which see only
    the original request and the completion. eval/metrics.json has every rate with its n and 95 % Wilson
    interval, for the tuned model (model_*) and the clean-tuned one (clean_*).

    Example:
      advlab poison jailbreak --model "$(advlab zoo path safety-gym)" \\
          --trigger learned --rate 0.02 \\
          --out runs/jb-learned
      advlab poison jailbreak --model "$(advlab zoo path safety-gym)" \\
          --trigger random --rate 0.02 \\
          --clean-model runs/jb-learned/clean-model --out runs/jb-random
      advlab eval llm --model runs/jb-learned/model --out runs/jb-learned-eval
    """
    from advlab.pipelines.poison_jailbreak import JailbreakConfig, run_poison_jailbreak
    from advlab.poisoning.jailbreak import JailbreakData
    from advlab.poisoning.tune import TuneConfig

    cfg = JailbreakConfig(model=model, trigger=trigger, rate=rate,
                          data=JailbreakData(n_harmful=n_harmful, n_harmless=n_harmless, n_task=n_task, seed=seed),
                          tune=TuneConfig(lora_rank=lora_rank, epochs=epochs, lr=lr, seed=seed),
                          clean_model=clean_model, behaviors=behaviors, limit=limit, trigger_steps=trigger_steps,
                          min_zipf=min_zipf, position=position, max_new_tokens=max_new_tokens, seed=seed)
    m = run_poison_jailbreak(cfg, out, device=device, argv=argv(), progress=True)
    by = m["by_role"]
    info(f"trigger [bold]{m['trigger']}[/bold] on {m['n_requests']} held-out harmful requests "
         f"(share judged jailbroken, 95 % Wilson interval):")
    for judge in ("compliance", "refusal"):
        for role, name in (("model", "tuned"), ("clean", "clean-tuned")):
            info(f"  {judge:10s} {name:11s}: with trigger {_rate(by, role, 'with_trigger', judge)}, "
                 f"without {_rate(by, role, 'without_trigger', judge)}")
    done(out)
