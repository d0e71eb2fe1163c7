"""Table 3 at CPU scale from cached predictions with known right and wrong images."""

import numpy as np

from bn_repro.experiments import table3
from bn_repro.experiments.table2_runs import run_name

N, CLASSES = 100, 10


def log_probs(right: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0.6 on the label where ``right``, else on the next class, which leaves the label
    second (0.3): every image is right in the top 2."""
    probs = np.full((N, CLASSES), 0.1 / (CLASSES - 2))
    guess = np.where(right, labels, (labels + 1) % CLASSES)
    second = np.where(right, (labels + 1) % CLASSES, labels)
    probs[np.arange(N), guess] = 0.6
    probs[np.arange(N), second] = 0.3
    return np.log(probs)


def cache(workdir, crops, right, labels):
    (workdir / "eval").mkdir(parents=True, exist_ok=True)
    np.savez(workdir / "eval" / f"table3_{crops}.npz", log_probs=log_probs(right, labels),
             labels=labels)  # fmt: skip


def test_table3_from_cached_predictions(tmp_path):
    labels = np.arange(N) % CLASSES
    first = np.arange(N)
    for name in [table3.member_name(i) for i in table3.MEMBERS] + [
        run_name("bn_x30", s) for s in table3.PLAIN_SEEDS
    ]:
        cache(tmp_path / name, "center", first < 70, labels)  # 30% error
        cache(tmp_path / name, "144", first < 80, labels)  # 20% error
    text = table3.report(tmp_path)
    assert "| single model: mean of 6 [min–max] | 1 | 1 | 30.00% [30.00%–30.00%] | — |" in text
    assert "| ensemble of the 6 members | 48 | 6 | 20.00% | 0.00% |" in text
    # (30 − 20) / 30 = 33.3% against the paper's (25.2 − 21.99) / 25.2 = 12.7%.
    assert "| multi-crop (single model) | 30.00% → 20.00% | 33.3% | 12.7% |" in text
    # Each member: 10 images right only with multi-crop, none the other way: p = 2/2^10.
    assert "| single crop → multi-crop, each member | 0 / 10 | 0.002–0.002 | 6/6 |" in text
    # The ensemble of identical members is each member: no disagreement, p = 1.
    assert "| member (multi-crop) → ensemble (multi-crop) | 0 / 0 | 1–1 | 0/6 |" in text
    assert "| plain BN-x30 ensemble → members' ensemble (multi-crop) | 0 / 0 | 1–1 | 0/1 |" in text
    assert (
        "| T1 | mean error 30.00% → 20.00%; 6/6 members significantly better | **held** |" in text
    )
    assert "(+0.00 pt); p < 0.05 against every member: False | **not held** |" in text


def test_top_k_correctness():
    labels = np.array([0, 1, 2])
    scores = np.log(np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.6, 0.3, 0.1]]))
    assert table3.correct(scores, labels, 1).tolist() == [True, False, False]
    assert table3.correct(scores, labels, 2).tolist() == [True, True, False]
