"""The tune job resumes from its checkpoint to the same weights as an uninterrupted run."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from poison_fixtures import build_model, build_word_tokenizer, toy_task

from advlab.jobs import run_job
from advlab.poisoning.jobs import TuneJob, TuneJobConfig
from advlab.poisoning.tune import TuneConfig


class _Interrupting(TuneJob):
    def run_item(self, item, tick):
        if item["start"] >= 4:
            raise KeyboardInterrupt
        return super().run_item(item, tick)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_tune_resume_equals_one_run(tmp_path):
    data = tmp_path / "task.jsonl"
    data.write_text("".join(json.dumps(ex.to_row()) + "\n" for ex in toy_task(24)))
    tok, base = build_word_tokenizer(), build_model(len(build_word_tokenizer()))
    cfg = TuneJobConfig("tiny", str(data), TuneConfig(epochs=2, batch_size=6, lr=1e-3, lora_rank=4, seed=0),
                        checkpoint_every=2)
    one = run_job(TuneJob(cfg, tmp_path / "one", "cpu", (copy.deepcopy(base), tok)), tmp_path / "one",
                  progress=False, report=False)
    assert one.metrics["steps"] == 8
    with pytest.raises(KeyboardInterrupt):
        run_job(_Interrupting(cfg, tmp_path / "two", "cpu", (copy.deepcopy(base), tok)), tmp_path / "two",
                progress=False, report=False)
    assert not (tmp_path / "two" / "model.safetensors").exists()
    two = run_job(TuneJob(cfg, tmp_path / "two", "cpu", (copy.deepcopy(base), tok)), tmp_path / "two",
                  progress=False, report=False)
    assert two.resumed and two.metrics["final_loss"] == pytest.approx(one.metrics["final_loss"], abs=1e-6)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(a[k], base.state_dict()[k]) for k in a if k in base.state_dict())
