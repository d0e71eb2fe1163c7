"""What one compiled call computes: a training step, a loop of steps and an evaluation
step, on the train state of bn_repro/train_state.py. bn_repro/train.py runs them; this
module has no loop of its own.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from bn_repro.batch_norm import BATCH_STATS
from bn_repro.data.pixels import to_model_input
from bn_repro.train_state import TrainState, kernel_norm

Batch = dict[str, Any]
# Training distortions applied on the device: (images in [0, 1], step) → images.
Distortion = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def train_step(
    state: TrainState,
    batch: Batch,
    learning_rate_fn: optax.Schedule,
    dropout_key: jax.Array,
    input_range: str,
    distort: Distortion | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SGD step on one global batch; BN uses (and updates) batch statistics.
    The pixels become ``input_range`` (bn_repro/data/pixels.py) on the device."""
    images = to_model_input(batch["image"], input_range)
    if distort is not None:
        images = distort(images, state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, BATCH_STATS: state.batch_stats},
            images,
            train=True,
            mutable=[BATCH_STATS],
            rngs={"dropout": jax.random.fold_in(dropout_key, state.step)},
        )
        loss = jnp.mean(cross_entropy(logits, batch["label"]))
        return loss, (logits, updates.get(BATCH_STATS, state.batch_stats))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    # A non-finite loss leaves the state as it was, but for the step count: the host
    # then stops the run, or skips the step if the config says so. (A cond on the
    # scalar, because selecting between whole states every step is not free.)
    finite = jnp.isfinite(loss)
    new_state = jax.lax.cond(
        finite,
        lambda: state.apply_gradients(grads=grads, batch_stats=batch_stats),
        lambda: state.replace(step=state.step + 1),
    )
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
        "learning_rate": learning_rate_fn(state.step),
        "finite": finite,
        "kernel_norm": kernel_norm(new_state.params),
    }
    return new_state, metrics


def train_loop(
    state: TrainState, batches: Batch, **step_options: Any
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs one step per leading-axis entry of ``batches``; returns per-step metrics.
    ``step_options``: `train_step`'s (learning_rate_fn, dropout_key, input_range, distort).

    ``metrics["state_finite"]`` says whether the parameters are still finite at the end
    (a finite loss can still come with an infinite gradient).
    """
    step = functools.partial(train_step, **step_options)
    if jax.tree.leaves(batches)[0].shape[0] == 1:
        # No loop for a single step: inside a scan, XLA's own CPU convolution
        # gradients are far slower (docs/measurements.md; the CPU matrix-product
        # forms of bn_repro/models/conv.py do not have this problem).
        state, metrics = step(state, jax.tree.map(lambda x: x[0], batches))
        metrics = jax.tree.map(lambda x: jnp.asarray(x)[None], metrics)
    else:
        state, metrics = jax.lax.scan(step, state, batches)
    metrics["state_finite"] = jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(state.params)])
    )
    return state, metrics


def eval_step(state: TrainState, batch: Batch, input_range: str) -> dict[str, jax.Array]:
    """Deterministic inference with ``batch_stats``: masked sums and sown probes."""
    logits, sown = state.apply_fn(
        {"params": state.params, BATCH_STATS: state.batch_stats},
        to_model_input(batch["image"], input_range),
        train=False,
        mutable=["intermediates"],
    )
    mask = batch["mask"].astype(jnp.float32)
    # sow() keeps a tuple of the values it was given; models sow once per call.
    probes = {
        "/".join(path): values[0]
        for path, values in traverse_util.flatten_dict(sown.get("intermediates", {})).items()
    }
    return {
        "loss_sum": jnp.sum(cross_entropy(logits, batch["label"]) * mask),
        "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
        "count": jnp.sum(mask),
        "mask": mask,
        "probes": probes,
    }
