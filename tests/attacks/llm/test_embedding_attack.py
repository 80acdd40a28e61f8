"""Embedding-space attack: ball constraint, eps=0, no weight gradient, padding, universal, training use."""

from __future__ import annotations

import copy

import pytest
import torch
from llm_attack_fixtures import make_segments

from advlab.attacks.llm import common as C
from advlab.attacks.llm.embedding import (
    EmbeddingAttackConfig,
    ball_radius,
    embedding_attack_delta,
    run_embedding_attack,
)
from advlab.errors import ConfigError


@pytest.fixture
def two(tiny_tok, segs):
    return [segs, make_segments(tiny_tok, "Write a tutorial on how to make a cake", "x x x", "Sure, here is how to")]


def _orig_embeds(model, seg):
    return C.embedding_matrix(model)[torch.tensor([seg.prompt_ids])].detach()


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("mode", ["suffix", "instruction"])
def test_perturbation_stays_in_ball(tiny_model, tiny_tok, two, norm, mode):
    cfg = EmbeddingAttackConfig(steps=8, eps=0.3, norm=norm, step_size=0.05, mode=mode, early_stop=False)
    res = run_embedding_attack(tiny_model, tiny_tok, two, cfg)
    r = ball_radius(tiny_model, 0.3, norm)
    w = C.embedding_matrix(tiny_model).detach()
    ref = (w.norm(dim=-1) if norm == "l2" else w.abs().amax(-1)).mean() * 0.3
    assert r == pytest.approx(float(ref), rel=1e-6)
    for seg, out in zip(two, res):
        delta = out.adv_embeds[0] - _orig_embeds(tiny_model, seg)[0]
        per_tok = delta.norm(dim=-1) if norm == "l2" else delta.abs().amax(-1)
        assert float(per_tok.max()) <= r * (1 + 1e-5)
        assert float(per_tok.max()) > 0.5 * r  # the attack moved (step 0.05 reaches the boundary)
        moved = torch.nonzero(per_tok > 0).flatten().tolist()
        s, e = seg.slot_range
        if mode == "suffix":
            assert moved and set(moved) <= set(range(s, e))
        else:
            assert len(moved) > e - s  # template and request tokens too
        assert out.best_loss < out.loss_history[0]


def test_eps_zero_changes_nothing(tiny_model, tiny_tok, two):
    res = run_embedding_attack(tiny_model, tiny_tok, two, EmbeddingAttackConfig(steps=3, eps=0.0, step_size=0.1))
    for seg, out in zip(two, res):
        assert torch.equal(out.adv_embeds, _orig_embeds(tiny_model, seg))
        assert len(set(out.loss_history)) == 1


def test_no_gradient_reaches_weights(tiny_model, tiny_tok, two):
    model = copy.deepcopy(tiny_model).train()
    model.requires_grad_(True)
    before = [p.detach().clone() for p in model.parameters()]
    run_embedding_attack(
        model, tiny_tok, two, EmbeddingAttackConfig(steps=3, eps=None, step_size=0.01, optimizer="adam")
    )
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_batched_equals_individual(tiny_model, tiny_tok, two):
    cfg = EmbeddingAttackConfig(steps=5, eps=None, step_size=0.02, early_stop=False)
    batch = run_embedding_attack(tiny_model, tiny_tok, two, cfg)
    for seg, b in zip(two, batch):
        single = run_embedding_attack(tiny_model, tiny_tok, [seg], cfg)[0]
        assert b.loss_history == pytest.approx(single.loss_history, abs=2e-4)
        assert torch.allclose(b.adv_embeds, single.adv_embeds, atol=1e-5)


def test_universal_shares_one_delta(tiny_model, tiny_tok, segs):
    s2 = make_segments(tiny_tok, "Write a tutorial on how to make a cake", "x x x x x", "Sure, here is how to")
    cfg = EmbeddingAttackConfig(steps=4, eps=None, step_size=0.02, universal=True, early_stop=False)
    a, b = run_embedding_attack(tiny_model, tiny_tok, [segs, s2], cfg)
    da = (a.adv_embeds[0] - _orig_embeds(tiny_model, segs)[0])[slice(*segs.slot_range)]
    db = (b.adv_embeds[0] - _orig_embeds(tiny_model, s2)[0])[slice(*s2.slot_range)]
    assert torch.allclose(da, db, atol=1e-6) and da.abs().sum() > 0
    with pytest.raises(ConfigError):
        EmbeddingAttackConfig(universal=True, mode="instruction")


def test_same_seed_same_history(tiny_model, tiny_tok, segs):
    cfg = EmbeddingAttackConfig(steps=4, eps=0.5, step_size=0.01)
    assert (
        run_embedding_attack(tiny_model, tiny_tok, segs, cfg)[0].loss_history
        == run_embedding_attack(tiny_model, tiny_tok, segs, cfg)[0].loss_history
    )


def test_early_stop_and_generation_from_embeddings(tiny_model, tiny_tok, segs):
    cfg = EmbeddingAttackConfig(steps=300, eps=None, step_size=0.05, optimizer="adam", mode="instruction")
    short = make_segments(tiny_tok, "Tell me a story", "x x x x x", "Sure")
    out = run_embedding_attack(tiny_model, tiny_tok, short, cfg)[0]
    assert out.early_stopped and out.budget.steps < 300
    assert len(out.loss_history) == out.budget.steps + 1
    gen = C.greedy_generate(tiny_model, inputs_embeds=out.adv_embeds, max_new_tokens=len(short.target), eos_ids=set())
    assert gen[0] == short.target  # greedy decoding from the perturbed embeddings reproduces the target


def _right_padded_batch(two):
    """ids, attention mask, prompt mask and target labels of two segments, right-padded as in training."""
    seqs = [s.input_ids for s in two]
    length = max(map(len, seqs))
    ids = torch.zeros(2, length, dtype=torch.long)
    mask = torch.zeros(2, length, dtype=torch.long)
    labels = torch.full((2, length), -100)
    pmask = torch.zeros(2, length, dtype=torch.bool)
    for i, s in enumerate(two):
        ids[i, : len(s.input_ids)] = torch.tensor(s.input_ids)
        mask[i, : len(s.input_ids)] = 1
        a, b = s.target_range
        labels[i, a:b] = torch.tensor(s.target)
        pmask[i, : len(s.prompt_ids)] = True
    return ids, mask, pmask, labels


def test_training_entry_point_right_padding(tiny_model, tiny_tok, two):
    """The inner loop takes embeddings + masks + labels (right padding, as in a training batch)."""
    ids, mask, pmask, labels = _right_padded_batch(two)
    emb = C.embedding_matrix(tiny_model)[ids].detach()
    cfg = EmbeddingAttackConfig(steps=3, eps=0.05, mode="instruction")
    res = embedding_attack_delta(tiny_model, emb, mask, pmask, labels, cfg)
    assert res.delta.shape == emb.shape
    assert float(res.delta[~pmask].abs().max()) == 0.0
    assert float(res.delta.norm(dim=-1).max()) <= ball_radius(tiny_model, 0.05, "l2") * (1 + 1e-5)
    assert res.forward_passes == 2 * 4 and res.backward_passes == 2 * 3
    # the first loss equals an independent full forward pass
    for i, s in enumerate(two):
        logits = tiny_model(input_ids=torch.tensor([s.input_ids])).logits[0]
        a, b = s.target_range
        ref = C.target_loss_from_logits(logits[a - 1 : b - 1].unsqueeze(0), torch.tensor(s.target))
        assert res.history[0][i] == pytest.approx(float(ref.detach()), abs=1e-4)


def test_bad_inputs(tiny_model, tiny_tok):
    with pytest.raises(ConfigError, match="empty target"):
        run_embedding_attack(tiny_model, tiny_tok, make_segments(tiny_tok, "Tell me", "x x", ""))
    with pytest.raises(ConfigError, match="zero tokens"):
        run_embedding_attack(tiny_model, tiny_tok, make_segments(tiny_tok, "Tell me", "", "Sure"))
    with pytest.raises(ConfigError):
        EmbeddingAttackConfig(eps=-1)
    with pytest.raises(ConfigError):
        EmbeddingAttackConfig(norm="l1")


@pytest.mark.parametrize(
    "kw",
    [
        {"early_stop": False},  # individual, batched over two behaviours
        {"early_stop": False, "universal": True},  # one shared slot δ
        {"early_stop": True, "optimizer": "adam", "mode": "instruction"},  # stops before the step budget
    ],
)
def test_on_step_called_live_after_every_step(tiny_model, tiny_tok, segs, kw):
    """on_step fires once per evaluation while the attack runs, not all at once at the end."""
    s2 = make_segments(tiny_tok, "Tell me a story about dragons", "x x x x x", "Sure")
    batch = [segs, s2] if not kw["early_stop"] else [make_segments(tiny_tok, "Tell me a story", "x x x x x", "Sure")]
    forwards = []
    hook = tiny_model.register_forward_hook(lambda *_: forwards.append(1))
    calls: list[tuple[int, float, int]] = []
    try:
        cfg = EmbeddingAttackConfig(steps=6 if not kw["early_stop"] else 300, eps=None, step_size=0.05, **kw)
        res = run_embedding_attack(
            tiny_model, tiny_tok, batch, cfg, on_step=lambda info: calls.append((info.step, info.loss, len(forwards)))
        )
    finally:
        hook.remove()
    steps = res[0].budget.steps
    if kw["early_stop"]:
        assert res[0].early_stopped and steps < 300
    else:
        assert steps == 6
    assert len(calls) == steps + 1 == len(res[0].loss_history)
    assert [c[0] for c in calls] == list(range(steps + 1))
    # call k happens right after the (k+1)-th batched forward pass, i.e. during the attack
    assert [c[2] for c in calls] == list(range(1, steps + 2))
    # the loss reported is the mean over the batch's rows at that step
    for k, (_, loss, _) in enumerate(calls):
        ref = sum(r.loss_history[k] for r in res) / len(res)
        assert loss == pytest.approx(ref, rel=1e-6)


def test_on_step_gets_the_evaluated_embeddings(tiny_model, tiny_tok, segs):
    """``StepInfo.current`` is the input e + δ the attack just evaluated: step 0 the clean embeddings, then
    changed only in the slot; a forward pass on it gives the step's loss (an independent recomputation)."""
    infos = []
    cfg = EmbeddingAttackConfig(steps=4, eps=None, step_size=0.05, early_stop=False)
    (res,) = run_embedding_attack(tiny_model, tiny_tok, segs, cfg, on_step=infos.append)
    assert [i.step for i in infos] == list(range(5)) and [i.loss for i in infos] == res.loss_history
    clean = C.embedding_matrix(tiny_model)[torch.tensor([segs.input_ids])].detach()
    assert torch.equal(infos[0].current, clean)
    s, e = segs.slot_range
    ts, te = segs.target_range
    for info in infos:
        assert info.current.shape == clean.shape and not info.current.requires_grad
        moved = torch.nonzero((info.current - clean)[0].abs().amax(-1) > 0).flatten().tolist()
        assert set(moved) <= set(range(s, e))
        with torch.no_grad():
            logits = tiny_model(inputs_embeds=info.current).logits[:, ts - 1 : te - 1]
        loss = float(C.target_loss_from_logits(logits, torch.tensor(segs.target)))
        assert loss == pytest.approx(info.loss, abs=1e-4)
    assert infos[-1].step == 4 and bool((infos[-1].current - clean).abs().amax() > 0)


def test_training_use_dropout_off_mode_restored_no_weight_grad(tiny_tok, two):
    """In a training step (model.train(), dropout 0.5) δ does not depend on the RNG, the model comes back
    in train mode (every submodule, an eval-mode one stays eval) and no parameter's .grad is touched."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, attention_dropout=0.5, pad_token_id=0)
    model = LlamaForCausalLM(cfg).train()
    model.model.layers[1].eval()  # a submodule in its own mode must get that mode back
    ids, mask, pmask, labels = _right_padded_batch(two)
    emb = C.embedding_matrix(model)[ids].detach()
    torch.manual_seed(1)
    a = model(inputs_embeds=emb, attention_mask=mask).logits
    b = model(inputs_embeds=emb, attention_mask=mask).logits
    assert not torch.allclose(a, b)  # dropout is really on in train mode
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    acfg = EmbeddingAttackConfig(steps=5, eps=0.5, step_size=0.01, mode="instruction", early_stop=False)
    deltas = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        deltas.append(embedding_attack_delta(model, emb, mask, pmask, labels, acfg).delta)
    assert torch.equal(deltas[0], deltas[1])
    assert float(deltas[0].abs().max()) > 0
    assert model.training and model.model.layers[0].training and model.model.layers[0].self_attn.training
    assert not model.model.layers[1].training and not model.model.layers[1].self_attn.training
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
