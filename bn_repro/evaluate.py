"""Evaluates a checkpoint of a run deterministically: top-1, top-5 and loss.

  python -m bn_repro.evaluate --workdir=DIR [--bn_stats=ema|population]
      [--population_batches=K] [--crops=center|144] [--step=N] [--config=configs/NAME.py]
      [--images_per_batch=N] [--name=NAME]

* ``--bn_stats=ema`` (default) uses the moving averages kept while training, the
  statistics behind the accuracy curves; ``population`` replaces them by Algorithm 2's:
  E[x] = mean of μ_B and Var[x] = m/(m−1) · mean of σ²_B over K training mini-batches
  (``--population_batches``, default 100; the first K batches of the run's training
  stream, with its augmentation, as "training mini-batches" in the paper).
* ``--crops=center`` is the single crop the run evaluated while training; ``144``
  is GoogLeNet's 144 crops (bn_repro/data/multicrop.py), class probabilities averaged,
  ``--images_per_batch`` images (144 crops each) at a time.
* ``--step`` picks a checkpoint (default: the latest).
* The config is the run's own DIR/config.json unless ``--config`` is given (then
  ``--config.KEY=VALUE`` overrides work too, e.g. a ``data_dir`` on another machine).

Inference is deterministic: BN applies the fixed affine map of its statistics, so an
image's prediction never depends on the rest of its batch. Results go to the console,
to DIR/eval/NAME_stepN.json and, as TensorBoard scalars NAME/accuracy,
NAME/top5_accuracy and NAME/loss at step N, to DIR/eval (``tensorboard --logdir
DIR``); NAME defaults to e.g. ``population100_144crops``. The checkpoints are opened
read-only, so a run may still be training in DIR.

This module is the command line and the scores; the restoring and predicting are
bn_repro/prediction.py's.
"""

import json
import sys
from pathlib import Path
from typing import Any

from bn_repro import console

# clu and tf.data load TensorFlow: load it first, quietly (no CUDA probing lines).
console.import_tensorflow_quietly(sys.argv)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from clu import metric_writers  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bn_repro import config_checks, prediction  # noqa: E402
from bn_repro.console import say  # noqa: E402

TOP_K = 5


def accuracy_metrics(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 and top-5 accuracy and the mean cross-entropy of the predictions."""
    ranked = np.argsort(-log_probs, axis=1, kind="stable")[:, :TOP_K]
    return {
        "accuracy": float(np.mean(ranked[:, 0] == labels)),
        "top5_accuracy": float(np.mean(np.any(ranked == labels[:, None], axis=1))),
        "loss": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
        "images": len(labels),
    }


def variant_name(bn_stats: str, population_batches: int, crops: str) -> str:
    """e.g. 'ema_center' or 'population100_144crops'."""
    stats = f"population{population_batches}" if bn_stats == "population" else bn_stats
    return f"{stats}_{'center' if crops == 'center' else crops + 'crops'}"


def write_results(workdir: str | Path, name: str, step: int, results: dict[str, Any]) -> Path:
    """DIR/eval/NAME_stepN.json and TensorBoard scalars NAME/... at step N in DIR/eval."""
    directory = Path(workdir) / "eval"
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}_step{step}.json"
    path.write_text(json.dumps(results, indent=2))
    writer = metric_writers.SummaryWriter(str(directory))
    scalars = ("accuracy", "top5_accuracy", "loss")
    writer.write_scalars(step, {f"{name}/{key}": results[key] for key in scalars})
    writer.close()
    return path


def summary_line(label: str, metrics: dict[str, float]) -> str:
    return (
        f"{label}: top-1 {metrics['accuracy']:.4f} (error {1 - metrics['accuracy']:.2%}), "
        f"top-5 {metrics['top5_accuracy']:.4f} (error {1 - metrics['top5_accuracy']:.2%}), "
        f"loss {metrics['loss']:.4f} on {metrics['images']:,} images"
    )


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags, defined only when this module runs as ``__main__``:
    absl refuses a flag defined twice, so a module others import (ensemble,
    scripts/import_weights.py) must not define any at import."""
    config_flags.DEFINE_config_file(
        "config", None, "Config file; default: the run's DIR/config.json.", lock_config=True
    )
    flags.DEFINE_string("workdir", None, "The run's --workdir.", required=True)
    flags.DEFINE_enum(
        "bn_stats", "ema", prediction.BN_STATS, "BN statistics: moving averages or Algorithm 2."
    )
    flags.DEFINE_integer(
        "population_batches",
        prediction.DEFAULT_POPULATION_BATCHES,
        "Training batches for Algorithm 2.",
    )
    flags.DEFINE_enum(
        "crops", "center", prediction.CROPS, "Single central crop, or GoogLeNet's 144 crops."
    )
    flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest readable one.")
    flags.DEFINE_integer("images_per_batch", None, "144 crops: images per batch (default: auto).")
    flags.DEFINE_string("name", None, "Name of the results; default: e.g. population100_144crops.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    console.quiet_logs()
    try:
        predictions = prediction.predict_run(
            FLAGS.workdir,
            FLAGS.config,
            FLAGS.step,
            bn_stats=FLAGS.bn_stats,
            population_batches=FLAGS.population_batches,
            crops=FLAGS.crops,
            images_per_batch=FLAGS.images_per_batch,
        )
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    name = FLAGS.name or variant_name(FLAGS.bn_stats, FLAGS.population_batches, FLAGS.crops)
    metrics = accuracy_metrics(predictions.log_probs, predictions.labels)
    results = {
        "workdir": str(FLAGS.workdir),
        "step": predictions.step,
        "bn_stats": FLAGS.bn_stats,
        "population_batches": FLAGS.population_batches if FLAGS.bn_stats == "population" else 0,
        "crops": FLAGS.crops,
        **metrics,
    }
    if jax.process_index() == 0:
        path = write_results(FLAGS.workdir, name, predictions.step, results)
        say(summary_line(f"{FLAGS.workdir} step {predictions.step} {name}", metrics))
        say(f"Written to {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=config_checks.parse_flags)
