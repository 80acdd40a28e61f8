"""The golden comparison fails on what it must tell apart and passes within its tolerance."""

from __future__ import annotations

import pytest
from golden_compare import compare_golden


def test_equal_within_tolerance_passes():
    compare_golden({"a": [1, 2.0, float("nan")], "b": "x"}, {"a": [1, 2.0 + 1e-7, float("nan")], "b": "x"},
                   abs_tol=1e-6)


@pytest.mark.parametrize(
    ("got", "want", "where"),
    [
        ({"a": 1, "c": 2}, {"a": 1, "b": 2}, r"\$: keys"),
        ({"a": [1, 2]}, {"a": [1]}, r"\$\.a: length"),
        ({"a": [1.0, 2.1]}, {"a": [1.0, 2.0]}, r"\$\.a\[1\]: 2\.1 != 2\.0"),
        ({"a": True}, {"a": 1.0}, "is not a number"),
        ({"a": 1.0}, {"a": float("nan")}, "nan"),
        ({"a": "y"}, {"a": "x"}, r"\$\.a: 'y' != 'x'"),
    ],
)
def test_differences_fail_with_their_path(got, want, where):
    with pytest.raises(AssertionError, match=where):
        compare_golden(got, want, abs_tol=1e-5)
