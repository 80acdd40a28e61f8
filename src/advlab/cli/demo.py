"""``advlab demo``: every job end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer

from advlab.cli.common import DeviceOpt, SeedOpt, console, done, out_option


def demo(
    out: Path = out_option("Directory for the demo: one run directory per step, and index.html linking them."),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets everywhere: a smoke test of about two minutes."),
    gym: Path = typer.Option(
        None, "--gym", help="Use this chat model instead of the cached safety gym (built on first use)."
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
) -> None:
    """Run every advlab job end to end on the embedded defaults, offline, on CPU.

    Builds (once, then cached) the safety-gym chat model, measures it, attacks it with the
    embedding attack and GCG, trains digits classifiers (standard and PGD-AT), evaluates them
    under worst-case attack, runs the uncanny-valley flatness experiment, and checks and
    performs a robustness-congruent model update. Each step is printed as the advlab command
    it runs, so you can re-run or vary any step by hand. Open OUT/index.html when it is done.

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
        echo=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True),
    )
    done(result["index"], "demo index")
