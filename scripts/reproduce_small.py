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
have finished. Then scripts/small_table2_report.py writes DIR/table2.md and
scripts/plot_curves.py DIR/figure2.png.
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

import small_table2_report as report
from plot_curves import plot

from bn_repro.configs import small_table2 as plan

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


def jobs(quick: bool, runs: Path) -> list[Job]:
    """The population checks (each as soon as its run and Inception's seeds, which set
    the targets, have finished), then the training jobs, longest first."""
    suffix = ",quick" if quick else ""
    training = [
        training_job(
            report.calibration_name(rate, seed),
            plan.CALIBRATION + suffix,
            runs,
            f"--config.learning_rate={rate}",
            f"--config.seed={seed}",
        )
        for rate in plan.CALIBRATION_RATES
        for seed in plan.CALIBRATION_SEEDS
    ]
    checks = []
    inception = {report.run_name("inception", seed) for seed in plan.SEEDS["inception"]}
    for row in (*plan.ROWS, *plan.WITHOUT_BN):
        for seed in plan.SEEDS.get(row, (0,)):
            name = report.run_name(row, seed)
            training.append(training_job(name, row + suffix, runs, f"--config.seed={seed}"))
            if row in plan.ROWS and report.has_population_checks(row):
                script = ("scripts/small_table2_report.py", f"--runs={runs}")
                arguments = (*script, f"--population_for={name}")
                checks.append(
                    Job(f"{name}_population", arguments, 0, False, frozenset({name, *inception}))
                )
    return checks + sorted(training, key=lambda job: -job.steps)


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
    every = jobs(args.quick, runs)
    done = {job.name for job in every if job.trains and finished(job.workdir(runs))}
    todo = [job for job in every if job.name not in done]
    if args.only:
        todo = [job for job in todo if job.trains and job.name.startswith(args.only)]
    print(f"{len(todo)} of {len(every)} jobs to run in {runs}, {args.parallel} at a time.")
    if not run_all(todo, done, runs, args.parallel):
        sys.exit(f"Stopped before every job finished; run {' '.join(sys.argv)} again to resume.")
    if args.only:
        return
    text = report.report(runs, population=True)
    (runs / "table2.md").write_text(text)
    print(text)
    workdirs = [runs / report.run_name(row, 0) for row in plan.ROWS]
    plot(
        workdirs,
        runs / "figure2.png",
        [report.LABELS[row] for row in plan.ROWS],
        title="Fashion-MNIST test accuracy (configs/small_table2.py, seed 0)",
    )
    print(
        f"Written {runs}/table2.md and {runs}/figure2.png. Wall time: {time.time() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
