"""Gradient-guided backdoor trigger learning (GBTL; Qiang et al. 2024, arXiv 2402.13459).

One :func:`~advlab.attacks.llm.gcg.run_gcg` call on a word-restricted vocabulary (its ``not_allowed``
and ``candidate_filter`` hooks). The trigger is the slot of several prompts of the non-target class, placed where the
poisons will carry it; the objective is universal GCG's:

    L(t) = (1/B) Σ_b CE(target response | prompt_b with trigger t),

Each step: ∇ of L w.r.t. the slot's one-hot (averaged over the B prompts), top-k tokens per position
under a *word mask* (only tokens that read as a whole dictionary word after a space — one-token
triggers — or as letters — longer ones), ``search_width`` single-position candidates, kept when the
slot decodes to whole listed words and re-tokenises to the same ids in every prompt, exact loss of
the survivors, move to the best. Defaults are the paper's: 100 steps, top-k 32, 16 candidates,
start word "a", one token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from advlab.attacks.llm.common import disallowed_token_mask, embedding_matrix
from advlab.attacks.llm.gcg import GCGConfig, run_gcg
from advlab.errors import ConfigError, ModelError, require
from advlab.models.segments import PromptSegments
from advlab.poisoning.wordlist import WordList


@dataclass
class TriggerConfig:
    """GBTL options (defaults: PAPERS.md §5)."""

    steps: int = 100
    topk: int = 32
    search_width: int = 16
    n_tokens: int = 1
    init: str = "a"
    n_prompts: int = 8
    position: str = "end"
    n_top: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (("steps", 1), ("topk", 1), ("search_width", 1), ("n_tokens", 1), ("n_prompts", 1)):
            v = getattr(self, name)
            require(v >= lo, f"--{name.replace('_', '-')} {v}: must be at least {lo}")
        require(bool(self.init.strip()), "--init is empty; pass a start word such as 'a'")


@dataclass
class TriggerResult:
    trigger: str
    trigger_ids: list[int]
    best_loss: float
    init_loss: float
    loss_history: list[float]
    top_candidates: list[dict[str, Any]]
    n_allowed_tokens: int
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _piece_texts(tokenizer: Any, anchor: Sequence[int], rows: Sequence[Sequence[int]]) -> list[str]:
    """How each id row reads right after ``anchor`` (a leading space means a word boundary)."""
    head = tokenizer.decode(list(anchor), clean_up_tokenization_spaces=False)
    texts = tokenizer.batch_decode([[*anchor, *r] for r in rows], clean_up_tokenization_spaces=False)
    return [t[len(head):] if t.startswith(head) else "\0" for t in texts]


def _is_words(piece: str, wordlist: WordList) -> bool:
    words = piece[1:].split(" ")
    return piece.startswith(" ") and all(w in wordlist.words for w in words)


def word_token_mask(tokenizer: Any, vocab: int, wordlist: WordList, n_tokens: int, anchor: Sequence[int]):
    """[V] bool, True where a token may not stand in the slot: GCG's mask (special, non-ASCII, empty)
    plus, for one-token triggers, every token that is not ' <listed word>'; for longer ones, every
    token that is not letters (optionally after one space)."""
    mask = disallowed_token_mask(tokenizer, vocab)
    pieces = _piece_texts(tokenizer, anchor, [[i] for i in range(min(len(tokenizer), vocab))])
    for i, p in enumerate(pieces):
        ok = _is_words(p, wordlist) if n_tokens == 1 else p.lstrip(" ").isalpha() and p.isascii() and "  " not in p
        if not ok:
            mask[i] = True
    return mask


class WholeWordFilter:
    """Keep candidate slots that read as whole listed words after the prompt's text."""

    def __init__(self, tokenizer: Any, anchor: Sequence[int], wordlist: WordList) -> None:
        self.tokenizer, self.anchor, self.wordlist = tokenizer, list(anchor), wordlist

    def words(self, ids: Sequence[int]) -> str | None:
        piece = _piece_texts(self.tokenizer, self.anchor, [ids])[0]
        return piece[1:] if _is_words(piece, self.wordlist) else None

    def __call__(self, cands: torch.Tensor) -> torch.Tensor:
        pieces = _piece_texts(self.tokenizer, self.anchor, cands.tolist())
        return torch.tensor([_is_words(p, self.wordlist) for p in pieces], dtype=torch.bool)


def learn_trigger(model: Any, tokenizer: Any, segments: Sequence[PromptSegments], wordlist: WordList,
                  cfg: TriggerConfig, on_step: Callable[[int, float], None] | None = None) -> TriggerResult:
    """Run GBTL on ``segments`` (one per prompt, all with the start trigger in the slot)."""
    t0 = time.perf_counter()
    segs = list(segments)
    require(len(segs) >= 1, "trigger learning needs at least one prompt of the non-target class")
    n = len(segs[0].slot)
    if n != cfg.n_tokens or any(len(s.slot) != n for s in segs):
        raise ConfigError(f"--init {cfg.init!r} is {n} tokens here, not --trigger-tokens {cfg.n_tokens}; "
                          "pass an --init of that many tokens")
    vocab = embedding_matrix(model).shape[0]
    anchor = segs[0].before[-3:]
    not_allowed = word_token_mask(tokenizer, vocab, wordlist, cfg.n_tokens, anchor)
    n_allowed = int((~not_allowed).sum())
    if n_allowed == 0:
        raise ConfigError(f"no token of this tokenizer is a whole word of the list ({wordlist.source}); "
                          "pass --trigger-tokens 2 or more, or a larger --wordlist")
    words = WholeWordFilter(tokenizer, anchor, wordlist)
    if words.words(segs[0].slot) is None:
        raise ConfigError(f"--init {cfg.init!r} is not a whole word of the list; pass a listed start word")
    for s in segs:
        nxt = tokenizer.decode(s.after[:1], clean_up_tokenization_spaces=False)[:1]
        if nxt.isalnum():
            raise ModelError("the text after the trigger starts with a letter, so the trigger would join a word")
    seen: dict[tuple[int, ...], float] = {}

    def record(cands: torch.Tensor, losses: torch.Tensor) -> None:
        seen.update(zip(map(tuple, cands.tolist()), losses.tolist()))

    gcg = GCGConfig(steps=cfg.steps, search_width=cfg.search_width, topk=min(cfg.topk, n_allowed), n_replace=1,
                    optim_str_init=cfg.init, early_stop=False, seed=cfg.seed)
    result = run_gcg(model, tokenizer, segs, gcg, not_allowed=not_allowed, candidate_filter=words, on_scored=record,
                     on_step=None if on_step is None else lambda info: on_step(info.step, info.loss))
    best = result.extra["adv_ids"]
    top = sorted(seen.items(), key=lambda kv: kv[1])[: cfg.n_top]
    return TriggerResult(
        trigger=words.words(best) or "",
        trigger_ids=best,
        best_loss=result.best_loss,
        init_loss=result.extra["init_loss"],
        loss_history=result.loss_history,
        top_candidates=[{"trigger": words.words(list(k)), "loss": v} for k, v in top],
        n_allowed_tokens=n_allowed,
        forward_passes=result.budget.forward_passes,
        backward_passes=result.budget.backward_passes,
        seconds=time.perf_counter() - t0,
    )
