"""The CPU-scale Table 2 (configs/small_table2.py): its jobs and what its report measures.

The definitions, fixed before the runs, read from each run's TensorBoard curve
(eval/accuracy, moving-average BN statistics):

* Calibration: each constant rate's final accuracy (mean of its last 3 evaluations)
  for each seed and over seeds, whether it diverged, whether it trains well (no seed
  diverged, mean within CALIBRATION_MARGIN of the best).
* Plateau: Inception's 3-evaluation moving average must gain < 0.3 pt over the last
  25% of its run. The target A* is that moving average's maximum, averaged over the
  Inception seeds (not one noisy evaluation).
* Table 2: steps to A*, A*−0.5, A*−1 and A*−2 pt for every run and seed (first
  evaluation at or above the target), and in parentheses the same with Algorithm 2's
  population statistics, evaluated at the checkpoints around each crossing; the
  speed-up over Inception's mean steps to the same target, per seed at A* and per
  row (mean over seeds) at every target; the ceiling, at A* or, if an Inception seed
  never reached A*, at the highest target every Inception seed reached.
* LR tolerance: the rows at ×5 and ×30 without BN next to BN-x5 and BN-x30.

The tables are written by bn_repro/experiments/small_table2_report.py.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bn_repro.configs import small_table2 as plan
from bn_repro.event_logs import first_step_reaching, read_scalars
from bn_repro.experiments import runner

TAG = "eval/accuracy"
OFFSETS = (0.0, 0.005, 0.01, 0.02)  # targets A* − offset
PLATEAU_WINDOW, PLATEAU_FRACTION, PLATEAU_GAIN = 3, 0.25, 0.003
CHANCE_MARGIN = 0.05  # max accuracy below 10% + this: stuck at chance
POPULATION_BATCHES = 100
# The command that makes (and caches) one run's population checks.
REPORT_SCRIPT = "scripts/small_table2_report.py"
LABELS = {
    "inception": "Inception",
    "bn_baseline": "BN-Baseline",
    "bn_x5": "BN-x5",
    "bn_x30": "BN-x30",
    "bn_x5_sigmoid": "BN-x5-Sigmoid",
    "inception_sigmoid": "Inception-Sigmoid",
    "nobn_x5": "BN-x5 without BN",
    "nobn_x30": "BN-x30 without BN",
}


def run_name(row: str, seed: int) -> str:
    return f"{row}_seed{seed}"


def calibration_name(rate: float, seed: int) -> str:
    return f"calibration_lr{rate:g}_seed{seed}"


def seeds(row: str) -> tuple[int, ...]:
    return plan.SEEDS.get(row, (0,))


def curve(workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's eval/accuracy curve; empty for a run that diverged before evaluating."""
    try:
        scalars = read_scalars(workdir)
    except FileNotFoundError:
        if runner.diverged(workdir) is None:
            raise
        scalars = {}
    if TAG not in scalars:
        return np.zeros(0, int), np.zeros(0)
    return scalars[TAG]


def moving_average(values: np.ndarray, window: int = PLATEAU_WINDOW) -> np.ndarray:
    """Trailing mean of ``window`` evaluations (aligned with the last of them)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plateau(steps: np.ndarray, accuracy: np.ndarray) -> dict:
    smooth, smooth_steps = moving_average(accuracy), steps[PLATEAU_WINDOW - 1 :]
    start = np.searchsorted(smooth_steps, (1 - PLATEAU_FRACTION) * steps[-1])
    gain = float(smooth[-1] - smooth[start])
    return {"level": float(np.max(smooth)), "gain": gain, "passes": gain < PLATEAU_GAIN}


def inception_plateaus(runs: Path) -> list[dict]:
    return [plateau(*curve(runs / run_name("inception", s))) for s in seeds("inception")]


def targets_from(plateaus: list[dict]) -> list[float]:
    """A* (the mean of the Inception seeds' plateaus), A*−0.5, A*−1, A*−2."""
    a_star = float(np.mean([p["level"] for p in plateaus]))
    return [a_star - offset for offset in OFFSETS]


def target_name(i: int) -> str:
    return "A*" if i == 0 else f"A*−{100 * OFFSETS[i]:g}"


def population_crossing(
    accuracy_at: Callable[[int], float], steps: np.ndarray, ema: np.ndarray, target: float
) -> int | None:
    """First step reaching ``target`` with population statistics, searched from the
    EMA crossing (or the EMA maximum) backwards and forwards through the checkpoints."""
    crossing = first_step_reaching(steps, ema, target)
    i = int(np.argmax(ema)) if crossing is None else int(np.searchsorted(steps, crossing))
    while accuracy_at(int(steps[i])) < target:
        i += 1
        if i == len(steps):
            return None
    while i > 0 and accuracy_at(int(steps[i - 1])) >= target:
        i -= 1
    return int(steps[i])


def population_evaluator(workdir: Path, batches: int) -> Callable[[int], float]:
    """Accuracy of a checkpoint with Algorithm 2's statistics, cached in DIR/eval."""
    from bn_repro import evaluate  # JAX starts only when population checks are made

    name = evaluate.variant_name("population", batches, "center")
    cache: dict[int, float] = {}
    predictor = None

    def accuracy_at(step: int) -> float:
        nonlocal predictor
        path = workdir / "eval" / f"{name}_step{step}.json"
        if step not in cache and path.exists():
            cache[step] = json.loads(path.read_text())["accuracy"]
        if step not in cache:
            predictor = predictor or evaluate.CheckpointPredictor(workdir)
            predictions = predictor.predict(step, "population", batches)
            metrics = evaluate.accuracy_metrics(predictions.log_probs, predictions.labels)
            evaluate.write_results(workdir, name, step, metrics)
            cache[step] = metrics["accuracy"]
            print(f"  {workdir.name} step {step}: population accuracy {cache[step]:.4f}")
        return cache[step]

    return accuracy_at


def has_population_checks(row: str) -> bool:
    return plan.get_config(row).norm == "batch"


def check_population(runs: Path, row: str, seed: int) -> None:
    """Evaluates, with population statistics, the checkpoints around the run's crossing
    of every target (cached in its DIR/eval, where the report finds them)."""
    steps, accuracy = curve(runs / run_name(row, seed))
    if not len(steps) or not has_population_checks(row):
        return
    checker = population_evaluator(runs / run_name(row, seed), POPULATION_BATCHES)
    for target in targets_from(inception_plateaus(runs)):
        population_crossing(checker, steps, accuracy, target)


def _training_job(name: str, config: str, runs: Path, *overrides: str) -> runner.Job:
    steps = plan.get_config(config).total_steps
    return runner.training_job(name, f"configs/small_table2.py:{config}", runs, steps, *overrides)


def jobs(quick: bool, runs: Path) -> list[runner.Job]:
    """The population checks (each as soon as its run and Inception's seeds, which set
    the targets, have finished), then the training jobs, longest first."""
    suffix = ",quick" if quick else ""
    training = [
        _training_job(
            calibration_name(rate, seed),
            plan.CALIBRATION + suffix,
            runs,
            f"--config.learning_rate={rate}",
            f"--config.seed={seed}",
        )
        for rate in plan.CALIBRATION_RATES
        for seed in plan.CALIBRATION_SEEDS
    ]
    checks = []
    inception = {run_name("inception", seed) for seed in seeds("inception")}
    for row in (*plan.ROWS, *plan.WITHOUT_BN):
        for seed in seeds(row):
            name = run_name(row, seed)
            training.append(_training_job(name, row + suffix, runs, f"--config.seed={seed}"))
            if row in plan.ROWS and has_population_checks(row):
                arguments = (REPORT_SCRIPT, f"--runs={runs}", f"--population_for={name}")
                needs = frozenset({name, *inception})
                checks.append(runner.Job(f"{name}_population", arguments, 0, False, needs))
    return checks + sorted(training, key=lambda job: -job.steps)
