"""``advlab attack classifier``: FGSM, PGD, APGD or worst-case evaluation of a saved classifier."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option, fill, parse_eps_list


def attack_classifier(
    method: str = typer.Option(
        "pgd",
        "--method",
        "-m",
        help="Attack: fgsm (one step), pgd (Madry et al.), apgd (APGD-CE, Croce & Hein 2020) or worst-case "
        "(APGD-CE, then APGD-T on the remaining points, then a black-box check; per-sample worst case).",
    ),
    model: Path = typer.Option(..., "--model", help="A classifier directory written by `advlab train classifier`."),
    eps: list[str] = eps_option(
        [0.1],
        "Attack radius on the [0, 1] input scale; repeat it or pass a comma list to sweep "
        "(--eps 0.1 --eps 0.2, or --eps 0.1,0.2,0.3).",
    ),
    norm: str = typer.Option("linf", "--norm", help="Threat model: linf (max per pixel) or l2 (Euclidean)."),
    steps: int | None = typer.Option(
        None, "--steps", help="Attack iterations (default: pgd 50, apgd and worst-case 100; fgsm is 1)."
    ),
    step_size: float | None = typer.Option(
        None, "--step-size", help="PGD step size on the [0, 1] input scale (default: 2.5·eps/steps)."
    ),
    restarts: int = typer.Option(
        1, "--restarts", help="Random restarts of pgd and apgd (the per-sample best is kept)."
    ),
    random_start: bool = typer.Option(
        True,
        "--random-start/--no-random-start",
        help="Start PGD from a random point of the ball.",
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Data to attack: digits, mnist[:DIR], cifar10[:DIR], stripes, two-moons "
        "(default: the data the model was trained on).",
    ),
    split: str = typer.Option("test", "--split", help="Data split: train, val or test."),
    limit: int | None = typer.Option(
        None, "--limit", help="Attack only the first N samples of the split (default: all)."
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Samples attacked at once."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(),
) -> None:
    """Attack an image classifier and measure its robust accuracy at one or more radii ε.

    Writes one record per (ε, sample) with the clean and adversarial prediction, the loss and the
    perturbation norm; metrics.json holds clean and robust accuracy per ε; report.html plots robust
    accuracy against ε and shows example perturbations. A sample counts as robust when it is classified
    correctly both clean and under attack.

    Example:
      advlab attack classifier --method worst-case --model runs/cnn-at \\
          --eps 0.1,0.2,0.3 --out runs/wc
    """
    opts = dict(locals())
    from advlab.attacks.classifier.evaluate import AttackEvalConfig
    from advlab.pipelines.attack_classifier import run_attack_eval
    from advlab.report.format import num, rate_of
    from advlab.utils import resolve_device, seed_everything

    cfg = fill(AttackEvalConfig, opts, convert={"model": str, "eps": parse_eps_list})
    dev = resolve_device(device)
    seed_everything(seed)
    metrics = run_attack_eval(cfg, out, dev, argv=argv())
    n = next(iter(metrics["per_eps"].values()))["n"]
    info(f"clean accuracy {rate_of(metrics['clean_accuracy'], n)}")
    for e, v in metrics["per_eps"].items():
        info(f"eps {num(float(e))}: robust accuracy {rate_of(v['robust_accuracy'], v['n'])} ({cfg.method}, {cfg.norm}, "
             f"{cfg.steps} steps)")
        for w in v.get("warnings", []):
            info(f"[yellow]warning[/yellow] (eps {e}): {w}")
    done(Path(out))
