"""Helpers for the LLM training tests: SFT batches of the quick gym."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gym_rows(gym):
    from advlab.data.gym import gym_items
    from advlab.training.llm.batches import ChatEncoder

    _, tok = gym
    enc = ChatEncoder(tok, max_len=64)
    items = gym_items("harmful", "train")[:4] + gym_items("task", "train")[:4]
    return [enc.encode(it.prompt, it.response) for it in items]
