"""A self-contained HTML report of a run directory (figures embedded as base64, no external assets)."""

from __future__ import annotations

import base64
import html
import importlib
import json
from pathlib import Path
from typing import Any

from advlab.report.format import judge_label, rate_of
from advlab.runs import atomic_write_text, load_run

# job name (manifest "job") -> "module:function" that (re)draws the job's figures:
# fn(run_dir: Path, manifest, config, records, metrics) -> list[Path]
FIGURE_MAKERS: dict[str, str] = {
    "eval-llm": "advlab.report.llm:eval_figures",
    "attack-llm": "advlab.report.llm:attack_figures",
    "attack-classifier": "advlab.report.classifier:attack_figures",
    "train-classifier": "advlab.report.classifier:train_figures",
    "analyze-valley": "advlab.report.valley:valley_figures",
    "analyze-llm-valley": "advlab.report.valley:llm_valley_figures",
    "analyze-flatness": "advlab.report.valley:flatness_figures",
    "analyze-hessian": "advlab.report.valley:hessian_figures",
    "check-update": "advlab.report.update:update_figures",
    "update-classifier": "advlab.report.update:update_figures",
    "reproduce-rcat": "advlab.report.update:recipe_figures",
    "reproduce-valley": "advlab.report.valley:reproduce_valley_figures",
    "poison-trigger": "advlab.report.poisoning:trigger_figures",
    "reproduce-poisoning": "advlab.report.poisoning:reproduce_figures",
    "train-llm": "advlab.report.train_llm:train_figures",
    "reproduce-continuous-at": "advlab.report.continuous_at:reproduce_figures",
}

# job name -> "module:function" that writes the whole page instead of the generic report:
# fn(run_dir, manifest, config, records, metrics, css) -> str
PAGES: dict[str, str] = {
    "demo": "advlab.report.demo:demo_page",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f5f5} .muted{color:#777;font-size:.85rem} img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
pre{white-space:pre-wrap;background:#f8f8f8;padding:.4rem;margin:0;font-size:.8rem;max-height:12rem;overflow:auto}
.ok{color:#1a7f37;font-weight:600} .bad{color:#cf222e;font-weight:600}
"""


def _rounded(v: Any) -> Any:
    """``v`` with every float rounded to 4 significant digits (for display; metrics.json keeps all)."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        s = json.dumps(_rounded(v), ensure_ascii=False)
        return s if len(s) < 300 else s[:300] + " …"
    return str(v)


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _records_table(records: list[dict[str, Any]], limit: int = 20) -> str:
    if not records:
        return "<p class='muted'>no records</p>"
    keys: list[str] = []
    for r in records[:limit]:
        for k, v in r.items():
            if k not in keys and not isinstance(v, list):
                keys.append(k)
    keys = keys[:10]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = []
    for r in records[:limit]:
        cells = []
        for k in keys:
            v = r.get(k, "")
            text = _fmt(v)
            cell = f"<pre>{html.escape(text)}</pre>" if len(text) > 60 else html.escape(text)
            cells.append(f"<td>{cell}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='muted'>showing {min(limit, len(records))} of {len(records)} records</p>"
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def make_figures(run_dir: Path) -> list[Path]:
    """Redraw the job's figures from its records (no-op for jobs without a figure maker)."""
    manifest, config, records, metrics = load_run(run_dir)
    target = FIGURE_MAKERS.get(manifest.get("job", ""))
    if not target or not records:
        return sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").exists() else []
    module_name, fn_name = target.split(":")
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except (ModuleNotFoundError, AttributeError):
        return []
    return list(fn(run_dir, manifest, config, records, metrics))


def write_report(run_dir: str | Path, redraw: bool = True) -> Path:
    """Write ``report.html`` in the run directory and return its path."""
    run_dir = Path(run_dir)
    if redraw:
        make_figures(run_dir)
    manifest, config, records, metrics = load_run(run_dir)
    out = run_dir / "report.html"
    page = PAGES.get(manifest.get("job", ""))
    if page:
        module_name, fn_name = page.split(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        atomic_write_text(out, fn(run_dir, manifest, config, records, metrics, _CSS))
        return out
    status = manifest.get("status", "?")
    status_cls = "ok" if status == "done" else "bad"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>advlab report: {html.escape(manifest.get('job', 'run'))}</title><style>{_CSS}</style></head><body>",
        f"<h1>advlab · {html.escape(manifest.get('job', 'run'))}</h1>",
        f"<p class='muted'>{html.escape(str(run_dir))} · status <span class='{status_cls}'>{html.escape(status)}</span>"
        f" · started {html.escape(str(manifest.get('started')))} · ended {html.escape(str(manifest.get('ended')))}</p>",
    ]
    lines = headline(manifest.get("job", ""), metrics)
    if lines:
        parts.append("<h2>Headline</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")
    if metrics:
        flat = [(k, v) for k, v in metrics.items() if not isinstance(v, (dict, list))]
        nested = [(k, v) for k, v in metrics.items() if isinstance(v, (dict, list))]
        parts.append("<h2>Metrics</h2>" + _table(flat))
        for k, v in nested:
            if k == "asr_by_judge" and isinstance(v, dict):  # judges named by what they count

                v = {f"{judge_label(j)} (judge {j!r})": x for j, x in v.items()}
            if isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values()):
                parts.append(f"<h3>{html.escape(k)}</h3>" + _table(list(v.items())))
            else:
                text = json.dumps(_rounded(v), indent=1, ensure_ascii=False)[:4000]
                parts.append(f"<h3>{html.escape(k)}</h3><pre>{html.escape(text)}</pre>")
    figs = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").exists() else []
    if figs:
        parts.append("<h2>Figures</h2>")
        for f in figs:
            b64 = base64.b64encode(f.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(f.stem)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption class='muted'>{html.escape(f.name)}</figcaption></figure>")
    parts.append("<h2>Records</h2>" + _records_table(records))
    parts.append("<h2>Configuration</h2>" + _table(sorted(_flatten_cfg(config).items())))
    versions = manifest.get("versions", {})
    parts.append(
        "<h2>Provenance</h2>"
        + _table(
            [("command", " ".join(manifest.get("command", []))), ("seed", manifest.get("seed")),
             ("device", manifest.get("device")), ("git commit", manifest.get("git_commit"))]
            + sorted(versions.items())
        )
    )
    parts.append("</body></html>")
    atomic_write_text(out, "\n".join(parts))
    return out


def headline(job: str, metrics: dict[str, Any]) -> list[str]:
    """The rates a reader looks for first, each with its 95 % Wilson interval; judges named by what they count."""

    if job == "attack-llm":
        default = metrics.get("default_judge")
        return [f"{judge_label(j)}{', the default judge' if j == default else ''}: {rate_of(v, metrics.get('n'))}"
                for j, v in (metrics.get("asr_by_judge") or {}).items()]
    if job == "eval-llm":
        rows = (("harmful requests refused", "refusal_rate", "n_harmful"), ("utility (tasks answered exactly)",
                "utility", "n_task"), ("over-refusal (harmless requests refused)", "over_refusal", "n_harmless"))
        return [f"{label}: {rate_of(metrics.get(k), metrics.get(n))}" for label, k, n in rows
                if metrics.get(k) is not None]
    if job in ("check-update", "update-classifier") and "nfr" in metrics:
        n = metrics.get("n")
        return [f"{label}: {rate_of(metrics.get(k), n)}" for k, label in
                (("nfr", "NFR"), ("rnfr", "RNFR"), ("s_nfr", "S-NFR"), ("new_robust_accuracy", "new robust accuracy"))
                if metrics.get(k) is not None]
    return []


def _flatten_cfg(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten_cfg(v, f"{prefix}{k}."))
    else:
        out[prefix.rstrip(".")] = d
    return out
