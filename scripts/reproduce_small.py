"""Runs the CPU-scale Table 2 (configs/small_table2.py), then its report and plot.

  python scripts/reproduce_small.py [--quick] [--seeds=0,1,2] [--runs=DIR] [--parallel=2|1]
  python scripts/reproduce_small.py --calibrate   # Inception's rate, run once

Jobs: every row of the plan (docs/small_table2_protocol.md): the six Table-2 rows
(three seeds for Inception, BN-x5 and BN-x30), Inception at ×5 and ×30 without BN,
BN-x5 without L2, and the constant-rate sweeps with and without BN. ``--seeds`` runs
the seeded rows with other seeds, into their own DIR. With ``--parallel=2`` (default)
two jobs run side by side, each on one core with one XLA thread; ``--parallel=1`` runs
one job at a time on all cores. The longest jobs start first.

Each training job is `python -m bn_repro.main` in its own workdir under DIR, its
console in DIR/logs/NAME.log. Run again, the script skips finished jobs and resumes
the others from their checkpoints; SIGINT/SIGTERM stop every job at a checkpoint. A
job that diverges is a result, not a failure: its message goes to WORKDIR/DIVERGED
and the job counts as finished. Then bn_repro.experiments.table2_report writes
DIR/table2.md (DIR/calibration.md with --calibrate) and scripts/plot_curves.py
DIR/figure2.png.
"""

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from plot_curves import plot

from bn_repro.configs import small_table2 as plan
from bn_repro.experiments import table2_report
from bn_repro.experiments.table2_runs import calibration_name, run_name

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
DIVERGED_MESSAGE = "Training diverged"


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    arguments: tuple[str, ...]  # of python
    steps: int  # for the order: longest first
    trains: bool = True  # False: population checks, finished when they exit cleanly
    needs: frozenset[str] = frozenset()  # jobs that must finish first

    def workdir(self, runs: Path) -> Path:
        return runs / self.name


def training_job(name: str, config: str, runs: Path, *overrides: str) -> Job:
    arguments = (
        "-m",
        "bn_repro.main",
        f"--config=configs/small_table2.py:{config}",
        f"--workdir={runs / name}",
        *overrides,
    )
    return Job(name, arguments, plan.get_config(config).total_steps)


def jobs(quick: bool, runs: Path, seeds: tuple[int, ...], calibrate: bool) -> list[Job]:
    """The training jobs, longest first: the calibration alone with ``calibrate``, else
    every row of the plan (the seeded rows with ``seeds``, the others with the first)."""
    suffix = ",quick" if quick else ""
    if calibrate:
        training = [
            training_job(
                calibration_name(rate, seed),
                plan.CALIBRATION + suffix,
                runs,
                f"--config.learning_rate={rate}",
                f"--config.seed={seed}",
            )
            for rate in plan.CALIBRATION_RATES
            for seed in plan.CALIBRATION_SEEDS
        ]
    else:
        training = [
            training_job(run_name(row, seed), row + suffix, runs, f"--config.seed={seed}")
            for row in (*plan.ROWS, *plan.CONTROLS, plan.NO_L2, *plan.SWEEPS)
            for seed in (seeds if row in plan.SEEDED_ROWS else seeds[:1])
        ]
    return sorted(training, key=lambda job: -job.steps)


def finished(workdir: Path) -> bool:
    if (workdir / "DIVERGED").exists():
        return True
    config, checkpoints = workdir / "config.json", workdir / "checkpoints"
    if not config.exists() or not checkpoints.is_dir():
        return False
    total = json.loads(config.read_text())["total_steps"]
    steps = [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()]
    return bool(steps) and max(steps) >= total


def start(job: Job, runs: Path, cpu: int | None) -> subprocess.Popen:
    env = dict(os.environ)
    command = [sys.executable, *job.arguments]
    if cpu is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
        command = ["taskset", "-c", str(cpu), *command]
    log = open(runs / "logs" / f"{job.name}.log", "a")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def outcome(job: Job, runs: Path, returncode: int) -> str:
    """'finished', 'diverged' or 'failed'; records a divergence in WORKDIR/DIVERGED."""
    if returncode == 0 and (not job.trains or finished(job.workdir(runs))):
        return "finished"
    errors = [
        line
        for line in (runs / "logs" / f"{job.name}.log").read_text().splitlines()
        if line.startswith("error: ")
    ]
    if job.trains and errors and DIVERGED_MESSAGE in errors[-1]:
        (job.workdir(runs) / "DIVERGED").write_text(errors[-1][len("error: ") :] + "\n")
        return "diverged"
    return "failed"


def run_all(todo: list[Job], done: set[str], runs: Path, parallel: int) -> bool:
    """Runs ``todo`` ``parallel`` at a time, each once the jobs it needs are ``done``;
    False if one failed, a signal stopped them, or what a job needs cannot finish."""
    running: dict[int, tuple[Job, subprocess.Popen, float]] = {}  # slot → job
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        for _, process, _ in running.values():
            process.send_signal(signal.SIGTERM)  # each job checkpoints and exits

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _schedule(todo, done, runs, parallel, running, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _schedule(
    todo: list[Job], done: set[str], runs: Path, parallel: int, running: dict, stopping: list
) -> bool:
    ok = True
    while (todo and not stopping and ok) or running:
        for slot in range(parallel):
            ready = [job for job in todo if job.needs <= done]
            if slot in running or not ready or stopping or not ok:
                continue
            job = ready[0]
            todo.remove(job)
            steps = f" ({job.steps:,} steps)" if job.trains else ""
            print(f"[{time.strftime('%H:%M:%S')}] start {job.name}{steps}", flush=True)
            running[slot] = (job, start(job, runs, slot if parallel > 1 else None), time.time())
        if not running:
            print(f"Cannot start {[job.name for job in todo]}: what they need did not finish.")
            return False
        time.sleep(1)
        for slot, (job, process, began) in list(running.items()):
            if process.poll() is None:
                continue
            del running[slot]
            result = "stopped" if stopping else outcome(job, runs, process.returncode)
            hint = f"; see {runs}/logs/{job.name}.log" if result == "failed" else ""
            seconds = time.time() - began
            print(
                f"[{time.strftime('%H:%M:%S')}] {result} {job.name} after {seconds:.0f} s{hint}",
                flush=True,
            )
            if result in ("finished", "diverged"):
                done.add(job.name)
            else:
                ok = False
    return ok and not stopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every row, about 8× shorter")
    parser.add_argument(
        "--calibrate", action="store_true", help="only the calibration of Inception's rate"
    )
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, plan.SEEDS)),
        help="seeds of the seeded rows (Inception, BN-x5, BN-x30); the first for the others",
    )
    parser.add_argument(
        "--runs", type=Path, help="default runs/small (runs/small_quick with --quick)"
    )
    parser.add_argument("--parallel", type=int, choices=(1, 2), default=2)
    parser.add_argument("--only", help="run only the jobs whose name starts with this; no report")
    args = parser.parse_args()
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    default_runs = "runs/small_quick" if args.quick else "runs/small"
    if seeds != plan.SEEDS:
        default_runs += "_seeds" + "_".join(map(str, seeds))
    runs = args.runs or Path(default_runs)
    (runs / "logs").mkdir(parents=True, exist_ok=True)
    began = time.time()
    every = jobs(args.quick, runs, seeds, args.calibrate)
    done = {job.name for job in every if finished(job.workdir(runs))}
    todo = [job for job in every if job.name not in done]
    if args.only:
        todo = [job for job in todo if job.name.startswith(args.only)]
    print(f"{len(todo)} of {len(every)} jobs to run in {runs}, {args.parallel} at a time.")
    if not run_all(todo, done, runs, args.parallel):
        sys.exit(f"Stopped before every job finished; run {' '.join(sys.argv)} again to resume.")
    if args.only:
        return
    if args.calibrate:
        text = table2_report.calibration_table(runs) + "\n"
        (runs / "calibration.md").write_text(text)
        print(text)
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
