"""Embedding-space attack vs GCG on the safety gym: cost to first success, and ASR at a fixed budget.

1. First success (``--n`` behaviours): both attacks run with a stop check every ``--check-every``
   steps: generate 32 tokens greedily from the current adversarial input and stop when the refusal
   judge calls it jailbroken (HarmBench-style early stop; exact target reproduction also stops).
   Reported: median seconds and forward+backward passes of the attack up to that point (the checks'
   own generation is excluded from both, and timed apart), over behaviours where the attack
   succeeded, with the number of failures; ratio GCG / embedding.
2. ASR over ``--asr-n`` behaviours through the real pipeline (``run_attack_llm``): the embedding
   attack at its pipeline default (100 signed steps of 1e-3, unbounded, early stop) and GCG at a CPU
   budget (``--gcg-steps`` x ``--gcg-width``; the default 250 x 512 does not fit a shared CPU).

Run: ``.venv/bin/python benchmarks/bench_embedding.py [--model DIR]``; writes
``benchmarks/results/embedding.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "embedding.json"
INIT = " ".join(["x"] * 20)


def first_success(args: argparse.Namespace, model, tok, behaviors) -> dict:
    import torch

    from advlab.attacks.llm.common import eos_token_ids, greedy_generate
    from advlab.attacks.llm.embedding import EmbeddingAttackConfig, run_embedding_attack
    from advlab.attacks.llm.gcg import GCGConfig, run_gcg
    from advlab.judges import get_judge
    from advlab.models.formatting import ChatFormatter

    fmt = ChatFormatter(tok)
    judge = get_judge("refusal")
    eos = eos_token_ids(model, tok)
    rows = []
    for b in behaviors:
        segs = fmt.segments(b.request, INIT, b.target)
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
                cfg = EmbeddingAttackConfig(steps=args.emb_steps, eps=None, step_size=1e-3)
                res = run_embedding_attack(model, tok, segs, cfg, stop_check=lambda s, e: jailbroken(s, embeds=e[0]))[0]
            else:
                cfg = GCGConfig(steps=args.gcg_fs_steps, search_width=args.gcg_width, topk=256)
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


def asr(args: argparse.Namespace, model, tok) -> dict:
    from advlab.pipelines.attack_llm import AttackLLMConfig, run_attack_llm

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, kw in (("embedding", {}), ("gcg", {"steps": args.gcg_steps, "search_width": args.gcg_width})):
            cfg = AttackLLMConfig(method=method, model=args.model, limit=args.asr_n, max_new_tokens=32, **kw)
            t0 = time.perf_counter()
            m = run_attack_llm(
                cfg, Path(tmp) / method, device="cpu", model_and_tokenizer=(model, tok), show_progress=False
            )
            out[method] = {
                "asr": m["asr"],
                "n": m["n"],
                "budget": m["budget"],
                "early_stopped": m["early_stopped"],
                "median_best_loss": m["median_best_loss"],
                "wall_seconds": time.perf_counter() - t0,
                "config": {
                    "steps": cfg.steps,
                    "search_width": cfg.search_width if method == "gcg" else None,
                    "step_size": cfg.step_size if method == "embedding" else None,
                    "eps": cfg.eps,
                },
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="gym directory (default: the cached quick safety gym)")
    ap.add_argument("--n", type=int, default=10, help="behaviours for the first-success comparison")
    ap.add_argument("--check-every", type=int, default=5)
    ap.add_argument("--emb-steps", type=int, default=100)
    ap.add_argument("--gcg-fs-steps", type=int, default=20, help="GCG step cap in the first-success part")
    ap.add_argument("--asr-n", type=int, default=50)
    ap.add_argument("--gcg-steps", type=int, default=10)
    ap.add_argument("--gcg-width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-asr", action="store_true")
    args = ap.parse_args()
    import torch

    from advlab.data.behaviors import load_behaviors
    from advlab.models import load_chat_model

    torch.set_num_threads(args.threads)
    if args.model is None:
        from advlab.models.zoo import get_safety_gym

        args.model = str(get_safety_gym(quick=True))
    model, tok = load_chat_model(args.model, device="cpu")
    behaviors = load_behaviors("builtin:gym-harmful-test")[: args.n]
    result = {
        "model": args.model,
        "device": "cpu",
        "threads": args.threads,
        "note": "shared 2-core CPU; GCG budgets reduced to fit (see config)",
        "args": vars(args),
    }
    result["first_success"] = first_success(args, model, tok, behaviors)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    if not args.skip_asr:
        result["asr"] = asr(args, model, tok)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
    fs = result["first_success"]
    print(
        json.dumps(
            {
                "embedding": fs["embedding"],
                "gcg": fs["gcg"],
                "ratio": fs["median_ratio_gcg_over_embedding"],
                "asr": {k: {"asr": v["asr"], "n": v["n"]} for k, v in result.get("asr", {}).items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
