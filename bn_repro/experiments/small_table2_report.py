"""The CPU-scale Table 2 as markdown: calibration, Table 2, speed-ups, LR tolerance.

The definitions behind each number are in bn_repro/experiments/small_table2.py.
"""

import re
from pathlib import Path

import numpy as np

from bn_repro.configs import small_table2 as plan
from bn_repro.event_logs import first_step_reaching
from bn_repro.experiments import small_table2 as table2
from bn_repro.experiments.runner import diverged

Curves = dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]  # (row, seed) → curve
# (row, seed, target) → steps to it with moving-average and with population statistics
Crossings = dict[tuple[str, int, float], tuple[int | None, int | None]]


def _calibration_outcomes(runs: Path) -> tuple[dict, dict, dict]:
    """Per (rate, seed): final accuracy and outcome; per rate: the mean over seeds,
    for the rates no seed of which diverged."""
    finals, outcomes, means = {}, {}, {}
    for rate in plan.CALIBRATION_RATES:
        for seed in plan.CALIBRATION_SEEDS:
            workdir = runs / table2.calibration_name(rate, seed)
            _, accuracy = table2.curve(workdir)
            final = float(np.mean(accuracy[-3:])) if len(accuracy) else float("nan")
            stuck = final < 0.1 + table2.CHANCE_MARGIN
            finals[rate, seed] = final
            outcomes[rate, seed] = (
                "diverged" if diverged(workdir) else "stuck at chance" if stuck else "trained"
            )
        if "diverged" not in [outcomes[rate, seed] for seed in plan.CALIBRATION_SEEDS]:
            means[rate] = float(np.mean([finals[rate, seed] for seed in plan.CALIBRATION_SEEDS]))
    return finals, outcomes, means


def calibration_table(runs: Path) -> str:
    seeds = plan.CALIBRATION_SEEDS
    finals, outcomes, means = _calibration_outcomes(runs)
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


def main_table(runs: Path, population: bool) -> str:
    seeds = {row: table2.seeds(row) for row in plan.ROWS}
    curves = {
        (row, s): table2.curve(runs / table2.run_name(row, s))
        for row in plan.ROWS
        for s in seeds[row]
    }
    plateaus = [table2.plateau(*curves["inception", s]) for s in seeds["inception"]]
    targets = table2.targets_from(plateaus)
    out = _plateau_lines(seeds["inception"], plateaus, targets[0])
    found = _crossings(runs, curves, targets, population)
    baseline = [
        np.mean([found["inception", s, t][0] or np.nan for s in seeds["inception"]])
        for t in targets
    ]
    out += _runs_table(found, curves, targets, baseline)
    out += _speedup_table(found, seeds, targets, baseline)
    out += _ceiling(found, curves, targets, baseline)
    return "\n".join(out) + "\n"


def _plateau_lines(seeds: tuple[int, ...], plateaus: list[dict], a_star: float) -> list[str]:
    out = ["Inception's plateau (3-evaluation moving average):"]
    for s, p in zip(seeds, plateaus, strict=True):
        verdict = "plateau" if p["passes"] else "**still rising: not a plateau**"
        out.append(
            f"seed {s}: maximum {p['level']:.2%}, gain over the last 25% "
            f"{100 * p['gain']:+.2f} pt ({verdict})."
        )
    out.append(f"\nA* = {a_star:.2%}.\n")
    return out


def _crossings(runs: Path, curves: Curves, targets: list[float], population: bool) -> Crossings:
    """Every run's steps to every target, with population statistics where checked."""
    evaluators = {}

    def steps_to(row: str, seed: int, target: float) -> tuple[int | None, int | None]:
        steps, accuracy = curves[row, seed]
        ema = first_step_reaching(steps, accuracy, target) if len(steps) else None
        if not population or not len(steps) or not table2.has_population_checks(row):
            return ema, ema
        if (row, seed) not in evaluators:
            workdir = runs / table2.run_name(row, seed)
            evaluators[row, seed] = table2.population_evaluator(workdir, table2.POPULATION_BATCHES)
        return ema, table2.population_crossing(evaluators[row, seed], steps, accuracy, target)

    return {(row, s, t): steps_to(row, s, t) for row, s in curves for t in targets}


def _runs_table(found: Crossings, curves: Curves, targets: list, baseline: list) -> list[str]:
    header = " | ".join(
        f"steps to {t:.2%} ({table2.target_name(i)})" if i else f"steps to A* = {t:.2%}"
        for i, t in enumerate(targets)
    )
    out = [
        f"| model | seed | {header} | speed-up at A* | max accuracy |",
        "| --- | ---: |" + " ---: |" * (len(targets) + 2),
    ]
    for row, s in curves:
        cells = [_steps_cell(*found[row, s, t]) for t in targets]
        ema = found[row, s, targets[0]][0]
        speedup = f"{baseline[0] / ema:.1f}×" if ema and not np.isnan(baseline[0]) else "—"
        accuracy = curves[row, s][1]
        best = f"{np.max(accuracy):.2%}" if len(accuracy) else "—"
        out.append(f"| {table2.LABELS[row]} | {s} | {' | '.join(cells)} | {speedup} | {best} |")
    return out


def _speedup_table(found: Crossings, seeds: dict, targets: list, baseline: list) -> list[str]:
    """Inception's mean steps to each target over a row's mean, where every seed got there."""
    names = [table2.target_name(i) for i in range(len(targets))]
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
        out.append(f"| {table2.LABELS[row]} | " + " | ".join(cells) + " |")
    return out


def _ceiling(found: Crossings, curves: Curves, targets: list, baseline: list) -> list[str]:
    """The largest speed-up measurable: Inception's mean over the earliest crossing."""
    defined = [i for i, base in enumerate(baseline) if not np.isnan(base)]
    if not defined:
        return ["\nNo target was reached by every Inception seed: no speed-up is defined."]
    i = defined[0]
    crossings = [
        (min(x for x in found[row, s, targets[i]] if x is not None), table2.LABELS[row], s)
        for row, s in curves
        if any(x is not None for x in found[row, s, targets[i]])
    ]
    earliest = min(crossings)
    name = table2.target_name(i)
    name += " (the highest target every Inception seed reached)" if i else ""
    return [
        f"\nCeiling: the earliest any run reached {name} is step {earliest[0]:,} "
        f"({earliest[1]}, seed {earliest[2]}); with Inception's mean {baseline[i]:,.0f} steps "
        f"no run here can show more than {baseline[i] / earliest[0]:.1f}× there."
    ]


def _steps_cell(ema: int | None, pop: int | None) -> str:
    text = "never" if ema is None else f"{ema:,}"
    return text if pop == ema else f"{text} ({'never' if pop is None else f'{pop:,}'})"


def _outcome(message: str | None, accuracy: np.ndarray, num_classes: int) -> str:
    if message:
        step = re.search(r"steps? (\d+)", message)
        return f"diverged at step {step.group(1)}" if step else "diverged"
    if len(accuracy) and np.max(accuracy) < 1 / num_classes + table2.CHANCE_MARGIN:
        return "stuck at chance"
    return "trained"


def tolerance_table(runs: Path) -> str:
    rows = ("inception", "nobn_x5", "nobn_x30", "bn_x5", "bn_x30")
    lines = [
        "| run | initial rate | BN | outcome | max accuracy | final accuracy |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    for row in rows:
        config, workdir = plan.get_config(row), runs / table2.run_name(row, 0)
        steps, accuracy = table2.curve(workdir)
        outcome = _outcome(diverged(workdir), accuracy, config.num_classes)
        best = f"{np.max(accuracy):.2%}" if len(accuracy) else "—"
        final = f"{accuracy[-1]:.2%} (step {steps[-1]:,})" if len(accuracy) else "—"
        bn = "yes" if config.norm == "batch" else "no"
        lines.append(
            f"| {table2.LABELS[row]} | {config.learning_rate:g} | {bn} | {outcome} | {best} "
            f"| {final} |"
        )
    return "\n".join(lines) + "\n"


def report(runs: Path, population: bool) -> str:
    """The whole report; ``population``: with the population-statistics checks."""
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
