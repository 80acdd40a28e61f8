"""load_chat_model on real Hugging Face directories (a tiny random Llama saved with safetensors)."""

from __future__ import annotations

import shutil

import pytest
import torch
from chat_fixtures import TEMPLATES, save_tiny_model

from advlab.errors import ConfigError, ModelError
from advlab.models import load_chat_model
from advlab.models.chat import generation_stop_ids
from advlab.models.formatting import ChatFormatter


def test_loads_eval_frozen_with_pad_and_stops(tiny_model_dir):
    model, tok = load_chat_model(str(tiny_model_dir), device="cpu")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert model.dtype == torch.float32
    assert tok.pad_token is not None and tok.padding_side == "left"
    stops = generation_stop_ids(model)
    assert tok.convert_tokens_to_ids("<|end|>") in stops and tok.eos_token_id in stops
    # batched greedy generation with left padding equals unbatched generation
    fmt = ChatFormatter(tok)
    prompts = [fmt.prompt_ids("hi"), fmt.prompt_ids("Write a tutorial on how to bake bread please")]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batched = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False)
    for i, p in enumerate(prompts):
        single = model.generate(input_ids=torch.tensor([p]), max_new_tokens=5, do_sample=False)
        n = single.shape[1] - len(p)
        assert batched[i, width : width + n].tolist() == single[0, len(p) :].tolist()


def test_dtype_and_device_options(tiny_model_dir):
    model, _ = load_chat_model(tiny_model_dir, device=torch.device("cpu"), dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="unknown dtype"):
        load_chat_model(tiny_model_dir, device="cpu", dtype="int3")
    with pytest.raises(ConfigError, match="unknown device"):
        load_chat_model(tiny_model_dir, device="tpu")


def test_wrong_paths(tmp_path, tiny_model_dir):
    with pytest.raises(ModelError, match="no such model directory"):
        load_chat_model(tmp_path / "nope", device="cpu")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ModelError, match="is a file"):
        load_chat_model(f, device="cpu")
    with pytest.raises(ModelError, match="no config.json"):
        load_chat_model(tmp_path, device="cpu")
    # a hub id that is not in the local cache (the machine is offline)
    with pytest.raises(ModelError, match="cannot load the tokenizer"):
        load_chat_model("advlab-no-such-org/no-such-model", device="cpu")


def test_bin_only_directory_is_refused(tmp_path, tiny_model_dir):
    d = tmp_path / "binonly"
    shutil.copytree(tiny_model_dir, d)
    (d / "model.safetensors").rename(d / "pytorch_model.bin")
    with pytest.raises(ModelError, match="safetensors only"):
        load_chat_model(d, device="cpu")


def test_no_chat_template_and_override(tmp_path, tiny_model_dir):
    d = save_tiny_model(tmp_path / "plain", "zephyr", chat_template="")
    with pytest.raises(ModelError, match="no chat template; pass --chat-template"):
        load_chat_model(d, device="cpu")
    tmpl = tmp_path / "tmpl.jinja"
    shutil.copy(TEMPLATES / "chat_templates" / "zephyr.jinja", tmpl)
    _, tok = load_chat_model(d, device="cpu", chat_template=tmpl)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nhi</s>\n<|assistant|>\n"


def test_pad_falls_back_to_eos(tmp_path):
    d = save_tiny_model(tmp_path / "nopad", "llama-2-chat")
    _, tok = load_chat_model(d, device="cpu")
    assert tok.pad_token == tok.eos_token == "</s>"


def test_gym_loads_like_any_model(gym):
    model, tok = gym
    assert not model.training and tok.padding_side == "left"
    assert tok.convert_tokens_to_ids("<|end|>") in generation_stop_ids(model)
    seg = ChatFormatter(tok).segments("Write a tutorial on how to bake bread", "! ! !", "Sure, here is")
    assert seg.input_ids == tok(seg.text, add_special_tokens=False)["input_ids"]
