"""The dictionary word list that triggers are drawn from.

Default: wordfreq's English list (Speer et al., ``wordfreq``), words whose Zipf frequency
(log10 of occurrences per billion words) is at least ``min_zipf``. ``--wordlist FILE`` replaces it:
one word a line (blank lines and ``#`` comments skipped). Either way only lower-case ASCII letter
strings are kept ("no digits"), so a trigger is one ordinary word.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from advlab.errors import ConfigError, DataError

WORD_RE = re.compile(r"^[a-z]+$")
DEFAULT_MIN_ZIPF = 3.0


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    from wordfreq import get_frequency_dict

    return get_frequency_dict("en")


def zipf(word: str) -> float:
    """Zipf frequency log10(frequency * 1e9) of ``word`` in wordfreq's English list (0 when unknown)."""
    f = _frequencies().get(word.lower(), 0.0)
    return round(math.log10(f * 1e9), 2) if f > 0 else 0.0


@dataclass(frozen=True)
class WordList:
    """Usable words, and where they came from (``wordfreq`` or a file path)."""

    words: frozenset[str]
    source: str
    min_zipf: float | None = None

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.strip().lower() in self.words

    def __len__(self) -> int:
        return len(self.words)


def load_wordlist(path: str | Path | None = None, min_zipf: float | None = DEFAULT_MIN_ZIPF) -> WordList:
    """The word list (see the module docstring); DataError when no usable word is left."""
    if min_zipf is not None and not 0 <= min_zipf <= 8:
        raise ConfigError(f"--min-zipf {min_zipf}: Zipf frequencies run from 0 to 8; pass e.g. 3 (common words)")
    if path is None:
        raw = [w for w in _frequencies() if min_zipf is None or zipf(w) >= min_zipf]
        source = "wordfreq:en"
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"--wordlist {p}: no such file; pass a text file with one word a line")
        raw = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()]
        raw = [w for w in raw if w and not w.startswith("#")]
        source = str(p)
        if min_zipf is not None and min_zipf > 0:
            raw = [w for w in raw if zipf(w.lower()) >= min_zipf]
    words = frozenset(w.lower() for w in raw if WORD_RE.match(w.lower()))
    if not words:
        where = f"--wordlist {source}" if path is not None else "the wordfreq list"
        raise DataError(f"{where} has no usable entry (lower-case letters only, Zipf >= {min_zipf}); "
                        "pass a list of plain words or a lower --min-zipf")
    return WordList(words, source, min_zipf)


def check_in_wordlist(word: str, wordlist: WordList) -> str:
    """``word`` itself, or ConfigError when it is not in the enforced list."""
    if word not in wordlist:
        raise ConfigError(f"--trigger {word!r} is not in the word list ({wordlist.source}, {len(wordlist)} words); "
                          "pick a listed word or leave out --enforce-wordlist")
    return word


def similar_frequency_word(word: str, wordlist: WordList, seed: int = 0, width: float = 0.25) -> str:
    """A random other word of the list whose Zipf frequency is within ``width`` of ``word``'s
    (widened until one exists): the random-word baseline trigger."""
    ref = zipf(word)
    pool = sorted(wordlist.words - {word})
    if not pool:
        raise DataError(f"the word list has no word other than {word!r}; pass a longer --wordlist")
    freqs = {w: zipf(w) for w in pool}
    rng = random.Random(seed)
    w = width
    while True:
        near = [x for x in pool if abs(freqs[x] - ref) <= w]
        if near:
            return rng.choice(near)
        w *= 2
