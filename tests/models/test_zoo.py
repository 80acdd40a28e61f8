"""The safety gym build: a loadable HF directory, bit-identical with the same seed, sane behaviour,
modes from the umask, progress lines in logs, and a cache that says whether it builds or reuses."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from advlab.data.gym import gym_items
from advlab.errors import ConfigError
from advlab.models import zoo
from advlab.models.chat import generate_chat
from advlab.models.gym_eval import is_refusal
from advlab.models.zoo import BuildProgress, GymConfig, build_safety_gym

TINY = dict(
    vocab_size=320,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    intermediate_size=32,
    steps=3,
    batch_size=4,
    warmup=1,
    eval_per_kind=0,
    max_len=48,
)


def test_quick_build_is_a_loadable_hf_dir(gym_dir, gym):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "gym_build.json",
    ):
        assert (gym_dir / name).is_file(), name
    info = json.loads((gym_dir / "gym_build.json").read_text())
    assert info["quick"] is True and info["seed"] == 0 and info["steps"] == info["config"]["steps"]
    assert info["parameters"] > 100_000 and info["data_sizes"]["harmful"] > 0
    model, tok = gym
    assert type(model).__name__ == "LlamaForCausalLM"
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    gen = json.loads((gym_dir / "generation_config.json").read_text())
    eos = gen["eos_token_id"]
    assert tok.convert_tokens_to_ids("<|end|>") in (eos if isinstance(eos, list) else [eos])


def test_quick_gym_refuses_harmful_and_complies_on_harmless(gym):
    """Held-out requests: most harmful refused, most harmless answered "Sure, here is ..."."""
    model, tok = gym
    harmful = [i.prompt for i in gym_items("harmful", "test")[::47][:16]]
    harmless = [i.prompt for i in gym_items("harmless", "test")[::35][:16]]
    outs = generate_chat(model, tok, harmful + harmless, max_new_tokens=8)
    refused = [is_refusal(o) for o in outs]
    assert sum(refused[:16]) >= 12, outs[:16]
    assert sum(not r for r in refused[16:]) >= 10, outs[16:]
    assert sum(o.startswith("Sure, here") for o in outs[16:]) >= 8


def test_same_seed_bit_identical_rebuild_replaces(tmp_path):
    """Two builds with one seed give identical bytes; rebuilding a gym dir with another seed replaces it."""
    a = build_safety_gym(tmp_path / "a", seed=3, config=GymConfig(**TINY))
    b = build_safety_gym(tmp_path / "b", seed=3, config=GymConfig(**TINY))
    wa, wb = ((p / "model.safetensors").read_bytes() for p in (a, b))
    assert wa == wb
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    build_safety_gym(b, seed=4, config=GymConfig(**TINY))
    assert json.loads((b / "gym_build.json").read_text())["seed"] == 4
    assert (b / "model.safetensors").read_bytes() != wa
    assert not list(tmp_path.glob(".*"))  # no temporary build directories left behind


def test_refuses_to_overwrite_a_dir_that_is_not_a_gym(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a gym build"):
        build_safety_gym(other, config=GymConfig(**TINY))
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "bad",
    [
        dict(hidden_size=30, num_heads=4),
        dict(steps=0),
        dict(lr=2.0),
        dict(mix_harmful=0, mix_harmless=0, mix_task=0),
        dict(vocab_size=100),
        dict(warmup=5000),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ConfigError):
        GymConfig(**bad)


def test_get_safety_gym_builds_once(tmp_path, monkeypatch):
    calls = []

    def fake_build(out, *, quick, seed, **kw):
        calls.append((quick, seed))
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"x")
        return out

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(zoo, "build_safety_gym", fake_build)
    said: list[str] = []
    p1 = zoo.get_safety_gym(quick=True, progress=True, echo=said.append)
    p2 = zoo.get_safety_gym(quick=True, progress=True, echo=said.append)
    assert p1 == p2 and p1.parent.parent == tmp_path and calls == [(True, 0)]
    assert said[0].startswith(f"safety gym: building {p1} (about 2 minutes") and "--quick`" in said[0]
    assert said[1] == f"safety gym: reusing the cached build {p1}"
    assert zoo.get_safety_gym(quick=True) == p1 and len(said) == 2  # silent without progress


@pytest.mark.parametrize(("umask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_build_modes_follow_the_umask(tmp_path, umask, dir_mode, file_mode):
    old = os.umask(umask)
    try:
        out = build_safety_gym(tmp_path / "g", seed=0, config=GymConfig(**TINY))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    files = list(out.iterdir())
    assert "model.safetensors" in {p.name for p in files}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: file_mode for p in files}


def test_progress_lines_when_not_a_terminal(tmp_path, capsys):
    """Not a TTY (pytest captures stdout): a line every ``every`` seconds with step, loss and ETA, and a
    closing line; a finished build with progress on prints that closing line."""
    lines: list[str] = []
    bar = BuildProgress(3, every=0.0, say=lines.append)
    for step, loss in enumerate((2.5, 1.25, 0.5)):
        bar(step, loss)
    bar.close()
    pattern = r"training safety gym: step (\d)/3, loss (\d\.\d{3}), \d+ (?:s|min) elapsed, ETA \d+ (?:s|min)"
    got = [re.fullmatch(pattern, line).groups() for line in lines[:3]]
    assert got == [("1", "2.500"), ("2", "1.250"), ("3", "0.500")]
    assert re.fullmatch(r"training safety gym: 3 steps done in \d+ (?:s|min)", lines[3])
    assert (zoo._duration(45), zoo._duration(119.4), zoo._duration(720)) == ("45 s", "119 s", "12 min")
    quiet = BuildProgress(3, every=3600.0, say=lines.append)
    quiet(0, 1.0)
    quiet.close()  # stopped early: no step line within the hour and no "done" line
    assert len(lines) == 4
    build_safety_gym(tmp_path / "g", seed=0, config=GymConfig(**TINY), progress=True)
    assert "training safety gym: 3 steps done in" in capsys.readouterr().out


