"""``advlab check-update``, ``advlab update classifier``, ``advlab reproduce rcat`` (parsing, printing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option, fill, parse_eps, radius

OldOpt = typer.Option(
    ..., "--old", help="Directory of the old (deployed) classifier, as written by `advlab train classifier`."
)
NewOpt = typer.Option(
    ..., "--new", help="Directory of the new classifier that would replace it (same classes and inputs)."
)
DataOpt = typer.Option(
    "digits", "--data", help="Data set both models were trained on (as in `advlab train classifier --data`)."
)
EpsOpt = eps_option(0.1, "Radius of the evaluation attack on the [0, 1] input scale.")
NormOpt = typer.Option("linf", "--norm", help="Threat model of the evaluation attack: linf or l2.")
AttackOpt = typer.Option(
    "apgd",
    "--attack",
    help="Evaluation attack run white-box on each model on its own: apgd (APGD-CE), pgd or fgsm.",
)
StepsOpt = typer.Option(50, "--steps", help="Iterations of the evaluation attack (50 in the RCAT paper).")
LimitOpt = typer.Option(None, "--limit", help="Use only the first N evaluation samples (default: all).")


def _print_metrics(m: dict[str, Any]) -> None:
    keys = ("old_accuracy", "new_accuracy", "old_robust_accuracy", "new_robust_accuracy", "nfr", "pfr", "rnfr",
            "b_nfr", "s_nfr")
    from rich.table import Table

    from advlab.metrics import wilson_interval

    n = int(m.get("n") or 0)
    t = Table(title=f"update vs old model (test data, n = {n})" if n else "update vs old model (test data)")
    for c in ("metric", "value", "95 % Wilson interval"):
        t.add_column(c)
    for k in keys:
        lo, hi = wilson_interval(int(round(m[k] * n)), n) if n else (float("nan"), float("nan"))
        t.add_row(k, f"{100 * m[k]:.2f} %", f"{100 * lo:.1f}–{100 * hi:.1f} %" if n else "")
    info(t)


def _print_table(rows: list[dict[str, Any]], title: str, n: int | None = None) -> None:
    from rich.table import Table

    cols = (("model", "model"), ("clean_accuracy", "clean"), ("robust_accuracy", "robust"), ("nfr", "NFR"),
            ("pfr", "PFR"), ("rnfr", "RNFR"), ("s_nfr", "S-NFR"), ("val_s_nfr", "val S-NFR"))  # fmt: skip
    t = Table(title=title)
    for _, head in cols:
        t.add_column(head, no_wrap=True)
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            cells.append(f"{100 * v:.1f}" if isinstance(v, float) else ("" if v is None else str(v)))
        if r.get("selected"):
            cells[0] += " *"
        t.add_row(*cells)
    info(t)
    widest = f"; with n = {n}, a rate's 95 % Wilson interval spans at most ±{_widest_half_width(n):.1f} points" if n \
        else ""
    info(f"rates in % of test samples; * = selected on validation S-NFR{widest}")


def _widest_half_width(n: int) -> float:
    """The largest half-width (in points) of a 95 % Wilson interval over n items (at a rate of 1/2)."""
    from advlab.metrics import wilson_interval

    lo, hi = wilson_interval(n // 2, n)
    return 100 * (hi - lo) / 2


def check_update(
    old: Path = OldOpt,
    new: Path = NewOpt,
    data: str = DataOpt,
    split: str = typer.Option("test", "--split", help="Data split to measure on: train, val or test."),
    eps: str = EpsOpt,
    norm: str = NormOpt,
    attack: str = AttackOpt,
    steps: int = StepsOpt,
    limit: int = LimitOpt,
    batch_size: int = typer.Option(256, "--batch-size", help="Samples attacked at once."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Measure an update before shipping it: negative flips, clean and under attack.

    Each model is attacked white-box on its own with the same attack and budget (by default APGD-CE, 50
    iterations, eps 0.1). Writes one record per sample (old_correct, new_correct, old_robust, new_robust)
    and metrics.json: NFR (old right, new wrong), PFR, RNFR (old robust, new not), B-NFR (both), S-NFR
    (either), and both models' clean and robust accuracy; plus a flip-matrix figure and report.html.

    Example:
      advlab check-update --old runs/demo/models/mlp-pgd-at \\
          --new runs/demo/models/cnn-pgd-at --data digits \\
          --out runs/check
    """
    opts = dict(locals())
    from advlab.analysis.update_check import CheckConfig
    from advlab.pipelines.check_update import run_check_update
    from advlab.utils import resolve_device

    cfg = fill(CheckConfig, opts, convert={"eps": parse_eps})
    m = run_check_update(old, new, out, cfg, resolve_device(device), argv=argv())
    _print_metrics(m)
    done(out, "update check")


def update_classifier(
    old: Path = OldOpt,
    new: Path = NewOpt,
    method: str = typer.Option(
        "rcat",
        "--method",
        help="Update method: rcat (robustness-congruent AT), pct (positive-congruent training), pct-at (PCT on FGSM "
        "examples) or at (plain adversarial fine-tuning).",
    ),  # fmt: skip
    data: str = DataOpt,
    alpha: float = typer.Option(
        None,
        "--alpha",
        help="Weight toward the pre-update new model (RCAT) or of distillation to the old model (PCT). "
        "Default: sweep the paper's (alpha, beta) pairs (see --beta) and keep the lowest validation S-NFR.",
    ),  # fmt: skip
    beta: float = typer.Option(
        None,
        "--beta",
        help="Weight toward the old model on the samples it gets right; RCAT needs alpha + beta <= 1. "
        "Sweeps: RCAT (0.75, 0.2), (0.7, 0.2), (0.5, 0.4), (0.3, 0.6); PCT and PCT-AT alpha 1, beta 1, 2, 5 "
        "or 10. Given only one of --alpha and --beta, the other is 0.5 / 0.4 (RCAT) or 1 (PCT). Default: the sweep.",
    ),  # fmt: skip
    epochs: int = typer.Option(10, "--epochs", help="Fine-tuning epochs per candidate (paper: 10)."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate (paper: 0.001 with SGD, momentum 0.9)."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="Optimiser: sgd (momentum 0.9) or adam."),
    batch_size: int = typer.Option(128, "--batch-size", help="Fine-tuning batch size (paper: 128)."),
    train_attack: str = typer.Option(
        "fgsm", "--train-attack", help="Attack that builds the training examples: fgsm (random start) or pgd."
    ),
    train_eps: str = eps_option(0.1, "Radius of the training attack on the [0, 1] input scale.", name="--train-eps"),
    train_steps: int = typer.Option(
        10, "--train-steps", help="Steps of the training attack (pgd only; fgsm takes one)."
    ),
    eps: str = EpsOpt,
    norm: str = NormOpt,
    attack: str = AttackOpt,
    steps: int = StepsOpt,
    limit: int = LimitOpt,
    val_limit: int = typer.Option(None, "--val-limit", help="Use only the first N validation samples (default: all)."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option("Directory for the fine-tuned model and its run (re-running the same command resumes)."),
) -> None:
    """Fine-tune the new model so it keeps what the old one got right, clean and under attack.

    RCAT (Angioni et al. 2024) minimises (1-a-b)·CE(f(x*), y) + a·D(f(x*), f_new(x*)) on samples the
    pre-update new model gets right + b·D(f(x*), f_old(x*)) on samples the old model gets right, x* an
    FGSM example against the model being trained, D half the mean squared logit difference. Without
    --alpha/--beta the paper's sweep is run and the pair with the lowest validation S-NFR is kept. OUT
    gets the fine-tuned model (load it with advlab.models.load_classifier), the same metrics as
    check-update for it against the old model, and a table of every candidate.

    Example:
      advlab update classifier --old runs/demo/models/mlp-pgd-at \\
          --new runs/demo/models/cnn-pgd-at \\
          --method rcat --out runs/upd
    """
    opts = dict(locals())
    from advlab.analysis.update_check import CheckConfig
    from advlab.pipelines.update_classifier import run_update
    from advlab.training.classifier.update_config import UpdateConfig
    from advlab.utils import resolve_device

    # the evaluation attack's batch is CheckConfig's own default, not the fine-tuning --batch-size
    check = fill(CheckConfig, opts, convert={"eps": parse_eps}, skip=("batch_size",))
    cfg = fill(UpdateConfig, opts, convert={"train_eps": radius("--train-eps")}, check=check)
    m = run_update(old, new, out, cfg, resolve_device(device), argv=argv())
    _print_table(m["table"], f"update with {method} (test data, vs the old model)", m.get("n"))
    # the table above has the old, new and selected models' rates; add the one it lacks, once
    from advlab.report.format import rate_of

    info(f"B-NFR of the selected model (a clean and a robust flip on one sample): {rate_of(m['b_nfr'], m.get('n'))}")
    done(out, "updated model")


def reproduce_rcat(
    quick: bool = typer.Option(
        False, "--quick", help="The demo's short form: one pair, one setting per method, 3 seeds."
    ),
    seeds: int = typer.Option(
        None, "--seeds", help="Number of seeds, from --seed on, each training and fine-tuning anew "
        "(default: 5; 3 with --quick)."
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Reproduce RCAT on digits: pairs with rising clean and robust accuracy, every method on every pair.

    Trains a sequence of classifiers (different architectures, training lengths and adversarial training),
    runs at, rcat, pct and pct-at on each (old, new) pair with the paper's (alpha, beta) sweeps, once per
    seed, and writes the table (clean/robust accuracy, NFR, PFR, RNFR, S-NFR vs the old model), each
    method's mean ± std over seeds, the paired comparison with plain adversarial fine-tuning (AT), and
    whether RCAT beats AT on mean RNFR and S-NFR at mean robust accuracy within 2 points.

    Example:
      advlab reproduce rcat --out runs/rcat
    """
    opts = dict(locals())
    from advlab.pipelines.reproduce_rcat import rcat_recipe
    from advlab.utils import resolve_device

    m = fill(rcat_recipe, opts, device=resolve_device(device), argv=argv())
    for p in m["summary"]["pairs"]:
        _print_spread(p)
    s = m["summary"]
    info(f"RCAT lower mean RNFR and S-NFR than AT, mean robust acc. within 2 pt: {s['rcat_wins']}/{s['n_pairs']} "
         f"pairs ({len(m['seeds'])} seeds)")
    done(out, "recipe")


def _print_spread(p: dict[str, Any]) -> None:
    """One pair: each method's mean ± std over seeds, and RNFR/S-NFR against AT (lower in k of n seeds)."""
    from rich.table import Table

    t = Table(title=f"{p['pair']}: mean ± std over {len(p['seeds'])} seeds (rates in %)")
    for col in ("model", "clean acc", "robust acc", "NFR", "RNFR", "S-NFR", "RNFR − AT", "S-NFR − AT"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, st in p["methods"].items():
        vs = p.get("vs_at", {}).get(name)
        diff = [f"{100 * vs[k]['mean_diff']:+.2f} (lower {vs[k]['lower']}/{vs[k]['n']}, p={vs[k]['sign_test_p']:.2f})"
                if vs else "" for k in ("rnfr", "s_nfr")]
        t.add_row(name, *(f"{100 * st[k]['mean']:.2f} ± {100 * st[k]['std']:.2f}"
                          for k in ("clean_accuracy", "robust_accuracy", "nfr", "rnfr", "s_nfr")), *diff)
    info(t)
