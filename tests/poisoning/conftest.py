"""Fixtures for poisoning tests (builders in poison_fixtures.py)."""

from __future__ import annotations

import pytest
from poison_fixtures import build_model, build_word_tokenizer


@pytest.fixture()
def word_tok():
    return build_word_tokenizer()


@pytest.fixture()
def word_model(word_tok):
    return build_model(len(word_tok))
