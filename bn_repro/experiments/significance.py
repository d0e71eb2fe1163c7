"""Paired tests of two classifiers on the same test images (Table 3's steps).

McNemar's test looks only at the images the two classifiers disagree on: b images
only the first gets right, c only the second. Under the null hypothesis (equal error
rates) each disagreement is a fair coin, so min(b, c) is binomial(b + c, ½); the exact
two-sided p-value is twice its lower tail, at most 1.
"""

import math

import numpy as np


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """b, c, the continuity-corrected χ² statistic and the exact two-sided p-value."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"McNemar's test pairs predictions on the same images: {correct_a.shape} vs "
            f"{correct_b.shape}; pass both classifiers' results on one test set."
        )
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    n = b + c
    statistic = (abs(b - c) - 1) ** 2 / n if n else 0.0
    # Exact binomial tail in integers: no rounding however many disagreements.
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    p_value = min(1.0, 2 * tail / 2**n) if n else 1.0
    return {"b": b, "c": c, "statistic": statistic, "p_value": p_value}
