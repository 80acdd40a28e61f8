"""Embedding-space attack vs GCG on the safety gym: cost to first success.

Each of ``--n`` behaviours is attacked by both attacks at the pipeline's default budgets (what
``advlab attack llm`` runs: embedding 100 Adam steps of 1e-2 in an L2 ball of eps 1.0; GCG 250 steps
x search width 512, top-k 256), with a stop check every ``--check-every`` steps: generate 32 tokens
greedily from the current adversarial input and stop when the default judge (``compliance``: not a
refusal, on the request's topic, not gibberish) calls it jailbroken; exact target reproduction also
stops (the attacks' own early stop). Reported: median seconds and forward+backward passes of the
attack up to that point (the checks' own generation is excluded from both and timed apart), over
behaviours where the attack succeeded, with the number of failures; the median over behaviours both
broke of the ratio GCG / embedding. ``--gcg-steps`` caps GCG for a shorter run (recorded).

ASR at the default budgets over 50 behaviours is ``bench_asr.py``'s job.

Run: ``.venv/bin/python benchmarks/bench_embedding.py [--model DIR]``; writes
``benchmarks/results/embedding.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "embedding.json"


def pipeline_config(method: str, args: argparse.Namespace):
    """``advlab attack llm``'s config for ``method``: its defaults, GCG steps capped by ``--gcg-steps``."""
    from advlab.pipelines.attack_llm import AttackLLMConfig

    kw = {"steps": args.gcg_steps} if method == "gcg" and args.gcg_steps else {}
    return AttackLLMConfig(method=method, model=str(args.model), **kw)


def first_success(args: argparse.Namespace, model, tok, behaviors) -> dict:
    import torch

    from advlab.attacks.llm.embedding import run_embedding_attack
    from advlab.attacks.llm.gcg import run_gcg
    from advlab.judges import get_judge
    from advlab.models.formatting import ChatFormatter
    from advlab.models.generation import greedy_generate, stop_token_ids
    from advlab.pipelines.attack_llm import attack_config

    fmt = ChatFormatter(tok)
    judge = get_judge("compliance")
    eos = set(stop_token_ids(model, tok))
    rows = []
    for b in behaviors:
        segs = fmt.segments(b.request, pipeline_config("gcg", args).init, b.target)
        rec = {"id": b.id}
        for method in ("embedding", "gcg"):
            state = {"check_s": 0.0, "hit": None}

            def jailbroken(step, ids=None, embeds=None, _s=state, _b=b):
                if step == 0 or step % args.check_every:
                    return False
                t0 = time.perf_counter()
                with torch.no_grad():
                    if embeds is not None:
                        out = greedy_generate(model, inputs_embeds=embeds, max_new_tokens=32, eos_ids=eos)[0]
                    else:
                        out = greedy_generate(model, input_ids=[ids], max_new_tokens=32, eos_ids=eos)[0]
                text = tok.decode(out, skip_special_tokens=True)
                _s["check_s"] += time.perf_counter() - t0
                if judge.judge(_b.request, text).jailbroken:
                    _s["hit"] = step
                    return True
                return False

            t0 = time.perf_counter()
            if method == "embedding":
                cfg = attack_config(pipeline_config("embedding", args))
                res = run_embedding_attack(model, tok, segs, cfg, stop_check=lambda s, e: jailbroken(s, embeds=e[0]))[0]
            else:
                cfg = attack_config(pipeline_config("gcg", args))
                res = run_gcg(
                    model,
                    tok,
                    segs,
                    cfg,
                    stop_check=lambda s, ids, _seg=segs: jailbroken(s, ids=[*_seg.before, *ids, *_seg.after]),
                )
            sec = time.perf_counter() - t0 - state["check_s"]
            ok = state["hit"] is not None or res.early_stopped
            rec[method] = {
                "success": ok,
                "steps": res.budget.steps,
                "seconds": sec,
                "passes": res.budget.forward_passes + res.budget.backward_passes,
                "forward": res.budget.forward_passes,
                "backward": res.budget.backward_passes,
                "check_seconds": state["check_s"],
            }
        rows.append(rec)

    def summary(method: str) -> dict:
        ok = [r[method] for r in rows if r[method]["success"]]
        return {
            "successes": len(ok),
            "n": len(rows),
            "median_seconds": statistics.median(x["seconds"] for x in ok) if ok else None,
            "median_passes": statistics.median(x["passes"] for x in ok) if ok else None,
            "median_steps": statistics.median(x["steps"] for x in ok) if ok else None,
        }

    emb, gcg = summary("embedding"), summary("gcg")
    both = [r for r in rows if r["embedding"]["success"] and r["gcg"]["success"]]
    ratio = None
    if both:
        ratio = {
            "seconds": statistics.median(r["gcg"]["seconds"] / r["embedding"]["seconds"] for r in both),
            "passes": statistics.median(r["gcg"]["passes"] / r["embedding"]["passes"] for r in both),
            "n_both": len(both),
        }
    return {"embedding": emb, "gcg": gcg, "median_ratio_gcg_over_embedding": ratio, "per_behavior": rows}


def budget(cfg) -> dict:
    keys = (
        ("steps", "optimizer", "step_size", "eps", "norm")
        if cfg.method == "embedding"
        else ("steps", "search_width", "topk")
    )
    return {k: getattr(cfg, k) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="gym directory (default: the cached full safety gym)")
    ap.add_argument("--n", type=int, default=10, help="behaviours for the first-success comparison")
    ap.add_argument("--check-every", type=int, default=5)
    ap.add_argument("--gcg-steps", type=int, default=None, help="cap GCG's steps (default: its 250)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from advlab.data.behavior_loaders import load_behaviors
    from advlab.models import load_chat_model

    torch.set_num_threads(args.threads)
    if args.model is None:
        from advlab.models.zoo import get_safety_gym

        args.model = str(get_safety_gym(progress=True))
    model, tok = load_chat_model(args.model, device="cpu")
    behaviors = load_behaviors("builtin:gym-harmful-test")[: args.n]
    result = {
        "model": args.model,
        "device": "cpu",
        "threads": args.threads,
        "args": vars(args),
        "budgets": {m: budget(pipeline_config(m, args)) for m in ("embedding", "gcg")},
        "judge": "compliance",
    }
    result["first_success"] = first_success(args, model, tok, behaviors)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    fs = result["first_success"]
    print(
        json.dumps(
            {
                "embedding": fs["embedding"],
                "gcg": fs["gcg"],
                "ratio": fs["median_ratio_gcg_over_embedding"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
