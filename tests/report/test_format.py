"""What people read: judge names, rounded numbers, rates with their intervals."""

from __future__ import annotations

from advlab.report.format import judge_label, num, rate, rate_of


def test_judges_are_named_by_what_they_count():
    assert judge_label("refusal") == "ASR (no refusal phrase)"
    assert judge_label("compliance") == "ASR (compliance)"
    assert judge_label("mine") == "ASR (mine)"


def test_rate_shows_the_wilson_interval_and_n():
    # 5/6: Wilson 95 % interval [0.436, 0.970] (centre (p + z²/2n)/(1 + z²/n), closed form)
    assert rate(5, 6) == "83 % [44–97 %], n = 6"
    assert rate_of(0.5, 2) == "50 % [9–91 %], n = 2"
    assert rate(0, 0) == "n/a (n = 0)" and rate_of(None, 5) == "n/a"


def test_num_rounds_floats_and_keeps_ints():
    assert num(15.473700605499971) == "15.5" and num(450.1010185408819) == "450"
    assert num(7) == "7" and num(None) == "n/a" and num(float("nan")) == "n/a"
