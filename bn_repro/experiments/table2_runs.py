"""The runs of the CPU-scale Table 2 (configs/small_table2.py), read back from their workdirs.

A run's curve is its ``eval/accuracy`` on the shared evaluation grid, smoothed as
docs/small_table2_protocol.md defines (`crossings`); its learning rate at any step
comes from the schedule of the config it recorded, not from logged values.
"""

import dataclasses
import functools
import json
from pathlib import Path

import ml_collections
import numpy as np

from bn_repro import event_logs, schedule
from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import crossings, runner

ACCURACY = "eval/accuracy"
KERNEL_NORM = "train/kernel_norm"
LRN_DIVISOR = "eval/lrn1/divisor_max/p50"
CHANCE = 0.2  # a smoothed maximum below this: the run never left chance


def run_name(row: str, seed: int) -> str:
    return f"{row}_seed{seed}"


def calibration_name(rate: float, seed: int) -> str:
    return f"calibration_lr{rate:g}_seed{seed}"


def jobs(quick: bool, runs: Path, seeds: tuple[int, ...], calibrate: bool) -> list[runner.Job]:
    """The training jobs, longest first: the calibration alone with ``calibrate``, else
    every row of the plan (the seeded rows with ``seeds``, the others with the first)."""
    suffix = ",quick" if quick else ""

    def job(name: str, row: str, *overrides: str) -> runner.Job:
        config = f"configs/small_table2.py:{row}{suffix}"
        steps = plan.get_config(row + suffix).total_steps
        return runner.training_job(name, config, runs, steps, *overrides)

    if calibrate:
        every = [
            job(calibration_name(rate, seed), plan.CALIBRATION, *_flags(seed, rate))
            for rate in plan.CALIBRATION_RATES
            for seed in plan.CALIBRATION_SEEDS
        ]
    else:
        every = [
            job(run_name(row, seed), row, *_flags(seed))
            for row in (*plan.ROWS, *plan.CONTROLS, plan.NO_L2, *plan.SWEEPS)
            for seed in (seeds if row in plan.SEEDED_ROWS else seeds[:1])
        ]
    return sorted(every, key=lambda job: -job.steps)


def _flags(seed: int, rate: float | None = None) -> tuple[str, ...]:
    rate_flag = () if rate is None else (f"--config.learning_rate={rate}",)
    return (*rate_flag, f"--config.seed={seed}")


@dataclasses.dataclass
class Run:
    """One finished (or diverged) run: its curve and what the report needs of it."""

    name: str
    config: ml_collections.ConfigDict
    steps: np.ndarray
    accuracy: np.ndarray
    scalars: dict
    diverged: str | None

    @property
    def smoothed(self) -> np.ndarray:
        return crossings.smooth(self.accuracy)

    @property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        return self.steps.astype(float), self.smoothed

    @property
    def maximum(self) -> float:
        return float(self.smoothed.max()) if len(self.steps) else float("nan")

    @property
    def final(self) -> float:
        """Mean of the last three evaluations (the calibration's and sweeps' score)."""
        return float(np.mean(self.accuracy[-3:])) if len(self.steps) else float("nan")

    @property
    def trained(self) -> bool:
        return self.diverged is None and self.maximum >= CHANCE

    @functools.cached_property
    def rates(self) -> np.ndarray:
        """The learning rate at every step of the run."""
        rate = schedule.create_learning_rate_fn(self.config)
        return np.asarray(rate(np.arange(self.config.total_steps + 1)))

    def rate_at(self, step: float) -> float:
        return float(self.rates[min(int(step), len(self.rates) - 1)])

    def last(self, tag: str) -> float:
        values = self.scalars.get(tag, (None, np.zeros(0)))[1]
        return float(values[-1]) if len(values) else float("nan")

    def first(self, tag: str) -> float:
        values = self.scalars.get(tag, (None, np.zeros(0)))[1]
        return float(values[0]) if len(values) else float("nan")

    def plateau_gain(self) -> float:
        return crossings.plateau_gain(*self.curve)


def load(workdir: Path) -> Run:
    """A run from its workdir: recorded config, event files, divergence marker."""
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    diverged = runner.diverged(workdir)
    try:
        scalars = event_logs.read_scalars(workdir)
    except FileNotFoundError:
        if diverged is None:
            raise
        scalars = {}
    steps, accuracy = scalars.get(ACCURACY, (np.zeros(0, int), np.zeros(0)))
    return Run(workdir.name, config, steps, accuracy, scalars, diverged)


def load_rows(runs: Path, seeds: tuple[int, ...]) -> dict[str, list[Run]]:
    """Every row of the plan: the seeded rows with ``seeds``, the others with the first."""
    rows = {}
    for row in (*plan.ROWS, *plan.CONTROLS, plan.NO_L2, *plan.SWEEPS):
        row_seeds = seeds if row in plan.SEEDED_ROWS else seeds[:1]
        rows[row] = [load(runs / run_name(row, seed)) for seed in row_seeds]
    return rows
