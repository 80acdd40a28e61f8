"""The demo: every advlab job, end to end, on the embedded defaults (safety gym + digits).

The demo is literally the sequence of ``advlab`` commands a user would type: each step is
printed before it runs, as it can be pasted into a shell, so any step can be re-run (or varied)
by hand. Each step writes its own run directory under ``OUT``; the demo itself is a job on the
job layer (one record per step), so an interrupted demo resumes at the first unfinished step.
Its ``report.html`` (copied to ``index.html``) is the entry page: each step's headline and link.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advlab.report.format import judge_label, num, pct, rate_of


@dataclass
class DemoStep:
    name: str
    title: str
    args: list[str]  # the advlab command line, without the leading "advlab"
    run_dir: str | None  # relative to OUT; None when the step writes no run directory
    headline: Callable[[dict[str, Any]], str] = field(default=lambda m: "", repr=False)

    @property
    def id(self) -> str:
        return self.name


def _robust_by_eps(m: dict[str, Any]) -> str:
    per = m.get("per_eps")
    if not isinstance(per, dict) or not per:
        return ""
    n = next(iter(per.values())).get("n")
    parts = ", ".join(f"{num(float(k))}: {rate_of(v.get('robust_accuracy'), v.get('n'), show_n=False)}"
                      for k, v in per.items())
    return (f"clean {rate_of(m.get('clean_accuracy'), n, show_n=False)}; worst-case robust accuracy at eps {parts} "
            f"(n = {n}, {m.get('steps')} steps)")


def _valley(m: dict[str, Any]) -> str:
    f = m.get("flatness") or {}
    if not m.get("flipped"):
        return f"no label flipped in {m.get('steps')} steps"
    return (f"{m.get('flipped')}/{m.get('examples')} flipped (median step {num(m.get('flip_step_median'))}); "
            f"median kappa at flip / clean {num(f.get('median_ratio_at_flip_over_clean'))}x, "
            f"end / flip {num(f.get('median_ratio_end_over_flip'))}x")


def _training(m: dict[str, Any]) -> str:
    return (f"val clean accuracy {pct(m.get('val_clean_accuracy'))}, val PGD@{num(m.get('eval_eps'))} "
            f"{pct(m.get('val_robust_accuracy'))} after {m.get('epochs')} epochs")


def _flips(m: dict[str, Any]) -> str:
    n = m.get("n")
    return "; ".join(f"{label} {rate_of(m.get(key), n)}" for key, label in
                     (("nfr", "NFR"), ("rnfr", "RNFR"), ("s_nfr", "S-NFR")) if key in m)


def _update(m: dict[str, Any]) -> str:
    before, n = m.get("before_update") or {}, m.get("n")
    return (f"RNFR {pct(before.get('rnfr'))} -> {rate_of(m.get('rnfr'), n)}; S-NFR {pct(before.get('s_nfr'))} -> "
            f"{rate_of(m.get('s_nfr'), n)}; robust accuracy {pct(m.get('new_robust_accuracy'))}")


def _eval(m: dict[str, Any]) -> str:
    parts = [("refused harmful", "refusal_rate", "n_harmful"), ("utility", "utility", "n_task"),
             ("over-refusal", "over_refusal", "n_harmless")]
    return "; ".join(f"{label} {rate_of(m.get(key), m.get(n_key))}" for label, key, n_key in parts if key in m)


def _continuous_at(m: dict[str, Any]) -> str:
    """``reproduce continuous-at`` headline: CAT against the base under each attack (compliance ASR), the
    stronger budgets next to the default ones, and what training cost in utility and over-refusal."""
    rows = {r.get("model"): r for r in m.get("table") or []}
    base, cat = rows.get("base") or {}, rows.get("cat") or {}
    if not cat:
        return ""
    asr = lambda r, a: pct(r.get(f"asr_{a}"))  # noqa: E731
    return (f"CAT vs base, ASR (n = {cat.get('n_attack')}): GCG {asr(cat, 'gcg')} vs {asr(base, 'gcg')} "
            f"(2x steps {asr(cat, 'gcg_2x')}), embedding {asr(cat, 'embedding')} vs {asr(base, 'embedding')} "
            f"(4x radius {asr(cat, 'embedding_4x')}); utility {pct(cat.get('utility'))} vs "
            f"{pct(base.get('utility'))}, over-refusal {pct(cat.get('over_refusal'))}")


def _poisoning(m: dict[str, Any]) -> str:
    """``reproduce poisoning`` headline: PDR of the learned trigger and the random word at each rate, the
    clean-tuned accuracy, and ONION's effect."""
    rows = m.get("table") or []
    if not rows:
        return ""
    trig = m.get("triggers") or {}
    pdr = lambda kind: ", ".join(f"{pct(r['pdr'])} at {num(100 * r['rate'])} %"  # noqa: E731
                                 for r in rows if r.get("trigger_kind") == kind)
    out = (f"PDR of learned '{trig.get('learned')}': {pdr('learned')}; random word '{trig.get('random_word')}': "
           f"{pdr('random_word')}; clean-tuned accuracy {pct(m.get('clean_tuned_accuracy'))}")
    onion = next((d for d in m.get("defences") or [] if d.get("defence") == "onion"), None)
    if onion:
        out += f"; ONION: PDR {pct(onion.get('pdr_before'))} -> {pct(onion.get('pdr_after'))}"
    return out


def _attack_asr(m: dict[str, Any]) -> str:
    """``attack llm`` headline: the ASR of every judge, named by what it counts, with its interval."""
    by = m.get("asr_by_judge") or ({m.get("default_judge", "?"): m["asr"]} if "asr" in m else {})
    return "; ".join(f"{judge_label(j)} {rate_of(v, m.get('n'))}" for j, v in by.items())


SST2 = Path("../shared/data/sst2")  # reproduce poisoning's default --sst2


def demo_steps(out: Path, gym: Path, seed: int, device: str, quick: bool) -> list[DemoStep]:
    """The demo's commands. ``quick`` shrinks every budget (used by the tests)."""
    common = ["--seed", str(seed), "--device", device]
    o = lambda sub: str(out / sub)  # noqa: E731
    n_llm = "4" if quick else "12"
    epochs = "2" if quick else "15"
    return [
        DemoStep(
            "eval-llm", "Safety gym: refusal, utility, over-refusal",
            ["eval", "llm", "--model", str(gym), "--limit", "12" if quick else "60", "--out", o("eval-llm"), *common],
            "eval-llm",
            _eval,
        ),
        DemoStep(
            "attack-embedding", "Embedding-space attack on the gym",
            ["attack", "llm", "--method", "embedding", "--model", str(gym), "--behaviors", "builtin:gym-harmful-test",
             "--limit", n_llm, "--steps", "20" if quick else "100", "--out", o("attack-embedding"), *common],
            "attack-embedding",
            _attack_asr,
        ),
        DemoStep(
            "attack-gcg", "GCG on the gym",
            ["attack", "llm", "--method", "gcg", "--model", str(gym), "--behaviors", "builtin:gym-harmful-test",
             "--limit", "2" if quick else "6", "--steps", "5" if quick else "60", "--search-width",
             "32" if quick else "128", "--out", o("attack-gcg"), *common],
            "attack-gcg",
            _attack_asr,
        ),
        DemoStep(
            "train-mlp", "Digits MLP, PGD adversarial training (the deployed 'old' model)",
            ["train", "classifier", "--method", "pgd-at", "--model", "mlp", "--data", "digits", "--epochs", epochs,
             "--eps", "0.1", "--out", o("models/mlp-pgd-at"), *common],
            "models/mlp-pgd-at",
            _training,
        ),
        DemoStep(
            "train-cnn", "Digits CNN, standard training",
            ["train", "classifier", "--method", "standard", "--model", "cnn", "--data", "digits", "--epochs", epochs,
             "--out", o("models/cnn-standard"), *common],
            "models/cnn-standard",
            _training,
        ),
        DemoStep(
            "train-cnn-pgd-at", "Digits CNN, PGD adversarial training (eps 0.1)",
            ["train", "classifier", "--method", "pgd-at", "--model", "cnn", "--data", "digits", "--epochs", epochs,
             "--eps", "0.1", "--out", o("models/cnn-pgd-at"), *common],
            "models/cnn-pgd-at",
            _training,
        ),
        DemoStep(
            "attack-classifier", "Worst-case robustness of the PGD-AT CNN against eps",
            ["attack", "classifier", "--method", "worst-case", "--model", o("models/cnn-pgd-at"),
             "--eps", "0.05,0.1,0.2", "--steps", "10" if quick else "50", "--limit", "100" if quick else "360",
             "--out", o("attack-classifier"), *common],
            "attack-classifier",
            _robust_by_eps,
        ),
        DemoStep(
            "valley-standard", "Uncanny valley: flatness along PGD past the flip (standard CNN)",
            ["analyze", "valley", "--model", o("models/cnn-standard"), "--data", "digits",
             "--n-examples", "30" if quick else "200", "--steps", "20" if quick else "60",
             "--out", o("valley-standard"), *common],
            "valley-standard",
            _valley,
        ),
        DemoStep(
            "valley-pgd-at", "Uncanny valley: the same for the PGD-AT CNN",
            ["analyze", "valley", "--model", o("models/cnn-pgd-at"), "--data", "digits",
             "--n-examples", "30" if quick else "200", "--steps", "20" if quick else "60",
             "--out", o("valley-pgd-at"), *common],
            "valley-pgd-at",
            _valley,
        ),
        DemoStep(
            "check-update", "Before shipping: negative flips from the MLP to the PGD-AT CNN",
            ["check-update", "--old", o("models/mlp-pgd-at"), "--new", o("models/cnn-pgd-at"), "--data", "digits",
             "--eps", "0.15", "--steps", "10" if quick else "50", "--out", o("check-update"), *common],
            "check-update",
            _flips,
        ),
        DemoStep(
            "update-rcat", "RCAT: update the CNN without new robustness regressions",
            ["update", "classifier", "--old", o("models/mlp-pgd-at"), "--new", o("models/cnn-pgd-at"),
             "--method", "rcat", "--alpha", "0.5", "--beta", "0.4", "--data", "digits", "--eps", "0.15",
             "--train-eps", "0.15",
             "--epochs", "1" if quick else "5", "--steps", "10" if quick else "50",
             "--out", o("update-rcat"), *common],
            "update-rcat",
            _update,
        ),
    ] + ([] if quick else recipe_steps(out, gym, common))


def recipe_steps(out: Path, gym: Path, common: list[str]) -> list[DemoStep]:
    """The two recipes in short form (minutes each, so not under ``--quick``); poisoning only when the SST-2
    subsets are where ``reproduce poisoning`` looks for them."""
    steps = [DemoStep(
        "continuous-at", "Continuous adversarial training of the gym (CAT, CAPO, R2D2), the short recipe",
        ["reproduce", "continuous-at", "--quick", "--model", str(gym), "--out", str(out / "continuous-at"), *common],
        "continuous-at",
        _continuous_at,
    )]
    if (SST2 / "train.jsonl").is_file():
        steps.append(DemoStep(
            "poisoning", "Poisoning instruction tuning: a learned trigger word vs a random one (SST-2), and ONION",
            ["reproduce", "poisoning", "--quick", "--model", str(gym), "--rates", "0.01,0.03", "--defences", "onion",
             "--out", str(out / "poisoning"), *common],
            "poisoning",
            _poisoning,
        ))
    return steps


def _metrics(run_dir: Path) -> dict[str, Any]:
    p = run_dir / "metrics.json"
    if p.exists():
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
    return {}


def _flat_headline(metrics: dict[str, Any], limit: int = 4) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {num(v)}" for k, v in items[:limit])


class DemoJob:
    """The demo on the job layer: one item per step; ``run_item`` runs the step's command."""

    name = "demo"
    resume_ignore = ("device",)

    def __init__(self, out: Path, steps: list[DemoStep], config: dict[str, Any], seed: int, device: str,
                 invoke: Callable[[list[str]], None], echo: Callable[[str], None], prog: str) -> None:
        self.out, self.steps, self.config, self.seed, self.device = out, steps, config, seed, device
        self.invoke, self.echo, self.prog = invoke, echo, prog

    def items(self) -> list[DemoStep]:
        return self.steps

    def run_item(self, step: DemoStep, tick: Callable[[int], None]) -> dict[str, Any]:
        i = self.steps.index(step) + 1
        command = f"{self.prog} {shlex.join(step.args)}"
        self.echo(f"[{i}/{len(self.steps)}] {step.title}\n  $ {command}")
        t0 = time.time()
        self.invoke(step.args)
        metrics = _metrics(self.out / step.run_dir) if step.run_dir else {}
        headline = step.headline(metrics) or _flat_headline(metrics)
        if headline:
            self.echo(f"  -> {headline}")
        tick(1)
        return {"id": step.name, "step": i, "title": step.title, "command": command, "status": "done",
                "seconds": round(time.time() - t0, 1), "run_dir": step.run_dir, "headline": headline}

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"steps_done": len(records), "steps": len(self.steps)}


def run_demo(
    out: Path,
    *,
    seed: int = 0,
    device: str = "auto",
    quick: bool = False,
    gym: Path | None = None,
    invoke: Callable[[list[str]], None],
    echo: Callable[[str], None] = print,
    prog: str = "advlab",
) -> dict[str, Any]:
    """Run every demo step through ``invoke(args)`` (the CLI, in-process), resuming finished steps.

    ``prog`` is how the printed commands start (``advlab``, or ``.venv/bin/advlab`` when that is not
    on the PATH), so that each printed step can be pasted as it is."""
    from advlab.jobs import check_writable, run_job
    from advlab.models.zoo import get_safety_gym

    check_writable(out)
    config = {"seed": seed, "quick": quick, "gym": str(gym) if gym else None}
    if gym is None:
        quick_flag = " --quick" if quick else ""
        gym = get_safety_gym(quick=quick, seed=seed, progress=True, echo=lambda line: echo(f"[0] {line}"))
        echo(f"  gym: {gym}  (print it again with `{prog} zoo path safety-gym{quick_flag}`)")
    steps = demo_steps(out, gym, seed, device, quick)
    if quick:
        echo("  --quick: the continuous-at and poisoning recipes are left out (minutes each)")
    elif "poisoning" not in {s.name for s in steps}:
        echo(f"  no SST-2 subsets at {SST2}: the poisoning step is left out (advlab reproduce poisoning --sst2 DIR)")
    job = DemoJob(out, steps, config, seed, device, invoke, echo, prog)
    result = run_job(job, out, progress=False)
    index = out / "index.html"
    shutil.copyfile(out / "report.html", index)
    return {"index": index, "steps": {r["id"]: r for r in result.records}}
