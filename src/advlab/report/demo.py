"""The demo's entry page: one row per step with its headline, its report and the command it ran."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def demo_page(run_dir: Path, manifest: dict[str, Any], config: dict[str, Any], records: list[dict[str, Any]],
              metrics: dict[str, Any], css: str) -> str:
    """The whole HTML page of a demo run directory (its report.html, copied to index.html)."""
    rows = []
    for rec in sorted(records, key=lambda r: r.get("step", 0)):
        run = rec.get("run_dir")
        link = ""
        if run and (Path(run_dir) / run / "report.html").exists():
            link = f"<a href='{html.escape(run)}/report.html'>{html.escape(run)}</a>"
        status = str(rec.get("status", "?"))
        cls = "ok" if status == "done" else "bad"
        rows.append(
            f"<tr><td>{html.escape(str(rec.get('step', '')))}</td><td>{html.escape(str(rec.get('title', '')))}</td>"
            f"<td class='{cls}'>{html.escape(status)}</td><td>{html.escape(str(rec.get('headline', '')))}</td>"
            f"<td>{link}</td><td><code>{html.escape(str(rec.get('command', '')))}</code></td></tr>"
        )
    done, total = metrics.get("steps_done", len(records)), metrics.get("steps", len(records))
    status = manifest.get("status", "?")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>advlab demo</title><style>{css}"
        "code{font-size:.75rem}</style></head><body><h1>advlab demo</h1>"
        "<p>Every advlab job on the embedded defaults: the safety-gym chat model and scikit-learn's digits. "
        "Each row is one command; paste it to re-run or vary that step. Rates are shown with their 95 % "
        "Wilson interval and n.</p>"
        f"<p class='muted'>{html.escape(str(run_dir))} · {done} of {total} steps done · status "
        f"<span class='{'ok' if status == 'done' else 'bad'}'>{html.escape(str(status))}</span></p>"
        "<table><tr><th>#</th><th>step</th><th>status</th><th>headline</th><th>report</th><th>command</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
