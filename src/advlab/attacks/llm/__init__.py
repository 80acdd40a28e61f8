"""LLM attacks: embedding-space, GCG (individual, universal, transfer), AutoDAN, PAIR.

Every attack is a config dataclass and one function with the protocol of :mod:`.base`::

    from advlab.attacks.llm.base import AttackPrompt
    from advlab.attacks.llm.gcg import GCGConfig
    from advlab.attacks.llm.registry import run_llm_attack

    result = run_llm_attack("gcg", model, tok, [AttackPrompt(behavior, formatter)], GCGConfig(steps=50))

Modules: :mod:`.base` (protocol, result, budget), :mod:`.registry` (by name; times every attack),
:mod:`.common` (target loss, prefix KV cache, token masks), :mod:`.gcg` (the loop),
:mod:`.gcg_objective` (the multi-prompt / multi-model objective), :mod:`.gcg_candidates` (token gradient,
candidate sampling, re-tokenisation filter, buffer), :mod:`.embedding`, :mod:`.autodan`
(+ :mod:`.autodan_operators`, :mod:`.prototypes`), :mod:`.pair`.
"""
