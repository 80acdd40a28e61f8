"""``advlab analyze {flatness,valley,llm-valley,hessian}`` and ``advlab reproduce valley`` (parsing, printing)."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option, fill, parse_eps, radius

ModelOpt = typer.Option(..., "--model", "-m", help="A classifier directory written by `advlab train classifier`.")
DataOpt = typer.Option(
    "digits", "--data", help="Data set the model was trained on (as in `advlab train classifier --data`)."
)
SplitOpt = typer.Option("test", "--split", help="Data split to analyse: train, val or test.")
LayerOpt = typer.Option(
    None, "--layer", help="Module name of a linear layer (see model.named_modules()); default: the logits layer, named "
    "fc in every advlab architecture."
)
MethodOpt = typer.Option(
    "exact",
    "--method",
    help="Flatness computation: exact (closed form, logits layer only), hutchinson (any linear layer) or "
    "brute (full Hessian, tiny layers only).",
)


def flatness(
    model: Path = ModelOpt,
    layer: str = LayerOpt,
    method: str = MethodOpt,
    samples: int = typer.Option(64, "--samples", help="Hutchinson probes per example (only with --method hutchinson)."),
    data: str = DataOpt,
    split: str = SplitOpt,
    limit: int = typer.Option(None, "--limit", help="Analyse only the first N examples (default: all)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Examples per batch."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Relative flatness κ (Petzka et al. 2021) of one linear layer at every example of a split.

    Records per example: kappa, trace_variant (‖W‖²·Tr H), trace (Tr H), phi_sq (‖φ‖²), confidence.

    Example:
      advlab analyze flatness --model runs/demo/models/cnn-standard \\
          --data digits --out runs/flat
    """
    opts = dict(locals())
    from advlab.pipelines.analyze_flatness import run_flatness_job
    from advlab.utils import resolve_device

    m = fill(run_flatness_job, opts, rename={"model": "model_dir"}, device=resolve_device(device), argv=argv())
    info(
        f"{m['examples']} examples, layer {m['layer']} ({m['method']}): mean κ {m['mean_kappa']:.4g}, "
        f"mean Tr H {m['mean_trace']:.4g}, mean ‖φ‖² {m['mean_phi_sq']:.4g}"
    )
    done(out)


def _valley_config(opts: dict, **given):
    from advlab.analysis.valley import ValleyConfig

    return fill(ValleyConfig, opts, convert={"norm": str.lower, "eps": parse_eps}, **given)


EpsOpt = eps_option(0.3, "Attack radius in --norm on the [0, 1] input scale.")
StepOpt = typer.Option(
    0.01, "--step-size", help="Attack step size α on the [0, 1] input scale (absolute, not relative to eps)."
)
StepsOpt = typer.Option(
    60, "--steps", help="Attack iterations; choose several times the number needed to flip the label."
)
NormOpt = typer.Option("linf", "--norm", help="Threat model: linf (sign steps) or l2 (normalised gradient).")
RandomStartOpt = typer.Option(
    False,
    "--random-start/--no-random-start",
    help="Start the attack from a random point of the ball (the reference code does not).",
)
NExamplesOpt = typer.Option(200, "--n-examples", help="Number of examples to attack (the first ones of the split).")
AllOpt = typer.Option(
    False, "--all-examples", help="Also attack examples the model already misclassifies (default: correct ones only)."
)
SamplesOpt = typer.Option(
    16, "--samples", help="Hutchinson probes per example and step (only with --method hutchinson)."
)
BatchOpt = typer.Option(100, "--batch-size", help="Examples attacked together.")


def valley(
    model: Path = ModelOpt,
    data: str = DataOpt,
    split: str = SplitOpt,
    eps: str = EpsOpt,
    step_size: float = StepOpt,
    steps: int = StepsOpt,
    norm: str = NormOpt,
    random_start: bool = RandomStartOpt,
    layer: str = LayerOpt,
    method: str = MethodOpt,
    samples: int = SamplesOpt,
    n_examples: int = NExamplesOpt,
    all_examples: bool = AllOpt,
    batch_size: int = BatchOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """The uncanny-valley experiment (Walter et al. 2024): follow flatness along a PGD attack past the flip.

    Records one line per example and step (id "EXAMPLE:STEP") with loss, margin, confidence, pred,
    flatness (κ), trace_variant, trace, phi_sq, grad_norm, pert_norm, flipped and flip_step. Metrics say
    whether κ rises before the flip and falls after it; figures align curves at each example's flip.

    Example:
      advlab analyze valley --model runs/demo/models/cnn-standard \\
          --data digits --out runs/valley
    """
    opts = dict(locals())
    from advlab.pipelines.analyze_valley import run_valley_job
    from advlab.utils import resolve_device

    cfg = _valley_config(opts, only_correct=not all_examples)
    m = fill(run_valley_job, opts, rename={"model": "model_dir"}, cfg=cfg, device=resolve_device(device), argv=argv())
    _print_valley(m)
    done(out)


def _print_valley(m: dict) -> None:
    from advlab.report.format import num

    info(
        f"{m['examples']} examples: {m['flipped']} flipped, {m['never_flipped']} never flipped, "
        f"{m['initially_misclassified']} misclassified from the start"
    )
    if m.get("note"):
        info(f"[yellow]{m['note']}[/yellow]")
        return
    f = m["flatness"]
    info(
        f"median flip step {m['flip_step_median']:g}; median κ at the flip / clean: "
        f"{num(f['median_ratio_at_flip_over_clean'])}×; median κ at the end / at the flip: "
        f"{num(f['median_ratio_end_over_flip'])}×; "
        f"rise-then-fall in {100 * f['fraction_rise_then_fall']:.0f} % of flipped examples"
    )


def hessian(
    model: Path = ModelOpt,
    layer: list[str] = typer.Option(
        ["all"],
        "--layer",
        help="Parameter group: a module name, several joined by '+', or 'all' (repeat for several groups).",
    ),
    samples: int = typer.Option(100, "--samples", help="Hutchinson probes for the trace estimate."),
    top_k: int = typer.Option(1, "--top-k", help="Number of top eigenvalues, by power iteration (0: none)."),
    max_iter: int = typer.Option(100, "--max-iter", help="Maximum power-iteration steps per eigenvalue."),
    tol: float = typer.Option(1e-4, "--tol", help="Relative tolerance that stops the power iteration."),
    data: str = DataOpt,
    split: str = SplitOpt,
    limit: int = typer.Option(500, "--limit", help="Examples in the mean loss (first N of the split)."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Hessian trace (Hutchinson, with standard error) and top eigenvalues of the mean loss per parameter group.

    Example:
      advlab analyze hessian --model runs/demo/models/cnn-standard \\
          --layer fc --layer all \\
          --out runs/hessian
    """
    opts = dict(locals())
    from advlab.pipelines.analyze_hessian import run_hessian_job
    from advlab.report.format import num
    from advlab.utils import resolve_device

    m = fill(run_hessian_job, opts, rename={"model": "model_dir", "layer": "layers"}, device=resolve_device(device),
             argv=argv())
    for g, v in m.items():
        if isinstance(v, dict):
            info(
                f"{g}: {v['num_params']} parameters, Tr H {v['trace']:.4g} ± {v['trace_se']:.2g}, "
                f"top eigenvalue {num(v['top_eigenvalue'], 4)}"
            )
    done(out)


def reproduce_valley(
    epochs: int = typer.Option(
        20, "--epochs", help="Training epochs of each model (a model already trained in OUT is reused)."
    ),
    train_eps: str = eps_option(
        0.1, "L∞ radius of PGD adversarial training on the [0, 1] input scale.", name="--train-eps"
    ),
    eps: str = EpsOpt,
    step_size: float = StepOpt,
    steps: int = StepsOpt,
    norm: str = NormOpt,
    n_examples: int = NExamplesOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option("Directory for both models, both valley runs and the comparison (resumable)."),
) -> None:
    """Reproduce the uncanny valley on digits: a standard and a PGD-AT CNN, the valley on both, compared.

    Trains (or reuses, when resumed) both CNNs into OUT/models/{standard,pgd-at}, runs the valley
    experiment on each into OUT/valley-{standard,pgd-at}, and writes the side-by-side comparison
    (metrics.json, figures/valley_comparison.png, report.html) into OUT.

    Example:
      advlab reproduce valley --out runs/valley-repro
    """
    opts = dict(locals())
    from advlab.pipelines.reproduce_valley import ReproduceValleyConfig
    from advlab.pipelines.reproduce_valley import reproduce_valley as run
    from advlab.utils import resolve_device

    cfg = fill(ReproduceValleyConfig, opts, convert={"train_eps": radius("--train-eps")}, valley=_valley_config(opts))
    m = fill(run, opts, cfg=cfg, device=resolve_device(device), argv=argv())
    comp = m["comparison"]
    for key in (
        "val_clean_accuracy",
        "val_robust_accuracy",
        "flipped",
        "never_flipped",
        "flip_step_median",
        "flatness.median_ratio_at_flip_over_clean",
        "flatness.median_ratio_end_over_flip",
        "flatness.fraction_rise_then_fall",
    ):
        if key in comp:
            info(
                f"{key}: "
                + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in comp[key].items())
            )
    done(out)


def llm_valley(
    model: Path = typer.Option(
        ..., "--model", "-m", help="A local chat-model directory, e.g. the --out of `advlab zoo build safety-gym`."
    ),
    behaviors: str = typer.Option(
        ...,
        "--behaviors",
        help="Behaviours with targets: a behaviour file or builtin:NAME (e.g. builtin:gym-harmful-test).",
    ),
    method: str = typer.Option("gcg", "--method", help="Attack whose trajectory is followed: gcg or embedding."),
    steps: int = typer.Option(20, "--steps", help="Attack steps per behaviour (no early stop; recorded every step)."),
    limit: int = typer.Option(None, "--limit", help="Analyse only the first N behaviours (default: all)."),
    layer: str = typer.Option(
        None, "--layer", help="Module name of the linear output head (default: the model's head, lm_head)."
    ),
    search_width: int = typer.Option(64, "--search-width", help="GCG candidates per step (only with --method gcg)."),
    eps: str = eps_option(
        0.05, "Embedding-attack radius relative to the mean embedding norm (only with --method embedding)."
    ),
    step_size: float = typer.Option(
        1e-4, "--step-size", help="Embedding-attack signed-gradient step (only with --method embedding)."
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """The uncanny-valley experiment on a chat model: output-head flatness along a GCG or embedding attack.

    Records one line per behaviour and step (id "EXAMPLE:STEP") with loss (target cross-entropy), flatness
    (Σ p(1−p)‖h‖² at the target positions), kappa (relative flatness), confidence (mean max-probability),
    flipped (greedy decoding reproduces the target; checked at every step, it costs no extra forward pass)
    and flip_step (first flipped step, null if none).

    Example:
      advlab analyze llm-valley --model "$(advlab zoo path safety-gym)" \\
          --method gcg \\
          --behaviors builtin:gym-harmful-test --out runs/llm-valley
    """
    opts = dict(locals())
    from advlab.pipelines.analyze_llm_valley import run_llm_valley_job
    from advlab.report.format import num
    from advlab.utils import resolve_device

    m = fill(run_llm_valley_job, opts, rename={"model": "model_dir"}, convert={"method": str.lower, "eps": parse_eps},
             device=resolve_device(device), argv=argv())
    info(
        f"{m['examples']} behaviours ({m['method']}): {m['flips'][m['method']]} flipped, "
        f"{m['never_flipped']} never flipped"
    )
    if m.get("note"):
        info(f"[yellow]{m['note']}[/yellow]")
    else:
        f = m["flatness"]
        info(
            f"median flip step {m['flip_step_median']:g}; median flatness before / at / after the flip: "
            f"{num(f['median_before_flip'])} / {num(f['median_at_flip'])} / {num(f['median_after_flip'])}"
        )
    done(out)
