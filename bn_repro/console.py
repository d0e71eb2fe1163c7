"""Console messages for the person running the job: only process 0 prints them.

The console is for progress, evaluations and problems (bn_repro/metrics.py); the
full log comes back with absl's ``--verbosity=0`` (INFO) or ``--verbosity=1``.
TensorFlow's own start-up lines are kept off it, and every importer of TensorFlow
hides the GPUs from it here (`hide_gpus_from_tensorflow`).
"""

import importlib
import os
import sys

import jax
from absl import logging

# TensorFlow (imported by clu's writers and tf.data) logs from C++ as it loads: the
# oneDNN notice and "Could not find cuda drivers", written to stderr before its log
# level applies, then a cuInit failure on machines without a GPU. Level 3 keeps only
# FATAL lines; TensorFlow's real errors reach Python as exceptions.
QUIET_TF_CPP_MIN_LOG_LEVEL = "3"


def say(message: str) -> None:
    if jax.process_index() == 0:
        print(message, flush=True)


def verbosity_requested(argv: list[str]) -> bool:
    """Whether absl's verbosity flag is on the command line (absl parses it later)."""
    return any(arg.split("=")[0] in ("--verbosity", "-v", "--v") for arg in argv[1:])


def import_tensorflow_quietly(argv: list[str]) -> None:
    """Imports TensorFlow, hiding GPUs from it, with its C++ start-up lines off unless
    verbosity is asked.

    Its first lines bypass TF_CPP_MIN_LOG_LEVEL, so the process's stderr (fd 2) points
    at /dev/null meanwhile; an import error is still raised after.
    """
    if verbosity_requested(argv):
        hide_gpus_from_tensorflow()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_CPP_MIN_LOG_LEVEL)
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        hide_gpus_from_tensorflow()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def hide_gpus_from_tensorflow() -> None:
    """Imports TensorFlow if need be and hides every GPU from it: JAX owns the devices,
    and TensorFlow, which only feeds data and writes summaries, must never claim their
    memory."""
    tf = importlib.import_module("tensorflow")
    try:
        # Listing devices is where TensorFlow calls cuInit (and logs its failure).
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices (e.g. in a test).
        pass


def quiet_logs() -> None:
    """Warnings only, and none from orbax (it logs every checkpoint file it opens)."""
    logging.set_verbosity(logging.WARNING)
    logging.get_absl_logger().addFilter(lambda record: "/orbax/" not in record.pathname)
