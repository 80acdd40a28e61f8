"""Fixtures for chat-model tests (helpers live in chat_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_fixtures import GYM_LIKE_TEMPLATE, save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny phi-3-style chat model directory (random weights)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", "phi-3", chat_template=GYM_LIKE_TEMPLATE)
