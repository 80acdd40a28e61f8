"""``advlab train classifier``: standard training, PGD adversarial training or TRADES."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, argv, done, info, out_option
from advlab.cli.options import eps_option, fill, radius


def train_classifier(
    method: str = typer.Option(
        "standard",
        "--method",
        "-m",
        help="Training: standard (clean cross-entropy), pgd-at (Madry et al. 2018: train on PGD examples) or "
        "trades (Zhang et al. 2019: CE + beta·KL between clean and adversarial predictions).",
    ),
    model: str = typer.Option("cnn", "--model", help="Architecture: linear, mlp, cnn (small CNN) or resnet."),
    data: str = typer.Option(
        "digits",
        "--data",
        help="Data set: digits (built in, 8×8), mnist[:DIR] or cifar10[:DIR] (torchvision's on-disk layout), "
        "stripes or two-moons (synthetic two-class sets).",
    ),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs."),
    eps: str = eps_option(
        0.1, "Attack radius on the [0, 1] input scale for pgd-at and trades, and of the per-epoch PGD evaluation."
    ),
    norm: str = typer.Option("linf", "--norm", help="Threat model: linf (max per pixel) or l2 (Euclidean)."),
    steps: int = typer.Option(10, "--steps", help="PGD steps of the inner maximisation (pgd-at and trades)."),
    beta: float = typer.Option(6.0, "--beta", help="TRADES trade-off beta (6 in the paper)."),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate."),
    optimizer: str = typer.Option("adam", "--optimizer", help="Optimiser: adam or sgd (momentum 0.9)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Mini-batch size."),
    eval_eps: str = eps_option(None, "Radius of the per-epoch PGD evaluation (default: --eps).", name="--eval-eps"),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    out: Path = out_option(
        "Directory for the trained model and its run records (re-running the same command resumes from "
        "the last finished epoch)."
    ),
) -> None:
    """Train an image classifier, evaluating clean and PGD accuracy on the validation split each epoch.

    The output directory is both a run directory (results.jsonl with one record per epoch, metrics.json,
    report.html with the training curves) and a model directory (model.safetensors + classifier.json)
    that `advlab attack classifier --model DIR` and `advlab.models.load_classifier(DIR)` read.
    Checkpoints (model and optimiser state, safetensors) are kept under DIR/checkpoint.

    Launched with accelerate or torchrun, each batch is split over N processes; only the main process
    writes DIR and prints (see docs/scaling.md):
      accelerate launch --multi_gpu --num_processes N \\
          -m advlab.cli.main train classifier ...
      torchrun --standalone --nproc_per_node N \\
          -m advlab.cli.main train classifier ...

    Example:
      advlab train classifier --method pgd-at --model cnn --eps 0.2 --epochs 20 \\
          --out runs/cnn-at
    """
    opts = dict(locals())
    from advlab.pipelines.train_classifier import run_training
    from advlab.training.classifier import TrainConfig
    from advlab.utils import resolve_device

    cfg = fill(TrainConfig, opts, rename={"model": "arch", "steps": "attack_steps"},
               convert={"eps": radius(), "eval_eps": radius("--eval-eps")})
    m = run_training(cfg, out, resolve_device(device), argv=argv())
    info(
        f"{cfg.method} {cfg.arch}: val clean accuracy {100 * m['val_clean_accuracy']:.1f} %, "
        f"val PGD accuracy {100 * m['val_robust_accuracy']:.1f} % at eps {m['eval_eps']:.3g}"
    )
    done(Path(out), "model and run")
