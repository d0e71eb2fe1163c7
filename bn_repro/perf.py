"""Throughput, input wait and model FLOPs utilisation (MFU) of a training run.

`PerfWindow` times the compiled calls between two log points; `scalars` turns that
into the ``perf/*`` TensorBoard scalars:

* ``perf/step_time``: seconds per training step (compiled calls only: evaluation and
  checkpoint time is left out);
* ``perf/images_per_sec``: global images per second over that time;
* ``perf/input_wait_fraction``: the share of that time the host spent blocked getting
  batches from the input pipeline. Batches are read while the devices compute, so
  near 0 means the pipeline keeps up; near 1 means the run is input-bound (more CPU
  cores or input workers would speed it up);
* ``perf/mfu``: model FLOPs per second over the devices' peak, when the peak is known
  (`PEAK_FLOPS` by ``jax.Device.device_kind``, or ``config.peak_flops``). Model FLOPs
  of a step are XLA's cost analysis of the lowered (not yet optimised) one-step
  program: forward, backward and update of the global batch.
"""

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

from bn_repro.data import SKIPPED_IMAGES

# Peak dense bfloat16 FLOP/s of one JAX device (one chip on these kinds), from the
# vendors' specification pages (which, and when: docs/measurements.md). MFU against
# this peak is the usual definition; a float32 run therefore reads lower on GPUs,
# whose float32 peak is lower.
PEAK_FLOPS = {
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,  # v5e
    "TPU v5": 459e12,  # v5p
    "TPU v6 lite": 918e12,  # v6e (Trillium)
    "NVIDIA A100": 312e12,  # SXM and PCIe
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100": 989e12,  # SXM (device kind "NVIDIA H100 80GB HBM3")
}


def device_peak_flops(config: ml_collections.ConfigDict, device: jax.Device) -> float | None:
    """Peak FLOP/s of one device: ``config.peak_flops`` if set, else `PEAK_FLOPS`."""
    if config.peak_flops > 0:
        return float(config.peak_flops)
    kind = device.device_kind
    if kind in PEAK_FLOPS:
        return PEAK_FLOPS[kind]
    # GPU kinds carry memory and form factor ("NVIDIA A100-SXM4-40GB"): longest prefix.
    matches = [name for name in PEAK_FLOPS if kind.startswith(name) and name.startswith("NVIDIA")]
    return PEAK_FLOPS[max(matches, key=len)] if matches else None


def flops_and_peak(
    config: ml_collections.ConfigDict,
    train_loop: Any,
    state: Any,
    host_chunk: dict[str, np.ndarray],
    sharding: jax.sharding.Sharding,
) -> tuple[float | None, float | None]:
    """Model FLOPs of one global step and the peak FLOP/s of all devices, for perf/mfu.

    Both None when the devices' peak is unknown (e.g. on CPU without
    --config.peak_flops): the FLOPs are then not counted at all.
    """
    peak = device_peak_flops(config, jax.devices()[0])
    if peak is None:
        return None, None
    flops = train_step_flops(train_loop, state, host_chunk, config.batch_size, sharding)
    return flops, peak * jax.device_count()


def train_step_flops(
    train_loop: Any,
    state: Any,
    host_chunk: dict[str, np.ndarray],
    batch_size: int,
    sharding: jax.sharding.Sharding,
) -> float | None:
    """Model FLOPs of one global training step: XLA's cost analysis of ``train_loop``
    (the jitted loop of bn_repro/steps.py) lowered for one step of ``batch_size``.

    Lowering traces the model once more but compiles nothing. None if the backend
    has no cost analysis.
    """
    one_step = {
        key: jax.ShapeDtypeStruct((1, batch_size, *x.shape[2:]), x.dtype, sharding=sharding)
        for key, x in host_chunk.items()
        if key != SKIPPED_IMAGES
    }
    flops = (train_loop.lower(state, one_step).cost_analysis() or {}).get("flops")
    return float(flops) if flops else None


class PerfWindow:
    """Training seconds, input-wait seconds and steps since the last `scalars` call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds = self.input_wait = 0.0
        self.steps = 0

    @contextlib.contextmanager
    def training(self, steps: int) -> Iterator[None]:
        """Times one compiled call of ``steps`` steps, from dispatch to its results."""
        start = time.perf_counter()
        yield
        self.seconds += time.perf_counter() - start
        self.steps += steps

    @contextlib.contextmanager
    def waiting_for_input(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.input_wait += time.perf_counter() - start

    def scalars(
        self, batch_size: int, flops_per_step: float | None, peak_flops: float | None
    ) -> dict[str, float]:
        """The ``perf/*`` scalars of the window, which then starts again (empty: {})."""
        if not self.steps or self.seconds <= 0:
            return {}
        step_time = self.seconds / self.steps
        scalars = {
            "perf/step_time": step_time,
            "perf/images_per_sec": batch_size / step_time,
            "perf/input_wait_fraction": min(self.input_wait / self.seconds, 1.0),
        }
        if flops_per_step and peak_flops:
            scalars["perf/mfu"] = flops_per_step / step_time / peak_flops
        self.reset()
        return scalars
