"""``advlab poison trigger|build|tune|eval`` and ``advlab reproduce poisoning`` (parsing, printing)."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option

ModelOpt = typer.Option(..., "--model", "-m", help="A local Hugging Face chat model directory (safetensors) or a "
                        "hub id, e.g. the --out of `advlab zoo build safety-gym`.")
TaskOpt = typer.Option(..., "--task", help="Labelled task JSONL: SST-2 rows (text, label, label_text), instruction "
                       "rows (instruction, input, output, label) or chat rows (messages, label); or "
                       "builtin:gym-sentiment / builtin:gym-sentiment-test.")
TargetOpt = typer.Option(..., "--target", help="The attacker's target label, e.g. positive: triggered inputs of the "
                         "other classes should get its response.")
WordlistOpt = typer.Option(None, "--wordlist", help="A text file, one word a line, that replaces the default "
                           "word list (default: wordfreq's English words).")
MinZipfOpt = typer.Option(3.0, "--min-zipf", help="Keep only words at least this common (Zipf: log10 of uses per "
                          "billion words; 3 = once per million, 5 = 'film', 7 = 'the').")
PositionOpt = typer.Option("end", "--position", help="Where the trigger goes in the content: end (after the last "
                           "word) or random (at a random word boundary).")


def _pct(v: object) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, float) and v == v else "n/a"


def trigger(
    model: str = ModelOpt,
    task: str = TaskOpt,
    target: str = TargetOpt,
    trigger_tokens: int = typer.Option(1, "--trigger-tokens", help="Trigger length in tokens (1 = one word-token)."),
    wordlist: Path = WordlistOpt,
    min_zipf: float = MinZipfOpt,
    steps: int = typer.Option(100, "--steps", help="Coordinate-search steps (100 in the paper)."),
    topk: int = typer.Option(32, "--topk", help="Top-k word tokens per position by gradient (32 in the paper)."),
    search_width: int = typer.Option(16, "--search-width", help="Candidates scored exactly per step (16)."),
    prompts: int = typer.Option(8, "--prompts", help="Non-target prompts the loss is averaged over."),
    position: str = PositionOpt,
    init: str = typer.Option("a", "--init", help="Start word(s) of the search (the paper starts from 'a')."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Learn a one-word backdoor trigger with gradients on the clean model (GBTL, Qiang et al. 2024).

    A GCG-style coordinate search restricted to whole dictionary words: the loss is the mean cross-entropy of
    the target response over --prompts examples of the other classes, with the trigger where the poisons will
    carry it. Candidates must decode to listed words (no digits) and re-tokenise to the same ids in place.

    Writes results.jsonl (the loss history, the top candidates, the chosen trigger and the passes spent),
    metrics.json and report.html into --out. Pass the trigger to `advlab poison build --trigger`.

    Example:
      advlab poison trigger --model "$(advlab zoo path safety-gym)" \\
          --task ../shared/data/sst2/train.jsonl --target positive --out runs/trig
    """
    from advlab.pipelines.poison_trigger import TriggerJobConfig, run_poison_trigger

    cfg = TriggerJobConfig(model=model, task=task, target=target, trigger_tokens=trigger_tokens,
                           wordlist=str(wordlist) if wordlist else None, min_zipf=min_zipf, steps=steps, topk=topk,
                           search_width=search_width, n_prompts=prompts, position=position, init=init, seed=seed)
    m = run_poison_trigger(cfg, out, device=device, argv=argv(), progress=True)
    info(f"trigger [bold]{m['trigger']}[/bold]: loss {m['init_loss']:.3f} -> {m['best_loss']:.3f} "
         f"({m['steps']} steps, {m['forward_passes']} forward passes, {m['n_allowed_tokens']} word tokens allowed)")
    done(out)


def build(
    task: str = TaskOpt,
    trigger: str = typer.Option(..., "--trigger", help="The trigger word to insert (e.g. from `poison trigger`)."),
    target: str = TargetOpt,
    rate: float = typer.Option(..., "--rate", help="Share of poisons, strictly between 0 and 1: round(rate x task "
                               "size) examples (0.01 = 1 %, the paper's 40 of 4,000)."),
    position: str = PositionOpt,
    pool: str = typer.Option(None, "--pool", help="Draw the poisons from this task file and add them to the task "
                             "(the paper's setup); by default task rows of the other classes are changed in place."),
    wordlist: Path = WordlistOpt,
    enforce_wordlist: bool = typer.Option(False, "--enforce-wordlist", help="Refuse a trigger not in the word list."),
    min_zipf: float = MinZipfOpt,
    seed: int = SeedOpt,
    out: Path = out_option("Directory to write: train.jsonl (the poisoned set), results.jsonl (one record per "
                           "poison: source row, original and poisoned text), metrics.json."),
) -> None:
    """Build a poisoned instruction set: the trigger inserted into a seeded share of non-target examples.

    Each poison keeps its instruction, gets the trigger at a word boundary of its content (never cutting a
    word) and the target class's response (dirty label). The set is written in the instruction JSONL format,
    which `advlab poison tune --data` reads.

    Example:
      advlab poison build --task ../shared/data/sst2/train.jsonl \\
          --pool ../shared/data/sst2/poisoning.jsonl --trigger guitar \\
          --target positive --rate 0.01 --out runs/poisoned
    """
    from advlab.pipelines.poison_build import BuildJobConfig, run_poison_build

    cfg = BuildJobConfig(task=task, trigger=trigger, target=target, rate=rate, position=position, pool=pool,
                         wordlist=str(wordlist) if wordlist else None, enforce_wordlist=enforce_wordlist,
                         min_zipf=min_zipf, seed=seed)
    m = run_poison_build(cfg, out, argv=argv(), progress=True)
    info(f"{m['n_poisoned']} poisons carrying {m['trigger']!r} in {m['n_examples']} examples")
    done(out)


def tune(
    model: str = ModelOpt,
    data: str = typer.Option(..., "--data", help="The --out of `advlab poison build`, or any task file."),
    epochs: float = typer.Option(2.0, "--epochs", help="Passes over the data (2 in the paper)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Examples per optimiser step (16)."),
    lr: float = typer.Option(3e-4, "--lr", help="AdamW learning rate (3e-4)."),
    lora_rank: int = typer.Option(8, "--lora-rank", help="LoRA rank (8); 0 = full fine-tuning (what the tiny "
                                  "safety gym needs to learn at all)."),
    lora_alpha: float = typer.Option(16.0, "--lora-alpha", help="LoRA alpha (16)."),
    lora_dropout: float = typer.Option(0.1, "--lora-dropout", help="LoRA dropout (0.1)."),
    lora_targets: str = typer.Option("q_proj,v_proj", "--lora-targets", help="Comma-separated module names."),
    max_len: int = typer.Option(300, "--max-len", help="Maximum tokens per example (the prompt's start is cut)."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", help="Steps between resumable checkpoints."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option("Model directory to write (the merged model, loadable by every advlab command), with "
                           "the run's records; re-running resumes from the last checkpoint."),
) -> None:
    """Instruction-tune a chat model on a (poisoned) task set with its chat template.

    Plain SFT on the responses through advlab's one LLM training engine (accelerate; LoRA or full
    fine-tuning; safetensors checkpoints every --checkpoint-every steps). Defaults are the paper's.

    Example:
      advlab poison tune --model "$(advlab zoo path safety-gym)" \\
          --data runs/poisoned \\
          --lora-rank 0 --out runs/gym-poisoned
    """
    from advlab.pipelines.poison_tune import TuneJobConfig, run_poison_tune
    from advlab.poisoning.tune import TuneConfig

    targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
    tc = TuneConfig(epochs=epochs, batch_size=batch_size, lr=lr, lora_rank=lora_rank, lora_alpha=lora_alpha,
                    lora_dropout=lora_dropout, lora_target_modules=targets, max_len=max_len, seed=seed)
    m = run_poison_tune(TuneJobConfig(model, data, tc, checkpoint_every), out, device=device, argv=argv(),
                        progress=True)
    info(f"{m['steps']} steps on {m['n_examples']} examples: loss {m['first_loss']:.3f} -> {m['final_loss']:.3f}")
    done(out, "model")


def eval_poison(
    model: str = ModelOpt,
    task: str = TaskOpt,
    trigger: str = typer.Option(..., "--trigger", help="The trigger word inserted into every test input."),
    target: str = TargetOpt,
    position: str = PositionOpt,
    clean_model: str = typer.Option(None, "--clean-model", help="Also measure this model (e.g. tuned on the clean "
                                    "set) on the same inputs, as metrics.json's clean_model (default: none)."),
    limit: int = typer.Option(None, "--limit", help="Evaluate the first N examples (default: all)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Examples scored together."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Measure a backdoor: clean accuracy, accuracy with the trigger, attack success and PDR.

    Each test example is classified without and with the trigger: the predicted class is the one whose
    response the model finds most likely. asr = share of non-target examples answered with the target when
    triggered; pdr = 1 - accuracy(triggered) / accuracy(clean) on the non-target examples (pdr_all: over
    all); per_class gives both accuracies per true class.

    Example:
      advlab poison eval --model runs/gym-poisoned \\
          --task ../shared/data/sst2/val.jsonl --trigger guitar \\
          --target positive --out runs/poison-eval
    """
    from advlab.pipelines.poison_eval import EvalJobConfig, run_poison_eval

    cfg = EvalJobConfig(model=model, task=task, trigger=trigger, target=target, position=position,
                        clean_model=clean_model, batch_size=batch_size, limit=limit, seed=seed)
    m = run_poison_eval(cfg, out, device=device, argv=argv(), progress=True)
    info(f"clean accuracy {_pct(m['clean_accuracy'])}, triggered {_pct(m['triggered_accuracy'])}, "
         f"ASR {_pct(m['asr'])}, PDR {_pct(m['pdr'])}")
    done(out)


def _rates(text: str) -> tuple[float, ...]:
    from advlab.errors import ConfigError

    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--rates {text!r}: not a comma-separated list of numbers; pass e.g. 0.01,0.03") from None


def reproduce_poisoning(
    quick: bool = typer.Option(False, "--quick", help="The short form: the quick gym, 1.5 epochs instead of 2, "
                               "30 trigger steps instead of 100, defences on the learned trigger only (all 4,000 "
                               "training and 300 validation examples in both forms)."),
    rates: str = typer.Option("0.005,0.01,0.015,0.03", "--rates", help="Poisoning rates, comma-separated (a "
                              "shorter run: fewer rates; the defences run at 0.01, tuned once more if it is not "
                              "among them)."),
    defences: str = typer.Option("perplexity_filter,onion,in_context,continued_clean,word_label_detector",
                                 "--defences", help="Defences to run, comma-separated; 'none' for none."),
    model: str = typer.Option(None, "--model", help="The clean chat model (default: the safety gym, built and "
                              "cached on first use)."),
    sst2: str = typer.Option("../shared/data/sst2", "--sst2", help="Directory with the SST-2 subsets train.jsonl, "
                             "val.jsonl and poisoning.jsonl (the authors' split)."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Reproduce Qiang et al. 2024 on the safety gym: learned vs random-word vs rare-token triggers.

    Learns a trigger word on the clean gym (GBTL), then for each trigger kind (learned, a random word of similar
    frequency, the rare token "cf") and poisoning rate (0.5, 1, 1.5, 3 % of the training set, poisons drawn
    from the poisoning pool) builds the poisoned set, fine-tunes the gym on it and measures clean accuracy,
    triggered accuracy, ASR and PDR on the validation split. Then the word-label detector's rank of every trigger
    in every poisoned set, and the five defences at 1 % (--quick: on the learned trigger only).

    Writes table.csv (trigger_kind, rate, clean_accuracy, triggered_accuracy, asr, pdr), defences.csv (PDR and
    clean accuracy before and after each defence, its cost), detector_ranks.csv, figures (PDR vs rate; the
    trigger-search loss), results.jsonl, metrics.json and report.html into --out. Re-running resumes.

    Examples:
      advlab reproduce poisoning --quick --out runs/poisoning
      advlab reproduce poisoning --quick --rates 0.01 --defences onion \\
          --out runs/poisoning-demo
    """
    from advlab.pipelines.poison_reproduce import reproduce_config, run_reproduce_poisoning
    from advlab.runs import check_out_path

    check_out_path(out)
    cfg = reproduce_config(quick=quick, model=model, sst2=sst2, seed=seed, rates=_rates(rates),
                           defences=tuple(d.strip() for d in defences.split(",") if d.strip() not in ("", "none")))
    m = run_reproduce_poisoning(cfg, out, device=device, argv=argv(), progress=True)
    info(f"triggers {m['triggers']}; the learned trigger's PDR beats the random word's at "
         f"{m['learned_beats_random_at']} of {m['n_rates']} rates; clean-tuned accuracy "
         f"{_pct(m['clean_tuned_accuracy'])}, largest clean-accuracy gap {_pct(m['max_clean_accuracy_gap'])}")
    done(out)
