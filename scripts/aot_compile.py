"""Compile a config's real training and evaluation steps for a TPU slice on this host.

  pip install -r requirements-tpu.txt   # libtpu, the TPU compiler jax 0.10.2 pins
  JAX_PLATFORMS=cpu python scripts/aot_compile.py --config=configs/bn_x5.py --topology=v4-8
  python scripts/aot_compile.py --config=configs/bn_x5.py --platform=cuda --num_devices=8

For a TPU it prints, per chip: memory, FLOPs and bytes of one training step (XLA's
estimates of the compiled program), arithmetic intensity, the all-reduces (BN's
forward statistics, BN's backward, the gradients), and a roofline bound on images/s
(the slower of compute at peak and HBM traffic at full bandwidth). Meaning and figures:
docs/accelerators.md. For CUDA the steps are lowered only (no GPU, no deviceless GPU
compiler here): convolutions and custom calls are counted in the StableHLO.
Any --config.KEY=VALUE override applies (e.g. --config.dtype=bfloat16).
JAX_PLATFORMS=cpu keeps JAX from looking for a TPU to run on: the TPU devices here are
compile-only.
"""

import re
import sys
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from bn_repro import aot, config_checks
from bn_repro.console import quiet_logs

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=False)
flags.DEFINE_string(
    "topology", "v4-8", f"TPU slice: one of {sorted(aot.TOPOLOGIES)} or 'v4:2x2x1'."
)
flags.DEFINE_enum("platform", "tpu", ["tpu", "cuda"], "Target: tpu (compiled) or cuda (lowered).")
flags.DEFINE_integer("num_devices", 8, "--platform=cuda: GPUs the mesh is built for.")
flags.DEFINE_bool("eval", True, "Also compile the evaluation step.")

GIB = 2.0**30


def _print_figures(name: str, figures: dict) -> None:
    print(f"{name}: {figures['images']:.0f} images per chip ({figures['device_kind']})")
    print(f"  memory per chip  {figures['memory_bytes'] / GIB:.2f} GiB")
    print(f"  FLOPs per chip   {figures['flops'] / 1e12:.3f} TFLOP per step")
    print(f"  bytes per chip   {figures['bytes'] / 1e9:.1f} GB per step (XLA's estimate)")
    print(f"  intensity        {figures['flops'] / figures['bytes']:.1f} FLOP/byte")
    for group, c in sorted(figures["collectives"].items()):
        print(f"  all-reduce {group}: {c.count} ops, {c.elements:,} values, {c.bytes / 1e6:.2f} MB")
    if "roofline_images_per_s" in figures:
        print(
            f"  roofline         {figures['roofline_images_per_s']:,.0f} images/s per chip at "
            f"{figures['roofline_mfu']:.0%} MFU (balance point "
            f"{figures['balance_flops_per_byte']:.0f} FLOP/byte)"
        )


def _lower_for_cuda(config) -> None:
    # The mesh is built over this host's CPU devices, sized like the GPU slice: only
    # the shardings matter for lowering.
    devices = jax.devices("cpu")
    if len(devices) < FLAGS.num_devices:
        raise app.UsageError(
            f"--num_devices={FLAGS.num_devices} but {len(devices)} CPU devices; set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={FLAGS.num_devices}."
        )
    steps = aot.abstract_steps(config, devices[: FLAGS.num_devices], "cuda")
    for name, traced in zip(("train step", "eval step"), steps, strict=True):
        text = traced.lower(lowering_platforms=("cuda",)).as_text()
        convs = len(re.findall(r"= stablehlo\.convolution\b", text))
        calls = len(re.findall(r"stablehlo\.custom_call", text))
        print(f"{name} lowered for cuda: {convs} convolutions, {calls} custom calls")
    print("Not compiled: jax 0.10.2 has no deviceless GPU compiler on a host without CUDA.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    quiet_logs()
    config = FLAGS.config
    try:
        config_checks.validate(config)
        if FLAGS.platform == "cuda":
            _lower_for_cuda(config)
            return
        devices = aot.tpu_devices(FLAGS.topology)
    except (ValueError, aot.LibtpuBusy) as error:
        sys.exit(f"error: {error}")
    print(
        f"{config_flags.get_config_filename(FLAGS['config'])}: "
        f"{len(devices)} x {devices[0].device_kind} ({FLAGS.topology}), global batch "
        f"{config.batch_size}, dtype={config.dtype}, matmul_precision={config.matmul_precision}"
    )
    train, evaluation = aot.abstract_steps(config, devices, "tpu")
    start = time.perf_counter()
    compiled = train.lower().compile()
    print(f"train step compiled in {time.perf_counter() - start:.0f} s")
    _print_figures("train step", aot.compiled_figures(compiled, devices, config.batch_size))
    if FLAGS.eval:
        compiled = evaluation.lower().compile()
        figures = aot.compiled_figures(compiled, devices, config.eval_batch_size)
        _print_figures("eval step", figures)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main, flags_parser=config_checks.parse_flags)
