"""Runs the CPU-scale Table 2 (configs/small_table2.py), then its report and plot.

  python scripts/reproduce_small.py [--quick] [--runs=DIR] [--parallel=2|1]

Jobs: the calibration of Inception's rate (CALIBRATION_RATES), the six Table-2 rows
(SEEDS: two seeds for Inception, BN-x5 and BN-x30), and the two rows without BN at
×5 and ×30. With ``--parallel=2`` (default) two jobs run side by side, each on one
core with one XLA thread (on the 2-core development machine this gave more steps/s
in aggregate than one two-threaded run; README); ``--parallel=1`` runs one job at a
time on all cores. The longest jobs start first.

Each job is `python -m bn_repro.main` in its own workdir under DIR, its console in
DIR/logs/NAME.log. Run again, the script skips finished jobs and resumes the others
from their checkpoints; SIGINT/SIGTERM stop every job at a checkpoint. A job that
diverges is a result, not a failure: its message goes to WORKDIR/DIVERGED and the
job counts as finished. Then scripts/small_table2_report.py writes DIR/table2.md and
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

from configs import small_table2 as plan

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
DIVERGED_MESSAGE = "Training diverged"


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    config: str
    overrides: tuple[str, ...]
    steps: int  # for the order: longest first

    def workdir(self, runs: Path) -> Path:
        return runs / self.name


def jobs(quick: bool) -> list[Job]:
    suffix = ",quick" if quick else ""
    out = []
    for rate in plan.CALIBRATION_RATES:
        arg = plan.CALIBRATION + suffix
        steps = plan.get_config(arg).total_steps
        out.append(
            Job(report.calibration_name(rate), arg, (f"--config.learning_rate={rate}",), steps)
        )
    for row in (*plan.ROWS, *plan.WITHOUT_BN):
        for seed in plan.SEEDS.get(row, (0,)):
            steps = plan.get_config(row + suffix).total_steps
            out.append(
                Job(report.run_name(row, seed), row + suffix, (f"--config.seed={seed}",), steps)
            )
    return sorted(out, key=lambda job: -job.steps)


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
    command = [
        sys.executable,
        "-m",
        "bn_repro.main",
        f"--config=configs/small_table2.py:{job.config}",
        f"--workdir={job.workdir(runs)}",
        *job.overrides,
    ]
    if cpu is not None:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
        command = ["taskset", "-c", str(cpu), *command]
    log = open(runs / "logs" / f"{job.name}.log", "a")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def outcome(job: Job, runs: Path, returncode: int) -> str:
    """'finished', 'diverged' or 'failed'; records a divergence in WORKDIR/DIVERGED."""
    if returncode == 0 and finished(job.workdir(runs)):
        return "finished"
    errors = [
        line
        for line in (runs / "logs" / f"{job.name}.log").read_text().splitlines()
        if line.startswith("error: ")
    ]
    if errors and DIVERGED_MESSAGE in errors[-1]:
        (job.workdir(runs) / "DIVERGED").write_text(errors[-1][len("error: ") :] + "\n")
        return "diverged"
    return "failed"


def run_all(todo: list[Job], runs: Path, parallel: int) -> bool:
    """Runs ``todo`` ``parallel`` at a time; False if one failed or a signal stopped them."""
    running: dict[int, tuple[Job, subprocess.Popen, float]] = {}  # slot → job
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        for _, process, _ in running.values():
            process.send_signal(signal.SIGTERM)  # each job checkpoints and exits

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    ok = True
    while (todo and not stopping and ok) or running:
        for slot in range(parallel):
            if slot not in running and todo and not stopping and ok:
                job = todo.pop(0)
                print(
                    f"[{time.strftime('%H:%M:%S')}] start {job.name} ({job.steps:,} steps)",
                    flush=True,
                )
                running[slot] = (job, start(job, runs, slot if parallel > 1 else None), time.time())
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
            ok = ok and result in ("finished", "diverged")
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
    todo = [job for job in jobs(args.quick) if not finished(job.workdir(runs))]
    todo = [job for job in todo if job.name.startswith(args.only or "")]
    print(
        f"{len(todo)} of {len(jobs(args.quick))} jobs to run in {runs}, {args.parallel} at a time."
    )
    if not run_all(todo, runs, args.parallel):
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
