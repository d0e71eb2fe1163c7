"""Command line: train (or resume) one experiment.

  python -m bn_repro.main --config=configs/NAME.py --workdir=DIR [--config.KEY=VALUE ...]

Running the same command again resumes from the latest checkpoint in DIR.
With --dry_run (no --workdir needed) it prints the config's schedule beside the
paper's figures and exits, reading no data and compiling nothing.
TensorBoard: tensorboard --logdir DIR

Several processes (hosts) train one model when started with the same command plus
--coordinator_address=HOST:PORT --num_processes=N --process_id=I (or the environment
variables BN_REPRO_COORDINATOR, BN_REPRO_NUM_PROCESSES, BN_REPRO_PROCESS_ID); on a
TPU pod slice or under SLURM/Open MPI these are detected. DIR must be a directory all
processes share. Only process 0 writes TensorBoard logs and console progress.

The console shows progress, evaluations and problems; --verbosity=0 (absl's flag)
brings back every INFO log (TensorFlow's, JAX's, clu's), --verbosity=1 debug logs too.
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from bn_repro import config_checks, console, distributed, divergence, schedule

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defined only when this module runs as ``__main__``: absl refuses a flag
    defined twice, so importing this module must define none."""
    config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
    flags.DEFINE_bool("dry_run", False, "Print the config's schedule and exit without training.")
    flags.mark_flags_as_required(["config"])
    flags.DEFINE_string(
        "coordinator_address",
        None,
        f"Multi-process runs: HOST:PORT of process 0 (else ${distributed.ENV_COORDINATOR}).",
    )
    flags.DEFINE_integer(
        "num_processes",
        None,
        f"Multi-process runs: number of processes (else ${distributed.ENV_NUM_PROCESSES}).",
    )
    flags.DEFINE_integer(
        "process_id",
        None,
        f"Multi-process runs: this process, 0..N-1 (else ${distributed.ENV_PROCESS_ID}).",
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        # Python INFO logs off: JAX's "Unable to initialize backend 'tpu'", clu's notes.
        logging.set_verbosity(logging.WARNING)
    if FLAGS.dry_run:
        _dry_run()
        return
    if FLAGS.workdir is None:
        raise app.UsageError("--workdir is required (except with --dry_run).")
    # TensorFlow loads only now, after the flags are parsed (a quick --help), and
    # quietly, before clu and tf.data import it.
    console.import_tensorflow_quietly(sys.argv)
    from bn_repro import train

    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if jax.process_index() != 0:  # one console: the other processes report only problems
        logging.set_verbosity(logging.WARNING)
        sys.stdout = open(os.devnull, "w")  # for the life of the process
    # Keep the console to progress and metrics: orbax logs every file it writes.
    logging.get_absl_handler().addFilter(lambda record: "/orbax/" not in record.pathname)
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (divergence.TrainingDiverged, ValueError, FileNotFoundError, PermissionError) as error:
        # Errors that explain themselves: the message, not a traceback.
        sys.exit(f"error: {error}")


def _dry_run() -> None:
    try:
        config_checks.validate(FLAGS.config)
        description = schedule.describe(FLAGS.config)
    except ValueError as error:
        sys.exit(f"error: {error}")
    name = config_flags.get_config_filename(FLAGS["config"])
    print(f"{name}: schedule (dry run: no data read, nothing compiled)")
    print(description)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=config_checks.parse_flags)
