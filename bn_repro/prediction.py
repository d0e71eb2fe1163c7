"""Predictions of a run's checkpoint on its evaluation split: log class probabilities.

The checkpoint is restored read-only (a run may still be training in its workdir),
falling back past damaged ones. BN uses the moving averages kept while training or
Algorithm 2's population statistics over training mini-batches; the images are the
centre crop or GoogLeNet's 144 crops (bn_repro/data/multicrop.py), class
probabilities averaged. ``python -m bn_repro.evaluate`` (bn_repro/evaluate.py) scores
and writes them; bn_repro/ensemble.py averages several runs'.
"""

import dataclasses
import functools
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bn_repro import console

# clu and tf.data load TensorFlow: load it first, quietly (no CUDA probing lines).
console.import_tensorflow_quietly(sys.argv)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from bn_repro import checkpointing, data, platforms, train  # noqa: E402
from bn_repro.batch_norm import BATCH_STATS, population_statistics  # noqa: E402
from bn_repro.console import say  # noqa: E402
from bn_repro.data import multicrop, pixels  # noqa: E402

BN_STATS = ("ema", "population")
CROPS = ("center", "144")
DEFAULT_POPULATION_BATCHES = 100

Batch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Per-image log class probabilities (averaged over crops) of one checkpoint."""

    log_probs: np.ndarray  # (images, classes)
    labels: np.ndarray  # (images,)
    step: int


def load_config(
    workdir: str | Path, config: ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
    """``config`` if given, else the run's own ``workdir/config.json`` (with the
    values of the keys added since it was recorded)."""
    if not Path(workdir).is_dir():
        raise FileNotFoundError(f"{workdir} is not a directory; pass a training run's --workdir.")
    if config is not None:
        return config
    path = Path(workdir) / checkpointing.CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; pass the run's config with --config=configs/NAME.py."
        )
    return checkpointing.load_config(workdir)


def restore_checkpoint(
    trainer: train.Trainer, workdir: str | Path, step: int | None = None
) -> train.TrainState:
    """The train state at ``step`` of ``workdir``; by default the latest readable
    checkpoint, falling back (and saying so) past damaged ones."""
    manager = checkpointing.open_read_only(workdir)
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise FileNotFoundError(f"No checkpoints in {manager.directory} yet.")
        if step is not None and step not in steps:
            raise ValueError(f"No checkpoint at step {step} in {workdir}; available: {steps}.")
        errors = {}
        for candidate in [step] if step is not None else steps[::-1]:
            try:
                state = checkpointing.restore(manager, candidate, trainer.state)
            except Exception as error:  # noqa: BLE001 - damaged or of another model: try older
                errors[candidate] = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
                continue
            if errors:
                say(
                    f"warning: checkpoints {sorted(errors)} of {workdir} are unreadable; "
                    f"evaluating step {candidate}, the newest readable one (pick one with --step)."
                )
            return state
        first = errors[max(errors)]
        raise ValueError(
            f"No checkpoint of {workdir} could be read with this model (steps "
            f"{sorted(errors)}; step {max(errors)}: {first}): the checkpoint does not fit the "
            "model of this config (omit --config to use the run's own) or is damaged (pick "
            f"another with --step; available: {steps})."
        )
    finally:
        manager.close()


def with_population_statistics(
    trainer: train.Trainer, state: train.TrainState, dataset: Any, num_batches: int
) -> train.TrainState:
    """``state`` with Algorithm 2's population statistics over ``num_batches`` batches."""
    if num_batches < 1:
        raise ValueError(f"--population_batches={num_batches} must be at least 1.")
    if not state.batch_stats:  # a network without BN: nothing to replace
        return state
    # From step 0: any training batches will do, and step 0 needs no skipping in a
    # streamed dataset.
    batches = itertools.islice(dataset.train_batches(0), num_batches)
    stats = population_statistics(trainer.batch_moments_fn(state), batches)
    return state.replace(batch_stats=jax.device_put(stats, trainer.replicated))


def _log_probabilities(
    state: train.TrainState, batch: Batch, input_range: str
) -> dict[str, jax.Array]:
    """log of the class probabilities averaged over each image's crops (axis 1)."""
    images = batch["image"]
    images_per_batch, crops = images.shape[:2]
    logits = state.apply_fn(
        {"params": state.params, BATCH_STATS: state.batch_stats},
        pixels.to_model_input(images.reshape((-1, *images.shape[2:])), input_range),
        train=False,
    )
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(images_per_batch, crops, -1)
    # log of the mean of the crops' probabilities, without leaving log space.
    mean = jax.nn.logsumexp(log_probs, axis=1) - jnp.log(crops)
    return {"log_probs": mean, "label": batch["label"], "mask": batch["mask"]}


def predict(
    trainer: train.Trainer, state: train.TrainState, batches: Iterator[Batch]
) -> tuple[np.ndarray, np.ndarray]:
    """Log class probabilities and labels of every unmasked image of ``batches``.

    Each batch's 'image' is (images, crops, H, W, C).
    """
    step = platforms.jit(
        functools.partial(_log_probabilities, input_range=pixels.input_range_of(trainer.config)),
        trainer.config,
        out_shardings=trainer.replicated,
    )
    log_probs, labels = [], []
    for host_batch in batches:
        out = jax.device_get(step(state, trainer.to_device(host_batch)))
        log_probs.append(out["log_probs"][out["mask"]])
        labels.append(out["label"][out["mask"]])
    return np.concatenate(log_probs), np.concatenate(labels)


def default_images_per_batch(config: ml_collections.ConfigDict) -> int:
    """Images per 144-crop batch: about eval_batch_size crops, split evenly over devices."""
    local_batch = config.eval_batch_size // jax.process_count()
    devices = jax.local_device_count()
    budget = max(devices, local_batch // multicrop.NUM_CROPS)
    fitting = [n for n in range(devices, budget + 1, devices) if local_batch % n == 0]
    if not fitting:
        raise ValueError(
            f"No number of images divides this process's eval batch of {local_batch} and "
            f"the {devices} local devices; pass --images_per_batch."
        )
    return fitting[-1]


def _check_choices(bn_stats: str, crops: str) -> None:
    if bn_stats not in BN_STATS or crops not in CROPS:
        raise ValueError(f"bn_stats must be one of {BN_STATS} and crops one of {CROPS}.")


class CheckpointPredictor:
    """Predicts the evaluation split from any checkpoint of one run, compiling once."""

    def __init__(self, workdir: str | Path, config: ml_collections.ConfigDict | None = None):
        self.workdir = workdir
        self.config = load_config(workdir, config)
        self.dataset = data.create_dataset(self.config)
        self.trainer = train.Trainer(self.config, self.dataset)

    def predict(
        self,
        step: int | None = None,
        bn_stats: str = "ema",
        population_batches: int = DEFAULT_POPULATION_BATCHES,
        crops: str = "center",
        images_per_batch: int | None = None,
    ) -> Predictions:
        _check_choices(bn_stats, crops)
        state = restore_checkpoint(self.trainer, self.workdir, step)
        if bn_stats == "population":
            state = with_population_statistics(
                self.trainer, state, self.dataset, population_batches
            )
        if crops == "center":
            batches = ({**b, "image": b["image"][:, None]} for b in self.dataset.eval_batches())
        else:
            images_per_batch = images_per_batch or default_images_per_batch(self.config)
            batches = multicrop.eval_batches(self.dataset, self.config.image_size, images_per_batch)
        log_probs, labels = predict(self.trainer, state, batches)
        return Predictions(log_probs, labels, int(state.step))


def predict_run(
    workdir: str | Path,
    config: ml_collections.ConfigDict | None = None,
    step: int | None = None,
    **options: Any,
) -> Predictions:
    """Restores a checkpoint of ``workdir`` and predicts its evaluation split;
    ``options``: those of `CheckpointPredictor.predict` (bn_stats, crops, ...)."""
    # Checked before the dataset and the model are built.
    _check_choices(options.get("bn_stats", "ema"), options.get("crops", "center"))
    return CheckpointPredictor(workdir, config).predict(step, **options)
