"""Data-parallel training: `train_and_evaluate(config, workdir)`.

The global batch is sharded over a one-axis device mesh ("data") and the train state
is replicated. Under `jax.jit` a mean over the batch axis is a mean over the global
batch, so BN's statistics are cross-replica without any extra code. Several steps run
per compiled call (a `lax.scan` over a stack of batches) so that small models are
not bound by Python dispatch.
"""

import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, periodic_actions
from flax import traverse_util
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from bn_repro import checkpointing, data, models, schedule
from bn_repro.batch_norm import BATCH_MOMENTS, BATCH_STATS
from bn_repro.console import say
from bn_repro.preemption import StopRequest

Batch = dict[str, Any]
PERCENTILES = (15, 50, 85)


class TrainState(train_state.TrainState):
    batch_stats: Any = None


def to_model_input(images: jax.Array) -> jax.Array:
    """uint8 pixels are scaled to [0, 1] on the device; float images pass unchanged."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images


def _is_kernel(params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params
    )


def create_optimizer(
    config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule
) -> optax.GradientTransformation:
    if config.optimizer != "sgd":
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; valid choices: ['sgd'].")
    # L2 weight cost λ/2·|W|² on kernels only, added to the gradient before momentum.
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=_is_kernel),
        optax.sgd(learning_rate_fn, momentum=config.momentum or None, nesterov=config.nesterov),
    )


def create_train_state(
    model: nn.Module,
    config: ml_collections.ConfigDict,
    image_shape: tuple[int, ...],
    learning_rate_fn: optax.Schedule,
) -> TrainState:
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    # Compiled: running a deep network's initialisation op by op takes minutes on CPU.
    init = jax.jit(functools.partial(model.init, train=False))
    variables = init(jax.random.key(config.seed), dummy)
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables.get(BATCH_STATS, {}),
        tx=create_optimizer(config, learning_rate_fn),
    )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def train_step(
    state: TrainState,
    batch: Batch,
    learning_rate_fn: optax.Schedule,
    dropout_key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SGD step on one global batch; BN uses (and updates) batch statistics."""

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, BATCH_STATS: state.batch_stats},
            to_model_input(batch["image"]),
            train=True,
            mutable=[BATCH_STATS],
            rngs={"dropout": jax.random.fold_in(dropout_key, state.step)},
        )
        loss = jnp.mean(cross_entropy(logits, batch["label"]))
        return loss, (logits, updates.get(BATCH_STATS, state.batch_stats))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    # A non-finite loss leaves the state as it was, but for the step count: the host
    # then stops the run, or skips the step if the config says so. (A cond on the
    # scalar costs nothing; selecting between whole states every step cost 25% here.)
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
    }
    return new_state, metrics


def train_loop(
    state: TrainState,
    batches: Batch,
    learning_rate_fn: optax.Schedule,
    dropout_key: jax.Array,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs one step per leading-axis entry of ``batches``; returns per-step metrics.

    ``metrics["state_finite"]`` says whether the parameters are still finite at the end
    (a finite loss can still come with an infinite gradient).
    """
    step = functools.partial(train_step, learning_rate_fn=learning_rate_fn, dropout_key=dropout_key)
    if jax.tree.leaves(batches)[0].shape[0] == 1:
        # No loop for a single step: inside a scan, XLA's CPU convolution gradients
        # ran up to 100x slower (measured on BN-Inception); conv nets use
        # steps_per_loop=1 on CPU.
        state, metrics = step(state, jax.tree.map(lambda x: x[0], batches))
        metrics = jax.tree.map(lambda x: jnp.asarray(x)[None], metrics)
    else:
        state, metrics = jax.lax.scan(step, state, batches)
    metrics["state_finite"] = jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(state.params)])
    )
    return state, metrics


def eval_step(state: TrainState, batch: Batch) -> dict[str, jax.Array]:
    """Deterministic inference with ``batch_stats``: masked sums and sown probes."""
    logits, sown = state.apply_fn(
        {"params": state.params, BATCH_STATS: state.batch_stats},
        to_model_input(batch["image"]),
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


class Trainer:
    """Holds the compiled steps and the device layout of one run."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        dataset: Any,
        devices: list[jax.Device] | None = None,
    ):
        self.config = config
        devices = jax.devices() if devices is None else devices
        num_devices = len(devices)
        if config.batch_size % num_devices:
            raise ValueError(
                f"batch_size={config.batch_size} is not divisible by the {num_devices} "
                f"devices; use a multiple of {num_devices}."
            )
        self.mesh = jax.make_mesh(
            (num_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
        )
        self.replicated = NamedSharding(self.mesh, P())
        self.stacked_batch = NamedSharding(self.mesh, P(None, "data"))
        self.batch = NamedSharding(self.mesh, P("data"))

        self.model = models.create_model(config)
        self.learning_rate_fn = schedule.create_learning_rate_fn(config)
        self.state = jax.device_put(
            create_train_state(self.model, config, dataset.image_shape, self.learning_rate_fn),
            self.replicated,
        )
        self.train_loop = jax.jit(
            functools.partial(
                train_loop,
                learning_rate_fn=self.learning_rate_fn,
                dropout_key=jax.random.key(config.seed + 1),
            ),
            in_shardings=(self.replicated, self.stacked_batch),
            out_shardings=(self.replicated, self.replicated),
            donate_argnums=0,
        )
        self.eval_step = jax.jit(eval_step, out_shardings=self.replicated)

    def to_device(self, host_batch: Batch, stacked: bool = False) -> Batch:
        """This process's share of a global batch → one global array per key."""
        sharding = self.stacked_batch if stacked else self.batch
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(sharding, x), host_batch
        )

    def evaluate(self, state: TrainState, batches: Iterator[Batch]) -> dict[str, float]:
        """Loss and accuracy over the whole eval split, and percentiles of each probe."""
        totals, probe_values = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}, {}
        for host_batch in batches:
            out = jax.device_get(self.eval_step(state, self.to_device(host_batch)))
            for key in totals:
                totals[key] += float(out[key])
            for name, values in out["probes"].items():
                probe_values.setdefault(name, []).append(values[out["mask"] > 0])
        results = {
            "loss": totals["loss_sum"] / totals["count"],
            "accuracy": totals["correct"] / totals["count"],
        }
        for name, chunks in probe_values.items():
            values = np.concatenate(chunks)
            for q in PERCENTILES:
                results[f"{name}/p{q}"] = float(np.percentile(values, q))
        return results

    def batch_moments_fn(self, state: TrainState) -> Callable[[Batch], Any]:
        """For Algorithm 2: a function from a host batch to its BN ``batch_moments``."""

        @jax.jit
        def moments(state: TrainState, batch: Batch) -> Any:
            _, collections = state.apply_fn(
                {"params": state.params, BATCH_STATS: state.batch_stats},
                to_model_input(batch["image"]),
                train=True,
                mutable=[BATCH_MOMENTS],
                rngs={"dropout": jax.random.key(0)},
            )
            return collections[BATCH_MOMENTS]

        return lambda host_batch: moments(state, self.to_device(host_batch))


def _chunk_end(step: int, config: ml_collections.ConfigDict) -> int:
    """Where the next compiled call stops: a loop, eval or checkpoint boundary."""

    def next_multiple(every: int) -> int:
        return (step // every + 1) * every if every > 0 else config.total_steps

    return min(
        config.total_steps,
        next_multiple(config.steps_per_loop),
        next_multiple(config.eval_every_steps),
        next_multiple(config.checkpoint_every_steps),
    )


def take_chunk(batches: Iterator[Batch], count: int) -> Batch:
    chunk = [next(batches) for _ in range(count)]
    return {key: np.stack([b[key] for b in chunk]) for key in chunk[0]}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


def _check_finite(metrics: dict[str, np.ndarray], first_step: int, config) -> int:
    """Raises on a non-finite step unless they are skipped; returns how many were."""
    bad = np.nonzero(~metrics["finite"])[0]
    if not metrics["state_finite"]:
        raise TrainingDiverged(
            f"Training diverged: the parameters became non-finite between steps {first_step} "
            f"and {first_step + len(metrics['loss'])}. Lower --config.learning_rate (now "
            f"{config.learning_rate}). The checkpoints in the workdir are those of the last "
            "good steps."
        )
    if len(bad) and not config.skip_nonfinite_steps:
        i = int(bad[0])
        raise TrainingDiverged(
            f"Training diverged: the loss is {metrics['loss'][i]} at step {first_step + i} "
            f"(learning rate {metrics['learning_rate'][i]:.6g}). Lower --config.learning_rate "
            f"(now {config.learning_rate}), or pass --config.skip_nonfinite_steps=true to skip "
            "such steps. The checkpoints in the workdir are those of the last good steps."
        )
    return len(bad)


def _sum_over_processes(per_step: np.ndarray) -> np.ndarray:
    if jax.process_count() == 1:
        return per_step
    return np.sum(multihost_utils.process_allgather(per_step), axis=0)


def _write_train_metrics(
    writer: metric_writers.MetricWriter,
    metrics: dict[str, np.ndarray],
    first_step: int,
    config: ml_collections.ConfigDict,
) -> None:
    """Writes train/* at every multiple of log_every_steps inside one chunk of steps.

    Loss and accuracy are averaged over the steps since the previous log point within
    the chunk; skipped (non-finite) steps are left out of the averages and counted.
    """
    for i in range(len(metrics["loss"])):
        step = first_step + i + 1
        if step % config.log_every_steps and step != config.total_steps:
            continue
        window = slice(max(0, i + 1 - config.log_every_steps), i + 1)
        finite = metrics["finite"][window]
        scalars = {
            "train/learning_rate": float(metrics["learning_rate"][i]),
            "train/skipped_steps": int(np.sum(~finite)),
        }
        if data.SKIPPED_IMAGES in metrics:
            scalars["train/skipped_images"] = int(np.sum(metrics[data.SKIPPED_IMAGES][window]))
        if finite.any():
            scalars["train/loss"] = float(np.mean(metrics["loss"][window][finite]))
            scalars["train/accuracy"] = float(np.mean(metrics["accuracy"][window][finite]))
        writer.write_scalars(step, scalars)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint.

    Stops cleanly on SIGTERM/SIGINT: a checkpoint at the step reached, then return.
    Returns the final step, whether the run was preempted, the seconds spent training
    and the last evaluation's metrics as ``eval/...``.
    """
    workdir = Path(workdir)
    checkpointing.ensure_writable(workdir)
    dataset = data.create_dataset(config)
    trainer = Trainer(config, dataset)
    manager = checkpointing.create_manager(workdir, config.keep_checkpoints)
    try:
        return _train(config, workdir, dataset, trainer, manager)
    finally:
        manager.wait_until_finished()  # an in-flight checkpoint is never lost
        manager.close()


def _initialised_from(state: TrainState, workdir: str) -> TrainState:
    """``state`` with the weights and BN statistics of ``workdir``'s latest checkpoint,
    keeping its own (fresh) optimizer state and step 0: fine-tuning.
    """
    weights = {"params": state.params, BATCH_STATS: state.batch_stats}
    restored = checkpointing.restore_weights(workdir, weights)
    say(f"Initialised from the latest checkpoint of {workdir}.")
    return state.replace(params=restored["params"], batch_stats=restored[BATCH_STATS])


def _train(config, workdir: Path, dataset: Any, trainer: Trainer, manager) -> dict[str, Any]:
    checkpointing.check_and_record_config(config, workdir)
    state = checkpointing.restore_latest(manager, trainer.state)
    if int(state.step) == 0 and config.get("init_from"):
        state = _initialised_from(state, config.init_from)
    start_step = int(state.step)
    if start_step >= config.total_steps:
        say(f"{workdir}: already trained to step {start_step}; nothing to do.")
        return {"step": start_step, "preempted": False, "train_seconds": 0.0}
    if start_step:
        say(f"{workdir}: resuming from the checkpoint at step {start_step}.")

    # TensorBoard gets everything; the console gets evaluations and progress lines.
    if jax.process_index() == 0:
        tensorboard = metric_writers.SummaryWriter(str(workdir))
        writer = metric_writers.MultiWriter([metric_writers.LoggingWriter(), tensorboard])
    else:
        tensorboard = writer = metric_writers.MultiWriter([])
    progress = periodic_actions.ReportProgress(
        num_train_steps=config.total_steps, writer=tensorboard, every_secs=10.0
    )
    batches = dataset.train_batches(start_step)
    step, eval_metrics, preempted = start_step, {}, False
    start_time = time.perf_counter()
    host_chunk = take_chunk(batches, _chunk_end(step, config) - step)
    with metric_writers.ensure_flushes(writer), StopRequest() as stop:
        while step < config.total_steps and not preempted:
            end = _chunk_end(step, config)
            skipped_images = host_chunk.pop(data.SKIPPED_IMAGES, None)
            state, metrics = trainer.train_loop(state, trainer.to_device(host_chunk, stacked=True))
            if end < config.total_steps:  # prepared while the devices compute
                host_chunk = take_chunk(batches, _chunk_end(end, config) - end)
            metrics = jax.device_get(metrics)
            if skipped_images is not None:
                metrics[data.SKIPPED_IMAGES] = _sum_over_processes(skipped_images)
            _check_finite(metrics, step, config)
            _write_train_metrics(tensorboard, metrics, step, config)
            step = end
            progress(step)
            preempted = stop.agreed()
            if step % config.eval_every_steps == 0 or step == config.total_steps:
                eval_metrics = trainer.evaluate(state, dataset.eval_batches())
                writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            if preempted or step % config.checkpoint_every_steps == 0 or step == config.total_steps:
                checkpointing.save(manager, step, state)
    seconds = time.perf_counter() - start_time
    if preempted:
        say(
            f"{workdir}: stopped by {stop.signal_name} at step {step}; checkpoint written. "
            "Run the same command again to resume."
        )
    else:
        say(
            f"{workdir}: trained steps {start_step}-{step} in {seconds:.1f} s "
            f"({(step - start_step) / seconds:,.0f} steps/s); "
            + ", ".join(f"eval/{k}={v:.4f}" for k, v in eval_metrics.items())
        )
    return {
        "step": step,
        "preempted": preempted,
        "train_seconds": seconds,
        **{f"eval/{k}": v for k, v in eval_metrics.items()},
    }
