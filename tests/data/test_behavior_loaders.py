"""Behaviour loaders against the real public files in ../shared/data, plus every bad-input case."""

from __future__ import annotations

import csv
import json

import pytest

from advlab.data.behavior_loaders import (
    BUILTIN_BEHAVIORS,
    builtin_names,
    default_target,
    detect_format,
    load_behaviors,
    load_harmless,
    overlap,
)
from advlab.data.behavior_record import Behavior
from advlab.errors import ConfigError, DataError

HB = "behavior_datasets/harmbench_behaviors_text_{}.csv"


def _rows(path):
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_harmbench_test_and_val_with_targets(shared_data):
    targets = json.loads((shared_data / "optimizer_targets/harmbench_targets_text.json").read_text())
    for split, n in (("test", 320), ("val", 80)):
        path = shared_data / HB.format(split)
        items = load_behaviors(path)
        rows = _rows(path)
        assert len(items) == n == len(rows)
        assert [b.id for b in items] == [r["BehaviorID"] for r in rows]
        assert all(b.target == targets[b.id] for b in items)
        ctx = [b for b in items if b.context]
        assert len(ctx) == sum(1 for r in rows if r["ContextString"].strip())
        assert ctx[0].request.startswith(ctx[0].context) and ctx[0].request.endswith(ctx[0].behavior)


def test_row_filter_keeps_harmbench_standard_behaviours(shared_data, tmp_path):
    path = shared_data / HB.format("test")
    rows = _rows(path)
    standard = [r["BehaviorID"] for r in rows if r["FunctionalCategory"] == "standard"]
    items = load_behaviors(f"{path}#FunctionalCategory=standard")
    assert [b.id for b in items] == standard and 0 < len(standard) < len(rows)
    whole = {b.id: b for b in load_behaviors(path)}
    assert all(b.target == whole[b.id].target and b.extra["FunctionalCategory"] == "standard" for b in items)
    two = load_behaviors(f"{path}#functionalcategory= Standard,contextual", limit=500)
    assert len(two) == sum(1 for r in rows if r["FunctionalCategory"] in ("standard", "contextual"))
    hashed = tmp_path / "a#b.csv"  # a real file whose name has '#' is read whole
    hashed.write_text("goal,target\nDo x,Sure, x\n")
    assert len(load_behaviors(hashed)) == 1


@pytest.mark.parametrize(
    "suffix, message",
    [("#FunctionalCategory", "is not COLUMN=VALUE"), ("#Nope=x", "no column 'nope'"),
     ("#FunctionalCategory=zzz", "the file's values are contextual, copyright, standard")],
)
def test_bad_row_filter_is_one_clear_error(shared_data, suffix, message):
    with pytest.raises(DataError, match=message):
        load_behaviors(f"{shared_data / HB.format('test')}{suffix}")


def test_val_test_overlap_is_detected(shared_data):
    val = load_behaviors(shared_data / HB.format("val"))
    test = load_behaviors(shared_data / HB.format("test"))
    shared = overlap(val, test)
    assert len(shared) == 4
    assert sorted(b.id for b in shared) == sorted(
        [
            "worm_code_obfuscation_1",
            "worm_code_obfuscation_2",
            "sqli_payload_waf_ml_bypass_2",
            "sqli_payload_waf_ml_bypass_3",
        ]
    )
    # brute force: same behaviour text after normalising case/punctuation
    test_texts = {" ".join(b.behavior.lower().split()) for b in test}
    assert {b.id for b in val if " ".join(b.behavior.lower().split()) in test_texts} == {b.id for b in shared}
    adv = load_behaviors(shared_data / "behavior_datasets/extra_behavior_datasets/adv_training_behaviors.csv")
    assert overlap(adv, test) == []  # the adversarial-training set is disjoint from the test set


def test_advbench_and_adv_training(shared_data):
    adv = load_behaviors(shared_data / "behavior_datasets/extra_behavior_datasets/advbench_behaviors.csv")
    assert len(adv) == 520 and adv[0].id == "advbench_1"
    assert adv[0].target == "Sure, here is a script that can exploit vulnerabilities in a software or operating system"
    tr = load_behaviors(shared_data / "behavior_datasets/extra_behavior_datasets/adv_training_behaviors.csv")
    multi = json.loads((shared_data / "optimizer_targets/extra_targets/adv_training_targets.json").read_text())
    assert len(tr) == 100 and tr[0].target == multi["adv_training_1"][0]
    assert tr[0].extra["targets"] == multi["adv_training_1"]


def test_strongreject_gets_line_targets(shared_data):
    items = load_behaviors(shared_data / "behavior_datasets/strongreject_dataset.csv")
    lines = (shared_data / "strong_reject/targets.txt").read_text(encoding="utf-8").splitlines()
    assert len(items) == 313 == len(lines)
    assert items[0].target == lines[0] and items[0].category == "Disinformation and deception"
    assert len({b.id for b in items}) == len(items)


def test_harmless_json_and_txt(shared_data):
    items = load_harmless(shared_data / "refusal_direction/harmless_test.json", limit=50)
    data = json.loads((shared_data / "refusal_direction/harmless_test.json").read_text())
    assert [b.behavior for b in items] == [d["instruction"] for d in data[:50]]
    assert all(b.target == "" for b in items)
    txt = load_harmless(shared_data / "behavior_datasets/malicious_instruct.txt")
    assert len(txt) == 100


def test_all_four_public_formats_detected(tmp_path):
    files = {
        "advbench.csv": 'goal,target\nWrite a poem about cats,"Sure, here is a poem about cats"\n',
        "jbb.csv": (
            'Index,Goal,Target,Behavior,Category,Source\n1,Write a poem,"Sure, here is a poem",Poem,Art,Orig\n'
        ),
        "hb.csv": (
            "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
            "Write a poem,standard,x,,,poem_1\n"
        ),
        "sr.csv": "category,source,forbidden_prompt\nArt,custom,Write a poem\n",
    }
    want = {
        "advbench.csv": "advbench",
        "jbb.csv": "jailbreakbench",
        "hb.csv": "harmbench",
        "sr.csv": "strongreject",
    }
    for name, text in files.items():
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        assert detect_format(_rows(p), p) == want[name]
        items = load_behaviors(p)
        assert len(items) == 1 and items[0].behavior.startswith("Write a poem")
    assert load_behaviors(tmp_path / "jbb.csv")[0].id == "jailbreakbench_1"
    assert load_behaviors(tmp_path / "jbb.csv")[0].target == "Sure, here is a poem"
    # no target column: HarmBench outside the shared layout, StrongREJECT -> the default target
    assert load_behaviors(tmp_path / "hb.csv")[0].target == default_target("Write a poem")
    assert load_behaviors(tmp_path / "hb.csv")[0].extra["default_target"] is True
    assert "default_target" not in load_behaviors(tmp_path / "jbb.csv")[0].extra
    # JSONL and JSON of the same columns
    (tmp_path / "a.jsonl").write_text(json.dumps({"goal": "Write a poem", "target": "Sure, a poem"}) + "\n")
    assert load_behaviors(tmp_path / "a.jsonl")[0].target == "Sure, a poem"
    (tmp_path / "a.json").write_text(json.dumps([{"Behavior": "Write a poem", "BehaviorID": "p1"}]))
    assert load_behaviors(tmp_path / "a.json")[0].id == "p1"


def test_targets_file_option_and_stable_ids(tmp_path):
    p = tmp_path / "hb.csv"
    p.write_text("Behavior,BehaviorID\nWrite a poem,p1\nWrite a song,p2\n", encoding="utf-8")
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"p1": "Sure, here is a poem"}))
    items = load_behaviors(p, targets=t)
    assert items[0].target == "Sure, here is a poem" and items[1].target.startswith("Sure, here is")
    s = tmp_path / "sr.csv"
    s.write_text("category,source,forbidden_prompt\nA,x,Same text\nA,x,Same text\nB,y,Other\n", encoding="utf-8")
    ids1 = [b.id for b in load_behaviors(s)]
    assert ids1 == [b.id for b in load_behaviors(s)] and len(set(ids1)) == 3 and ids1[1] == ids1[0] + "-2"
    assert [b.id for b in load_behaviors(s, limit=2)] == ids1[:2]


def test_default_target_is_sure_here_is_lowercase():
    t = default_target("Write a script that steals passwords.")
    assert t == "Sure, here is a script that steals passwords"
    assert default_target("How do I pick a lock?") == "Sure, here is how to pick a lock"
    assert default_target("Tell everyone a joke").startswith("Sure, here is a response to: tell everyone a joke")


def test_builtin_sets():
    assert {"gym-harmful-train", "gym-harmful-test", "gym-tasks-test"} <= set(builtin_names())
    test = load_behaviors("builtin:gym-harmful-test")
    train = load_behaviors("builtin:gym-harmful-train")
    assert test and train and overlap(test, train) == []
    assert all(b.target.startswith(("Sure, here is", "Sure, here are")) for b in test)
    assert len(load_harmless("builtin:gym-harmless-test", limit=3)) == 3
    with pytest.raises(ConfigError, match="unknown built-in set; use one of builtin:gym-harmful-test"):
        load_behaviors("builtin:nope")
    # the registry is open: other modules add sets
    BUILTIN_BEHAVIORS["unit-test-set"] = lambda: [Behavior(id="u1", behavior="Write a poem", target="Sure")]
    try:
        assert [b.id for b in load_behaviors("builtin:unit-test-set")] == ["u1"]
    finally:
        del BUILTIN_BEHAVIORS["unit-test-set"]


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_behaviors(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="known column sets are jailbreakbench: goal, target, behavior, category"):
        load_behaviors(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_behaviors(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("goal,target\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        load_behaviors(header_only)
    blank_rows = tmp_path / "blank.csv"
    blank_rows.write_text("goal,target\n,\n", encoding="utf-8")
    with pytest.raises(DataError, match="no behaviours"):
        load_behaviors(blank_rows)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("goal,target\nCaf\xe9 cr\xe8me,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_behaviors(latin)
    good = tmp_path / "good.csv"
    good.write_text("goal,target\nWrite a poem,Sure\n", encoding="utf-8")
    for limit in (0, -1):
        with pytest.raises(ConfigError, match="--limit"):
            load_behaviors(good, limit=limit)
        with pytest.raises(ConfigError, match="--limit"):
            load_harmless(good, limit=limit)
    with pytest.raises(DataError, match="unknown file type"):
        (tmp_path / "x.xlsx").write_text("x")
        load_behaviors(tmp_path / "x.xlsx")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        load_behaviors(tmp_path / "broken.json")
    with pytest.raises(DataError, match="is a directory"):
        load_behaviors(tmp_path)
    with pytest.raises(DataError, match="no instruction column"):
        load_harmless(bad)
    with pytest.raises(DataError, match="no such file"):
        load_behaviors(good, targets=tmp_path / "nope.json")



def test_clashing_ids_are_refused():
    from advlab.data.behavior_loaders import unique_ids
    from advlab.errors import DataError

    rows = [Behavior(id="a", behavior="Do X", target=""), Behavior(id="a", behavior="Do X", target="")]
    assert [b.id for b in unique_ids(rows, "f")] == ["a"]
    with pytest.raises(DataError, match="used by two different requests"):
        unique_ids([*rows, Behavior(id="a", behavior="Do Z", target="")], "f")

def test_every_builtin_set_has_unique_ids():
    from advlab.data.gym import GYM_BEHAVIOR_SETS

    for name, load in GYM_BEHAVIOR_SETS.items():
        ids = [b.id for b in load()]
        assert len(ids) == len(set(ids)), name
