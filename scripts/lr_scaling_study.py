"""Does a batch of k×32 with the linear rule trace the batch-32 curve per example seen?

  nice -n 19 .venv/bin/python scripts/lr_scaling_study.py --workdir=runs/lr_scaling

Trains the CPU-scale BN-x5 and BN-x30 rows (configs/small_table2.py, Fashion-MNIST)
at a constant learning rate (the rows' initial rates, 5× and 30× the config's
``INCEPTION_LR``) for ``EXAMPLES`` examples each, at global batches of 32, 128 and
512 under ``lr_scaling`` "linear" (with and without warm-up) and "per_worker",
evaluates on the 10,000 test images at ``EVALS`` equally spaced numbers of examples
seen, and prints the test accuracy there. The BN moving-average momentum is 0.99^k
at batch 32k, so that the inference statistics average over the same number of
examples at every batch size. Runs go ``--jobs`` at a time, each on one core
(cycling over the cores; bn_repro/experiments/runner.py), their consoles in
WORKDIR/logs; finished runs are read, not trained again.
"""

import sys
from pathlib import Path

from absl import app, flags

from bn_repro import config_checks, event_logs
from bn_repro.experiments import runner

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/lr_scaling", "Directory holding one workdir per run.")
flags.DEFINE_integer("jobs", 2, "Runs trained at once, each pinned to one CPU core.")
flags.DEFINE_bool("table_only", False, "Print the table of what has been measured; train nothing.")
flags.DEFINE_list("runs", None, "Train only these runs (names as in the workdir); default all.")

WORKER_BATCH = 32
EXAMPLES = 32 * 1024  # 32,768 examples: 3.3 epochs of the rows' 10,000 training images
EVALS = 4  # every 8,192 examples
WARMUP_EXAMPLES = EXAMPLES // 4
BN_MOMENTUM = 0.99  # per 32-example step
# (row, global batch, lr_scaling, warm-up)
# In order of importance, so that a study cut short still answers the question.
RUNS = [
    (row, batch, rule, warmup)
    for batch, rule, warmup in (
        (32, "linear", False),  # k = 1: both rules are the same
        (512, "linear", False),
        (512, "linear", True),
        (512, "per_worker", False),
        (128, "linear", False),
    )
    for row in ("bn_x30", "bn_x5")
]


def _name(row: str, batch: int, rule: str, warmup: bool) -> str:
    return f"{row}_b{batch}_{rule}" + ("_warmup" if warmup else "")


def _job(row: str, batch: int, rule: str, warmup: bool, runs: Path) -> runner.Job:
    steps, k = EXAMPLES // batch, batch // WORKER_BATCH
    every = steps // EVALS
    overrides = {
        "schedule": "constant",
        "batch_size": batch,
        "lr_scaling": rule,
        "warmup_steps": WARMUP_EXAMPLES // batch if warmup else 0,
        "bn.momentum": BN_MOMENTUM**k,
        "total_steps": steps,
        "eval_every_steps": every,
        "checkpoint_every_steps": every,
        "log_every_steps": every,
        "keep_checkpoints": 1,
    }
    return runner.training_job(
        _name(row, batch, rule, warmup),
        f"configs/small_table2.py:{row}",
        runs,
        steps,
        *(f"--config.{key}={value}" for key, value in overrides.items()),
    )


def _table() -> str:
    points = [EXAMPLES * (i + 1) // EVALS for i in range(EVALS)]
    header = "| row | batch | rule | warm-up | " + " | ".join(f"{p // 1000}k" for p in points)
    lines = [header + " |", "|" + "---|" * (4 + EVALS)]
    for run in RUNS:
        row, batch, rule, warmup = run
        try:
            curves = event_logs.read_scalars(Path(FLAGS.workdir) / _name(*run))
            steps, accuracy = curves["eval/accuracy"]
        except (FileNotFoundError, KeyError):  # not started, or no evaluation yet
            steps, accuracy = [], []
        by_examples = {int(s) * batch: a for s, a in zip(steps, accuracy, strict=True)}
        cells = [f"{100 * by_examples[p]:.1f}" if p in by_examples else "–" for p in points]
        label = "either" if batch == WORKER_BATCH else rule
        warm = f"{WARMUP_EXAMPLES // 1000}k" if warmup else "none"
        lines.append(f"| {row} | {batch} | {label} | {warm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.table_only:
        _train_all()
    print("Test accuracy (%) after the given numbers of examples seen:")
    print(_table())


def _train_all() -> None:
    runs = Path(FLAGS.workdir)
    chosen = [_job(*run, runs) for run in RUNS if FLAGS.runs is None or _name(*run) in FLAGS.runs]
    todo, done = runner.pending(chosen, runs)
    cache = {"JAX_COMPILATION_CACHE_DIR": str(runs / "jax_cache")}
    if not runner.run_all(todo, done, runs, FLAGS.jobs, pin=True, env=cache):
        sys.exit(f"Stopped before every run finished; run {' '.join(sys.argv)} again to resume.")


if __name__ == "__main__":
    app.run(main, flags_parser=config_checks.parse_flags)
