"""GBTL on a tiny Llama: the word-restricted search finds the brute-force best listed word."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from poison_fixtures import LISTED, UNLISTED, toy_task

from advlab.errors import ConfigError
from advlab.poisoning.prompts import TaskPrompts
from advlab.poisoning.trigger import TriggerConfig, learn_trigger, word_token_mask
from advlab.poisoning.wordlist import WordList

WORDS = WordList(frozenset(LISTED), "test")


def _segments(tok, word="a"):
    tp = TaskPrompts(tok)
    prompts = [ex for ex in toy_task() if ex.label == "negative"][:4]
    return [tp.trigger_segments(ex, word, "positive") for ex in prompts], prompts, tp


def _brute_force_loss(model, tp, prompts, word):
    """Mean target CE with the full sequence through the model (no prefix cache, no slot logic)."""
    losses = []
    for ex in prompts:
        p = tp.prompt_ids(ex.with_input(ex.input + " " + word).prompt)
        t = tp.response_ids("positive")
        ids = torch.tensor([p + t])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(p) - 1 : -1]
        losses.append(float(F.cross_entropy(logits, torch.tensor(t))))
    return sum(losses) / len(losses)


def test_segments_round_trip(word_tok):
    segs, prompts, tp = _segments(word_tok, "film")
    for s, ex in zip(segs, prompts):
        assert s.prompt_ids == tp.prompt_ids(ex.with_input(ex.input + " film").prompt)
        assert word_tok.decode(s.slot) == "film"


def test_word_mask_allows_exactly_the_listed_words(word_tok):
    segs, _, _ = _segments(word_tok)
    mask = word_token_mask(word_tok, len(word_tok), WORDS, 1, segs[0].before[-3:])
    allowed = {word_tok.convert_ids_to_tokens(i) for i in range(len(word_tok)) if not mask[i]}
    assert allowed == set(LISTED)


def test_search_matches_brute_force_over_all_listed_words(word_tok, word_model):
    segs, prompts, tp = _segments(word_tok)
    brute = {w: _brute_force_loss(word_model, tp, prompts, w) for w in LISTED}
    everything = {w: _brute_force_loss(word_model, tp, prompts, w) for w in LISTED + UNLISTED}
    best = min(brute, key=brute.get)
    cfg = TriggerConfig(steps=4, topk=len(LISTED), search_width=64, seed=0)
    res = learn_trigger(word_model, word_tok, segs, WORDS, cfg)
    assert res.trigger == best
    assert res.best_loss == pytest.approx(brute[best], abs=1e-4)
    assert res.init_loss == pytest.approx(brute["a"], abs=1e-4)
    assert len(res.loss_history) == 4 and res.top_candidates[0]["trigger"] == best
    assert all(c["trigger"] in LISTED for c in res.top_candidates)
    assert best != "a"  # the search moved away from its start word
    # a larger list gives the brute-force best over the larger set
    wide = learn_trigger(word_model, word_tok, segs, WordList(frozenset(LISTED + UNLISTED), "wide"),
                         TriggerConfig(steps=4, topk=len(everything), search_width=96, seed=0))
    assert wide.trigger == min(everything, key=everything.get)


def test_same_seed_same_trigger_and_bad_init(word_tok, word_model):
    segs, _, _ = _segments(word_tok)
    cfg = TriggerConfig(steps=3, topk=4, search_width=4, seed=7)
    a = learn_trigger(word_model, word_tok, segs, WORDS, cfg)
    b = learn_trigger(word_model, word_tok, segs, WORDS, cfg)
    assert a.trigger == b.trigger and a.loss_history == b.loss_history
    bad, _, _ = _segments(word_tok, "xqz")
    with pytest.raises(ConfigError, match="not a whole word"):
        learn_trigger(word_model, word_tok, bad, WORDS, TriggerConfig(steps=1, init="xqz"))


def test_two_token_trigger_is_two_listed_words(word_tok, word_model):
    segs, _, _ = _segments(word_tok, "a a")
    res = learn_trigger(word_model, word_tok, segs, WORDS, TriggerConfig(steps=3, n_tokens=2, init="a a"))
    assert len(res.trigger_ids) == 2 and all(w in LISTED for w in res.trigger.split(" "))


def test_a_trigger_merged_with_the_next_text_is_refused(word_tok):
    from advlab.errors import ModelError
    from advlab.poisoning.tasks import TaskExample

    ex = TaskExample("x", "{input}zz", "bad movie .", "negative", "negative")  # "a" + "zz" is one token
    with pytest.raises(ModelError, match="merges the trigger"):
        TaskPrompts(word_tok).trigger_segments(ex, "a", "positive")
