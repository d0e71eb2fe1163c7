"""Targets, crossings and plateaus of accuracy curves, as docs/small_table2_protocol.md
defines them.

A curve is a run's evaluations (steps, accuracies) on the grid every row shares. Its
smoothed form is the centred mean of `WINDOW` neighbouring evaluations (fewer at
the two ends); targets, crossings, maxima and plateaus are all read from it, never
from one raw evaluation. Between evaluations it is interpolated linearly in
log(step), the scale of the grid, so a crossing's step is not rounded up to the next
evaluation.
"""

import numpy as np

WINDOW = 3
OFFSETS = (0.0, 0.005, 0.01, 0.02)  # targets: A* − offset
PLATEAU_FRACTION = 0.25  # the last quarter of a run ...
PLATEAU_GAIN = 0.003  # ... gains less than 0.3 pt: a plateau


def smooth(values: np.ndarray) -> np.ndarray:
    """Centred moving mean of `WINDOW` evaluations, shorter at the ends."""
    values = np.asarray(values, float)
    half = WINDOW // 2
    return np.array([values[max(0, i - half) : i + half + 1].mean() for i in range(len(values))])


def value_at(steps: np.ndarray, smoothed: np.ndarray, step: float) -> float:
    """The smoothed curve at ``step``, interpolated in log(step)."""
    return float(np.interp(np.log(step), np.log(steps), smoothed))


def crossing(steps: np.ndarray, smoothed: np.ndarray, target: float) -> float | None:
    """The first step at which the smoothed curve reaches ``target`` (None: never)."""
    reached = np.nonzero(smoothed >= target)[0]
    if not len(reached):
        return None
    k = int(reached[0])
    if k == 0 or smoothed[k] == target:
        return float(steps[k])
    low, high = np.log(steps[k - 1]), np.log(steps[k])
    fraction = (target - smoothed[k - 1]) / (smoothed[k] - smoothed[k - 1])
    return float(np.exp(low + fraction * (high - low)))


def plateau_gain(steps: np.ndarray, smoothed: np.ndarray) -> float:
    """What the smoothed curve gains over the last `PLATEAU_FRACTION` of the run."""
    start = (1 - PLATEAU_FRACTION) * steps[-1]
    return float(smoothed[-1] - value_at(steps, smoothed, start))


def speedups(
    baseline: list[tuple[np.ndarray, np.ndarray]],
    row: list[tuple[np.ndarray, np.ndarray]],
    offset: float,
) -> np.ndarray:
    """Speed-up for every pair (baseline seed i, row seed j) at target A*_i − offset.

    A*_i is baseline seed i's smoothed maximum; the speed-up is baseline i's steps to
    the target over row j's; NaN where row j never reaches it.
    """
    table = np.full((len(baseline), len(row)), np.nan)
    for i, (b_steps, b_smooth) in enumerate(baseline):
        target = b_smooth.max() - offset
        baseline_steps = crossing(b_steps, b_smooth, target)
        for j, (r_steps, r_smooth) in enumerate(row):
            steps = crossing(r_steps, r_smooth, target)
            if steps is not None:
                table[i, j] = baseline_steps / steps
    return table
