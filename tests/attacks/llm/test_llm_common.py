"""Shared LLM-attack helpers against full forward passes, HF generate and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from llm_attack_fixtures import make_segments

from advlab.attacks.llm import common as C


def _full_target_loss(model, seg):
    ids = torch.tensor([seg.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    s, e = seg.target_range
    logp = torch.log_softmax(logits[s - 1 : e - 1], -1)
    return float(-logp[torch.arange(e - s), torch.tensor(seg.target)].mean())


def test_prefix_cache_loss_equals_full_forward(tiny_model, tiny_tok, segs):
    pre = C.compute_prefix_cache(tiny_model, segs.before)
    assert pre.length == len(segs.before)
    other = [t + 1 for t in segs.slot]
    rows = torch.tensor([segs.slot + segs.after + segs.target, other + segs.after + segs.target] * 2)
    loss = C.batch_target_loss(tiny_model, rows, torch.tensor(segs.target), prefix=pre)
    ref0 = _full_target_loss(tiny_model, segs)
    ref1 = _full_target_loss(tiny_model, segs.with_slot(other))
    assert loss.tolist() == pytest.approx([ref0, ref1, ref0, ref1], abs=1e-4)
    assert abs(ref0 - ref1) > 1e-3  # the two rows really differ
    # expanded cache: the prefix tensors are views, not copies
    cache = pre.expand(4)
    k0 = cache.layers[0].keys
    assert k0.shape[0] == 4 and k0.data_ptr() == pre.kv[0][0].data_ptr() and k0.stride(0) == 0


def test_no_prefix_and_left_padding(tiny_model, tiny_tok, segs):
    s2 = make_segments(tiny_tok, "Write a tutorial on how to make a cake", "x x", "Sure, here is")
    ids, mask = C.left_pad([segs.input_ids, s2.input_ids], 0)
    logits = C.target_logits(tiny_model, len(segs.target), input_ids=ids, attention_mask=mask)
    loss = C.target_loss_from_logits(logits, torch.tensor(segs.target))
    assert loss.tolist() == pytest.approx(
        [_full_target_loss(tiny_model, segs), _full_target_loss(tiny_model, s2)], abs=1e-4
    )


def test_greedy_generate_matches_hf_generate(tiny_model, tiny_tok, segs):
    p1, p2 = segs.prompt_ids, segs.prompt_ids[2:]
    out = C.greedy_generate(tiny_model, input_ids=[p1, p2], max_new_tokens=7, eos_ids={1}, pad_id=0)
    for p, got in zip((p1, p2), out):
        ref = tiny_model.generate(torch.tensor([p]), max_new_tokens=7, do_sample=False, eos_token_id=1, pad_token_id=0)[
            0, len(p) :
        ].tolist()
        ref = ref[: ref.index(1)] if 1 in ref else ref
        assert got == ref
    emb = C.embedding_matrix(tiny_model)[torch.tensor([p1])]
    assert C.greedy_generate(tiny_model, inputs_embeds=emb, max_new_tokens=7, eos_ids={1}) == [out[0]]


def test_disallowed_mask(tiny_tok):
    mask = C.disallowed_token_mask(tiny_tok, len(tiny_tok) + 3)
    for t in ("<|pad|>", "<|end|>", "<|user|>", "<|assistant|>"):
        assert mask[tiny_tok.convert_tokens_to_ids(t)]
    assert mask[-3:].all()  # ids beyond the tokenizer
    x = tiny_tok("x", add_special_tokens=False).input_ids[0]
    assert not mask[x]
    texts = tiny_tok.batch_decode([[i] for i in range(len(tiny_tok))])
    for i, t in enumerate(texts):
        if not mask[i]:
            assert t and t.isascii() and t.isprintable()
    loose = C.disallowed_token_mask(tiny_tok, len(tiny_tok), allow_non_ascii=True)
    assert loose.sum() < mask.sum() - 3


def test_mellowmax_closed_form():
    t = torch.tensor([[1.0, 2.0, 4.0]])
    alpha = 2.0
    ref = (math.log(sum(math.exp(alpha * v) for v in (1, 2, 4))) - math.log(3)) / alpha
    assert float(C.mellowmax(t, alpha)) == pytest.approx(ref, rel=1e-6)
    assert float(C.mellowmax(t, 1e-4)) == pytest.approx(7 / 3, rel=1e-3)  # alpha -> 0: the mean
    logits = torch.randn(2, 3, 11)
    tgt = torch.tensor([1, 5, 7])
    mm = C.target_loss_from_logits(logits, tgt, kind="mellowmax", mellowmax_alpha=alpha)
    z = logits[:, torch.arange(3), tgt]
    assert torch.allclose(mm, C.mellowmax(-z, alpha))


def test_adaptive_chunker_halves_on_oom():
    calls = []

    def fn(s, e):
        calls.append(e - s)
        if e - s > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.arange(s, e)

    ch = C.AdaptiveChunker()
    assert ch.map(fn, 10).tolist() == list(range(10))
    assert ch.chunk_size == 2 and ch.ooms == 2
    calls.clear()
    ch.map(fn, 10)
    assert max(calls) == 2  # the reduced size is remembered
    with pytest.raises(ValueError):
        C.AdaptiveChunker().map(lambda s, e: (_ for _ in ()).throw(ValueError("other")), 4)
