"""The LLM valley follows the attack's current iterate (Walter et al. 2024), not the best point so far.

Independent reference: the attack's own loss history. GCG (plain, buffer 0) moves to each step's best
candidate, so the target loss at the iterate after step s is GCG's ``loss_history[s-1]``; the embedding
attack's history holds the loss of each evaluated input. Both histories go up as well as down here, so a
record of the best point (a running minimum) cannot match them.
"""

from __future__ import annotations

import pytest

from advlab.analysis.llm_valley import embedding_valley, gcg_valley
from advlab.attacks.llm.embedding import EmbeddingAttackConfig, run_embedding_attack
from advlab.attacks.llm.gcg import GCGConfig, run_gcg
from advlab.models.segments import PromptSegments


def _segments(tok):
    enc = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    return PromptSegments(enc("<|user|>Tell me a story"), enc(" x x x"), enc("<|end|><|assistant|>"), enc("Sure"))


def _goes_up(history: list[float]) -> bool:
    return any(h > min(history[:i]) + 1e-3 for i, h in enumerate(history) if i)  # 5x the tolerance below


def test_gcg_valley_records_the_current_iterate_and_optionally_the_best(tiny_chat):
    tok, model = tiny_chat
    segs = _segments(tok)
    cfg = GCGConfig(steps=6, search_width=2, topk=8, seed=0, early_stop=False, buffer_size=0)
    history = run_gcg(model, tok, segs, cfg).loss_history
    assert _goes_up(history)  # else iterate and best coincide and the test could not tell them apart
    recs = gcg_valley(model, tok, segs, cfg, record_best=True)
    iterate = [r for r in recs if r["point"] == "iterate"]
    best = [r for r in recs if r["point"] == "best"]
    assert [r["step"] for r in iterate] == list(range(7)) == [r["step"] for r in best]
    assert [r["loss"] for r in iterate[1:]] == pytest.approx(history, abs=2e-4)
    running = [min(r["loss"] for r in iterate[: i + 1]) for i in range(len(iterate))]
    assert [r["loss"] for r in best] == pytest.approx(running)
    assert len({r["id"] for r in recs}) == len(recs)


def test_gcg_valley_default_config_keeps_running_past_the_flip(tiny_chat):
    tok, model = tiny_chat
    seen = []

    def fake_attack(model, tokenizer, segments, config, on_iterate):
        seen.append(config)
        on_iterate(0, list(segments.slot))

    gcg_valley(model, tok, _segments(tok), None, run_attack=fake_attack)
    gcg_valley(model, tok, _segments(tok), GCGConfig(steps=2, early_stop=True), run_attack=fake_attack)
    assert seen[0].early_stop is False and seen[0].steps == GCGConfig().steps
    assert seen[1].early_stop is False and seen[1].steps == 2


def test_embedding_valley_records_the_current_iterate(tiny_chat):
    tok, model = tiny_chat
    segs = _segments(tok)
    cfg = EmbeddingAttackConfig(steps=8, eps=None, step_size=0.3, early_stop=False)
    (res,) = run_embedding_attack(model, tok, segs, cfg)
    assert _goes_up(res.loss_history)
    recs = embedding_valley(model, tok, segs, cfg)
    assert [r["step"] for r in recs] == list(range(9))
    assert [r["loss"] for r in recs] == pytest.approx(res.loss_history, abs=2e-4)
