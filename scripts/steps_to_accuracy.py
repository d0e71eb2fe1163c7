"""A Table-2 style table from training runs' logs: steps to reach a target accuracy.

  python scripts/steps_to_accuracy.py [--target 0.722] [--baseline NAME] DIR [DIR ...]

For each run (a training --workdir, named by its directory name or --labels): the
first evaluated step at which eval/accuracy reached the target ("never" if it did
not), the maximum accuracy and the first step it was reached at, and the speed-up
over the baseline run (the baseline's steps to the target divided by the run's).
Without --target the target is the baseline's maximum accuracy, as in the paper,
whose 72.2% is the maximum of its Inception baseline. Steps are only as precise as
the runs' evaluation interval. Prints a markdown table; --out also writes it to a file.
"""

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from bn_repro.event_logs import first_step_reaching, read_scalars

TAG = "eval/accuracy"


@dataclasses.dataclass(frozen=True)
class RunSummary:
    name: str
    steps_to_target: int | None
    max_accuracy: float
    max_step: int


def summarize(name: str, steps: np.ndarray, accuracy: np.ndarray, target: float) -> RunSummary:
    best = int(np.argmax(accuracy))  # the first step at which the maximum was reached
    return RunSummary(
        name, first_step_reaching(steps, accuracy, target), float(accuracy[best]), int(steps[best])
    )


def speedup(run: RunSummary, baseline: RunSummary | None) -> str:
    if baseline is None or run.steps_to_target is None or baseline.steps_to_target is None:
        return "—"
    return f"{baseline.steps_to_target / run.steps_to_target:.1f}×"


def markdown_table(runs: list[RunSummary], target: float, baseline: RunSummary | None) -> str:
    header = f"| Model | Steps to {target:.1%} | Speed-up | Max accuracy | at step |"
    lines = [header, "| --- | ---: | ---: | ---: | ---: |"]
    for run in runs:
        reached = "never" if run.steps_to_target is None else f"{run.steps_to_target:,}"
        lines.append(
            f"| {run.name} | {reached} | {speedup(run, baseline)} | {run.max_accuracy:.1%} "
            f"| {run.max_step:,} |"
        )
    return "\n".join(lines)


def report(
    workdirs: list[Path],
    labels: list[str] | None = None,
    target: float | None = None,
    baseline_name: str | None = None,
    tag: str = TAG,
) -> str:
    """The table for ``workdirs`` (see the module docstring)."""
    labels = labels or [Path(w).name for w in workdirs]
    if len(labels) != len(workdirs):
        raise ValueError(f"{len(labels)} labels for {len(workdirs)} runs.")
    curves = {}
    for label, workdir in zip(labels, workdirs, strict=True):
        scalars = read_scalars(workdir)
        if tag not in scalars:
            raise ValueError(f"{workdir} has no {tag!r} scalars yet (tags: {sorted(scalars)}).")
        curves[label] = scalars[tag]
    if baseline_name is not None and baseline_name not in curves:
        raise ValueError(f"--baseline {baseline_name!r} is not one of the runs {list(curves)}.")
    if target is None:
        if baseline_name is None:
            raise ValueError("Give --target, or --baseline to use its maximum accuracy.")
        target = float(np.max(curves[baseline_name][1]))
    runs = [summarize(label, *curve, target) for label, curve in curves.items()]
    baseline = next((r for r in runs if r.name == baseline_name), None)
    return markdown_table(runs, target, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdirs", nargs="+", type=Path, metavar="DIR")
    parser.add_argument("--target", type=float, help="accuracy in [0, 1], e.g. 0.722")
    parser.add_argument("--baseline", help="name of the run the speed-ups are relative to")
    parser.add_argument("--labels", nargs="+", help="names of the runs, in the order of the DIRs")
    parser.add_argument("--tag", default=TAG, help=f"scalar to read (default {TAG})")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    try:
        table = report(args.workdirs, args.labels, args.target, args.baseline, args.tag)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(1, f"error: {error}\n")
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
