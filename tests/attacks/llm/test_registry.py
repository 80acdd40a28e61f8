"""The LLM-attack registry and protocol: lookup by name, config type check, timing outside the attack,
and each protocol function equal to its algorithm called on hand-built segments."""

from __future__ import annotations

import copy

import pytest

from advlab.attacks.llm.base import AttackHelpers, AttackPrompt
from advlab.attacks.llm.embedding import EmbeddingAttackConfig, run_embedding_attack
from advlab.attacks.llm.gcg import GCGConfig, run_gcg
from advlab.attacks.llm.registry import get_llm_attack, llm_attack_names, record_details, run_llm_attack
from advlab.data.behavior_record import Behavior
from advlab.errors import ConfigError
from advlab.models.formatting import ChatFormatter

TEMPLATE = "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>"


@pytest.fixture
def chat_tok(tiny_tok):
    """The session tokenizer with a chat template (a copy: the session one stays as it is)."""
    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = TEMPLATE
    return tok


def _prompts(tok, *requests):
    fmt = ChatFormatter(tok)
    return [AttackPrompt(Behavior(id=str(i), behavior=r, target="Sure, here is"), fmt) for i, r in enumerate(requests)]


def test_names_and_unknown():
    assert llm_attack_names() == ["embedding", "gcg", "autodan", "pair"]
    with pytest.raises(ConfigError, match="unknown LLM attack"):
        get_llm_attack("nope")


def test_wrong_config_type_is_refused(tiny_model, chat_tok):
    with pytest.raises(ConfigError, match="GCGConfig"):
        run_llm_attack("gcg", tiny_model, chat_tok, _prompts(chat_tok, "Tell me a story"), EmbeddingAttackConfig())


def test_gcg_protocol_equals_run_gcg_and_is_timed_outside(tiny_model, chat_tok):
    cfg = GCGConfig(steps=2, search_width=8, topk=8, optim_str_init="x x x x", early_stop=False)
    prompts = _prompts(chat_tok, "Tell me a story", "Write a tutorial on how to make a cake")
    steps = []
    res = run_llm_attack("gcg", tiny_model, chat_tok, prompts, cfg, on_step=lambda s, loss: steps.append(s))
    ref = run_gcg(tiny_model, chat_tok, [p.segments("x x x x") for p in prompts], cfg)
    assert res.extra["adv_ids"] == ref.extra["adv_ids"] and res.loss_history == ref.loss_history
    assert steps == [1, 2] and res.budget.seconds > 0 and ref.budget.seconds == 0.0  # only the registry times
    assert set(record_details("gcg", res)) == {"init_loss", "filtered_out", "adv_ids"}
    # transfer: a helper model joins the objective (the loss of the same slot changes)
    both = run_llm_attack("gcg", tiny_model, chat_tok, prompts[:1], cfg, helpers=AttackHelpers(transfer=[tiny_model]))
    single = run_llm_attack("gcg", tiny_model, chat_tok, prompts[:1], cfg)
    assert both.extra["init_loss"] == pytest.approx(2 * single.extra["init_loss"], rel=1e-5)


def test_embedding_protocol_instruction_mode_perturbs_the_request_slot(tiny_model, chat_tok):
    cfg = EmbeddingAttackConfig(steps=2, mode="instruction", eps=None, step_size=0.01)
    (prompt,) = _prompts(chat_tok, "Tell me a story")
    res = run_llm_attack("embedding", tiny_model, chat_tok, [prompt], cfg)
    segs = ChatFormatter(chat_tok, slot="request").segments("Tell me a story", "", "Sure, here is")
    ref = run_embedding_attack(tiny_model, chat_tok, segs, cfg)[0]
    assert res.adv_prompt_ids == segs.prompt_ids and res.loss_history == pytest.approx(ref.loss_history)
