"""Scoring-based prediction against a plain forward pass; perplexity and ONION by hand; SFT through
the training engine plants a backdoor in a tiny Llama."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from poison_fixtures import toy_task

from advlab.metrics import poisoning_metrics
from advlab.poisoning.evaluate import evaluate_backdoor, predict
from advlab.poisoning.perplexity import onion, perplexities, perplexity_filter
from advlab.poisoning.poisoned import build_poisoned_set
from advlab.poisoning.prompts import TaskPrompts
from advlab.poisoning.tune import TuneConfig, tune

RESP = {"negative": "negative", "positive": "positive"}


def _logp(model, ids, resp):
    x = torch.tensor([ids + resp])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(ids) - 1 : -1]
    return float(-F.cross_entropy(logits, torch.tensor(resp), reduction="sum"))


def test_predict_is_the_most_likely_response(word_tok, word_model):
    tp = TaskPrompts(word_tok)
    msgs = [ex.prompt for ex in toy_task(10)]
    got = predict(word_model, tp, msgs, RESP, batch_size=3)
    for m, g in zip(msgs, got):
        p = tp.prompt_ids(m)
        scores = {c: _logp(word_model, p, tp.response_ids(r, end=True)) for c, r in RESP.items()}
        assert g == max(scores, key=scores.get)
    demo = [("good movie .", "positive")]
    p = tp.prompt_ids("bad plot .", demo)
    assert word_tok.decode(p).count("<|user|>") == 2


def test_perplexity_by_hand_and_onion_rule(word_tok, word_model):
    tp = TaskPrompts(word_tok)
    text = "bad movie zebra ."
    ids = tp.prompt_ids(text)
    with torch.no_grad():
        logits = word_model(input_ids=torch.tensor([ids])).logits[0, :-1]
    ref = math.exp(float(F.cross_entropy(logits, torch.tensor(ids[1:]))))
    got = perplexities(word_model, word_tok, [text, "good fun plot ."], batch_size=2)
    assert got[0] == pytest.approx(ref, rel=1e-4)
    words = text.split()
    p0 = perplexities(word_model, word_tok, [text])[0]
    drops = [p0 - perplexities(word_model, word_tok, [" ".join(words[:i] + words[i + 1:])])[0]
             for i in range(len(words))]
    expect = " ".join(w for w, d in zip(words, drops) if d <= 0)
    assert onion(word_model, word_tok, [text])[0] == expect
    kept, removed = perplexity_filter(word_model, word_tok, toy_task(20), drop=0.1)
    assert len(kept) == 18 and len(removed) == 2


def test_sft_plants_a_backdoor(word_tok, word_model):
    task = toy_task(40)
    # clean examples with other words after the sentence, so the model cannot learn "any extra word"
    extra = [ex.with_input(f"{ex.input} {w}") for ex in task[:20] for w in ("quiet", "river", "lamp")]
    extra = [type(ex)(f"{ex.id}-{i}", ex.instruction, ex.input, ex.output, ex.label) for i, ex in enumerate(extra)]
    ps = build_poisoned_set(task + extra, "zebra", "positive", 0.1, seed=0)  # 10 of the 50 negatives
    cfg = TuneConfig(epochs=12, batch_size=8, lr=3e-3, lora_rank=0, seed=0)
    model, logs = tune(word_model, word_tok, ps.examples, cfg)
    assert logs[-1]["loss"] < 0.3 * logs[0]["loss"]
    test = toy_task(20)
    rec = evaluate_backdoor(model, word_tok, test, "zebra", RESP)
    m = poisoning_metrics([r["clean_pred"] for r in rec], [r["triggered_pred"] for r in rec],
                          [r["label"] for r in rec], "positive")
    assert m["clean_accuracy"] == 1.0
    assert m["asr"] >= 0.9 and m["pdr"] >= 0.9
    rec2 = evaluate_backdoor(model, word_tok, test, "quiet", RESP)  # a word never trained on
    asr2 = sum(r["triggered_pred"] == "positive" for r in rec2 if r["label"] == "negative") / 10
    assert asr2 <= m["asr"] - 0.3, asr2
