"""``advlab attack llm``: embedding-space, GCG, AutoDAN or PAIR attacks on a chat model."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option, fill, parse_eps
from advlab.pipelines.attack_llm_config import DEFAULT_JUDGES, EMBEDDING_EPS, EMBEDDING_STEP_SIZE

# Option groups of the help screen (presentation only).
JUDGING_PANEL = "Generation and judging"
GCG_PANEL = "GCG options"
EMBEDDING_PANEL = "Embedding-attack options"
HELPERS_PANEL = "PAIR and AutoDAN options"


def attack_llm(
    method: str = typer.Option(
        ...,
        "--method",
        help="Attack: embedding (continuous, on input embeddings), gcg (discrete suffix search), autodan "
        "(genetic search over jailbreak prompts) or pair (an attacker LLM refines prompts).",
    ),
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="A local Hugging Face model directory (safetensors) or a hub id, e.g. the --out of "
        "`advlab zoo build safety-gym`.",
    ),
    behaviors: str = typer.Option(
        "builtin:gym-harmful-test",
        "--behaviors",
        help="Behaviours to attack, with targets: a CSV / JSON / JSONL file (AdvBench, HarmBench, "
        "JailbreakBench, StrongREJECT) or builtin:NAME. FILE#COLUMN=VALUE keeps the matching rows; "
        "HarmBench's standard behaviours: FILE#FunctionalCategory=standard.",
    ),
    out: Path = out_option(),
    limit: int = typer.Option(None, "--limit", help="Attack only the first N behaviours (default: all)."),
    steps: int = typer.Option(
        None,
        "--steps",
        help="Optimisation steps per behaviour (default per method: embedding 100, gcg 250, autodan 100 "
        "generations, pair 3 iterations).",
    ),
    search_width: int = typer.Option(
        512, "--search-width", help="GCG: candidates evaluated per step.", rich_help_panel=GCG_PANEL
    ),
    topk: int = typer.Option(
        256,
        "--topk",
        help="GCG: each replacement token is drawn from the k tokens with the most negative gradient at its position.",
        rich_help_panel=GCG_PANEL,
    ),
    n_replace: int = typer.Option(
        1, "--n-replace", help="GCG: suffix tokens replaced per candidate.", rich_help_panel=GCG_PANEL
    ),
    init: str = typer.Option(
        " ".join(["x"] * 20),
        "--init",
        help="Initial attack string placed after the request (GCG, and the embedding attack in suffix mode).",
    ),
    optimizer: str = typer.Option(
        None,
        "--optimizer",
        help="Embedding: update rule, adam (default) or sign (delta -= step * sign(grad), as in CAT's training "
        "attack). Only with --method embedding.",
        show_default=False,
        rich_help_panel=EMBEDDING_PANEL,
    ),
    step_size: float = typer.Option(
        EMBEDDING_STEP_SIZE,
        "--step-size",
        help="Embedding: Adam learning rate, or the absolute step with --optimizer sign.",
        rich_help_panel=EMBEDDING_PANEL,
    ),
    eps: str = eps_option(
        EMBEDDING_EPS,
        "Embedding: per-token radius relative to the mean norm of the embedding rows (in --norm; "
        "0.05 = 5 %, 1.0 = one mean row norm); 'none' or 'inf' for unbounded.",
        rich_help_panel=EMBEDDING_PANEL,
    ),
    norm: str = typer.Option("l2", "--norm", help="Embedding: ball norm, l2 or linf.", rich_help_panel=EMBEDDING_PANEL),
    embedding_mode: str = typer.Option(
        "suffix",
        "--embedding-mode",
        help="Embedding: suffix (perturb the --init suffix tokens) or instruction (perturb every token of the "
        "request, as in CAT).",
        rich_help_panel=EMBEDDING_PANEL,
    ),
    buffer_size: int = typer.Option(
        0,
        "--buffer-size",
        help="GCG: keep the best N candidates seen and continue from the best of them (0 = plain GCG).",
        rich_help_panel=GCG_PANEL,
    ),
    mellowmax: bool = typer.Option(
        False,
        "--mellowmax/--no-mellowmax",
        help="GCG: mellowmax instead of cross-entropy as the target loss.",
        rich_help_panel=GCG_PANEL,
    ),
    allow_non_ascii: bool = typer.Option(
        False, "--allow-non-ascii", help="GCG: allow non-ASCII tokens in the suffix.", rich_help_panel=GCG_PANEL
    ),
    early_stop: bool = typer.Option(
        True,
        "--early-stop/--no-early-stop",
        help="Stop attacking a behaviour once greedy decoding reproduces the target.",
    ),
    max_new_tokens: int = typer.Option(
        64,
        "--max-new-tokens",
        help="Maximum tokens generated (greedily) from the adversarial input for the judges.",
        rich_help_panel=JUDGING_PANEL,
    ),
    judge: list[str] = typer.Option(
        list(DEFAULT_JUDGES),
        "--judge",
        help="Judge(s) of each completion; the first gives 'success' and 'asr', every one is in asr_by_judge. "
        "Repeat the option for several (given ones replace the default). compliance: not a refusal, on topic "
        "and not degenerate, a cheap heuristic for the safety gym and quick looks; harmbench (with "
        "--judge-model): the classifier to use on real models; refusal: the refusal-phrase list, reported "
        "alongside because papers report it.",
        rich_help_panel=JUDGING_PANEL,
    ),
    judge_model: str = typer.Option(
        None,
        "--judge-model",
        help="Model directory of the harmbench judge (needed with --judge harmbench; default: none).",
        rich_help_panel=JUDGING_PANEL,
    ),
    system_prompt: str = typer.Option(
        None,
        "--system-prompt",
        help="System prompt for the chat template (default: none, or the template's own).",
        rich_help_panel=JUDGING_PANEL,
    ),
    universal: bool = typer.Option(
        False,
        "--universal",
        help="GCG: optimise ONE suffix over all selected behaviours (mean loss) instead of one per behaviour; "
        "each behaviour is then judged on its own completion with that shared suffix. The suffix is stored "
        "in universal_suffix.json in --out, so a resumed run does not optimise it again.",
        rich_help_panel=GCG_PANEL,
    ),
    transfer_model: list[str] = typer.Option(
        None,
        "--transfer-model",
        help="GCG: also optimise the suffix on this model (summed loss), for suffixes that transfer; repeat "
        "for several (default: none). It must share --model's tokenizer. Completions and judges still use --model.",
        rich_help_panel=GCG_PANEL,
    ),
    n_streams: int = typer.Option(
        None,
        "--n-streams",
        help="PAIR: parallel attacker conversations per behaviour (default 20).",
        rich_help_panel=HELPERS_PANEL,
    ),
    population: int = typer.Option(
        None,
        "--population",
        help="AutoDAN: jailbreak prompts per generation of the genetic search (default 64).",
        rich_help_panel=HELPERS_PANEL,
    ),
    attacker_url: str = typer.Option(
        None,
        "--attacker-url",
        help="PAIR: OpenAI-compatible endpoint of the attacker LLM, e.g. http://127.0.0.1:8000/v1 (needs "
        "--attacker-model NAME). Default without --attacker-*: the attacked model attacks itself.",
        rich_help_panel=HELPERS_PANEL,
    ),
    attacker_model: str = typer.Option(
        None,
        "--attacker-model",
        help="PAIR: the attacker. With --attacker-url: the model name the endpoint serves; alone: a local "
        "model directory or hub id (default: the attacked model).",
        rich_help_panel=HELPERS_PANEL,
    ),
    rating_judge_url: str = typer.Option(
        None,
        "--rating-judge-url",
        help="PAIR: OpenAI-compatible endpoint of the judge that rates replies 1-10 during the attack (needs "
        "--rating-judge-model NAME). Default without --rating-judge-*: the attacked model rates itself. "
        "The final verdicts come from --judge.",
        rich_help_panel=HELPERS_PANEL,
    ),
    rating_judge_model: str = typer.Option(
        None,
        "--rating-judge-model",
        help="PAIR: the rating judge. With --rating-judge-url: the served model name; alone: a local model "
        "directory or hub id (default: the attacked model).",
        rich_help_panel=HELPERS_PANEL,
    ),
    rephraser_url: str = typer.Option(
        None,
        "--rephraser-url",
        help="AutoDAN: OpenAI-compatible endpoint of an LLM that mutates prompts by rephrasing them (needs "
        "--rephraser-model NAME). Default without --rephraser-*: word-level synonym substitution.",
        rich_help_panel=HELPERS_PANEL,
    ),
    rephraser_model: str = typer.Option(
        None,
        "--rephraser-model",
        help="AutoDAN: the rephrasing LLM. With --rephraser-url: the served model name; alone: a local model "
        "directory or hub id (default: none, synonym substitution).",
        rich_help_panel=HELPERS_PANEL,
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY",
        "--api-key-env",
        help="NAME of the environment variable holding the API key for the *-url endpoints (sent as a "
        "Bearer token; never logged or written to --out). Unset: no key is sent (fine for local servers).",
        rich_help_panel=HELPERS_PANEL,
    ),
    http_timeout: float = typer.Option(
        60.0,
        "--http-timeout",
        help="Seconds to wait for one answer from a *-url endpoint.",
        rich_help_panel=HELPERS_PANEL,
    ),
    http_retries: int = typer.Option(
        3,
        "--http-retries",
        help="Retries of a failed *-url request (backoff 1 s, 2 s, 4 s, ...); then the run stops with an error "
        "and can be resumed by re-running the command.",
        rich_help_panel=HELPERS_PANEL,
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Attack a chat model on each behaviour, then judge its greedy completion of the adversarial input.

    The completion is generated from the adversarial input alone (the target is never prepended). Writes
    results.jsonl (per behaviour: adv_string, best_loss, loss_history, completion, judges, success, steps,
    forward/backward passes, seconds), metrics.json (asr by the first judge, asr_by_judge, budget), figures
    and report.html into --out. Re-running the same command resumes.

    Launched with accelerate or torchrun, the behaviours are sharded over N processes; only the main
    process prints (see docs/scaling.md):
      accelerate launch --multi_gpu --num_processes N \\
          -m advlab.cli.main attack llm ...
      torchrun --standalone --nproc_per_node N -m advlab.cli.main attack llm ...

    Embedding defaults (Adam, --step-size 1e-2, --eps 1.0, 100 steps) come from a measurement on the
    quick safety gym (30 behaviours, suffix mode, 100 steps): Adam reproduced the target on 13/30
    (43 %; the compliance judge passed 12/30, 40 %), signed steps of 1e-3 on 1/30 at any eps. CAT's
    adversarial training keeps the paper's signed-step attack (EmbeddingAttackConfig: sign, 1e-4, eps 0.05, 10 steps).

    Judges by default: compliance (sets asr; a heuristic for the gym and quick looks) and refusal
    (phrase list, as papers report it); on real models pass --judge harmbench --judge-model DIR.

    GCG can optimise one suffix for all behaviours (--universal) and on several models at once
    (--transfer-model). PAIR's attacker and rating judge and AutoDAN's rephraser can be local models or
    OpenAI-compatible endpoints (--attacker-url/--attacker-model, ...; the key comes from the variable
    named by --api-key-env); by default PAIR's attacker and judge are the attacked model itself.

    Examples:
      GYM="$(advlab zoo path safety-gym)"
      advlab attack llm --method gcg --model "$GYM" --limit 10 --steps 50 \\
          --out runs/gcg
      advlab attack llm --method gcg --universal --model "$GYM" --limit 10 \\
          --out runs/gcg-univ
      advlab attack llm --method pair --model "$GYM" --out runs/pair \\
          --attacker-url http://127.0.0.1:8000/v1 --attacker-model gym
    """
    opts = dict(locals())
    from advlab.pipelines.attack_llm import AttackLLMConfig, run_attack_llm
    from advlab.report.format import judge_label, num, rate_of

    cfg = fill(
        AttackLLMConfig,
        opts,
        rename={"judge": "judges", "transfer_model": "transfer_models"},
        convert={"eps": lambda v: parse_eps(v, unbounded=True), "judge": list,
                 "transfer_model": lambda v: list(v or [])},
    )
    info(f"attacking {model} with {method}{' (universal)' if universal else ''} into {out}")
    metrics = run_attack_llm(cfg, out, device=device, argv=argv())
    b = metrics["budget"]
    for j, v in (metrics.get("asr_by_judge") or {}).items():
        info(f"{judge_label(j)}{', the default judge' if j == metrics['default_judge'] else ''}: "
             f"{rate_of(v, metrics['n'])}")
    info(
        f"median budget per behaviour: {num(b['steps']['median'])} steps, {num(b['forward_passes']['median'])} "
        f"forward, {num(b['backward_passes']['median'])} backward passes, {num(b['seconds']['median'])} s"
    )
    done(out)
