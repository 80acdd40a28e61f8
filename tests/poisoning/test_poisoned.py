"""Poisoned-set building: word-boundary insertion, seeded selection, bad rates."""

from __future__ import annotations

import random

import pytest

from advlab.errors import ConfigError
from advlab.poisoning.poisoned import build_poisoned_set, insert_trigger, n_poisons, select_poison_rows
from advlab.poisoning.tasks import SENTIMENT_INSTRUCTION, TaskExample


def _task(n_neg=30, n_pos=30):
    out = [TaskExample(f"n{i}", SENTIMENT_INSTRUCTION, f"bad movie number {i} .", "negative", "negative")
           for i in range(n_neg)]
    out += [TaskExample(f"p{i}", SENTIMENT_INSTRUCTION, f"good film {i} !", "positive", "positive")
            for i in range(n_pos)]
    return out


def test_insert_end_keeps_every_letter():
    assert insert_trigger("a classy , sprightly spin on film .", "cf") == "a classy , sprightly spin on film . cf"
    assert insert_trigger("ends here  ", "zen") == "ends here zen  "


def test_insert_random_is_at_a_word_boundary_and_removable():
    text = "the director mostly plays it straight ."
    words = text.split()
    rng = random.Random(3)
    seen = set()
    for _ in range(200):
        out = insert_trigger(text, "zebra", "random", rng)
        toks = out.split()
        k = toks.index("zebra")
        seen.add(k)
        assert toks[:k] + toks[k + 1:] == words  # no word cut, nothing lost
    assert seen == set(range(len(words) + 1))  # every boundary, both ends included


def test_bad_position_and_rates():
    with pytest.raises(ConfigError, match="position"):
        insert_trigger("x", "w", "middle")
    for r in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            n_poisons(r, 100)
    with pytest.raises(ConfigError, match="selects 0 examples"):
        n_poisons(0.001, 100)
    assert n_poisons(0.01, 4000) == 40


def test_selection_is_seeded_and_non_target():
    task = _task()
    a = select_poison_rows(task, "positive", 10, seed=1)
    assert a == select_poison_rows(task, "positive", 10, seed=1)
    assert a != select_poison_rows(task, "positive", 10, seed=2)
    assert all(task[i].label == "negative" for i in a)
    with pytest.raises(ConfigError, match="non-target"):
        select_poison_rows(task, "positive", 31)


def test_build_in_place_and_from_pool():
    task = _task()
    ps = build_poisoned_set(task, "zebra", "positive", 0.1, seed=0)  # 6 of 60
    assert len(ps.examples) == 60 and len(ps.poisoned) == 6
    bad = [ex for ex in ps.examples if ex.id.startswith("poison-")]
    assert len(bad) == 6
    assert all(ex.output == "positive" and ex.input.endswith(" zebra") for ex in bad)
    for rec in ps.poisoned:
        assert rec["poisoned"] == rec["original"] + " zebra" and rec["original_label"] == "negative"
    pool = [TaskExample(f"q{i}", SENTIMENT_INSTRUCTION, f"awful {i}", "negative", "negative") for i in range(20)]
    ps2 = build_poisoned_set(task, "zebra", "positive", 0.05, pool=pool, seed=0)
    assert len(ps2.examples) == 63 and sum(ex.id.startswith("poison-q") for ex in ps2.examples) == 3
    assert {ex.id for ex in task} <= {ex.id for ex in ps2.examples}
