"""The CPU-scale Table 2 from the runs of scripts/reproduce_small.py, as markdown.

  python scripts/small_table2_report.py [--runs=runs/small] [--out=FILE] [--no_population]
  python scripts/small_table2_report.py --population_for=bn_x5_seed0  # only its checks

Reads each run's TensorBoard curve (eval/accuracy, moving-average BN statistics) and
writes, with the definitions fixed before the runs (configs/small_table2.py):

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
"""

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bn_repro.configs import small_table2 as plan
from bn_repro.event_logs import first_step_reaching, read_scalars

TAG = "eval/accuracy"
OFFSETS = (0.0, 0.005, 0.01, 0.02)  # targets A* − offset
PLATEAU_WINDOW, PLATEAU_FRACTION, PLATEAU_GAIN = 3, 0.25, 0.003
CHANCE_MARGIN = 0.05  # max accuracy below 10% + this: stuck at chance
POPULATION_BATCHES = 100
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


def diverged(workdir: Path) -> str | None:
    """The divergence message reproduce_small.py recorded for the run, if any."""
    marker = workdir / "DIVERGED"
    return marker.read_text().strip() if marker.exists() else None


def curve(workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's eval/accuracy curve; empty for a run that diverged before evaluating."""
    try:
        scalars = read_scalars(workdir)
    except FileNotFoundError:
        if diverged(workdir) is None:
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


def population_crossing(
    accuracy_at: Callable[[int], float], steps: np.ndarray, ema: np.ndarray, target: float
) -> int | None:
    """First step reaching ``target`` with population statistics, searched from the
    EMA crossing (or the EMA maximum) backwards and forwards through the checkpoints."""
    i = first_index(ema, target)
    i = int(np.argmax(ema)) if i is None else i
    while accuracy_at(int(steps[i])) < target:
        i += 1
        if i == len(steps):
            return None
    while i > 0 and accuracy_at(int(steps[i - 1])) >= target:
        i -= 1
    return int(steps[i])


def first_index(values: np.ndarray, target: float) -> int | None:
    reached = np.nonzero(values >= target)[0]
    return int(reached[0]) if len(reached) else None


def population_evaluator(workdir: Path, batches: int) -> Callable[[int], float]:
    """Accuracy of a checkpoint with Algorithm 2's statistics, cached in DIR/eval."""
    from bn_repro import evaluate  # JAX starts only when population checks are made

    name = evaluate.variant_name("population", batches, "center")
    cache: dict[int, float] = {}
    runner = None

    def accuracy_at(step: int) -> float:
        nonlocal runner
        path = workdir / "eval" / f"{name}_step{step}.json"
        if step not in cache and path.exists():
            cache[step] = json.loads(path.read_text())["accuracy"]
        if step not in cache:
            runner = runner or evaluate.CheckpointPredictor(workdir)
            predictions = runner.predict(step, "population", batches)
            metrics = evaluate.accuracy_metrics(predictions.log_probs, predictions.labels)
            evaluate.write_results(workdir, name, step, metrics)
            cache[step] = metrics["accuracy"]
            print(f"  {workdir.name} step {step}: population accuracy {cache[step]:.4f}")
        return cache[step]

    return accuracy_at


def calibration_table(runs: Path) -> str:
    seeds = plan.CALIBRATION_SEEDS
    finals, outcomes, means = {}, {}, {}
    for rate in plan.CALIBRATION_RATES:
        for seed in seeds:
            workdir = runs / calibration_name(rate, seed)
            _, accuracy = curve(workdir)
            final = float(np.mean(accuracy[-3:])) if len(accuracy) else float("nan")
            stuck = final < 0.1 + CHANCE_MARGIN
            finals[rate, seed] = final
            outcomes[rate, seed] = (
                "diverged" if diverged(workdir) else "stuck at chance" if stuck else "trained"
            )
        if "diverged" not in [outcomes[rate, seed] for seed in seeds]:
            means[rate] = float(np.mean([finals[rate, seed] for seed in seeds]))
    best = max(means.values())
    good = [rate for rate, mean in means.items() if mean >= best - plan.CALIBRATION_MARGIN]
    per_seed = [f"seed {seed}" for seed in seeds]
    lines = [
        f"| constant rate | outcome | final accuracy (mean of last 3): {', '.join(per_seed)} "
        "| mean over seeds | trains well |",
        "| ---: | --- | ---: | ---: | --- |",
    ]
    for rate in plan.CALIBRATION_RATES:
        outcome = " / ".join(dict.fromkeys(outcomes[rate, seed] for seed in seeds))
        final = " / ".join(
            "—" if np.isnan(finals[rate, seed]) else f"{finals[rate, seed]:.2%}" for seed in seeds
        )
        mean = f"{means[rate]:.2%}" if rate in means else "—"
        well = "yes" if rate in good else "no"
        lines.append(f"| {rate:g} | {outcome} | {final} | {mean} | {well} |")
    chosen = max(good)
    note = (
        ""
        if chosen == plan.INCEPTION_LR
        else (f" **The config uses {plan.INCEPTION_LR:g}: update INCEPTION_LR.**")
    )
    return "\n".join(lines) + f"\n\nLargest rate that trains well: **{chosen:g}**.{note}\n"


def _seeds(row: str) -> tuple[int, ...]:
    return plan.SEEDS.get(row, (0,))


def inception_plateaus(runs: Path) -> list[dict]:
    return [plateau(*curve(runs / run_name("inception", s))) for s in _seeds("inception")]


def targets_from(plateaus: list[dict]) -> list[float]:
    """A* (the mean of the Inception seeds' plateaus), A*−0.5, A*−1, A*−2."""
    a_star = float(np.mean([p["level"] for p in plateaus]))
    return [a_star - offset for offset in OFFSETS]


def _target_name(i: int) -> str:
    return "A*" if i == 0 else f"A*−{100 * OFFSETS[i]:g}"


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


def main_table(runs: Path, population: bool) -> str:
    seeds = {row: _seeds(row) for row in plan.ROWS}
    curves = {(row, s): curve(runs / run_name(row, s)) for row in plan.ROWS for s in seeds[row]}
    plateaus = [plateau(*curves["inception", s]) for s in seeds["inception"]]
    targets = targets_from(plateaus)
    a_star = targets[0]
    out = ["Inception's plateau (3-evaluation moving average):"]
    for s, p in zip(seeds["inception"], plateaus, strict=True):
        verdict = "plateau" if p["passes"] else "**still rising: not a plateau**"
        out.append(
            f"seed {s}: maximum {p['level']:.2%}, gain over the last 25% "
            f"{100 * p['gain']:+.2f} pt ({verdict})."
        )
    out.append(f"\nA* = {a_star:.2%}.\n")

    def steps_to(row: str, seed: int, target: float) -> tuple[int | None, int | None]:
        steps, accuracy = curves[row, seed]
        ema = first_step_reaching(steps, accuracy, target) if len(steps) else None
        if not population or not len(steps) or not has_population_checks(row):
            return ema, ema
        checker = evaluators.setdefault(row, {}).setdefault(
            seed, population_evaluator(runs / run_name(row, seed), POPULATION_BATCHES)
        )
        return ema, population_crossing(checker, steps, accuracy, target)

    evaluators: dict = {}
    found = {(row, s, t): steps_to(row, s, t) for row, s in curves for t in targets}
    baseline = [
        np.mean([found["inception", s, t][0] or np.nan for s in seeds["inception"]])
        for t in targets
    ]
    header = " | ".join(
        f"steps to {t:.2%} ({_target_name(i)})" if i else f"steps to A* = {t:.2%}"
        for i, t in enumerate(targets)
    )
    out += [
        f"| model | seed | {header} | speed-up at A* | max accuracy |",
        "| --- | ---: |" + " ---: |" * (len(targets) + 2),
    ]
    for row, s in curves:
        cells = [_steps_cell(*found[row, s, t]) for t in targets]
        ema = found[row, s, targets[0]][0]
        speedup = f"{baseline[0] / ema:.1f}×" if ema and not np.isnan(baseline[0]) else "—"
        accuracy = curves[row, s][1]
        best = f"{np.max(accuracy):.2%}" if len(accuracy) else "—"
        out.append(f"| {LABELS[row]} | {s} | {' | '.join(cells)} | {speedup} | {best} |")
    out += _speedup_table(found, seeds, targets, baseline)
    out += _ceiling(found, curves, targets, baseline)
    return "\n".join(out) + "\n"


def _speedup_table(found: dict, seeds: dict, targets: list, baseline: list) -> list[str]:
    """Inception's mean steps to each target over a row's mean, where every seed got there."""
    names = [_target_name(i) for i in range(len(targets))]
    out = [
        "\nSpeed-up over Inception (mean steps to the target over seeds; — where a seed of "
        "the row or of Inception never reached it):\n",
        "| model | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(targets),
    ]
    for row in seeds:
        if row == "inception":
            continue
        cells = []
        for t, base in zip(targets, baseline, strict=True):
            steps = [found[row, s, t][0] for s in seeds[row]]
            reached = None not in steps and not np.isnan(base)
            cells.append(f"{base / np.mean(steps):.1f}×" if reached else "—")
        out.append(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
    return out


def _ceiling(found: dict, curves: dict, targets: list, baseline: list) -> list[str]:
    """The largest speed-up measurable: Inception's mean over the earliest crossing."""
    defined = [i for i, base in enumerate(baseline) if not np.isnan(base)]
    if not defined:
        return ["\nNo target was reached by every Inception seed: no speed-up is defined."]
    i = defined[0]
    crossings = [
        (min(x for x in found[row, s, targets[i]] if x is not None), LABELS[row], s)
        for row, s in curves
        if any(x is not None for x in found[row, s, targets[i]])
    ]
    earliest = min(crossings)
    name = _target_name(i) + (" (the highest target every Inception seed reached)" if i else "")
    return [
        f"\nCeiling: the earliest any run reached {name} is step {earliest[0]:,} "
        f"({earliest[1]}, seed {earliest[2]}); with Inception's mean {baseline[i]:,.0f} steps "
        f"no run here can show more than {baseline[i] / earliest[0]:.1f}× there."
    ]


def _steps_cell(ema: int | None, pop: int | None) -> str:
    text = "never" if ema is None else f"{ema:,}"
    return text if pop == ema else f"{text} ({'never' if pop is None else f'{pop:,}'})"


def tolerance_table(runs: Path) -> str:
    rows = ("inception", "nobn_x5", "nobn_x30", "bn_x5", "bn_x30")
    lines = [
        "| run | initial rate | BN | outcome | max accuracy | final accuracy |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    for row in rows:
        config, workdir = plan.get_config(row), runs / run_name(row, 0)
        steps, accuracy = curve(workdir)
        message = diverged(workdir)
        if message:
            step = re.search(r"steps? (\d+)", message)
            outcome = f"diverged at step {step.group(1)}" if step else "diverged"
        elif len(accuracy) and np.max(accuracy) < 1 / config.num_classes + CHANCE_MARGIN:
            outcome = "stuck at chance"
        else:
            outcome = "trained"
        best = f"{np.max(accuracy):.2%}" if len(accuracy) else "—"
        final = f"{accuracy[-1]:.2%} (step {steps[-1]:,})" if len(accuracy) else "—"
        bn = "yes" if config.norm == "batch" else "no"
        lines.append(
            f"| {LABELS[row]} | {config.learning_rate:g} | {bn} | {outcome} | {best} | {final} |"
        )
    return "\n".join(lines) + "\n"


def report(runs: Path, population: bool) -> str:
    return "\n".join(
        [
            "## Calibration of Inception's rate (constant rates, no BN)\n",
            calibration_table(runs),
            "## Table 2 at CPU scale (moving-average statistics; population statistics in "
            "parentheses where they differ)\n",
            main_table(runs, population),
            "## Learning-rate tolerance\n",
            tolerance_table(runs),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/small"))
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--no_population",
        action="store_true",
        help="skip the population-statistics checks (no JAX needed)",
    )
    parser.add_argument(
        "--population_for",
        metavar="NAME",
        help="only make (and cache) the population checks of run NAME, e.g. bn_x5_seed0",
    )
    args = parser.parse_args()
    try:
        if args.population_for:
            row, _, seed = args.population_for.rpartition("_seed")
            if row not in plan.ROWS or not seed.isdigit():
                sys.exit(
                    f"error: --population_for={args.population_for!r} is not a run name; "
                    f"valid: ROW_seedN with ROW one of {list(plan.ROWS)}."
                )
            check_population(args.runs, row, int(seed))
            return
        text = report(args.runs, population=not args.no_population)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}; run ./scripts/reproduce_small.sh first.")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
