"""LLM output-head flatness on a tiny random Llama against the brute-force Hessian of lm_head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.analysis.llm_flatness import llm_flatness
from advlab.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=24, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).double().eval()


def _brute(model, ids, pos):
    """Tr H and κ of the token cross-entropy at logit position ``pos`` by the full lm_head Hessian."""
    from torch.func import functional_call, hessian

    w = model.lm_head.weight.detach()

    def loss(wt):
        logits = functional_call(model, {"lm_head.weight": wt}, (ids[None],)).logits[0, pos]
        return F.cross_entropy(logits[None], ids[pos + 1 : pos + 2])

    h = hessian(loss)(w).detach()
    gram = w @ w.T
    return torch.einsum("aiai->", h), (gram * torch.einsum("aibi->ab", h)).sum()


def test_measure_and_kappa_equal_brute_force(tiny_llama):
    ids = torch.randint(0, 24, (7,))
    targets = [4, 5, 6]
    res = llm_flatness(tiny_llama, ids, targets)
    traces, kappas = zip(*[_brute(tiny_llama, ids, t - 1) for t in targets])
    assert res.layer == "lm_head"
    assert float(res.measure[0]) == pytest.approx(float(torch.stack(traces).mean()), rel=1e-5)
    assert float(res.kappa[0]) == pytest.approx(float(torch.stack(kappas).mean()), rel=1e-5)
    assert torch.isnan(res.per_position["trace"][0, 0]) and not torch.isnan(res.per_position["trace"][0, 3])


def test_embeddings_batches_and_masks_agree(tiny_llama):
    ids = torch.randint(0, 24, (2, 6))
    a = llm_flatness(tiny_llama, ids, [3, 5])
    emb = tiny_llama.get_input_embeddings()(ids)
    b = llm_flatness(tiny_llama, inputs_embeds=emb, target_positions=[3, 5])
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, [3, 5]] = True
    c = llm_flatness(tiny_llama, ids, mask)
    assert a.measure.shape == (2,)
    assert torch.allclose(a.measure, b.measure) and torch.allclose(a.kappa, c.kappa)
    single = llm_flatness(tiny_llama, ids[1], [3, 5])
    assert torch.allclose(single.kappa[0], a.kappa[1])


def test_bad_input(tiny_llama):
    ids = torch.randint(0, 24, (5,))
    with pytest.raises(ConfigError, match="1..4"):
        llm_flatness(tiny_llama, ids, [0])
    with pytest.raises(ConfigError, match="exactly one"):
        llm_flatness(tiny_llama, target_positions=[1])
    with pytest.raises(ConfigError, match="choose one of"):
        llm_flatness(tiny_llama, ids, [2], layer="head")
    with pytest.raises(ConfigError, match="not a linear layer"):
        llm_flatness(tiny_llama, ids, [2], layer="model.norm")


def test_gcg_valley_records_flatness_along_the_attack(tiny_chat):
    from advlab.analysis.llm_flatness import segments_flatness
    from advlab.analysis.llm_valley import gcg_valley
    from advlab.attacks.llm.gcg import GCGConfig
    from advlab.models.segments import PromptSegments

    tok, model = tiny_chat
    enc = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    segs = PromptSegments(enc("<|user|>Tell me a story"), enc(" x x x"), enc("<|end|><|assistant|>"), enc("Sure"))
    recs = gcg_valley(model, tok, segs, GCGConfig(steps=3, search_width=8, topk=4, seed=0, early_stop=False))
    assert [r["step"] for r in recs] == sorted({r["step"] for r in recs}) and recs[0]["step"] == 0
    first = segments_flatness(model, segs)
    assert recs[0]["measure"] == pytest.approx(float(first.measure[0]))
    for r in recs:
        assert r["measure"] > 0 and r["kappa"] >= 0 and r["phi_sq"] > 0
        assert r["flip_step"] == next((q["step"] for q in recs if q["flipped"]), None)
