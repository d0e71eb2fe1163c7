"""Section 4.2.1 at CPU scale: what undoing each of BN-x5's changes does
(configs/small_ablation.py, docs/small_ablation_protocol.md).

Each arm is compared with BN-x5 and Inception of the Table-2 runs (the same
directory): the targets are Inception's (A*_i − offset per Inception seed, as in
`table2_analysis`), and an arm's steps to a target are the median over those.
"""

import warnings
from pathlib import Path

import matplotlib
import numpy as np

from bn_repro.configs import small_ablation
from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import crossings, runner, table2_analysis
from bn_repro.experiments.table2_runs import Run, load, run_name

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SEEDS = (0, 1)
BASELINE = "bn_x5"
OFFSET = 2  # index into crossings.OFFSETS: A*−1, the figure's target


def arm_name(arm: str, seed: int) -> str:
    return run_name(f"ablation_{arm}", seed)


def jobs(quick: bool, runs: Path, seeds: tuple[int, ...] = SEEDS) -> list[runner.Job]:
    """Every arm with every seed; BN-x5 and Inception come from the Table-2 jobs."""
    suffix = ",quick" if quick else ""
    return [
        runner.training_job(
            arm_name(arm, seed),
            f"configs/small_ablation.py:{arm}{suffix}",
            runs,
            small_ablation.get_config(arm + suffix).total_steps,
            f"--config.seed={seed}",
        )
        for arm in small_ablation.ARMS
        for seed in seeds
    ]


def _steps(inception: list[Run], runs: list[Run]) -> np.ndarray:
    """[offset, run]: the median over Inception seeds of each run's steps to A*_i − offset."""
    pairs = table2_analysis.pairs(inception, runs)
    with warnings.catch_warnings():  # a run that never gets there gives an all-NaN median
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array(
            [[np.nanmedian(pairs.steps[o, :, j]) for j in range(len(runs))]
             for o in range(len(crossings.OFFSETS))]
        )  # fmt: skip


def rows(runs: Path, seeds: tuple[int, ...] = SEEDS) -> dict[str, list[Run]]:
    found = {arm: [load(runs / arm_name(arm, s)) for s in seeds] for arm in small_ablation.ARMS}
    found[BASELINE] = [load(runs / run_name(BASELINE, s)) for s in seeds]
    return found


def report(runs: Path, seeds: tuple[int, ...] = SEEDS) -> str:
    inception = [load(runs / run_name("inception", s)) for s in plan.SEEDS]
    arms = rows(runs, seeds)
    baseline = np.nanmean(_steps(inception, arms[BASELINE]), axis=1)
    targets = [f"A*−{100 * o:g}" if o else "A*" for o in crossings.OFFSETS]
    lines = [
        "| arm (BN-x5 with … undone) | " + " | ".join(f"steps to {t}" for t in targets)
        + " | ×BN-x5's steps at A*−1 | max (smoothed) |",
        "|" + "---|" * (len(targets) + 3),
    ]  # fmt: skip
    for arm, found in arms.items():
        steps = _steps(inception, found)
        cells = [
            " / ".join("never" if np.isnan(v) else f"{v:,.0f}" for v in steps[o])
            for o in range(len(targets))
        ]
        reached = steps[OFFSET][~np.isnan(steps[OFFSET])]
        ratio = f"{reached.mean() / baseline[OFFSET]:.2f}" if reached.size else "never"
        maxima = " / ".join(f"{run.maximum:.2%}" for run in found)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {ratio} | {maxima} |")
    table = "\n".join(lines) + f"\n\nSeeds {', '.join(map(str, seeds))} in each cell."
    return f"{table}\n\n{readings_table(inception, arms)}\n"


def _at_target(inception: list[Run], found: list[Run]) -> np.ndarray:
    """Each seed's steps to A*−1; inf where it never gets there."""
    steps = _steps(inception, found)[OFFSET]
    return np.where(np.isnan(steps), np.inf, steps)


def readings(inception: list[Run], arms: dict[str, list[Run]]) -> list[tuple[str, str, bool]]:
    """(id, what was measured, held) for the protocol's readings A1-A5."""
    base = _at_target(inception, arms[BASELINE])
    slowdown = {
        arm: float(np.mean(_at_target(inception, found)) / np.mean(base))
        for arm, found in arms.items()
        if arm != BASELINE
    }
    undone = [arm for arm in small_ablation.UNDO]
    matters = [arm for arm in undone if _at_target(inception, arms[arm]).min() > base.max()]
    faster = [arm for arm in undone if _at_target(inception, arms[arm]).max() < base.min()]
    ranked = sorted(undone, key=lambda arm: -slowdown[arm])
    shuffle_loss = np.mean([r.maximum for r in arms[BASELINE]]) - np.mean(
        [r.maximum for r in arms["shuffle"]]
    )
    control, fast_decay = slowdown["inception_bn_x5_schedule"], slowdown["bn_baseline_fast_decay"]
    return [
        ("A1", "by slowdown: " + ", ".join(f"{a} {slowdown[a]:.2f}×" for a in ranked)
         + f"; matter: {', '.join(matters) or 'none'}", bool(matters)),
        ("A2", f"faster than BN-x5: {', '.join(faster) or 'none'}", bool(faster)),
        ("A3", f"BN-x5's maximum − the shuffle arm's: {shuffle_loss * 100:+.2f} pt",
         shuffle_loss >= 0.005),
        ("A4", f"Inception on BN-x5's schedule: {_times(control)}", control >= 2),
        ("A5", f"BN-Baseline with the fast decay: {_times(fast_decay)}", fast_decay >= 1.5),
    ]  # fmt: skip


def _times(slowdown: float) -> str:
    return "never reaches A*−1" if np.isinf(slowdown) else f"{slowdown:.2f}× BN-x5's steps"


def readings_table(inception: list[Run], arms: dict[str, list[Run]]) -> str:
    lines = ["| reading | measured | criterion |", "|---|---|---|"]
    for rid, measured, held in readings(inception, arms):
        lines.append(f"| {rid} | {measured} | {'**held**' if held else '**not held**'} |")
    return "\n".join(lines)


def plot(runs: Path, out: Path, seeds: tuple[int, ...] = SEEDS) -> None:
    """Steps to A*−1 per arm, one dot per seed, bars at the mean."""
    inception = [load(runs / run_name("inception", s)) for s in plan.SEEDS]
    arms = rows(runs, seeds)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (arm, found) in enumerate(arms.items()):
        steps = _steps(inception, found)[OFFSET]
        colour = "tab:blue" if arm != BASELINE else "tab:grey"
        if np.isnan(steps).all():
            ax.text(k, 0, "never", rotation=90, ha="center", va="bottom")
        else:
            ax.bar(k, np.nanmean(steps), color=colour)
            ax.plot([k] * len(steps), steps, "k.", markersize=6)
    ax.set_xticks(range(len(arms)), list(arms), rotation=40, ha="right")
    ax.set_ylabel("steps to A*−1 (median over Inception seeds)")
    ax.set_title("BN-x5 with one Section 4.2.1 change undone (CPU scale)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
