"""``advlab demo``: every job end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, console, done, out_option


def demo(
    out: Path = out_option(
        "Directory for the demo: one run directory per step, and report.html (also index.html) linking them."
    ),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets everywhere and no recipe steps: a smoke "
                               "test of a few minutes."),
    gym: Path = typer.Option(
        None,
        "--gym",
        help="Use this chat model instead of the cached safety gym (default: the gym, built on first use).",
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Run every advlab job end to end on the embedded defaults, offline, on CPU.

    Builds (once, then cached) the safety-gym chat model, measures it, attacks it with the
    embedding attack and GCG, trains digits classifiers (standard and PGD-AT), evaluates them
    under worst-case attack, runs the uncanny-valley flatness experiment, checks and performs a
    robustness-congruent model update, then runs the continuous adversarial training and the
    poisoning recipes in short form (poisoning reads the SST-2 subsets in ../shared/data/sst2).
    Each step is printed as the advlab command it runs, as you can paste it, so you can re-run or
    vary any step by hand. Open OUT/report.html (the same page as OUT/index.html) when it is done:
    each step's headline and report.

    Examples:
      advlab demo --out runs/demo
      advlab demo --out runs/demo-quick --quick
    """
    from advlab.cli.main import app
    from advlab.errors import ConfigError
    from advlab.pipelines.demo import run_demo
    from advlab.utils import resolve_device

    resolve_device(device)  # fail early on a bad --device
    if gym is not None and not Path(gym).is_dir():
        raise ConfigError(f"--gym {gym} is not a directory; pass a chat-model directory or leave it out")

    def invoke(args: list[str]) -> None:
        command = typer.main.get_command(app)
        command.main(args=args, prog_name="advlab", standalone_mode=False)

    result = run_demo(
        out,
        seed=seed,
        device=device,
        quick=quick,
        gym=gym,
        invoke=invoke,
        prog=runnable_prog(),
        echo=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True),
    )
    done(result["index"].with_name("report.html"), "demo report (the entry page)")


def runnable_prog() -> str:
    """How to start advlab from this shell: ``advlab`` when that is on the PATH and is this advlab, else
    the path of the running script (e.g. ``.venv/bin/advlab``) or ``PYTHON -m advlab``."""
    import os
    import shutil
    import sys

    here = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    found = shutil.which("advlab")
    if here is not None and here.name == "advlab":
        if found and Path(found).resolve() == here.resolve():
            return "advlab"
        try:
            rel = os.path.relpath(here)
        except ValueError:
            rel = str(here)
        return rel if "/" in rel else f"./{rel}"
    if found:
        return "advlab"
    return f"{os.path.relpath(sys.executable) if sys.executable else 'python'} -m advlab"
