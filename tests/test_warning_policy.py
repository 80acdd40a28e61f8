"""The suite's deprecation policy (tests/conftest.py): a deprecated library call made by advlab fails, one
the library makes inside itself does not. Checked with transformers' real ``past_key_values`` deprecation."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

PROBE = "def forward(model, **kw):\n    return model(**kw)\n"


def _caller(module_name: str):
    """A function whose frame belongs to ``module_name`` (as if defined there)."""
    namespace = {"__name__": module_name}
    exec(compile(PROBE, f"<{module_name}>", "exec"), namespace)  # noqa: S102 - a fixed two-line probe
    return namespace["forward"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()


def test_deprecated_keyword_from_advlab_fails(tiny):
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(FutureWarning, match="past_key_values.*deprecated call made by advlab"):
        _caller("advlab.probe")(tiny, input_ids=ids, past_key_values=DynamicCache(config=tiny.config))
    # the current API passes
    out = _caller("advlab.probe")(tiny, input_ids=ids, cache=DynamicCache(config=tiny.config), use_cache=True)
    assert out.cache.get_seq_length() == 3


def test_same_call_from_elsewhere_only_warns(tiny):
    ids = torch.tensor([[1, 2, 3]])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _caller("someone_else")(tiny, input_ids=ids, past_key_values=DynamicCache(config=tiny.config))
    assert any(issubclass(w.category, FutureWarning) and "past_key_values" in str(w.message) for w in seen)
