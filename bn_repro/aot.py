"""Ahead-of-time compilation of a run's real steps for accelerators this host lacks.

MaxText's train_compile idea, for our steps: `jax.experimental.topologies` gives
compile-only TPU devices (libtpu installed, no TPU attached), the trainer's jitted
steps (bn_repro/compiled_steps.py) are compiled for them, and the compiled program
tells memory per chip, FLOPs and bytes per step and the collectives. The command line
is scripts/aot_compile.py; what its figures mean: docs/accelerators.md.
"""

import dataclasses
import os
import re
from typing import Any

import jax
import ml_collections

from bn_repro import compiled_steps, models, perf, schedule
from bn_repro.models import summary

# Cloud TPU names (TensorCores for v4/v5p, chips for v5e/v6e) → (topology, chip config,
# chips per host); all single-host slices. Any "gen:AxB[xC]" passes through unchanged.
TOPOLOGIES = {
    "v4-8": ("v4:2x2x1", "megacore", (2, 2, 1)),
    "v5p-8": ("v5p:2x2x1", "megacore", (2, 2, 1)),
    "v5e-1": ("v5e:1x1", None, (1, 1, 1)),
    "v5e-4": ("v5e:2x2", None, (2, 2, 1)),
    "v5e-8": ("v5e:2x4", None, (2, 4, 1)),
    "v6e-1": ("v6e:1x1", None, (1, 1, 1)),
    "v6e-4": ("v6e:2x2", None, (2, 2, 1)),
    "v6e-8": ("v6e:2x4", None, (2, 4, 1)),
}
# HBM bandwidth of one chip, bytes/s (vendor specification pages: docs/accelerators.md).
HBM_BANDWIDTH = {
    "TPU v4": 1.2e12,
    "TPU v5 lite": 0.82e12,
    "TPU v5": 2.76e12,
    "TPU v6 lite": 1.64e12,
}
DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "u8": 1, "s8": 1, "pred": 1}


class LibtpuBusy(RuntimeError):
    """libtpu is loaded by another process on this host."""


def tpu_devices(topology: str) -> list[jax.Device]:
    """Compile-only devices of a TPU ``topology`` ("v4-8", or "v4:2x2x1"); needs libtpu."""
    from jax.experimental import topologies

    # No metadata server off Cloud TPU VMs: without this libtpu waits for one.
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    if topology not in TOPOLOGIES and ":" not in topology:
        raise ValueError(
            f"--topology={topology!r} is not one of {sorted(TOPOLOGIES)} nor of the form "
            "'v4:2x2x1'; pass one of those."
        )
    name, chip_config, per_host = TOPOLOGIES.get(topology, (topology, None, None))
    extra = {"chip_config_name": chip_config} if chip_config else {}
    if per_host:
        extra["chips_per_host_bounds"] = per_host
    try:
        return list(topologies.get_topology_desc(name, "tpu", num_slices=1, **extra).devices)
    except jax.errors.JaxRuntimeError as error:
        if "lockfile" not in str(error):
            raise
        # libtpu's advice (delete the lockfile) would break the other process.
        raise LibtpuBusy(
            "Another process has libtpu loaded (an aot_compile.py or a TPU job); wait for "
            "it, or run with ALLOW_MULTIPLE_LIBTPU_LOAD=1: compiling touches no chip."
        ) from None


@dataclasses.dataclass
class Collective:
    count: int = 0
    elements: int = 0
    bytes: int = 0


def collectives(hlo_text: str) -> dict[str, Collective]:
    """All-reduces of a compiled program by origin: BN's forward statistics, BN's
    backward (the statistics' gradients), and the rest (the parameter gradients, fused
    into few tuples by XLA, with the step's scalars). Sizes are per device."""
    groups: dict[str, Collective] = {}
    for line in hlo_text.splitlines():
        match = re.search(r"= (.*?) all-reduce(?:-start)?\(", line)
        if not match:
            continue
        op_name = re.search(r'op_name="([^"]*)"', line)
        op_name = op_name.group(1) if op_name else ""
        if "BatchNorm" in op_name:
            group = "BN backward" if "transpose(" in op_name else "BN forward statistics"
        else:
            group = "gradients and metrics"
        entry = groups.setdefault(group, Collective())
        entry.count += 1
        for dtype, dims in re.findall(r"\b([a-z]+\d*)\[([\d,]*)\]", match.group(1)):
            size = 1
            for dim in filter(None, dims.split(",")):
                size *= int(dim)
            entry.elements += size
            entry.bytes += size * DTYPE_BYTES.get(dtype, 4)
    return groups


def abstract_steps(
    config: ml_collections.ConfigDict, devices: list[jax.Device], platform: str
) -> tuple[Any, Any]:
    """The trainer's training step (one step per call) and evaluation step, traced
    with abstract inputs on a mesh of ``devices`` for ``platform``."""
    layout = compiled_steps.data_layout(devices)
    shape = summary.input_shape(config)
    learning_rate_fn = schedule.create_learning_rate_fn(config)
    train_loop, eval_step = compiled_steps.jit_steps(config, layout, platform, learning_rate_fn)
    model = models.create_model(config, platform)
    state = compiled_steps.abstract_state(model, config, shape, learning_rate_fn, layout.replicated)
    train_batch, eval_batch = compiled_steps.batch_specs(config, shape, layout)
    return train_loop.trace(state, train_batch), eval_step.trace(state, eval_batch)


def compiled_figures(compiled: Any, devices: list[jax.Device], images: int) -> dict[str, Any]:
    """Per-chip memory, FLOPs and bytes of a compiled step of ``images`` global images
    over ``devices``, its collectives, and its roofline bound where the chip is known."""
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    device, num_devices = devices[0], len(devices)
    per_chip = {
        "memory_bytes": memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        - memory.alias_size_in_bytes
        + memory.temp_size_in_bytes
        + memory.generated_code_size_in_bytes,
        "flops": float(cost["flops"]),
        "bytes": float(cost["bytes accessed"]),
        "images": images / num_devices,
        "collectives": collectives(compiled.as_text()),
    }
    peak = perf.PEAK_FLOPS.get(device.device_kind)
    bandwidth = HBM_BANDWIDTH.get(device.device_kind)
    if peak and bandwidth:
        seconds = max(per_chip["flops"] / peak, per_chip["bytes"] / bandwidth)
        per_chip["roofline_images_per_s"] = per_chip["images"] / seconds
        per_chip["roofline_mfu"] = per_chip["flops"] / peak / seconds
        per_chip["balance_flops_per_byte"] = peak / bandwidth
    per_chip["device_kind"] = device.device_kind
    return per_chip
