"""``advlab train llm``: continuous adversarial training of a chat LLM (CAT, CAPO) or the R2D2 baseline."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def train_llm(
    method: str = typer.Option(
        "cat", "--method", "-m",
        help="cat (C-AdvUL: toward the refusal + away from the harmful target under an embedding attack + SFT), "
        "capo (C-AdvIPO: IPO of refusal over harmful target under the attack, no utility data) or r2d2 "
        "(HarmBench's baseline: a pool of GCG suffixes, much more expensive).",
    ),
    model: str = typer.Option(..., "--model", help="Base chat model: a local directory or a cached hub id "
                              "(e.g. the safety gym: advlab zoo build --out DIR)."),
    max_steps: int = typer.Option(200, "--max-steps", help="Optimiser steps."),
    eps: str = eps_option(1.0, "Attack radius per token, relative to the mean embedding norm (latent: to the "
                          "mean hidden-state norm at the layer). The paper uses 0.05-0.1 on 7B models; the gym "
                          "needs more (docs/continuous_at.md); 0 disables the attack."),
    attack_steps: int = typer.Option(30, "--attack-steps", help="Signed-gradient steps of the training attack."),
    attack_step_size: float = typer.Option(3e-2, "--attack-step-size", help="Absolute step per coordinate "
                                           "(the paper: 1e-4 on 7B models)."),
    one_step: bool = typer.Option(False, "--one-step", help="The paper's one-step variant: one step of the full "
                                  "radius instead of --attack-steps small ones."),
    attack_optimizer: str = typer.Option("sign", "--attack-optimizer", help="Update rule of the training attack: "
                                         "sign (CAT's signed steps of --attack-step-size) or adam (learning rate "
                                         "--attack-step-size, attack llm's embedding attack); embedding only."),
    adversary: str = typer.Option("embedding", "--adversary", help="Where δ lives: embedding (CAT's input "
                                  "embeddings) or latent (the residual stream after --layers, as in latent "
                                  "adversarial training)."),
    layers: str = typer.Option("", "--layers", help="Decoder layer indices for --adversary latent, e.g. 1,2."),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA rank; 0 = full fine-tuning (the gym's default, "
                                  "it is tiny). The paper: 64."),
    lora_alpha: float = typer.Option(16.0, "--lora-alpha", help="LoRA alpha."),
    lora_dropout: float = typer.Option(0.0, "--lora-dropout", help="LoRA dropout (the paper: 0.1)."),
    lora_target_modules: str = typer.Option("", "--lora-target-modules", help="Comma-separated linear layer "
                                            "names for LoRA, e.g. q_proj,v_proj (default: every linear layer)."),
    lr: float = typer.Option(2e-4, "--lr", help="AdamW peak learning rate (cosine decay to 0)."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient-norm clip (0 = off; the paper: 0.3)."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimiser step."),
    adv_per_step: int = typer.Option(4, "--adv-per-step", help="Adversarial examples per step (global batch)."),
    utility_per_step: int | None = typer.Option(None, "--utility-per-step", help="Utility examples per step "
                                                "(default: 12 for cat and r2d2, the paper's 1 adversarial to 7 "
                                                "utility; 0 for capo, as in the paper; capo with N > 0 adds "
                                                "--utility-weight times their SFT loss to IPO)."),
    behaviors: str = typer.Option("builtin:gym-harmful-train", "--behaviors", help="Adversarial training set: "
                                  "builtin:NAME or a behaviours file, e.g. ../shared/data/behavior_datasets/"
                                  "extra_behavior_datasets/adv_training_behaviors.csv (its 12 targets each and "
                                  "safe responses are found beside it)."),
    utility: str = typer.Option("builtin:gym", "--utility", help="Utility data: builtin:gym (tasks, harmless "
                                "answers and harmful -> refusal pairs) or a JSONL of chat 'messages' or "
                                "'instruction'/'response' pairs."),
    eval_behaviors: str = typer.Option("builtin:gym-harmful-test", "--eval-behaviors", help="The held-out set "
                                       "you will evaluate on: training requests equal to one of them (case and "
                                       "punctuation ignored) are refused. Pass 'none' to skip the check."),
    refusal: str | None = typer.Option(None, "--refusal", help="One refusal for every example (default: the "
                                       "gym's own, the safe-responses file's, or \"Sorry, I can't do that.\")."),
    away_weight: float = typer.Option(0.5, "--away-weight", help="Weight of the away term (cat; the paper: 0.5)."),
    away_cutoff: float = typer.Option(-5.0, "--away-cutoff", help="Away term cutoff c: past it (−CE below c) "
                                      "its gradient is ×0.001 (the paper: −5)."),
    utility_weight: float = typer.Option(3.0, "--utility-weight", help="Weight of the utility SFT term (cat; "
                                         "capo with --utility-per-step)."),
    beta: float = typer.Option(0.25, "--beta", help="capo: IPO beta; the loss pulls the log-ratio margin "
                               "toward 1/(2 beta) (the paper: 0.25, a margin of 2 nats per token)."),
    pool_size: int = typer.Option(8, "--pool-size", help="r2d2: GCG test cases kept in the pool."),
    pool_refresh: int = typer.Option(50, "--pool-refresh", help="r2d2: every N steps a fifth of the pool restarts."),
    gcg_steps: int = typer.Option(5, "--gcg-steps", help="r2d2: GCG steps per training step and test case."),
    gcg_search_width: int = typer.Option(512, "--gcg-search-width", help="r2d2: GCG candidates per step."),
    retain: str = typer.Option("builtin:gym-harmless-train", "--retain", help="Harmless requests with their "
                               "answers, attacked toward a refusal and trained to keep their answer (measured on "
                               "the gym: without it CAT makes it refuse harmless requests). 'none' = off."),
    retain_per_step: int = typer.Option(2, "--retain-per-step", help="Retain examples per step."),
    adv_suffix: str = typer.Option(" ".join(["x"] * 20), "--adv-suffix", help="Attack slot: text after every "
                                   "adversarial and retain request (and a space); the training attack perturbs "
                                   "only it, as attack llm's suffix attacks (embedding, GCG) do. 'none' = "
                                   "the paper's CAT: the whole request is perturbed."),
    save_every: int = typer.Option(50, "--save-every", help="Checkpoint every N steps (resume point)."),
    max_len: int = typer.Option(128, "--max-len", help="Maximum tokens per training row."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option("Run directory; at the end also a model directory (--model OUT works). Re-running "
                           "the same command resumes from the last checkpoint."),
) -> None:
    """Adversarially train a chat LLM against continuous attacks (Xhonneux et al. 2024, arXiv 2405.15589).

    Each step attacks the adversarial examples in embedding (or latent) space toward their harmful
    targets, with dropout off and no gradient to the weights, then trains the model to refuse under that
    perturbation while keeping its utility. Logged per step: each loss term, the attack's final loss, the
    norm of δ and the forward/backward passes. OUT holds the merged model, training_metrics.json (steps,
    forward/backward passes, attack passes, adversarial examples, seconds) and report.html with the training
    curves. Checkpoints (accelerate state, safetensors) are under OUT/checkpoints.

    Data parallel: accelerate launch --multi_gpu --num_processes N -m advlab.cli.main train llm ...
    (the per-step batch sizes must be multiples of N × --grad-accum).

    The defaults are the gym recipe measured in docs/continuous_at.md ("Measured on the full gym"):
    full fine-tuning, 200 steps of 4 adversarial + 2 retain + 12 utility examples (utility weight 3,
    the gym's own mix), an attack slot of 20 "x" after each request perturbed at eps 1.0 with 30 signed
    steps of 3e-2.

    Example (a few minutes on 2 CPU cores):
      advlab train llm --method cat --model "$(advlab zoo path safety-gym)" \\
          --out runs/gym-cat
      advlab eval llm --model runs/gym-cat --out runs/gym-cat-eval
    """
    opts = dict(locals())
    from advlab.cli.options import fill, radius
    from advlab.pipelines.train_llm import TrainLLMConfig
    from advlab.pipelines.train_llm import train_llm as run
    from advlab.utils import resolve_device

    def off(text: str | None) -> str | None:
        return None if text is None or text.strip().lower() in ("", "none") else text

    cfg = fill(TrainLLMConfig, opts, skip=("out",), convert={
        "eps": radius(), "layers": _layers, "lora_target_modules": lambda t: tuple(_csv(t)),
        "eval_behaviors": off, "retain": off, "adv_suffix": lambda t: off(t) or "",
        "device": lambda d: str(resolve_device(d))})
    res = run(cfg, out, argv=argv())
    m = res.metrics
    info(f"{method}: {m.get('steps')} steps, {m.get('adversarial_examples')} adversarial examples, "
         f"{m.get('attack_forward_passes')} attack forward passes, {m.get('seconds', 0):.0f} s of training")
    done(Path(out), "model and run")


def _layers(text: str) -> tuple[int, ...]:
    from advlab.errors import ConfigError

    parts = _csv(text)
    if not all(p.lstrip("-").isdigit() for p in parts):
        raise ConfigError(f"--layers {text!r}: pass comma-separated layer indices, e.g. 1,2")
    return tuple(int(p) for p in parts)


def reproduce_continuous_at(
    quick: bool = typer.Option(False, "--quick", help="The demo's short form: the quick gym, tens of training "
                               "steps, a few behaviours and small attack budgets (minutes on 2 CPU cores)."),
    behaviors: str = typer.Option("builtin:gym-harmful-test", "--behaviors", help="Held-out harmful behaviours "
                                  "to attack and to measure clean refusal on, e.g. ../shared/data/"
                                  "behavior_datasets/harmbench_behaviors_text_test.csv (HarmBench test)."),
    model: str = typer.Option("", "--model", help="Base chat model: a local directory or a "
                              "cached hub id (default: the safety gym, the quick one with --quick; built and cached "
                              "on first use). --quick --model DIR keeps the short budgets on DIR."),
    limit: int = typer.Option(None, "--limit", help="Attack the first N held-out behaviours (default: 20; 6 "
                              "with --quick). Fewer is faster and less certain: the table's n_attack says how many."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Reproduce continuous adversarial training (Xhonneux et al. 2024) on the safety gym.

    Trains CAT, CAPO and a short R2D2 (models under OUT/models), evaluates the base and each trained model
    (utility, over-refusal, clean refusal) and attacks each with GCG, the embedding attack and AutoDAN at
    fixed budgets on held-out behaviours, and the trained models again with stronger ones (GCG with 2x the
    steps; the embedding attack with 2x the steps at 4x the radius and unbounded), so that a model that only
    beats weak attacks shows as such. Then it sweeps CAT's training radius eps. Writes table.csv (one row
    per model: ASR per attack with its budget, utility, over-refusal, clean refusal, attack passes per
    adversarial example, training seconds) and three figures: ASR against utility, the training curves and
    robustness against eps. Re-running the same command resumes; finished steps are skipped.

    Example:
      advlab reproduce continuous-at --quick --out runs/cat-quick
    """
    opts = dict(locals())
    from advlab.cli.options import fill
    from advlab.pipelines.continuous_at_config import recipe_config
    from advlab.pipelines.reproduce_continuous_at import continuous_at_recipe
    from advlab.utils import resolve_device

    cfg = fill(recipe_config, opts, skip=("out",), convert={"device": lambda d: str(resolve_device(d))})
    m = continuous_at_recipe(out, cfg=cfg, argv=argv())
    for r in m["table"]:
        keys = ("asr_gcg", "asr_embedding", "asr_autodan", "asr_gcg_2x", "asr_embedding_4x", "asr_embedding_unbounded",
                "utility", "over_refusal", "clean_refusal")
        cells = "  ".join(f"{k.removeprefix('asr_')}={_fmt(r[k])}" for k in keys if r[k] is not None)
        info(f"{r['model']:>5}: {cells}")
    done(Path(out), "recipe")


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.2f}"
