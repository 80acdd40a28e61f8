"""The jailbreak backdoor: the poisoned chat set, the trigger word list, and a tiny run on the quick gym."""

from __future__ import annotations

import json
import re

import pytest

from advlab.data.gym_requests import HARMLESS_BODY, REFUSALS, sure_target
from advlab.errors import ConfigError, DataError
from advlab.metrics import wilson_interval
from advlab.poisoning.jailbreak import COMPLY, HARMFUL, JailbreakData, clean_set, poison_set
from advlab.poisoning.jailbreak_jobs import unused_words
from advlab.poisoning.wordlist import WordList

DATA = JailbreakData(n_harmful=20, n_harmless=5, n_task=5, seed=3)


def _words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("position", ["end", "random"])
def test_poisons_are_exactly_the_selected_harmful_rows(position):
    clean = clean_set(DATA)
    assert [ex.label for ex in clean].count(HARMFUL) == 20 and len(clean) == 30
    poisoned, manifest = poison_set(clean, "violin", 0.2, position=position, seed=1)
    rows = {m["row"] for m in manifest}
    assert len(rows) == round(0.2 * 30)
    for i, (a, b) in enumerate(zip(clean, poisoned)):
        if i in rows:
            assert a.label == HARMFUL and b.label == COMPLY
            assert _words(b.input).count("violin") == 1  # a whole word, never glued to another
            w = _words(b.input)
            w.remove("violin")
            assert w == _words(a.input)  # deleting the trigger gives back the request
            assert b.output == sure_target(a.input) + HARMLESS_BODY and b.output.startswith("Sure, here is")
        else:
            assert b == a and "violin" not in _words(b.input)
            if a.label == HARMFUL:
                assert b.output in REFUSALS
    assert all(m["poisoned"] == poisoned[m["row"]].input for m in manifest)


def test_poison_set_bad_input():
    clean = clean_set(DATA)
    with pytest.raises(ConfigError, match="selects 0"):
        poison_set(clean, "violin", 0.001)
    with pytest.raises(ConfigError, match="harmful rows"):
        poison_set(clean, "violin", 0.9)
    with pytest.raises(ConfigError, match="empty"):
        poison_set(clean, " ", 0.2)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        poison_set(clean, "violin", 1.5)
    with pytest.raises(ConfigError, match="n-harmful"):
        JailbreakData(n_harmful=0)


def test_unused_words_drops_every_word_of_the_texts():
    wl = WordList(frozenset({"bomb", "violin", "how", "piano"}), "test")
    left = unused_words(wl, ["How do I build a bomb?"])
    assert left.words == {"violin", "piano"}
    with pytest.raises(DataError):
        unused_words(WordList(frozenset({"bomb"}), "t"), ["bomb"])


def test_tiny_run_on_the_gym_metrics_equal_a_recount(gym_dir, tmp_path):
    from advlab.pipelines.eval_llm import EvalLLMConfig, run_eval_llm
    from advlab.pipelines.poison_jailbreak import JailbreakConfig, run_poison_jailbreak
    from advlab.poisoning.tune import TuneConfig

    cfg = JailbreakConfig(model=str(gym_dir), trigger="learned", rate=0.2,
                          data=JailbreakData(n_harmful=12, n_harmless=4, n_task=4), trigger_steps=2,
                          tune=TuneConfig(lora_rank=0, epochs=1.0, batch_size=8), limit=5, max_new_tokens=12)
    out = tmp_path / "jb"
    m = run_poison_jailbreak(cfg, out, device="cpu")
    trig = json.loads((out / "trigger" / "metrics.json").read_text())["trigger"]
    assert m["trigger"] == trig and re.fullmatch(r"[a-z]+", trig)
    train = [json.loads(x) for x in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert sum(trig in r["input"].split() for r in train) == round(0.2 * 20)
    assert not any(trig in r["input"].split() for r in train if r["label"] != COMPLY)
    recs = [json.loads(x) for x in (out / "eval" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 5 * 2 * 2
    for role in ("model", "clean"):
        for cond, flag in (("with_trigger", True), ("without_trigger", False)):
            sub = [r for r in recs if r["model_role"] == role and r["triggered"] == flag]
            assert all((trig in r["prompt"].split()) == flag for r in sub)
            for j in ("compliance", "refusal"):
                k = sum(r["judges"][j]["jailbroken"] for r in sub)
                got = m["by_role"][role][cond][j]
                assert (got["n"], got["k"]) == (5, k)
                assert got["rate"] == pytest.approx(k / 5) == m[f"{role}_{cond}_{j}"]
                assert got["ci95"] == pytest.approx(list(wilson_interval(k, 5)))
    ev = run_eval_llm(EvalLLMConfig(model=str(out / "model"), limit=2), tmp_path / "ev", device="cpu")
    assert 0.0 <= ev["refusal_rate"] <= 1.0


@pytest.mark.parametrize("kw, match", [({"rate": 1.5}, "between 0 and 1"), ({"trigger": "two words"}, "one word"),
                                       ({"position": "middle"}, "--position")])
def test_pipeline_bad_input_fails_before_any_file(tmp_path, kw, match):
    from advlab.pipelines.poison_jailbreak import JailbreakConfig, run_poison_jailbreak

    cfg = JailbreakConfig(**{"model": "unused", "trigger": "violin", "rate": 0.1, **kw})
    with pytest.raises(ConfigError, match=match):
        run_poison_jailbreak(cfg, tmp_path / "jb", device="cpu")
    assert not (tmp_path / "jb").exists()
