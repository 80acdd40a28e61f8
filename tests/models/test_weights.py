"""A damaged safetensors file is named, with how to fix it, before transformers or torch see it."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from advlab.errors import ModelError
from advlab.models.weights import check_safetensors, safetensors_problem


def test_a_complete_file_passes_and_a_truncated_one_is_named(tmp_path):
    f = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64), "b": torch.ones(64)}, str(f))
    assert safetensors_problem(f) is None
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 100])  # an interrupted download
    assert "truncated" in safetensors_problem(f)
    f.write_bytes(data[:20])  # cut inside the header
    assert "runs past the end" in safetensors_problem(f)
    with pytest.raises(ModelError, match=r"model\.safetensors: corrupt safetensors file .*download it again"):
        check_safetensors(tmp_path)


def test_load_chat_model_names_the_truncated_file(gym_dir, tmp_path):
    from advlab.models import load_chat_model

    broken = tmp_path / "gym"
    shutil.copytree(gym_dir, broken)
    w = broken / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1000])
    with pytest.raises(ModelError) as exc:
        load_chat_model(str(broken))
    msg = str(exc.value)
    assert str(w) in msg and "rebuild" in msg and "\n" not in msg


def test_load_classifier_names_the_truncated_file(tmp_path):
    from advlab.models.classifiers import build_classifier, load_classifier, save_classifier

    model = build_classifier("linear", (1, 8, 8), 10)
    save_classifier(model, tmp_path / "clf", {"arch": "linear", "input_shape": [1, 8, 8], "num_classes": 10})
    w = tmp_path / "clf" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-64])
    with pytest.raises(ModelError, match="corrupt safetensors file"):
        load_classifier(tmp_path / "clf")
