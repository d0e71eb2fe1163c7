"""McNemar's test against hand-computed cases."""

import numpy as np
import pytest

from bn_repro.experiments.significance import mcnemar


def test_mcnemar_by_hand():
    # 10 images: both right on 4, only A on 5, only B on 1 → b = 5, c = 1, n = 6.
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    b = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], bool)
    result = mcnemar(a, b)
    assert (result["b"], result["c"]) == (5, 1)
    # χ² = (|5 − 1| − 1)² / 6 = 1.5; exact p = 2·(C(6,0) + C(6,1)) / 2⁶ = 14/64.
    assert result["statistic"] == pytest.approx(1.5)
    assert result["p_value"] == pytest.approx(14 / 64)


def test_mcnemar_equal_and_one_sided_cases():
    same = np.array([1, 0, 1, 1], bool)
    assert mcnemar(same, same) == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0}
    # 20 disagreements all one way: p = 2 / 2²⁰.
    a, b = np.ones(20, bool), np.zeros(20, bool)
    assert mcnemar(a, b)["p_value"] == pytest.approx(2 / 2**20)
    assert mcnemar(b, a)["p_value"] == pytest.approx(2 / 2**20)
    with pytest.raises(ValueError, match="same images"):
        mcnemar(a, b[:5])
