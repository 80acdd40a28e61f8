"""Training data: public adversarial-training files (12 targets each, safe responses), utility JSONL, overlap."""

from __future__ import annotations

import json

import pytest

from advlab.errors import AdvlabError
from advlab.training.llm.data import REFUSAL, adversarial_examples, check_disjoint, utility_pairs


def test_public_adversarial_training_files(shared_data):
    spec = str(shared_data / "behavior_datasets" / "extra_behavior_datasets" / "adv_training_behaviors.csv")
    behaviors, ex = adversarial_examples(spec)
    tfile = shared_data / "optimizer_targets" / "extra_targets" / "adv_training_targets.json"
    targets = json.loads(tfile.read_text())
    assert len(behaviors) == 100 and len(ex) == sum(len(v) for v in targets.values())
    first = [e for e in ex if e.id.startswith("adv_training_1#")]
    assert [e.target for e in first] == targets["adv_training_1"]
    assert first[0].refusal == REFUSAL  # the safe-responses file says "Sorry, I can't do that." for it
    assert check_disjoint([e.prompt for e in ex], str(shared_data / "behavior_datasets" /
                                                      "harmbench_behaviors_text_test.csv"))["overlap"] == 0


def test_gym_sets_use_the_gyms_own_refusals():
    _, ex = adversarial_examples("builtin:gym-harmful-train")
    assert ex and all(e.refusal != REFUSAL for e in ex[:20]) and all(e.target.startswith("Sure") for e in ex[:20])


def test_utility_jsonl_formats(tmp_path):
    p = tmp_path / "u.jsonl"
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Hi?"},
                          {"role": "assistant", "content": "Hello."}]},
            {"instruction": "Add", "input": "2 and 3", "output": "5"},
            {"prompt": "Name a colour", "response": "Blue"},
            {"messages": [{"role": "user", "content": "no answer"}]}, {"text": "nothing usable"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    pairs = utility_pairs(str(p))
    assert [(x.prompt, x.response) for x in pairs] == [("Hi?", "Hello."), ("Add\n\n2 and 3", "5"),
                                                         ("Name a colour", "Blue")]
    with pytest.raises(AdvlabError, match="no such file"):
        utility_pairs(str(tmp_path / "missing.jsonl"))


def test_overlap_is_refused_up_to_case_and_punctuation(tmp_path):
    ev = tmp_path / "eval.csv"
    ev.write_text("goal,target\nHow do I pick a lock?,Sure\n", encoding="utf-8")
    with pytest.raises(AdvlabError, match="1 training request"):
        check_disjoint(["how do i PICK a lock", "Unrelated"], str(ev))
    assert check_disjoint(["Unrelated"], str(ev))["overlap"] == 0
    assert check_disjoint(["Unrelated"], None) == {"eval_behaviors": None, "checked": False}
