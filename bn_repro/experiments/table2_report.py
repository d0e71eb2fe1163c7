"""The CPU-scale Table 2 as markdown: the tables and criteria of
docs/small_table2_protocol.md, from the runs of scripts/reproduce_small.py."""

from pathlib import Path

import numpy as np

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import crossings, table2_analysis
from bn_repro.experiments.table2_runs import Run, calibration_name, load, load_rows

LABELS = {
    "inception": "Inception",
    "bn_baseline": "BN-Baseline",
    "bn_x5": "BN-x5",
    "bn_x30": "BN-x30",
    "bn_x5_sigmoid": "BN-x5-Sigmoid",
    "inception_sigmoid": "Inception-Sigmoid",
    "inception_x5": "Inception ×5",
    "inception_x30": "Inception ×30",
    plan.NO_L2: "BN-x5 without L2",
}
TARGETS = [f"A*−{100 * o:g}" if o else "A*" for o in crossings.OFFSETS]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _steps(value: float) -> str:
    return "never" if np.isnan(value) else f"{value:,.0f}"


def _spread(values: np.ndarray, unit: str = "×") -> str:
    """median [min–max] of the finite values, and how many there are."""
    finite = values[~np.isnan(values)]
    if not len(finite):
        return f"— (0/{values.size})"
    low, mid, high = np.min(finite), np.median(finite), np.max(finite)
    return f"{mid:.1f}{unit} [{low:.1f}–{high:.1f}] ({len(finite)}/{values.size})"


def targets_table(inception: list[Run]) -> str:
    rows = []
    for run, found in zip(inception, table2_analysis.targets(inception), strict=True):
        verdict = "passes" if found["gain"] < crossings.PLATEAU_GAIN else "fails"
        rows.append(
            [run.name, f"{found['a_star']:.2%}", *map(_steps, found["steps"]),
             f"{found['rate']:.3g}", f"{found['gain'] * 100:+.2f} pt ({verdict})"]
        )  # fmt: skip
    header = ["Inception run", "A* (smoothed max)", *[f"steps to {t}" for t in TARGETS]]
    return _table([*header, "rate at A*", "plateau: gain over last 25%"], rows)


def runs_table(rows: dict[str, list[Run]]) -> str:
    """Every run: steps to each target (median over the Inception seeds' targets)."""
    inception = rows["inception"]
    lines = []
    for row in (*plan.ROWS, *plan.CONTROLS, plan.NO_L2):
        pairs = table2_analysis.pairs(inception, rows[row])
        for j, run in enumerate(rows[row]):
            steps = [float(np.nanmedian(pairs.steps[o, :, j])) if pairs.reached(o) else np.nan
                     for o in range(len(TARGETS))]  # fmt: skip
            rate = np.nanmedian(pairs.rates[0, :, j]) if not np.isnan(steps[0]) else np.nan
            status = f"diverged: {run.diverged}" if run.diverged else f"{run.maximum:.2%}"
            lines.append(
                [LABELS[row], str(run.config.seed), *map(_steps, steps),
                 "—" if np.isnan(rate) else f"{rate:.3g}", status,
                 f"{run.plateau_gain() * 100:+.2f} pt" if len(run.steps) > 1 else "—"]
            )  # fmt: skip
    header = ["row", "seed", *[f"steps to {t}" for t in TARGETS], "rate at A*"]
    return _table([*header, "max (smoothed)", "gain over last 25%"], lines)


def speedup_table(rows: dict[str, list[Run]]) -> str:
    lines = []
    for row in plan.ROWS[1:]:
        pairs = table2_analysis.pairs(rows["inception"], rows[row])
        only = _spread(pairs.schedule_only[0])
        lines.append(
            [LABELS[row], *[_spread(pairs.speedups[o]) for o in range(len(TARGETS))], only]
        )
    header = ["row", *[f"speed-up at {t}" for t in TARGETS], "schedule-only at A*"]
    return _table(header, lines)


def tolerance_table(rows: dict[str, list[Run]]) -> str:
    lines = []
    for multiple in plan.SWEEP_MULTIPLES:
        cells = []
        for bn in ("nobn", "bn"):
            run = rows[f"sweep_{bn}_x{multiple}"][0]
            cells.append("diverged" if run.diverged else f"{run.final:.2%}")
        rate = multiple * plan.INCEPTION_LR
        lines.append([f"×{multiple} ({rate:g})", *cells])
    table = _table(["constant rate", "without BN", "with BN"], lines)
    bn, nobn = (table2_analysis.tolerance(rows, b) for b in ("bn", "nobn"))
    ratio = f"{bn / nobn:g}×" if nobn else "— (no rate trains without BN)"
    return f"{table}\n\nLargest multiple that trains: ×{bn} with BN, ×{nobn} without: **{ratio}**."


def l2_and_lrn_table(rows: dict[str, list[Run]]) -> str:
    lines = []
    for row in ("inception", "bn_baseline", "bn_x5", plan.NO_L2, "bn_x30"):
        run = rows[row][0]
        strength = plan.l2_strength(run.config)
        lines.append(
            [LABELS[row], f"{run.config.weight_decay:.3g}", f"{strength:.3f}",
             f"{run.first('train/kernel_norm'):.3g}", f"{run.last('train/kernel_norm'):.3g}"]
        )  # fmt: skip
    header = ["row (seed 0)", "λ", "λ·Σ rates", "kernel norm at first log", "at the end"]
    divisor = rows["inception"][0].last("eval/lrn1/divisor_max/p50")
    divisor2 = rows["inception"][0].last("eval/lrn2/divisor_max/p50")
    return _table(header, lines) + (
        f"\n\nLRN divisor at Inception's last evaluation (median over test images of each "
        f"image's largest): {divisor:.3f} (lrn1), {divisor2:.3f} (lrn2)."
    )


def criteria_table(rows: dict[str, list[Run]]) -> str:
    lines = [
        [cid, claim, measured, "**held**" if held else "**not held**"]
        for cid, claim, measured, held in table2_analysis.criteria(rows)
    ]
    return _table(["id", "claim", "measured", "criterion"], lines)


def calibration_table(runs: Path) -> str:
    lines, scores = [], {}
    for rate in plan.CALIBRATION_RATES:
        seeds = [load(runs / calibration_name(rate, s)) for s in plan.CALIBRATION_SEEDS]
        finals = [run.final for run in seeds]
        if not any(run.diverged for run in seeds):
            scores[rate] = float(np.mean(finals))
        cells = ["diverged" if r.diverged else f"{r.final:.2%}" for r in seeds]
        spread = abs(finals[0] - finals[-1]) * 100
        lines.append([f"{rate:g}", *cells, f"{np.mean(finals):.2%}", f"{spread:.2f} pt"])
    best = max(scores.values())
    good = [rate for rate, score in scores.items() if score >= best - plan.CALIBRATION_MARGIN]
    for line in lines:
        line.append("yes" if float(line[0]) in good else "no")
    header = ["rate", *[f"seed {s}" for s in plan.CALIBRATION_SEEDS], "mean", "spread"]
    table = _table([*header, "trains well"], lines)
    chosen = max(good)
    note = "" if chosen == plan.INCEPTION_LR else f" **The config has {plan.INCEPTION_LR:g}.**"
    return f"{table}\n\nLargest rate that trains well: **{chosen:g}**.{note}"


def report(runs: Path, seeds: tuple[int, ...]) -> str:
    rows = load_rows(runs, seeds)
    sections = [
        ("Criteria (docs/small_table2_protocol.md)", criteria_table(rows)),
        ("Inception: the targets", targets_table(rows["inception"])),
        ("Steps to each target (median over the Inception seeds' targets)", runs_table(rows)),
        ("Speed-up over Inception: median [min–max] (pairs reaching)", speedup_table(rows)),
        ("Learning-rate tolerance (constant rates, final accuracy)", tolerance_table(rows)),
        ("L2 and LRN", l2_and_lrn_table(rows)),
    ]
    return "\n\n".join(f"#### {title}\n\n{body}" for title, body in sections) + "\n"
