"""Runs the CPU-scale Table 2 (configs/small_table2.py), then its report and plot.

  python scripts/reproduce_small.py [--quick] [--seeds=0,1,2] [--runs=DIR] [--parallel=2|1]
  python scripts/reproduce_small.py --calibrate   # Inception's rate, run once
  python scripts/reproduce_small.py --ablation    # Section 4.2.1, one change undone per arm
  python scripts/reproduce_small.py --table3      # Table 3: ensemble and multi-crop

Jobs: every row of the plan (docs/small_table2_protocol.md): the six Table-2 rows
(three seeds for Inception, BN-x5 and BN-x30), Inception at ×5 and ×30 without BN,
BN-x5 without L2, and the constant-rate sweeps with and without BN. ``--seeds`` runs
the seeded rows with other seeds, into their own DIR. With ``--parallel=2`` (default)
two jobs run side by side, each on one core with one XLA thread; ``--parallel=1`` runs
one job at a time on all cores. The longest jobs start first.

Each job is `python -m bn_repro.main` in its own workdir under DIR, its console in
DIR/logs/NAME.log (bn_repro/experiments/runner.py). Run again, the script skips
finished jobs and resumes the others from their checkpoints; SIGINT/SIGTERM stop every
job at a checkpoint; a job that diverges is a result. Then the report
(bn_repro/experiments/table2_report.py) goes to DIR/table2.md (DIR/calibration.md with
--calibrate) and the plot to DIR/figure2.png.
"""

import argparse
import sys
import time
from pathlib import Path

from plot_curves import plot

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import ablation, runner, table2_report, table3
from bn_repro.experiments.table2_runs import jobs, run_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every row, about 8× shorter")
    parser.add_argument(
        "--calibrate", action="store_true", help="only the calibration of Inception's rate"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="BN-x5 with each Section 4.2.1 change undone (after Inception and BN-x5)",
    )
    parser.add_argument(
        "--table3", action="store_true", help="Table 3: six members, six BN-x30 seeds, crops"
    )
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, plan.SEEDS)),
        help="seeds of Inception, BN-x5 and BN-x30; the other rows take the first",
    )
    parser.add_argument(
        "--runs", type=Path, help="default runs/small (runs/small_quick with --quick)"
    )
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=2)
    parser.add_argument("--only", help="run only the jobs whose name starts with this; no report")
    args = parser.parse_args()
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    default = Path("runs/small_quick" if args.quick else "runs/small")
    if seeds != plan.SEEDS:
        default = default.with_name(default.name + "_seeds" + "_".join(map(str, seeds)))
    runs = args.runs or default
    (runs / "logs").mkdir(parents=True, exist_ok=True)
    began = time.time()
    every = jobs(args.quick, runs, seeds, args.calibrate)
    if args.ablation:  # Inception's and BN-x5's Table-2 runs first: the arms' references
        needed = {run_name(row, s) for row in ("inception", "bn_x5") for s in seeds}
        every = [job for job in every if job.name in needed]
        every += ablation.jobs(args.quick, runs)
    if args.table3:
        every = table3.jobs(args.quick, runs)
    todo, done = runner.pending(every, runs)
    if args.only:
        todo = [job for job in todo if job.name.startswith(args.only)]
    print(f"{len(todo)} of {len(every)} jobs to run in {runs}, {args.parallel} at a time.")
    if not runner.run_all(todo, done, runs, args.parallel, pin=args.parallel > 1):
        sys.exit(f"Stopped before every job finished; run {' '.join(sys.argv)} again to resume.")
    if args.only:
        return
    if args.calibrate:
        text = table2_report.calibration_table(runs) + "\n"
        (runs / "calibration.md").write_text(text)
        print(text)
        return
    if args.table3:
        text = table3.report(runs)
        (runs / "table3.md").write_text(text + "\n")
        print(f"{text}\nWritten {runs}/table3.md.")
        return
    if args.ablation:
        text = ablation.report(runs)
        (runs / "ablation.md").write_text(text)
        ablation.plot(runs, runs / "ablation.png")
        print(f"{text}\nWritten {runs}/ablation.md and {runs}/ablation.png.")
        return
    text = table2_report.report(runs, seeds)
    (runs / "table2.md").write_text(text)
    print(text)
    plot(
        [runs / run_name(row, seeds[0]) for row in plan.ROWS],
        runs / "figure2.png",
        [table2_report.LABELS[row] for row in plan.ROWS],
        title=f"Fashion-MNIST test accuracy (configs/small_table2.py, seed {seeds[0]})",
    )
    print(
        f"Written {runs}/table2.md and {runs}/figure2.png. Wall time: {time.time() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
