"""Command line: train (or resume) one experiment.

  python -m bn_repro.main --config=configs/NAME.py --workdir=DIR [--config.KEY=VALUE ...]

Running the same command again resumes from the latest checkpoint in DIR.
TensorBoard: tensorboard --logdir DIR
"""

from absl import app, flags, logging
from ml_collections import config_flags

from bn_repro import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints and TensorBoard logs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    # Keep the console to progress and metrics: orbax logs every file it writes.
    logging.get_absl_handler().addFilter(lambda record: "/orbax/" not in record.pathname)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
