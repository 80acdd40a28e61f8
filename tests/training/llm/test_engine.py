"""Training engine: accumulation = one big batch, bit-exact resume, LoRA checks, export, schedule."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from advlab.errors import ConfigError
from advlab.training.llm.batches import pad_rows
from advlab.training.llm.engine import Engine, EngineConfig, cosine_lambda, sft_loss


def _weights(engine):
    return {k: v.detach().clone() for k, v in engine.raw.state_dict().items()}


def _engine(gym, **kw):
    model, _ = gym
    cfg = EngineConfig(**{"max_steps": 4, "lr": 1e-3, "lora_rank": 0, "lora_dropout": 0.0, **kw})
    return Engine(copy.deepcopy(model), cfg, sft_loss)


def test_accumulation_equals_one_batch(gym, gym_rows):
    _, tok = gym
    # lr 1e-4: Adam turns float round-off on near-zero gradient coordinates into steps of up to ~lr·1e-3
    whole = _engine(gym, lr=1e-4)
    split = _engine(gym, lr=1e-4)
    full = pad_rows(gym_rows, tok.pad_token_id)
    halves = [pad_rows(gym_rows[:4], tok.pad_token_id), pad_rows(gym_rows[4:], tok.pad_token_id)]
    for _ in range(2):
        a = whole.train_step([full])
        b = split.train_step(halves)
    assert a["forward_passes"] == b["forward_passes"] == 8
    assert a["utility"] == pytest.approx(b["utility"], abs=1e-5)
    wa, wb = _weights(whole), _weights(split)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-6
    assert max(float((wa[k] - gym[0].state_dict()[k]).abs().max()) for k in wa) > 1e-5  # it trained


def test_resume_is_bit_exact(gym, gym_rows, tmp_path):
    _, tok = gym
    batch = [pad_rows(gym_rows, tok.pad_token_id)]
    ref = _engine(gym, lora_rank=4, lora_dropout=0.5)
    for _ in range(4):
        ref.train_step(batch)
    first = _engine(gym, lora_rank=4, lora_dropout=0.5)
    for _ in range(2):
        first.train_step(batch)
    first.save(tmp_path / "ck")
    assert (tmp_path / "ck" / "model.safetensors").exists()
    torch.manual_seed(123)  # the RNG (LoRA dropout) must come from the checkpoint
    second = _engine(gym, lora_rank=4, lora_dropout=0.5)
    second.load(tmp_path / "ck")
    assert second.step == 2
    for _ in range(2):
        second.train_step(batch)
    wa, wb = _weights(ref), _weights(second)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_lora_target_checks_and_export(gym, gym_rows, tmp_path):
    from advlab.models import load_chat_model

    with pytest.raises(ConfigError, match="not in the model"):
        _engine(gym, lora_rank=4, lora_target_modules=("q_proj", "no_such_proj"))
    eng = _engine(gym, lora_rank=4, lora_target_modules=("q_proj", "v_proj"), lr=1e-2)
    trainable = [n for n, p in eng.raw.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(("q_proj" in n or "v_proj" in n) for n in trainable)
    _, tok = gym
    batch = pad_rows(gym_rows, tok.pad_token_id)
    for _ in range(3):
        eng.train_step([batch])
    eng.raw.eval()
    with torch.no_grad():
        want = eng.raw(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    eng.export(tmp_path / "m", tok)
    model, _ = load_chat_model(str(tmp_path / "m"), device="cpu")
    with torch.no_grad():
        got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert float((got - want).abs().max()) < 1e-4


def test_full_finetune_trains_everything(gym):
    eng = _engine(gym)
    assert all(p.requires_grad for p in eng.raw.parameters())


def test_cosine_schedule_closed_form():
    f = cosine_lambda(EngineConfig(max_steps=10, warmup_steps=2))
    assert f(0) == pytest.approx(1 / 3) and f(1) == pytest.approx(2 / 3)
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(10) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kw", [{"max_steps": 0}, {"lora_rank": -1}, {"lr": 0}, {"lora_dropout": 1.0}])
def test_bad_config(kw):
    with pytest.raises(ConfigError):
        EngineConfig(**kw)
