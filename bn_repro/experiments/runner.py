"""Jobs (training runs and other commands) run side by side, resumably.

`run_all` runs jobs ``parallel`` at a time in the order given, each once the jobs it
``needs`` have finished. Pinned, each job gets one CPU core and one XLA thread: on
the 2-core development machine two such jobs gave more steps/s in aggregate than one
two-threaded run (README, "Table 2 at CPU scale"). Each job's console goes to
RUNS/logs/NAME.log. SIGINT/SIGTERM stop every job at a checkpoint; run again,
`pending` skips what finished and the training jobs resume from their checkpoints.
A job that diverges is a result, not a failure: its message goes to WORKDIR/DIVERGED
and the job counts as finished.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bn_repro import checkpointing

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
DIVERGED_MESSAGE = "Training diverged"  # how bn_repro/divergence.py's error begins
DIVERGED_FILE = "DIVERGED"
ERROR_PREFIX = "error: "  # how bn_repro.main reports a failure


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    arguments: tuple[str, ...]  # of python
    steps: int  # for the log, and for drivers that order by length
    trains: bool = True  # False: finished when it exits cleanly
    needs: frozenset[str] = frozenset()  # jobs that must finish first

    def workdir(self, runs: Path) -> Path:
        return runs / self.name


def training_job(name: str, config: str, runs: Path, steps: int, *overrides: str) -> Job:
    """`python -m bn_repro.main` with ``config`` (a --config value) in RUNS/NAME."""
    arguments = ("-m", "bn_repro.main", f"--config={config}", f"--workdir={runs / name}")
    return Job(name, (*arguments, *overrides), steps)


def diverged(workdir: Path) -> str | None:
    """The divergence message recorded for the run, if any."""
    marker = workdir / DIVERGED_FILE
    return marker.read_text().strip() if marker.exists() else None


def done(workdir: Path) -> bool:
    """Whether a training run needs no more training: it finished or it diverged."""
    return diverged(workdir) is not None or checkpointing.finished(workdir)


def pending(every: list[Job], runs: Path) -> tuple[list[Job], set[str]]:
    """The jobs of ``every`` still to run, in order, and the names of those done."""
    finished = {job.name for job in every if job.trains and done(job.workdir(runs))}
    return [job for job in every if job.name not in finished], finished


def start(
    job: Job, runs: Path, cpu: int | None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Starts ``job``, pinned to ``cpu`` with one XLA thread unless it is None."""
    environment = {**os.environ, **(env or {})}
    command = [sys.executable, *job.arguments]
    if cpu is not None:
        xla_flags = f"{environment.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
        environment["XLA_FLAGS"] = xla_flags
        command = ["taskset", "-c", str(cpu), *command]
    with open(_log(job, runs), "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)


def _log(job: Job, runs: Path) -> Path:
    return runs / "logs" / f"{job.name}.log"


def outcome(job: Job, runs: Path, returncode: int) -> str:
    """'finished', 'diverged' or 'failed'; records a divergence in WORKDIR/DIVERGED."""
    if returncode == 0 and (not job.trains or checkpointing.finished(job.workdir(runs))):
        return "finished"
    lines = _log(job, runs).read_text().splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if job.trains and errors and DIVERGED_MESSAGE in errors[-1]:
        message = errors[-1][len(ERROR_PREFIX) :]
        (job.workdir(runs) / DIVERGED_FILE).write_text(message + "\n")
        return "diverged"
    return "failed"


@dataclasses.dataclass
class _Slots:
    """What runs where: slot → (job, process, start time), and the signals received."""

    runs: Path
    parallel: int
    cpus: list[int] | None  # None: not pinned
    env: dict[str, str] | None
    running: dict[int, tuple[Job, subprocess.Popen, float]] = dataclasses.field(
        default_factory=dict
    )
    stopping: list[int] = dataclasses.field(default_factory=list)

    def stop(self, signum: int, frame: object) -> None:
        self.stopping.append(signum)
        for _, process, _ in self.running.values():
            process.send_signal(signal.SIGTERM)  # each job checkpoints and exits


def run_all(
    todo: list[Job],
    done: set[str],
    runs: Path,
    parallel: int,
    pin: bool = False,
    env: dict[str, str] | None = None,
) -> bool:
    """Runs ``todo`` ``parallel`` at a time, each once the jobs it needs are ``done``
    (pinned to a core each if ``pin``; ``env`` added to their environment); False if
    one failed, a signal stopped them, or what a job needs cannot finish."""
    (runs / "logs").mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0)) if pin else None
    slots = _Slots(runs, parallel, cpus, env)
    previous = {sig: signal.signal(sig, slots.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _schedule(todo, done, slots)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _schedule(todo: list[Job], done: set[str], slots: _Slots) -> bool:
    ok = True
    while (todo and not slots.stopping and ok) or slots.running:
        for slot in range(slots.parallel):
            ready = [job for job in todo if job.needs <= done]
            if slot in slots.running or not ready or slots.stopping or not ok:
                continue
            _start_in(slot, ready[0], todo, slots)
        if not slots.running:
            print(f"Cannot start {[job.name for job in todo]}: what they need did not finish.")
            return False
        time.sleep(1)
        ok = _collect(done, slots) and ok
    return ok and not slots.stopping


def _start_in(slot: int, job: Job, todo: list[Job], slots: _Slots) -> None:
    todo.remove(job)
    steps = f" ({job.steps:,} steps)" if job.trains else ""
    print(f"[{time.strftime('%H:%M:%S')}] start {job.name}{steps}", flush=True)
    cpu = None if slots.cpus is None else slots.cpus[slot % len(slots.cpus)]
    slots.running[slot] = (job, start(job, slots.runs, cpu, slots.env), time.time())


def _collect(done: set[str], slots: _Slots) -> bool:
    """Records the jobs that exited; False if one of them failed or was stopped."""
    ok = True
    for slot, (job, process, began) in list(slots.running.items()):
        if process.poll() is None:
            continue
        del slots.running[slot]
        result = "stopped" if slots.stopping else outcome(job, slots.runs, process.returncode)
        hint = f"; see {_log(job, slots.runs)}" if result == "failed" else ""
        seconds = time.time() - began
        print(
            f"[{time.strftime('%H:%M:%S')}] {result} {job.name} after {seconds:.0f} s{hint}",
            flush=True,
        )
        if result in ("finished", "diverged"):
            done.add(job.name)
        else:
            ok = False
    return ok
