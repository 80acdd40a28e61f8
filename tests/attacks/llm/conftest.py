"""Fixtures of the LLM attack tests, built from :mod:`llm_attack_fixtures`."""

from __future__ import annotations

import pytest
from llm_attack_fixtures import build_model, build_tokenizer, make_segments


@pytest.fixture(scope="session")
def tiny_tok():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tok):
    return build_model(len(tiny_tok))


@pytest.fixture
def segs(tiny_tok):
    return make_segments(tiny_tok, "Tell me a story", "x x x x x", "Sure, here is")
