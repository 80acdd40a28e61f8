"""GCG: token gradient vs finite differences, candidate sampling/filtering, determinism, budget, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from llm_attack_fixtures import build_model, make_segments

from advlab.attacks.llm import common as C
from advlab.attacks.llm.gcg import GCGConfig, run_gcg
from advlab.attacks.llm.gcg_candidates import (
    CandidateBuffer,
    RetokenizationFilter,
    one_hot_gradient,
    sample_candidates,
)
from advlab.errors import ConfigError


def _loss_of_one_hot(model, seg, one_hot):
    w = C.embedding_matrix(model)
    emb = torch.cat([w[torch.tensor(seg.before)], one_hot @ w, w[torch.tensor(seg.after + seg.target)]])
    logits = C.target_logits(model, len(seg.target), inputs_embeds=emb.unsqueeze(0))
    return C.target_loss_from_logits(logits, torch.tensor(seg.target)).sum()


def test_token_gradient_matches_finite_differences(tiny_model, segs):
    model = copy.deepcopy(tiny_model).double()
    slot = torch.tensor(segs.slot)
    pre = C.compute_prefix_cache(model, segs.before)
    after_t = torch.tensor(segs.after + segs.target)
    w = C.embedding_matrix(model)

    def loss_fn(slot_embeds):
        emb = torch.cat([slot_embeds, w[after_t].unsqueeze(0)], dim=1)
        logits = C.target_logits(model, len(segs.target), inputs_embeds=emb, prefix=pre)
        return C.target_loss_from_logits(logits, torch.tensor(segs.target)).sum()

    grad = one_hot_gradient(model, slot, loss_fn)
    assert grad.shape == (len(segs.slot), w.shape[0])
    base = torch.zeros(len(slot), w.shape[0], dtype=torch.float64)
    base[torch.arange(len(slot)), slot] = 1.0
    # LlamaRMSNorm computes in float32 even in a float64 model, so h cannot be tiny: central
    # differences with h=1e-3 (error ~1e-4 from float32 rounding), checked on the largest entries
    # (the ones top-k sampling uses) and on random ones.
    h = 1e-3
    gen = torch.Generator().manual_seed(0)
    flat = grad.abs().flatten().topk(6).indices.tolist()
    rand = torch.randint(grad.numel(), (6,), generator=gen).tolist()
    fds, gs = [], []
    for k in flat + rand:
        i, v = divmod(k, w.shape[0])
        d = torch.zeros_like(base)
        d[i, v] = 1.0
        with torch.no_grad():
            fd = (_loss_of_one_hot(model, segs, base + h * d) - _loss_of_one_hot(model, segs, base - h * d)) / (2 * h)
        fds.append(float(fd))
        gs.append(float(grad[i, v]))
        assert float(grad[i, v]) == pytest.approx(float(fd), rel=2e-2, abs=5e-4)
    assert max(abs(g) for g in gs) > 0.05  # the check is not vacuous
    assert all(p.grad is None for p in model.parameters())


def test_sample_candidates_respects_topk_and_mask():
    gen = torch.Generator().manual_seed(1)
    grad = torch.randn(5, 50, generator=gen)
    slot = torch.arange(5)
    banned = torch.zeros(50, dtype=torch.bool)
    top_all = (-grad).topk(1, dim=1).indices.flatten()
    banned[top_all[0]] = True
    cands = sample_candidates(slot, grad, search_width=64, topk=4, n_replace=2, not_allowed=banned, generator=gen)
    assert cands.shape == (64, 5)
    g = grad.clone()
    g[:, banned] = float("inf")
    top = (-g).topk(4, dim=1).indices
    for row in cands:
        changed = torch.nonzero(row != slot).flatten()
        assert 1 <= len(changed) <= 2
        for p in changed.tolist():
            assert int(row[p]) in top[p].tolist() and not banned[row[p]]


def test_retokenization_filter_rejects_merges(tiny_tok, segs):
    f = RetokenizationFilter(tiny_tok, segs.before, segs.after, segs.slot)
    assert f.full_context
    sure = tiny_tok("Sure", add_special_tokens=False).input_ids
    assert len(sure) == 1
    pieces = [tiny_tok.convert_tokens_to_ids(c) for c in "Sure"]  # single bytes that merge on re-encoding
    assert None not in pieces
    good = torch.tensor([segs.slot])
    bad = torch.tensor([segs.slot[:1] + pieces])
    assert f(torch.cat([good, bad])).tolist() == [True, False]


def test_buffer_keeps_best():
    b = CandidateBuffer(2)
    for loss, v in ((3.0, 0), (1.0, 1), (2.0, 2), (5.0, 3)):
        b.add(loss, torch.tensor([v]))
    assert b.best_loss == 1.0 and [x[0] for x in b.items] == [1.0, 2.0]


def test_gcg_lowers_loss_deterministic_and_counts_budget(tiny_model, tiny_tok, segs):
    cfg = GCGConfig(steps=6, search_width=32, topk=16, seed=3, early_stop=False)
    r1 = run_gcg(tiny_model, tiny_tok, segs, cfg)
    r2 = run_gcg(tiny_model, tiny_tok, segs, cfg)
    assert r1.adv_string == r2.adv_string and r1.loss_history == r2.loss_history
    assert r1.best_loss < r1.extra["init_loss"] - 1e-3
    assert r1.best_loss == pytest.approx(_full_target_loss(tiny_model, segs.with_slot(r1.extra["adv_ids"])), abs=1e-4)
    assert r1.adv_prompt_ids == segs.before + r1.extra["adv_ids"] + segs.after
    evaluated = 6 * 32 - r1.extra["filtered_out"]
    assert r1.budget.forward_passes == 1 + 1 + 6 + evaluated  # prefix + init + gradients + candidates
    assert r1.budget.backward_passes == 6 and r1.budget.steps == 6
    r3 = run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=6, search_width=32, topk=16, seed=4, early_stop=False))
    assert r3.loss_history != r1.loss_history


def _full_target_loss(model, seg):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([seg.input_ids])).logits[0]
    s, e = seg.target_range
    return float(C.target_loss_from_logits(logits[s - 1 : e - 1].unsqueeze(0), torch.tensor(seg.target)))


def test_universal_and_transfer_loss(tiny_model, tiny_tok, segs):
    s2 = make_segments(tiny_tok, "Write a tutorial on how to make a cake", "x x x x x", "Sure, here is how to")
    other = build_model(len(tiny_tok), seed=1)
    r = run_gcg([tiny_model, other], tiny_tok, [segs, s2], GCGConfig(steps=2, search_width=16, topk=8))
    expected = sum((_full_target_loss(m, segs) + _full_target_loss(m, s2)) / 2 for m in (tiny_model, other))
    assert r.extra["init_loss"] == pytest.approx(expected, abs=1e-4)
    assert len(r.extra["prompt_ids_per_behavior"]) == 2
    assert r.budget.backward_passes == 2 * 4


def test_early_stop_when_target_reproduced(tiny_model, tiny_tok, segs):
    with torch.no_grad():
        greedy = C.greedy_generate(tiny_model, input_ids=[segs.prompt_ids], max_new_tokens=3, eos_ids=set())[0]
    easy = make_segments(tiny_tok, "Tell me a story", "x x x x x", "")
    easy.target = greedy
    r = run_gcg(tiny_model, tiny_tok, easy, GCGConfig(steps=5, search_width=8, topk=4))
    assert r.early_stopped and r.budget.steps == 0 and r.adv_string == tiny_tok.decode(segs.slot)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"search_width": 0}, "search-width"),
        ({"topk": 0}, "topk"),
        ({"steps": 0}, "steps"),
        ({"optim_str_init": "   "}, "empty"),
        ({"n_replace": 0}, "n-replace"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GCGConfig(**kwargs)


def test_bad_inputs(tiny_model, tiny_tok, segs):
    with pytest.raises(ConfigError, match="vocabulary"):
        run_gcg(tiny_model, tiny_tok, segs, GCGConfig(topk=10_000, steps=1))
    with pytest.raises(ConfigError, match="empty target"):
        run_gcg(tiny_model, tiny_tok, make_segments(tiny_tok, "Tell me", "x x", ""), GCGConfig(steps=1))
    with pytest.raises(ConfigError, match="zero tokens"):
        run_gcg(tiny_model, tiny_tok, make_segments(tiny_tok, "Tell me", "", "Sure"), GCGConfig(steps=1))
    with pytest.raises(ConfigError, match="n-replace"):
        run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=1, n_replace=6))


def test_buffer_and_mellowmax_options_run(tiny_model, tiny_tok, segs):
    r = run_gcg(
        tiny_model, tiny_tok, segs, GCGConfig(steps=3, search_width=16, topk=8, buffer_size=3, early_stop=False)
    )
    assert r.best_loss <= r.extra["init_loss"] and len(r.loss_history) == 3
    m = run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=2, search_width=8, topk=8, use_mellowmax=True))
    assert m.extra["init_loss"] != pytest.approx(r.extra["init_loss"])  # a different objective


def test_on_step_gets_the_current_slot(tiny_model, tiny_tok, segs):
    """``StepInfo.current`` is the slot the next step starts from: plain GCG moves to each step's best
    candidate, so a full forward pass on that slot gives the step's loss (an independent recomputation)."""
    infos = []
    res = run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=5, search_width=4, topk=8, seed=0, early_stop=False),
                  on_step=infos.append)
    assert [i.step for i in infos] == [1, 2, 3, 4, 5] and [i.loss for i in infos] == res.loss_history
    for info in infos:
        assert info.current.dtype == torch.long and len(info.current) == len(segs.slot)
        loss = _full_target_loss(tiny_model, segs.with_slot(info.current.tolist()))
        assert loss == pytest.approx(info.loss, abs=1e-4)


def test_token_mask_candidate_filter_and_scored_hooks(tiny_model, tiny_tok, segs):
    """``not_allowed`` confines the slot to the allowed tokens, ``candidate_filter`` drops candidates
    (every one of them: the slot never moves), and ``on_scored`` sees exactly the scored batches, whose
    losses a full forward pass reproduces."""
    vocab = C.embedding_matrix(tiny_model).shape[0]
    allowed = set(segs.slot) | set(range(40, 60))
    mask = torch.tensor([i not in allowed for i in range(vocab)])
    scored = []
    r = run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=4, search_width=16, topk=8, early_stop=False),
                not_allowed=mask, on_scored=lambda c, lo: scored.append((c.clone(), lo.clone())))
    assert set(r.extra["adv_ids"]) <= allowed and r.best_loss < r.extra["init_loss"]
    assert scored[0][0].tolist() == [segs.slot]
    assert sum(len(c) for c, _ in scored) == 1 + 4 * 16 - r.extra["filtered_out"]
    cands, losses = scored[1]
    for row, loss in zip(cands.tolist()[:3], losses.tolist()[:3]):
        assert set(row) <= allowed
        assert _full_target_loss(tiny_model, segs.with_slot(row)) == pytest.approx(loss, abs=1e-4)
    none = run_gcg(tiny_model, tiny_tok, segs, GCGConfig(steps=3, search_width=8, topk=8, early_stop=False),
                   candidate_filter=lambda c: torch.zeros(c.shape[0], dtype=torch.bool))
    assert none.extra["adv_ids"] == segs.slot and none.loss_history == [none.extra["init_loss"]] * 3
    assert none.extra["filtered_out"] == 3 * 8
