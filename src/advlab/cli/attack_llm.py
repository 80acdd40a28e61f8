"""``advlab attack llm``: embedding-space, GCG, AutoDAN or PAIR attacks on a chat model."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option


def attack_llm(
    method: str = typer.Option(
        ...,
        "--method",
        help="Attack: embedding (continuous, on input embeddings), "
        "gcg (discrete suffix search), autodan (genetic jailbreak prompts) or pair "
        "(attacker LLM refines prompts).",
    ),
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="A local Hugging Face model directory (safetensors) "
        "or a hub id, e.g. the --out of 'advlab zoo build safety-gym'.",
    ),
    behaviors: str = typer.Option(
        "builtin:gym-harmful-test",
        "--behaviors",
        help="Behaviours with targets: "
        "a CSV/JSON/JSONL file (AdvBench, HarmBench, JailbreakBench, StrongREJECT) "
        "or builtin:NAME.",
    ),
    out: Path = out_option(),
    limit: int = typer.Option(None, "--limit", help="Attack only the first N behaviours (default: all)."),
    steps: int = typer.Option(
        None,
        "--steps",
        help="Optimisation steps per behaviour (default per method: embedding 100, gcg 250, autodan 100, pair 3).",
    ),
    search_width: int = typer.Option(512, "--search-width", help="GCG: candidates evaluated per step."),
    topk: int = typer.Option(256, "--topk", help="GCG: tokens per position sampled from the gradient's top-k."),
    n_replace: int = typer.Option(1, "--n-replace", help="GCG: slot tokens replaced per candidate."),
    init: str = typer.Option(
        " ".join(["x"] * 20),
        "--init",
        help="Initial attack string placed after the request (GCG and the embedding suffix).",
    ),
    eps: float = typer.Option(
        None,
        "--eps",
        help="Embedding: per-token radius relative to the mean norm of "
        "the embedding rows (0.05 = 5 %); leave out for unbounded.",
    ),
    step_size: float = typer.Option(1e-3, "--step-size", help="Embedding: absolute signed-gradient step."),
    norm: str = typer.Option("l2", "--norm", help="Embedding: ball norm, l2 or linf."),
    embedding_mode: str = typer.Option(
        "suffix",
        "--embedding-mode",
        help="Embedding: perturb the suffix tokens, or the whole instruction (every prompt token, as in CAT).",
    ),
    buffer_size: int = typer.Option(0, "--buffer-size", help="GCG: candidate buffer size (0 = plain GCG)."),
    mellowmax: bool = typer.Option(False, "--mellowmax/--no-mellowmax", help="GCG: mellowmax target loss."),
    allow_non_ascii: bool = typer.Option(False, "--allow-non-ascii", help="GCG: allow non-ASCII tokens."),
    early_stop: bool = typer.Option(
        True, "--early-stop/--no-early-stop", help="Stop once greedy decoding reproduces the target."
    ),
    max_new_tokens: int = typer.Option(
        64, "--max-new-tokens", help="Tokens generated (greedily) from the adversarial input for the judges."
    ),
    judge: list[str] = typer.Option(
        ["refusal"],
        "--judge",
        help="Judge(s) of each completion; the first gives 'success' and 'asr'. Repeat the option for several.",
    ),
    judge_model: str = typer.Option(
        None, "--judge-model", help="Model directory of the harmbench judge (needed with --judge harmbench)."
    ),
    system_prompt: str = typer.Option(None, "--system-prompt", help="System prompt for the chat template."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Attack a chat model on each behaviour, then generate its completion greedily from the
    adversarial input (the target is never prepended) and judge it.

    Writes results.jsonl (per behaviour: adv_string, best_loss, loss_history, completion, judges,
    success, steps, forward/backward passes, seconds), metrics.json (asr by the first judge,
    asr_by_judge, budget), figures and report.html into --out. Re-running the same command resumes;
    'accelerate launch -m advlab.cli.main attack llm ...' (or torchrun) shards behaviours across
    processes.

    Example:  advlab attack llm --method gcg --model models/gym --limit 10 --steps 50 --out runs/gcg
    """
    from advlab.pipelines.attack_llm import AttackLLMConfig, run_attack_llm

    cfg = AttackLLMConfig(
        method=method,
        model=model,
        behaviors=behaviors,
        limit=limit,
        steps=steps,
        search_width=search_width,
        topk=topk,
        n_replace=n_replace,
        eps=eps,
        step_size=step_size,
        norm=norm,
        embedding_mode=embedding_mode,
        init=init,
        buffer_size=buffer_size,
        mellowmax=mellowmax,
        allow_non_ascii=allow_non_ascii,
        early_stop=early_stop,
        max_new_tokens=max_new_tokens,
        judges=list(judge),
        judge_model=judge_model,
        system_prompt=system_prompt,
        seed=seed,
    )
    info(f"attacking {model} with {method} into {out}")
    metrics = run_attack_llm(cfg, out, device=device, argv=argv())
    asr = metrics.get("asr")
    b = metrics["budget"]
    info(
        f"ASR {'n/a' if asr is None else f'{100 * asr:.1f}%'} ({metrics['n_success']}/{metrics['n']}) by "
        f"{metrics['default_judge']}; median steps {b['steps']['median']}, forward {b['forward_passes']['median']}, "
        f"backward {b['backward_passes']['median']}, seconds {b['seconds']['median']}"
    )
    done(out)
