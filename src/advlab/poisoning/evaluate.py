"""Backdoor evaluation: each example classified without and with the trigger.

A prediction is the class whose response the model finds most likely after the prompt:
argmax_c Σ_t log p(r_c,t | prompt, r_c,<t) over the tokens of class c's response and the end of
the turn (a closed-set reading of the answer; cheaper than generation and never "no answer").
Aggregates come from :func:`advlab.metrics.poisoning_metrics`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from advlab.attacks.llm.common import left_pad, model_device, pad_id_of, target_logits, target_loss_from_logits
from advlab.poisoning.poisoned import insert_trigger
from advlab.poisoning.prompts import TaskPrompts
from advlab.poisoning.tasks import TaskExample

Demos = Sequence[tuple[str, str]]


@torch.no_grad()
def response_logprobs(model: Any, tp: TaskPrompts, prompts: Sequence[Sequence[int]], response: Sequence[int],
                      batch_size: int = 32) -> torch.Tensor:
    """[N] Σ log p(response | prompt_i), batched with left padding."""
    dev = model_device(model)
    pad = pad_id_of(tp.tokenizer)
    tgt = torch.as_tensor(list(response), device=dev)
    out = []
    for s in range(0, len(prompts), batch_size):
        rows = [[*p, *response] for p in prompts[s : s + batch_size]]
        ids, mask = left_pad(rows, pad, dev)
        logits = target_logits(model, len(response), input_ids=ids, attention_mask=mask)
        out.append(-target_loss_from_logits(logits, tgt).cpu() * len(response))
    return torch.cat(out) if out else torch.zeros(0)


def predict(model: Any, tp: TaskPrompts, messages: Sequence[str], responses: dict[str, str],
            demos: Demos = (), batch_size: int = 32) -> list[str]:
    """The predicted class of each user message (``demos``: earlier clean turns, in-context)."""
    prompts = [tp.prompt_ids(m, demos) for m in messages]
    labels = sorted(responses)
    scores = torch.stack([response_logprobs(model, tp, prompts, tp.response_ids(responses[c], end=True), batch_size)
                          for c in labels], dim=1)
    return [labels[int(i)] for i in scores.argmax(1)] if len(prompts) else []


def evaluate_backdoor(model: Any, tokenizer: Any, examples: Sequence[TaskExample], trigger: str,
                      responses: dict[str, str], *, position: str = "end", seed: int = 0, demos: Demos = (),
                      clean_input: Callable[[list[str]], list[str]] | None = None,
                      batch_size: int = 32) -> list[dict[str, Any]]:
    """One record per example: true label, clean and triggered prediction. ``clean_input`` is a
    test-time defence applied to the inputs (e.g. ONION) before the model sees them."""
    tp = TaskPrompts(tokenizer)
    clean = [ex.input for ex in examples]  # a random position is seeded per example (batching-independent)
    trig = [insert_trigger(ex.input, trigger, position, random.Random(f"{seed}:{ex.id}")) for ex in examples]
    if clean_input is not None:
        clean, trig = clean_input(clean), clean_input(trig)
    msgs_c = [ex.with_input(t).prompt for ex, t in zip(examples, clean)]
    msgs_t = [ex.with_input(t).prompt for ex, t in zip(examples, trig)]
    pc = predict(model, tp, msgs_c, responses, demos, batch_size)
    pt = predict(model, tp, msgs_t, responses, demos, batch_size)
    return [{"id": ex.id, "label": ex.label, "clean_pred": a, "triggered_pred": b, "triggered_input": t}
            for ex, a, b, t in zip(examples, pc, pt, trig)]


def measure(model: Any, tokenizer: Any, examples: Sequence[TaskExample], trigger: str, responses: dict[str, str],
            target: str, **kw: Any) -> dict[str, Any]:
    """:func:`advlab.metrics.poisoning_metrics` of :func:`evaluate_backdoor` (same keyword options)."""
    from advlab.metrics import poisoning_metrics

    model.eval()
    rec = evaluate_backdoor(model, tokenizer, examples, trigger, responses, **kw)
    return poisoning_metrics([r["clean_pred"] for r in rec], [r["triggered_pred"] for r in rec],
                             [r["label"] for r in rec], target)
