"""Run every benchmark script (benchmarks/bench_*.py) and summarise benchmarks/results/*.json.

Usage: ``make bench`` or ``python benchmarks/run_all.py [--only NAME ...]``. Each script writes its
own JSON (advlab side by side with the peer a user would otherwise pick, reported as ratios);
this runner prints a one-line summary per result file and writes benchmarks/results/SUMMARY.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LONG = {"bench_asr"}
# results whose script defines ``table(result)``, a markdown table appended to SUMMARY.md
TABLES = {"asr"}
# a key naming a ratio or a speed-up (not n_iterations, eigen_iterations)
RATIO_KEY = re.compile(r"(^|[._])(ratio|speedup)")


def _summary_line(name: str, data: dict) -> str:
    ratios = {k: v for k, v in _flatten(data).items() if RATIO_KEY.search(k)}
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in ratios.items())
    return f"- **{name}**: {shown or 'see JSON'}"


def _detail(name: str, data: dict) -> str | None:
    """The benchmark's own markdown table, for the results named in ``TABLES``."""
    if name not in TABLES:
        return None
    sys.path.insert(0, str(HERE))
    try:
        return importlib.import_module(f"bench_{name}").table(data)
    except Exception as exc:  # a summary must not fail the run; say what went wrong instead
        return f"(no table: {exc.__class__.__name__}: {exc})"
    finally:
        sys.path.remove(str(HERE))


def _flatten(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list) and any(isinstance(v, (dict, list)) for v in d):
        for i, v in enumerate(d):
            label = v.get("attack", i) if isinstance(v, dict) else i
            out.update(_flatten(v, f"{prefix}{label}."))
    else:
        out[prefix.rstrip(".")] = d
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark names (bench_NAME.py) to run")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    else:  # about an hour on CPU at the attacks' default budgets: only when asked for (--only asr)
        scripts = [s for s in scripts if s.stem not in LONG]
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for script in scripts:
        t0 = time.time()
        print(f"== {script.name}", flush=True)
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"   exit {rc} after {time.time() - t0:.0f}s", flush=True)
        if rc:
            failed.append(script.name)
    lines = ["# Benchmark summary", ""]
    details = []
    for f in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError:
            lines.append(f"- **{f.stem}**: unreadable JSON")
            continue
        lines.append(_summary_line(f.stem, data))
        detail = _detail(f.stem, data)
        if detail:
            details += ["", f"## {f.stem}", "", detail]
    lines += details
    (RESULTS / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
