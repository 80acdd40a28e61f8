"""Training rows end where generation ends: the labels are exactly what the model would generate."""

from __future__ import annotations

import torch

from advlab.training.llm.batches import ChatEncoder


def test_response_ids_equal_the_generated_ids_up_to_end_of_turn(gym):
    """Greedy generation stops at the end-of-turn token; a row built from the generated text must label
    exactly those tokens (the template's newline after the end-of-turn token is never generated)."""
    from advlab.data.gym import gym_items

    model, tok = gym
    enc = ChatEncoder(tok, max_len=128)
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    checked = 0
    for it in gym_items("harmful", "test")[:2] + gym_items("harmless", "test")[:2]:
        prompt = enc.prompt_ids(it.prompt)
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=60, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tok.pad_token_id)
        gen = out[0, len(prompt):].tolist()
        if eos not in gen:
            continue
        gen = gen[: gen.index(eos) + 1]
        text = tok.decode(gen[:-1], skip_special_tokens=False)
        row = enc.encode(it.prompt, text)
        assert list(row.prompt_ids) == prompt
        assert list(row.response_ids) == gen
        checked += 1
    assert checked >= 2
