"""Data-parallel training: `train_and_evaluate(config, workdir)`.

The global batch is sharded over a one-axis device mesh ("data") and the train state
is replicated (bn_repro/compiled_steps.py builds the jitted steps). Several steps run
per compiled call (a `lax.scan` over a stack of batches, bn_repro/steps.py) so that
small models are not bound by Python dispatch. What the run reports is in
bn_repro/metrics.py, the profiler window in bn_repro/profiling.py.
"""

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from bn_repro import (
    checkpointing,
    compiled_steps,
    config_checks,
    data,
    distributed,
    metrics,
    models,
    perf,
    platforms,
    schedule,
    step_chunks,
)
from bn_repro.batch_norm import BATCH_MOMENTS, BATCH_STATS
from bn_repro.console import say
from bn_repro.data import pixels
from bn_repro.divergence import check_finite
from bn_repro.preemption import StopRequest
from bn_repro.profiling import Profiler
from bn_repro.step_chunks import Chunk
from bn_repro.steps import Batch
from bn_repro.train_state import TrainState, create_train_state, initial_variables

PERCENTILES = (15, 50, 85)


class Trainer:
    """Holds the compiled steps and the device layout of one run."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        dataset: Any,
        devices: list[jax.Device] | None = None,
        platform: str | None = None,
    ):
        """``platform``: the target the steps are built for; None: the platform of
        ``devices`` (bn_repro/platforms.py), never the machine's default backend."""
        self.config = config
        devices = jax.devices() if devices is None else devices
        num_devices = len(devices)
        if config.batch_size % num_devices:
            raise ValueError(
                f"batch_size={config.batch_size} is not divisible by the {num_devices} "
                f"devices; use a multiple of {num_devices}."
            )
        devices_platform = platforms.platform_of(devices)  # where initialisation runs
        self.platform = platform or devices_platform
        self.num_devices = num_devices
        layout = compiled_steps.data_layout(devices)
        self.mesh, self.replicated = layout.mesh, layout.replicated
        self.stacked_batch, self.batch = layout.stacked_batch, layout.batch

        self.model = models.create_model(config, self.platform)
        self.learning_rate_fn = schedule.create_learning_rate_fn(config)
        variables = initial_variables(self.model, config, dataset.image_shape, devices_platform)
        self.state = jax.device_put(
            create_train_state(self.model, config, variables, self.learning_rate_fn),
            self.replicated,
        )
        self.train_loop, self.eval_step = compiled_steps.jit_steps(
            config, layout, self.platform, self.learning_rate_fn
        )

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

        def moments(state: TrainState, batch: Batch) -> Any:
            _, collections = state.apply_fn(
                {"params": state.params, BATCH_STATS: state.batch_stats},
                pixels.to_model_input(batch["image"], pixels.input_range_of(self.config)),
                train=True,
                mutable=[BATCH_MOMENTS],
                rngs={"dropout": jax.random.key(0)},
            )
            return collections[BATCH_MOMENTS]

        jitted = platforms.jit(moments, self.config)
        return lambda host_batch: jitted(state, self.to_device(host_batch))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint.

    Stops cleanly on SIGTERM/SIGINT: a checkpoint at the step reached, then return.
    Returns the final step, whether the run was preempted, the seconds spent training
    and the last evaluation's metrics as ``eval/...``.
    """
    config_checks.validate(config)  # before the workdir, the data or a compilation
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
    allow_restart = config.get("allow_restart_from_scratch", False)
    state = checkpointing.restore_latest(manager, trainer.state, allow_restart)
    if int(state.step) == 0:
        checkpointing.check_fresh_start(workdir, config.checkpoint_every_steps, allow_restart)
    if int(state.step) == 0 and config.get("init_from"):
        state = _initialised_from(state, config.init_from)
    start_step = int(state.step)
    if start_step >= config.total_steps:
        say(f"{workdir}: already trained to step {start_step}; nothing to do.")
        return {"step": start_step, "preempted": False, "train_seconds": 0.0}
    if start_step:
        say(f"{workdir}: resuming from the checkpoint at step {start_step}.")
    say(
        f"{config.model} on {config.dataset} in {workdir}: {trainer.num_devices} "
        f"{trainer.platform.upper()} device(s), steps {start_step:,}-{config.total_steps:,}, "
        f"{platforms.describe(config, trainer.platform)}; compiling…"
    )

    chunks = step_chunks.host_chunks(dataset.train_batches(start_step), start_step, config)
    first_chunk = next(chunks)
    flops, peak = perf.flops_and_peak(
        config, trainer.model, trainer.train_loop, state, first_chunk[2], trainer.stacked_batch
    )
    report = metrics.RunReport(config, workdir, start_step, flops, peak)
    profiler = Profiler(config.profile_steps, workdir, start_step)
    loop = _Loop(config, dataset, trainer, manager, report, profiler)
    start_time = time.perf_counter()
    with report, StopRequest() as stop:
        try:
            step, eval_metrics, preempted = loop.run(state, first_chunk, chunks, stop)
        finally:
            profiler.stop()
    seconds = time.perf_counter() - start_time
    if preempted:
        say(
            f"{workdir}: stopped by {stop.signal_name} at step {step}; checkpoint written. "
            "Run the same command again to resume."
        )
    else:
        report.summary(workdir, step, seconds, eval_metrics)
    return {
        "step": step,
        "preempted": preempted,
        "train_seconds": seconds,
        **{f"eval/{k}": v for k, v in eval_metrics.items()},
    }


@dataclasses.dataclass
class _Loop:
    """Compiled calls, checks, logs, evaluations and checkpoints, chunk after chunk."""

    config: ml_collections.ConfigDict
    dataset: Any
    trainer: Trainer
    manager: Any
    report: metrics.RunReport
    profiler: Profiler

    def run(
        self,
        state: TrainState,
        chunk: Chunk | None,
        host_chunks: Iterator[Chunk],
        stop: StopRequest,
    ) -> tuple[int, dict[str, float], bool]:
        """Trains until the end or a stop; returns the step reached, the last
        evaluation's metrics and whether the run was stopped early."""
        config = self.config
        step, eval_metrics, preempted = chunk[0], {}, False
        staged = self._stage(chunk)
        while staged is not None and not preempted:
            step, end = staged.step, staged.end
            state, chunk_metrics, staged = self._train_chunk(state, staged, host_chunks)
            check_finite(chunk_metrics, step, config)
            self.report.train_chunk(chunk_metrics, step)
            step = end
            preempted = stop.agreed()
            if step_chunks.evaluations(config).due(step):
                eval_metrics = self.trainer.evaluate(state, self.dataset.eval_batches())
                self.report.evaluation(step, eval_metrics)
            if preempted or step_chunks.checkpoints(config).due(step):
                checkpointing.save(self.manager, step, state)
        return step, eval_metrics, preempted

    def _stage(self, chunk: Chunk | None) -> "_Staged | None":
        """A host chunk sent to the devices (the transfer is asynchronous)."""
        if chunk is None:
            return None
        step, end, host_chunk = chunk
        skipped_images = host_chunk.pop(data.SKIPPED_IMAGES, None)
        return _Staged(step, end, self.trainer.to_device(host_chunk, stacked=True), skipped_images)

    def _train_chunk(
        self, state: TrainState, staged: "_Staged", host_chunks: Iterator[Chunk]
    ) -> tuple[TrainState, dict[str, np.ndarray], "_Staged | None"]:
        """One compiled call. While the devices compute, the next chunk is read and its
        transfer issued, before the host waits for this call's metrics."""
        with (
            self.profiler.step(staged.step, staged.end),
            self.report.perf.training(staged.end - staged.step),
        ):
            state, chunk_metrics = self.trainer.train_loop(state, staged.batches)
            with self.report.perf.waiting_for_input():
                next_staged = self._stage(next(host_chunks, None))
            chunk_metrics = jax.device_get(chunk_metrics)
        if staged.skipped_images is not None:
            chunk_metrics[data.SKIPPED_IMAGES] = distributed.sum_over_processes(
                staged.skipped_images
            )
        return state, chunk_metrics, next_staged


@dataclasses.dataclass(frozen=True)
class _Staged:
    """A chunk on its way to the devices: its steps, batches and the host's count of
    images it could not decode."""

    step: int
    end: int
    batches: Batch
    skipped_images: np.ndarray | None
