"""Runs the CPU-scale Table 2 (configs/small_table2.py), then its report and plot.

  python scripts/reproduce_small.py [--quick] [--runs=DIR] [--parallel=2|1]

Jobs: the calibration of Inception's rate (CALIBRATION_RATES × CALIBRATION_SEEDS),
the six Table-2 rows (SEEDS: two seeds for Inception, BN-x5 and BN-x30), and the two
rows without BN at ×5 and ×30. With ``--parallel=2`` (default) two jobs run side by
side, each on one core with one XLA thread (on the 2-core development machine this
gave more steps/s in aggregate than one two-threaded run; README); ``--parallel=1``
runs one job at a time on all cores. The longest jobs start first.

Each training job is `python -m bn_repro.main` in its own workdir under DIR, its
console in DIR/logs/NAME.log. Run again, the script skips finished jobs and resumes
the others from their checkpoints; SIGINT/SIGTERM stop every job at a checkpoint. A
job that diverges is a result, not a failure: its message goes to WORKDIR/DIVERGED
and the job counts as finished. The population-statistics checks of each BN run
(scripts/small_table2_report.py --population_for=NAME, cached in WORKDIR/eval) run
in the same slots, as soon as that run and Inception's seeds (which set the targets)
have finished. Then the report goes to DIR/table2.md and the plot
(scripts/plot_curves.py) to DIR/figure2.png. The jobs, their runner and the report:
bn_repro/experiments/small_table2.py, runner.py and small_table2_report.py.
"""

import argparse
import sys
import time
from pathlib import Path

from plot_curves import plot

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import runner, small_table2
from bn_repro.experiments.small_table2_report import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every row, about 10× shorter")
    parser.add_argument(
        "--runs", type=Path, help="default runs/small (runs/small_quick with --quick)"
    )
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=2)
    parser.add_argument("--only", help="run only the jobs whose name starts with this; no report")
    args = parser.parse_args()
    runs = args.runs or Path("runs/small_quick" if args.quick else "runs/small")
    (runs / "logs").mkdir(parents=True, exist_ok=True)
    began = time.time()
    every = small_table2.jobs(args.quick, runs)
    todo, done = runner.pending(every, runs)
    if args.only:
        todo = [job for job in todo if job.trains and job.name.startswith(args.only)]
    print(f"{len(todo)} of {len(every)} jobs to run in {runs}, {args.parallel} at a time.")
    if not runner.run_all(todo, done, runs, args.parallel, pin=args.parallel > 1):
        sys.exit(f"Stopped before every job finished; run {' '.join(sys.argv)} again to resume.")
    if args.only:
        return
    text = report(runs, population=True)
    (runs / "table2.md").write_text(text)
    print(text)
    workdirs = [runs / small_table2.run_name(row, 0) for row in plan.ROWS]
    plot(
        workdirs,
        runs / "figure2.png",
        [small_table2.LABELS[row] for row in plan.ROWS],
        title="Fashion-MNIST test accuracy (configs/small_table2.py, seed 0)",
    )
    print(
        f"Written {runs}/table2.md and {runs}/figure2.png. Wall time: {time.time() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
