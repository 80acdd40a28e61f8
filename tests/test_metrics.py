"""advlab.metrics on hand-made cases (and the flip identities checked by brute force over all cases)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from advlab import metrics as M

# five samples; columns: old correct, new correct, old robust, new robust (robust implies correct)
OC = [1, 1, 0, 1, 1]
NC = [1, 0, 1, 0, 1]
OR = [1, 1, 0, 1, 0]
NR = [0, 0, 1, 0, 1]


def test_nfr_and_pfr_by_hand():
    # negative flips: sample 1 and 3 (old right, new wrong) -> 2/5; positive flip: sample 2 -> 1/5
    assert M.nfr(OC, NC) == pytest.approx(2 / 5)
    assert M.pfr(OC, NC) == pytest.approx(1 / 5)
    assert M.nfr(NC, OC) == pytest.approx(M.pfr(OC, NC))  # the mirror


def test_rnfr_and_rpfr_by_hand():
    # old robust on 0, 1, 3; new robust on 2, 4 -> robust negative flips 0, 1, 3 = 3/5; positive 2, 4 = 2/5
    assert M.rnfr(OR, NR) == pytest.approx(3 / 5)
    assert M.rpfr(OR, NR) == pytest.approx(2 / 5)


def test_b_nfr_and_s_nfr_by_hand():
    # both flips: samples 1 and 3 -> 2/5; union of flips: 0, 1, 3 -> 3/5
    assert M.b_nfr(OC, NC, OR, NR) == pytest.approx(2 / 5)
    assert M.s_nfr(OC, NC, OR, NR) == pytest.approx(3 / 5)


def test_s_nfr_is_nfr_plus_rnfr_minus_b_nfr_on_every_case():
    cases = [c for c in itertools.product([0, 1], repeat=4) if (c[2] <= c[0]) and (c[3] <= c[1])]
    # every subset (with repetition) of two cases, plus all cases together
    for combo in [*itertools.combinations_with_replacement(cases, 2), tuple(cases)]:
        oc, nc, orb, nrb = (torch.tensor([c[k] for c in combo]) for k in range(4))
        s = M.s_nfr(oc, nc, orb, nrb)
        assert s == pytest.approx(M.nfr(oc, nc) + M.rnfr(orb, nrb) - M.b_nfr(oc, nc, orb, nrb))
        n = len(combo)
        union = sum(1 for c in combo if (c[0] and not c[1]) or (c[2] and not c[3])) / n
        assert s == pytest.approx(union)


def test_bool_tensors_lists_and_shapes_agree():
    assert M.nfr(torch.tensor(OC, dtype=torch.bool), torch.tensor(NC).view(5, 1)) == pytest.approx(0.4)


def test_empty_inputs_give_nan():
    for v in (M.nfr([], []), M.pfr([], []), M.rnfr([], []), M.s_nfr([], [], [], []), M.asr([])):
        assert math.isnan(v)


def test_accuracy_robust_accuracy_asr_pdr_by_hand():
    assert M.accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0])) == pytest.approx(0.5)
    assert M.robust_accuracy([True, False, False, False]) == pytest.approx(0.25)
    assert M.asr([1, 1, 0]) == pytest.approx(2 / 3)
    assert M.pdr(0.6, 0.8) == pytest.approx(0.25)
    assert math.isnan(M.pdr(0.5, 0.0))


def test_mean_std_sign_test_and_paired_difference_by_hand():
    import math

    s = M.mean_std([1.0, 2.0, 4.0])
    assert s["mean"] == pytest.approx(7 / 3) and s["std"] == pytest.approx(math.sqrt(((4 / 3) ** 2 + (1 / 3) ** 2
                                                                                     + (5 / 3) ** 2) / 2))
    assert M.mean_std([2.0])["std"] == 0.0 and math.isnan(M.mean_std([])["mean"])
    # 5 of 5 lower: two-sided p = 2·(1/2)^5; 1 vs 4: 2·(1 + 5)/32
    assert M.sign_test_p(5, 0) == pytest.approx(2 / 32) and M.sign_test_p(1, 4) == pytest.approx(12 / 32)
    assert M.sign_test_p(3, 3) == 1.0 and math.isnan(M.sign_test_p(0, 0))
    d = M.paired_difference([0.1, 0.2, 0.3], [0.2, 0.2, 0.1])
    assert (d["lower"], d["higher"], d["equal"], d["n"]) == (1, 1, 1, 3)
    assert d["mean_diff"] == pytest.approx(((-0.1) + 0.0 + 0.2) / 3) and d["sign_test_p"] == 1.0
    with pytest.raises(ValueError):
        M.paired_difference([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    "k, n, lo, hi",
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_newcombe_1998(k, n, lo, hi):
    got = M.wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def _wilson_by_bisection(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The score interval's definition: the p with |k/n - p| <= z·sqrt(p(1-p)/n), found by bisection."""
    inside = lambda p: abs(k / n - p) <= z * math.sqrt(p * (1 - p) / n)  # noqa: E731

    def edge(a: float, b: float) -> float:  # a inside, b outside (or the reverse)
        for _ in range(200):
            m = (a + b) / 2
            a, b = (m, b) if inside(m) == inside(a) else (a, m)
        return (a + b) / 2

    p = k / n
    return (0.0 if k == 0 else edge(p, 0.0)), (1.0 if k == n else edge(p, 1.0))


@pytest.mark.parametrize("k, n", [(k, n) for n in (1, 6, 12, 30) for k in range(n + 1)])
def test_wilson_interval_is_the_score_test_inversion(k, n):
    assert M.wilson_interval(k, n) == pytest.approx(_wilson_by_bisection(k, n), abs=1e-9)


def test_wilson_interval_of_no_items_is_nan():
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))


@pytest.mark.parametrize("n", [1, 3, 6, 10, 12, 13, 25, 360])
def test_wilson_interval_ends_exactly_at_zero_and_one_rates(n):
    assert M.wilson_interval(0, n)[0] == 0.0 and M.wilson_interval(n, n)[1] == 1.0
    lo, hi = M.wilson_interval(n, n)
    assert lo <= 1.0 <= hi


def test_poisoning_metrics_by_hand():
    # 6 examples, target "pos": 4 negatives (ids 0-3), 2 positives (4-5)
    truth = ["neg", "neg", "neg", "neg", "pos", "pos"]
    clean = ["neg", "neg", "neg", "pos", "pos", "neg"]  # 4/6 right; negatives 3/4
    trig = ["pos", "pos", "neg", "pos", "pos", "pos"]  # 2/6 right; negatives 1/4; 3 of 4 negatives -> pos
    m = M.poisoning_metrics(clean, trig, truth, "pos")
    assert m["clean_accuracy"] == pytest.approx(4 / 6)
    assert m["triggered_accuracy"] == pytest.approx(3 / 6)
    assert m["asr"] == pytest.approx(3 / 4)
    assert m["pdr"] == pytest.approx(1 - (1 / 4) / (3 / 4))
    assert m["pdr_all"] == pytest.approx(1 - (3 / 6) / (4 / 6))
    assert m["per_class"]["neg"] == {"clean_accuracy": 0.75, "triggered_accuracy": 0.25, "n": 4}
    assert m["per_class"]["pos"]["clean_accuracy"] == pytest.approx(0.5)
    assert m["per_class"]["pos"]["triggered_accuracy"] == pytest.approx(1.0)
    assert m["n_non_target"] == 4


def test_poisoning_metrics_empty_and_per_class():
    m = M.poisoning_metrics([], [], [], "pos")
    assert math.isnan(m["clean_accuracy"]) and math.isnan(m["asr"]) and math.isnan(m["pdr"])
    assert M.per_class_accuracy(["a", "b", "b"], ["a", "a", "b"]) == {"a": 0.5, "b": 1.0}
    with pytest.raises(ValueError):
        M.per_class_accuracy(["a"], ["a", "b"])
