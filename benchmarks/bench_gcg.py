"""advlab GCG side by side with nanoGCG 0.3.0 on the safety gym: step time, peak memory, best loss.

Same model directory, same behaviours (the gym's held-out harmful requests with their targets),
same config (search width, top-k, n_replace=1, init "x x ... x" (20), no early stop, no buffer),
both on CPU with one torch thread. nanoGCG pins transformers <= 4.47.1, so it runs in its own venv,
``benchmarks/.venvs/nanogcg``, made without a second torch (a ``.pth`` adds the project venv's
site-packages *after* the venv's own, so its transformers 4.47.1 / tokenizers 0.21 win)::

    python3 -m venv benchmarks/.venvs/nanogcg
    SP=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
    echo "import site; site.addsitedir('$SP')" \\
        > benchmarks/.venvs/nanogcg/lib/python3.11/site-packages/main_venv.pth
    benchmarks/.venvs/nanogcg/bin/pip install "transformers==4.47.1" "tokenizers>=0.21,<0.22" \\
        "huggingface_hub<1.0" nanogcg==0.3.0

The two sides run in alternating halves of the behaviour list (ours, nano, ours, nano) so that the
load of a shared machine hits both alike. Reported: seconds per step (from the first token-gradient
call to the end of the run, divided by the steps; setup - token masks, prefix cache, initial loss -
reported apart), the ratio ours/nano, peak RSS of each process, median best loss after the same
number of steps, and advlab's breakdown of a step (token gradient = forward+backward, sampling +
filtering, candidate forward passes: the fraction of a step that is model forward time).

Run: ``.venv/bin/python benchmarks/bench_gcg.py [--model DIR] [--n 10] [--steps 10] [--width 128]``
Writes ``benchmarks/results/gcg.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_PY = ROOT / "benchmarks" / ".venvs" / "nanogcg" / "bin" / "python"
OUT = ROOT / "benchmarks" / "results" / "gcg.json"
INIT = " ".join(["x"] * 20)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _FirstCall:
    """Wraps a function and remembers when it was first called (the start of step 1)."""

    def __init__(self, fn):
        self.fn, self.first = fn, None

    def __call__(self, *a, **k):
        if self.first is None:
            self.first = time.perf_counter()
        return self.fn(*a, **k)


class _Phases:
    """Times GCG's two model phases by wrapping the objective's methods (GCG's loop itself keeps no clock):
    the token gradient and the candidate losses; the first gradient call marks the start of step 1."""

    def __init__(self, objective_cls):
        self.cls, self.first = objective_cls, None
        self.seconds = {"gradient_s": 0.0, "candidate_loss_s": 0.0}
        self.originals = {"gradient": objective_cls.gradient, "losses": objective_cls.losses}
        objective_cls.gradient = self._timed(self.originals["gradient"], "gradient_s")
        objective_cls.losses = self._timed(self.originals["losses"], "candidate_loss_s")

    def _timed(self, fn, key):
        def timed(obj, *a, **k):
            t0 = time.perf_counter()
            if key == "gradient_s" and self.first is None:
                self.first = t0
            try:
                return fn(obj, *a, **k)
            finally:
                if self.first is not None:  # the initial loss (before step 1) is setup
                    self.seconds[key] += time.perf_counter() - t0

        return timed

    def restore(self):
        self.cls.gradient, self.cls.losses = self.originals["gradient"], self.originals["losses"]


def _behaviors(n: int) -> list[dict]:
    from advlab.data.behavior_loaders import load_behaviors

    items = load_behaviors("builtin:gym-harmful-test")[:n]
    return [{"id": b.id, "request": b.request, "target": b.target} for b in items]


# ---- one side per process ------------------------------------------------------------------------
def run_ours(args: argparse.Namespace, behaviors: list[dict]) -> dict:
    import torch

    from advlab.attacks.llm.gcg import GCGConfig, run_gcg
    from advlab.attacks.llm.gcg_objective import MultiPromptObjective
    from advlab.models import load_chat_model
    from advlab.models.formatting import ChatFormatter

    torch.set_num_threads(args.threads)
    model, tok = load_chat_model(args.model, device="cpu")
    fmt = ChatFormatter(tok)
    base_rss = _rss_mb()
    out = []
    for b in behaviors:
        segs = fmt.segments(b["request"], INIT, b["target"])
        cfg = GCGConfig(
            steps=args.steps, search_width=args.width, topk=args.topk, optim_str_init=INIT, early_stop=False, seed=0
        )
        hook = _Phases(MultiPromptObjective)
        t0 = time.perf_counter()
        try:
            res = run_gcg(model, tok, segs, cfg)
        finally:
            t1 = time.perf_counter()
            hook.restore()
        timing = dict(hook.seconds)
        timing["sample_filter_s"] = max(0.0, (t1 - hook.first) - sum(timing.values()))
        out.append(
            {
                "id": b["id"],
                "seconds": t1 - t0,
                "step_seconds": (t1 - hook.first) / args.steps,
                "setup_seconds": hook.first - t0,
                "best_loss": res.best_loss,
                "losses": res.loss_history,
                "timing": timing,
                "forward_passes": res.budget.forward_passes,
                "backward_passes": res.budget.backward_passes,
                "slot_len": len(segs.slot),
            }
        )
    return {"runs": out, "base_rss_mb": base_rss, "peak_rss_mb": _rss_mb()}


def run_nano(args: argparse.Namespace, behaviors: list[dict]) -> dict:
    import nanogcg
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    cfg_tok = json.loads((model_dir / "tokenizer_config.json").read_text())
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(model_dir / "tokenizer.json"),
        eos_token=cfg_tok.get("eos_token"),
        pad_token=cfg_tok.get("pad_token"),
        additional_special_tokens=list(cfg_tok.get("extra_special_tokens") or []),
    )
    tmpl = model_dir / "chat_template.jinja"
    tok.chat_template = tmpl.read_text() if tmpl.exists() else cfg_tok.get("chat_template")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32).eval()
    base_rss = _rss_mb()
    out = []
    for b in behaviors:
        cfg = nanogcg.GCGConfig(
            num_steps=args.steps,
            search_width=args.width,
            topk=args.topk,
            n_replace=1,
            optim_str_init=INIT,
            early_stop=False,
            seed=0,
            verbosity="WARNING",
        )
        msgs = [{"role": "user", "content": b["request"] + " {optim_str}"}]
        hook = _FirstCall(nanogcg.gcg.GCG.compute_token_gradient)
        nanogcg.gcg.GCG.compute_token_gradient = lambda self, *a, _h=hook, **k: _h(self, *a, **k)
        t0 = time.perf_counter()
        res = nanogcg.run(model, tok, msgs, b["target"], cfg)
        t1 = time.perf_counter()
        nanogcg.gcg.GCG.compute_token_gradient = hook.fn
        out.append(
            {
                "id": b["id"],
                "seconds": t1 - t0,
                "step_seconds": (t1 - hook.first) / args.steps,
                "setup_seconds": hook.first - t0,
                "best_loss": float(res.best_loss),
                "losses": [float(x) for x in res.losses],
            }
        )
    return {"runs": out, "base_rss_mb": base_rss, "peak_rss_mb": _rss_mb(), "transformers": transformers.__version__}


# ---- orchestration -------------------------------------------------------------------------------
def _spawn(python: Path | str, side: str, args: argparse.Namespace, behaviors: list[dict]) -> dict:
    payload = json.dumps(behaviors)
    cmd = [
        str(python),
        __file__,
        "--side",
        side,
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--width",
        str(args.width),
        "--topk",
        str(args.topk),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, input=payload, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", choices=["ours", "nano"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help="gym directory (default: the cached full safety gym)")
    ap.add_argument("--n", type=int, default=10, help="behaviours")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--width", type=int, default=128, help="search width (nanoGCG default 512)")
    ap.add_argument("--topk", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.side:
        behaviors = json.loads(sys.stdin.read())
        res = run_ours(args, behaviors) if args.side == "ours" else run_nano(args, behaviors)
        print(json.dumps(res))
        return
    if args.model is None:
        from advlab.models.zoo import get_safety_gym

        args.model = str(get_safety_gym(progress=True))
    behaviors = _behaviors(args.n)
    half = (len(behaviors) + 1) // 2
    ours_runs, nano_runs, ours_mem, nano_mem = [], [], [], []
    for part in (behaviors[:half], behaviors[half:]):
        o = _spawn(sys.executable, "ours", args, part)
        n = _spawn(PEER_PY, "nano", args, part)
        ours_runs += o["runs"]
        nano_runs += n["runs"]
        ours_mem.append(o)
        nano_mem.append(n)
    step_o = [r["step_seconds"] for r in ours_runs]
    step_n = [r["step_seconds"] for r in nano_runs]
    tim = {k: sum(r["timing"][k] for r in ours_runs) for k in ours_runs[0]["timing"]}
    total = sum(r["step_seconds"] * args.steps for r in ours_runs)
    med_o, med_n = statistics.median(step_o), statistics.median(step_n)
    result = {
        "model": args.model,
        "config": {
            "behaviors": len(behaviors),
            "steps": args.steps,
            "search_width": args.width,
            "topk": args.topk,
            "n_replace": 1,
            "init": INIT,
            "early_stop": False,
            "threads": args.threads,
            "device": "cpu",
        },
        "note": "CPU, shared 2-core machine; steps and width reduced from the defaults (250, 512) to fit",
        "seconds_per_step": {
            "advlab_median": med_o,
            "nanogcg_median": med_n,
            "ratio_advlab_over_nanogcg": med_o / med_n,
            "what": "from the first token-gradient call to the end of the run, / steps",
        },
        "setup_seconds_median": {
            "advlab": statistics.median(r["setup_seconds"] for r in ours_runs),
            "nanogcg": statistics.median(r["setup_seconds"] for r in nano_runs),
        },
        "peak_rss_mb": {
            "advlab": max(m["peak_rss_mb"] for m in ours_mem),
            "nanogcg": max(m["peak_rss_mb"] for m in nano_mem),
            "advlab_over_base": max(m["peak_rss_mb"] - m["base_rss_mb"] for m in ours_mem),
            "nanogcg_over_base": max(m["peak_rss_mb"] - m["base_rss_mb"] for m in nano_mem),
        },
        "best_loss_after_equal_steps": {
            "advlab_median": statistics.median(r["best_loss"] for r in ours_runs),
            "nanogcg_median": statistics.median(r["best_loss"] for r in nano_runs),
            "advlab_wins": sum(o["best_loss"] <= n["best_loss"] + 1e-6 for o, n in zip(ours_runs, nano_runs)),
        },
        "advlab_step_breakdown_fraction": {k: v / total for k, v in tim.items()},
        "advlab_forward_fraction": tim["candidate_loss_s"] / total,
        "advlab_forward_backward_fraction": (tim["candidate_loss_s"] + tim["gradient_s"]) / total,
        "per_behavior": [
            {
                "id": o["id"],
                "advlab_best": o["best_loss"],
                "nanogcg_best": n["best_loss"],
                "advlab_s": o["seconds"],
                "nanogcg_s": n["seconds"],
            }
            for o, n in zip(ours_runs, nano_runs)
        ],
        "nanogcg_transformers": nano_mem[0].get("transformers"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("seconds_per_step", "peak_rss_mb", "best_loss_after_equal_steps", "advlab_forward_fraction")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
