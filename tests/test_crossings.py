"""Targets, crossings and plateaus as the CPU-scale Table-2 protocol defines them."""

import numpy as np

from bn_repro.experiments import crossings


def test_smoothing_is_a_centred_mean_of_three_shorter_at_the_ends():
    values = np.array([0.1, 0.4, 0.7, 0.4, 1.0])
    expected = [0.25, 0.4, 0.5, 0.7, 0.7]  # (0.1+0.4)/2, (0.1+0.4+0.7)/3, ...
    np.testing.assert_allclose(crossings.smooth(values), expected)


def test_a_crossing_is_interpolated_in_log_steps():
    steps = np.array([100.0, 400.0, 1600.0])
    smoothed = np.array([0.2, 0.6, 0.8])
    # 0.4 is half-way from 0.2 to 0.6: half-way from log 100 to log 400, i.e. step 200.
    np.testing.assert_allclose(crossings.crossing(steps, smoothed, 0.4), 200.0)
    assert crossings.crossing(steps, smoothed, 0.1) == 100.0
    assert crossings.crossing(steps, smoothed, 0.9) is None
    # The first crossing counts, even if the curve falls back below the target.
    assert crossings.crossing(steps, np.array([0.2, 0.9, 0.5]), 0.9) == 400.0


def test_plateau_gain_is_read_from_the_last_quarter():
    steps = np.array([100.0, 1000.0, 10_000.0])
    smoothed = np.array([0.5, 0.8, 0.9])
    # 7,500 lies at log-fraction log(7.5)/log(10) of the way from 1,000 to 10,000.
    at_start = 0.8 + 0.1 * np.log(7.5) / np.log(10)
    np.testing.assert_allclose(crossings.plateau_gain(steps, smoothed), 0.9 - at_start)


def test_speedups_pair_every_baseline_seed_with_every_row_seed():
    steps = np.array([100.0, 200.0, 400.0, 800.0])
    baseline = [(steps, np.array([0.5, 0.6, 0.7, 0.8])), (steps, np.array([0.5, 0.6, 0.75, 0.7]))]
    row = [(steps, np.array([0.8, 0.8, 0.8, 0.8])), (steps, np.array([0.5, 0.6, 0.7, 0.72]))]
    table = crossings.speedups(baseline, row, offset=0.0)
    # Baseline 0: A* = 0.8 at step 800; row 0 is there at 100 (8×), row 1 never.
    # Baseline 1: A* = 0.75 at step 400; row 0 at 100 (4×), row 1 never.
    np.testing.assert_allclose(table, [[8.0, np.nan], [4.0, np.nan]])
