"""The trigger word list: wordfreq by default, a file replaces it, unusable lists refused."""

from __future__ import annotations

import pytest

from advlab.errors import ConfigError, DataError
from advlab.poisoning.wordlist import check_in_wordlist, load_wordlist, similar_frequency_word, zipf


def test_wordfreq_default_and_min_zipf():
    common = load_wordlist(min_zipf=5.0)
    assert "the" in common and "film" in common and "zygote" not in common
    assert all(w.isalpha() and w.islower() and w.isascii() for w in common.words)
    assert len(load_wordlist(min_zipf=3.0)) > len(common)
    assert zipf("the") == pytest.approx(7.73, abs=0.05)  # wordfreq.zipf_frequency("the", "en")


def test_file_replaces_and_filters(tmp_path):
    p = tmp_path / "w.txt"
    p.write_text("# comment\nZebra\nabc1\nhello-world\n\nquiet\n")
    wl = load_wordlist(p, min_zipf=None)
    assert wl.words == {"zebra", "quiet"} and "Zebra" in wl
    assert check_in_wordlist("quiet", wl) == "quiet"
    with pytest.raises(ConfigError, match="not in the word list"):
        check_in_wordlist("film", wl)


def test_unusable_lists(tmp_path):
    p = tmp_path / "w.txt"
    p.write_text("123\n# x\n\n")
    with pytest.raises(DataError, match="no usable entry"):
        load_wordlist(p)
    with pytest.raises(DataError, match="no such file"):
        load_wordlist(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="min-zipf"):
        load_wordlist(min_zipf=9)


def test_similar_frequency_word_is_seeded_and_close():
    wl = load_wordlist(min_zipf=3.0)
    a = similar_frequency_word("film", wl, seed=0)
    assert a == similar_frequency_word("film", wl, seed=0) and a != "film"
    assert abs(zipf(a) - zipf("film")) <= 0.25
