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


def test_retain_examples_swap_roles_and_sampler_draws_them_apart(tmp_path):
    from advlab.training.llm.data import retain_examples
    from advlab.training.llm.sampling import step_batches

    ex = retain_examples("builtin:gym-harmless-test")
    assert ex and ex[0].target.lower().startswith(("sorry", "i'm sorry", "i can't"))
    assert ex[0].refusal.startswith("Sure")  # the answer to keep under the attack
    with pytest.raises(AdvlabError, match="no answer"):
        plain = tmp_path / "plain.csv"
        plain.write_text("goal,target\nHow do I bake bread?,Sure\n", encoding="utf-8")
        retain_examples(str(plain))
    mbs = step_batches(3, 0, n_adv=10, n_util=5, adv_per_step=4, util_per_step=2, grad_accum=2, n_retain=6,
                       retain_per_step=2)
    assert len(mbs) == 2
    for mb in mbs:  # each micro-batch: 2 harmful (< 10), 1 retain (10..15), 1 utility
        assert sum(i < 10 for i in mb.adv) == 2 and sum(10 <= i < 16 for i in mb.adv) == 1 and len(mb.util) == 1
    again = step_batches(3, 0, n_adv=10, n_util=5, adv_per_step=4, util_per_step=2, grad_accum=2, n_retain=6,
                         retain_per_step=2)
    assert [m.adv for m in again] == [m.adv for m in mbs]  # a step's draw depends only on (seed, step)



def test_adv_suffix_is_the_only_perturbed_span(gym):
    """With --adv-suffix the adversary perturbs exactly the slot's tokens, placed as attack llm's suffix
    attacks place theirs (same ids as the attack's own ChatFormatter segments)."""
    from advlab.models.formatting import ChatFormatter
    from advlab.training.llm.adversary import perturb_mask
    from advlab.training.llm.batches import ChatEncoder, pad_rows
    from advlab.training.llm.data import adversarial_examples, with_suffix

    _, ex = adversarial_examples("builtin:gym-harmful-test")
    assert with_suffix(ex[:2], "  ") == ex[:2]
    sx = with_suffix(ex[:2], "x x x")
    assert [(a.prompt, a.target, a.refusal, a.slot) for a in sx] == [(a.prompt, a.target, a.refusal, "x x x")
                                                                     for a in ex[:2]]
    _, tok = gym
    enc = ChatEncoder(tok, max_len=128)
    seg = ChatFormatter(tok).segments(ex[0].prompt, "x x x", ex[0].target)
    for row in (enc.encode_target(ex[0].prompt, ex[0].target, "x x x"), enc.encode(ex[0].prompt, "No.", "x x x")):
        assert list(row.prompt_ids) == seg.prompt_ids
        a, b = row.perturb
        assert tok.decode(list(row.prompt_ids[a:b])).split() == ["x", "x", "x"]
        pm = perturb_mask(pad_rows([row], 0), getattr(tok, "bos_token_id", None))[0]
        assert pm.nonzero().flatten().tolist() == list(range(a, b))
    plain = pad_rows([enc.encode_target(ex[0].prompt, ex[0].target)], 0)
    n = len(enc.prompt_ids(ex[0].prompt))
    assert plain["prompt_mask"][0].nonzero().flatten().tolist() == list(range(n))  # no slot: the whole prompt


def test_weighted_utility_draws_follow_the_weights_and_gym_mix():
    from collections import Counter

    from advlab.data.gym import gym_items
    from advlab.models.gym_config import GymConfig
    from advlab.training.llm.data import gym_utility
    from advlab.training.llm.sampling import cumulative_weights, step_batches

    assert cumulative_weights([1.0, 1.0, 1.0]) is None  # equal weights: the uniform draw, as before
    w = [1.0, 3.0, 0.0, 4.0]
    cw = cumulative_weights(w)
    counts = Counter(j for s in range(2000) for mb in step_batches(s, 0, 0, 4, 0, 4, util_cum_weights=cw)
                     for j in mb.util)
    for j, wj in enumerate(w):  # 8,000 draws: each frequency within 0.02 of weight / total
        assert abs(counts[j] / 8000 - wj / 8) < 0.02
    again = step_batches(7, 0, 0, 4, 0, 4, util_cum_weights=cw)
    assert [m.util for m in again] == [m.util for m in step_batches(7, 0, 0, 4, 0, 4, util_cum_weights=cw)]
    pairs, cfg = gym_utility(), GymConfig()
    kind = {(it.prompt, it.response): (it.kind, it.category) for k in ("task", "harmless", "harmful")
            for it in gym_items(k, "train")}
    mass = Counter()
    for p in pairs:
        k, c = kind[(p.prompt, p.response)]
        mass[k] += p.weight
        mass[c if k == "task" else "-"] += p.weight if k == "task" else 0
    total = sum(p.weight for p in pairs)
    assert abs(mass["task"] / total - cfg.mix_task) < 1e-9 and abs(mass["harmful"] / total - cfg.mix_harmful) < 1e-9
    tw = cfg.task_weights
    share = tw["repeat"] / sum(tw.get(c, 1.0) for c in {kind[(p.prompt, p.response)][1] for p in pairs
                                                          if kind[(p.prompt, p.response)][0] == "task"})
    assert abs(mass["repeat"] / total - cfg.mix_task * share) < 1e-9
