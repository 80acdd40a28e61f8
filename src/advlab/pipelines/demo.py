"""The demo: every advlab job, end to end, on the embedded defaults (safety gym + digits).

The demo is literally the sequence of ``advlab`` commands a user would type: each step is
printed before it runs, so any step can be re-run (or varied) by hand. Each step writes its
own run directory under ``OUT``; the demo's own run directory (``OUT``) records one result
per step, so an interrupted demo resumes at the first unfinished step. ``OUT/index.html``
links every step's report.
"""

from __future__ import annotations

import html
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DemoStep:
    name: str
    title: str
    args: list[str]  # the advlab command line, without the leading "advlab"
    run_dir: str | None  # relative to OUT; None when the step writes no run directory
    headline: Callable[[dict[str, Any]], str] = field(default=lambda m: "", repr=False)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.0f} %"


def _robust_by_eps(m: dict[str, Any]) -> str:
    ra = m.get("robust_accuracy")
    if not isinstance(ra, dict):
        return ""
    parts = ", ".join(f"eps {k}: {_pct(v)}" for k, v in ra.items())
    return f"clean {_pct(m.get('clean_accuracy'))}; worst-case robust {parts} ({m.get('steps')} steps)"


def _valley(m: dict[str, Any]) -> str:
    f = m.get("flatness") or {}
    if not m.get("flipped"):
        return f"no label flipped in {m.get('steps')} steps"
    return (f"{m.get('flipped')}/{m.get('examples')} flipped (median step {m.get('flip_step_median'):g}); "
            f"median kappa at flip / clean {f.get('median_ratio_at_flip_over_clean', float('nan')):.3g}x, "
            f"end / flip {f.get('median_ratio_end_over_flip', float('nan')):.3g}x")


def _training(m: dict[str, Any]) -> str:
    return (f"val clean {_pct(m.get('val_clean_accuracy'))}, val PGD@{m.get('eval_eps')} "
            f"{_pct(m.get('val_robust_accuracy'))} after {m.get('epochs')} epochs")


def _update(m: dict[str, Any]) -> str:
    before = m.get("before_update") or {}
    return (f"RNFR {_pct(before.get('rnfr'))} -> {_pct(m.get('rnfr'))}, S-NFR {_pct(before.get('s_nfr'))} -> "
            f"{_pct(m.get('s_nfr'))}; robust accuracy {_pct(m.get('new_robust_accuracy'))}")


def _attack_asr(m: dict[str, Any]) -> str:
    """``attack llm`` headline: ASR by the default judge (compliance), the other judges beside it."""
    if "asr" not in m:
        return ""
    judge = m.get("default_judge") or "?"
    others = ", ".join(f"{j} {_pct(v)}" for j, v in (m.get("asr_by_judge") or {}).items() if j != judge)
    return f"ASR {_pct(m.get('asr'))} by {judge}" + (f" ({others})" if others else "")


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
            lambda m: f"refusal {_pct(m.get('refusal_rate'))}, utility {_pct(m.get('utility'))}, "
            f"over-refusal {_pct(m.get('over_refusal'))}",
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
            lambda m: f"NFR {_pct(m.get('nfr'))}, RNFR {_pct(m.get('rnfr'))}, S-NFR {_pct(m.get('s_nfr'))}",
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
    ]


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
    return ", ".join(f"{k} {v:.3g}" for k, v in items[:limit])


def write_index(out: Path, steps: list[DemoStep], records: dict[str, dict[str, Any]]) -> Path:
    """``OUT/index.html``: one row per step with its command, headline numbers and report link."""
    from advlab.runs import atomic_write_text

    rows = []
    for s in steps:
        rec = records.get(s.name, {})
        link = ""
        if s.run_dir and (out / s.run_dir / "report.html").exists():
            link = f"<a href='{html.escape(s.run_dir)}/report.html'>report</a>"
        status = rec.get("status", "not run")
        cls = "ok" if status == "done" else "bad"
        rows.append(
            f"<tr><td>{html.escape(s.title)}</td><td class='{cls}'>{html.escape(status)}</td>"
            f"<td>{html.escape(rec.get('headline', ''))}</td><td>{link}</td>"
            f"<td><code>{html.escape(rec.get('command', ''))}</code></td></tr>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>advlab demo</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2rem auto;padding:0 1rem}"
        "td,th{border:1px solid #ddd;padding:.3rem .6rem;vertical-align:top;font-size:.9rem}"
        "table{border-collapse:collapse}code{font-size:.75rem}.ok{color:#1a7f37}.bad{color:#cf222e}"
        "</style></head><body><h1>advlab demo</h1>"
        "<p>Every advlab job on the embedded defaults: the safety-gym chat model and scikit-learn's digits. "
        "Each row is one command; re-run it yourself to vary it.</p>"
        "<table><tr><th>step</th><th>status</th><th>headline</th><th>report</th><th>command</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
    path = out / "index.html"
    atomic_write_text(path, page)
    return path


def run_demo(
    out: Path,
    *,
    seed: int = 0,
    device: str = "auto",
    quick: bool = False,
    gym: Path | None = None,
    invoke: Callable[[list[str]], None],
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every demo step through ``invoke(args)`` (the CLI, in-process), resuming finished steps."""
    from advlab.models.zoo import get_safety_gym
    from advlab.report.html import write_report
    from advlab.runs import RunDir

    config = {"seed": seed, "quick": quick, "gym": str(gym) if gym else None}
    with RunDir(out, "demo", config, seed=seed, device=device, resume_ignore=("device",)) as run:
        if gym is None:
            gym = get_safety_gym(quick=quick, seed=seed, progress=True, echo=lambda line: echo(f"[0] {line}"))
        steps = demo_steps(out, gym, seed, device, quick)
        records = {r["id"]: r for r in run.records}
        for i, step in enumerate(steps, 1):
            command = "advlab " + shlex.join(step.args)
            if run.is_done(step.name):
                echo(f"[{i}/{len(steps)}] {step.title}: done earlier, skipped")
                continue
            echo(f"[{i}/{len(steps)}] {step.title}\n  $ {command}")
            t0 = time.time()
            invoke(step.args)
            metrics = _metrics(out / step.run_dir) if step.run_dir else {}
            headline = step.headline(metrics) or _flat_headline(metrics)
            rec = {"id": step.name, "title": step.title, "command": command, "status": "done",
                   "seconds": round(time.time() - t0, 1), "run_dir": step.run_dir, "headline": headline}
            run.append(rec)
            records[step.name] = rec
            if headline:
                echo(f"  -> {headline}")
        run.write_metrics({name: {"headline": r.get("headline"), "seconds": r.get("seconds")}
                           for name, r in records.items()})
        index = write_index(out, steps, records)
    write_report(out, redraw=False)
    return {"index": index, "steps": records}
