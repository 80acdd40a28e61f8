"""Task loading: formats detected from the fields, missing labels refused, the gym default."""

from __future__ import annotations

import json

import pytest

from advlab.errors import ConfigError, DataError
from advlab.poisoning.tasks import check_target, label_responses, load_task


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sst2_file(shared_data):
    ex = load_task(shared_data / "sst2" / "val.jsonl")
    assert len(ex) == 300 and {e.label for e in ex} == {"negative", "positive"}
    assert ex[0].prompt.startswith("What is the sentiment of this sentence: '") and ex[0].input in ex[0].prompt
    assert label_responses(ex) == {"negative": "negative", "positive": "positive"}


def test_instruction_and_chat_formats(tmp_path):
    ins = _write(tmp_path / "i.jsonl", [
        {"instruction": "Classify.", "input": "great", "output": "It is positive.", "label": "pos"},
        {"instruction": "Classify.", "input": "bad", "output": "It is negative.", "label": "neg"},
    ])
    a = load_task(ins)
    assert a[0].prompt == "Classify.\n\ngreat" and a[0].output == "It is positive." and a[1].label == "neg"
    assert label_responses(a)["pos"] == "It is positive."
    chat = _write(tmp_path / "c.jsonl", [
        {"messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "yes"}],
         "label": "y"},
    ])
    c = load_task(chat)
    assert c[0].prompt == "hi there" and c[0].output == "yes" and c[0].input == "hi there"


@pytest.mark.parametrize("row,label", [
    ({"text": "x", "label": 1}, "label_text"),
    ({"instruction": "a", "input": "b", "output": "c"}, "label"),
    ({"messages": [{"role": "user", "content": "u"}]}, "label"),
])
def test_missing_label_field_is_a_config_error(tmp_path, row, label):
    with pytest.raises(ConfigError, match=f"no '{label}' field"):
        load_task(_write(tmp_path / "t.jsonl", [row]))


def test_unknown_fields_and_files(tmp_path):
    with pytest.raises(DataError, match="match no task format"):
        load_task(_write(tmp_path / "t.jsonl", [{"foo": 1}]))
    with pytest.raises(DataError, match="no such file"):
        load_task(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="unknown built-in"):
        load_task("builtin:nope")


def test_gym_builtin_and_target_check():
    ex = load_task("builtin:gym-sentiment")
    assert ex and {e.label for e in ex} == {"negative", "positive"}
    assert all(e.input in e.prompt for e in ex)
    assert check_target(ex, "positive") == "positive"
    with pytest.raises(ConfigError, match="not a label"):
        check_target(ex, "Positive")
