"""Entry point: ``advlab``. Every user-fixable error becomes one line on stderr and exit code 2."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from advlab import distributed
from advlab.cli.command import AdvlabCommand, AdvlabGroup
from advlab.cli.common import reflow_help
from advlab.errors import AdvlabError

app = typer.Typer(
    name="advlab",
    help=reflow_help(
        """advlab: a laboratory for the adversarial robustness of classifiers and LLMs.

        Attack models, train them to resist, update them without losing robustness, and look at the loss
        landscape around adversarial examples. Every job writes a run directory
        (--out) with manifest.json, config.yaml, results.jsonl, metrics.json and report.html; re-running
        the same command resumes it. Each command's --help explains its options and ends with an example.

        Start with:
          advlab demo --out runs/demo
        """
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    cls=AdvlabGroup,
)

GROUPS = {
    "zoo": "Build the embedded default models (the safety-gym chat model), or print where the cached one is.",
    "attack": "Attack a chat LLM (embedding, GCG, AutoDAN, PAIR) or an image classifier (FGSM, PGD, APGD, worst-case).",
    "eval": "Measure a chat LLM: refusal on harmful requests, task utility, over-refusal on harmless ones.",
    "train": "Train robust image classifiers (standard, PGD-AT, TRADES) and chat LLMs (CAT, CAPO, R2D2).",
    "update": "Update a classifier without losing robustness (RCAT, PCT, PCT-AT, adversarial fine-tuning).",
    "analyze": "Loss-landscape analysis: relative flatness, Hessian spectra, the uncanny-valley experiment.",
    "reproduce": "One recipe per paper, writing its table and figures.",
    "poison": "Backdoor instruction tuning: learn a trigger word, build a poisoned set, tune, measure (PDR).",
}

# (group, command name) -> "module:function". The command modules import their heavy dependencies inside
# the functions, so --help stays fast. Each function's docstring is its help (reflowed by reflow_help).
COMMANDS: dict[tuple[str | None, str], str] = {
    ("zoo", "build"): "advlab.cli.zoo:build",
    ("zoo", "path"): "advlab.cli.zoo:path",
    ("eval", "llm"): "advlab.cli.eval_llm:eval_llm",
    ("attack", "llm"): "advlab.cli.attack_llm:attack_llm",
    ("attack", "classifier"): "advlab.cli.attack_classifier:attack_classifier",
    ("train", "classifier"): "advlab.cli.train_classifier:train_classifier",
    ("train", "llm"): "advlab.cli.train_llm:train_llm",
    ("update", "classifier"): "advlab.cli.update:update_classifier",
    (None, "check-update"): "advlab.cli.update:check_update",
    ("analyze", "flatness"): "advlab.cli.analyze:flatness",
    ("analyze", "valley"): "advlab.cli.analyze:valley",
    ("analyze", "llm-valley"): "advlab.cli.analyze:llm_valley",
    ("analyze", "hessian"): "advlab.cli.analyze:hessian",
    ("reproduce", "valley"): "advlab.cli.analyze:reproduce_valley",
    ("reproduce", "rcat"): "advlab.cli.update:reproduce_rcat",
    ("reproduce", "poisoning"): "advlab.cli.poison:reproduce_poisoning",
    ("reproduce", "continuous-at"): "advlab.cli.train_llm:reproduce_continuous_at",
    ("poison", "trigger"): "advlab.cli.poison:trigger",
    ("poison", "build"): "advlab.cli.poison:build",
    ("poison", "tune"): "advlab.cli.poison:tune",
    ("poison", "eval"): "advlab.cli.poison:eval_poison",
    ("poison", "jailbreak"): "advlab.cli.poison_jailbreak:jailbreak",
    (None, "report"): "advlab.cli.report:report",
    (None, "demo"): "advlab.cli.demo:demo",
}

_sub: dict[str, typer.Typer] = {}


@app.callback()
def _root() -> None:
    """advlab: a laboratory for the adversarial robustness of classifiers and LLMs."""


def _register() -> None:
    for (group, name), target in COMMANDS.items():
        module_name, func_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the command group is not built yet
                continue
            raise
        func = getattr(module, func_name, None)
        if func is None:
            continue
        help_text = reflow_help(func.__doc__)
        if group is None:
            app.command(name, help=help_text, cls=AdvlabCommand)(func)
        else:
            if group not in _sub:
                _sub[group] = typer.Typer(help=GROUPS[group], no_args_is_help=True, cls=AdvlabGroup)
                app.add_typer(_sub[group], name=group)
            _sub[group].command(name, help=help_text, cls=AdvlabCommand)(func)


_register()


def run() -> None:
    """Console-script entry point."""
    # advlab shows its own progress bars; silence the hub's and transformers' weight-loading bars.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from typer import Abort

    try:  # typer >= 0.22 vendors click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False, prog_name="advlab")
        distributed.shutdown()  # under a launcher, every process leaves together
    except NoArgsIsHelpError as exc:  # `advlab attack`: the group's help, as click prints it
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:  # a malformed option value: one line, like every other user error
        cmd = exc.ctx.command_path if exc.ctx is not None else "advlab"
        _say(f"advlab: error: {exc.format_message().splitlines()[0]} (see '{cmd} --help')")
        sys.exit(2)
    except ClickException as exc:
        _say(f"advlab: error: {exc.format_message().splitlines()[0]}")
        sys.exit(exc.exit_code)
    except AdvlabError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        _say(f"advlab: error: {msg}")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Abort):
        _say("advlab: interrupted; re-run the same command to resume")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _say(line: str) -> None:
    """Write one whole line to stderr in a single system call.

    Under a launcher every rank shares one stderr pipe; ``print`` writes the text and the newline
    separately, so two ranks failing together could splice their lines. A single write of up to
    PIPE_BUF bytes to a pipe is atomic (POSIX), so each rank's line stays whole.
    """
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stderr
        sys.stderr.write(line + "\n")
        return
    os.write(fd, (line + "\n").encode("utf-8", "replace"))


if __name__ == "__main__":
    run()
