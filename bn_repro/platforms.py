"""Decisions that depend on the platform a step is compiled for, and only on that.

The target is the platform of the devices the mesh is built over (`platform_of`), or
one named explicitly (a TPU or GPU program lowered or compiled on a CPU host:
scripts/aot_compile.py, the tests). It is never `jax.default_backend()`: that is the
machine the code happens to run on, which is the CPU both when compiling ahead of time
for a TPU and when an accelerator failed to initialise and JAX fell back to CPU.

Two config keys:

* ``conv_impl``: how convolutions are computed in training steps. "xla" is XLA's
  convolution as written; "matmul" the same sums as matrix products
  (bn_repro/models/conv.py), faster on XLA:CPU; "auto" picks "matmul" exactly for a
  CPU target.
* ``matmul_precision``: JAX's precision for float32 convolutions and matrix products
  (`jax.default_matmul_precision`). "default" is one bfloat16 pass on TPU and TF32 on
  A100/H100-class GPUs, full float32 on CPU; "highest" is float32 everywhere (the
  paper's arithmetic); "high" is three bfloat16 passes on TPU (about float32's
  accuracy) and TF32 on GPU. docs/accelerators.md says more.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections

from bn_repro.config_checks import check_choice

CONV_IMPLS = ("auto", "xla", "matmul")
MATMUL_PRECISIONS = ("default", "high", "highest")
# Platform names a step can be lowered for; jax's devices say "gpu" for CUDA and ROCm.
ACCELERATORS = ("tpu", "cuda", "rocm", "gpu")


def platform_of(devices: Sequence[jax.Device]) -> str:
    """The one platform of ``devices`` ("cpu", "tpu", "gpu", ...)."""
    platforms = sorted({device.platform for device in devices})
    if len(platforms) != 1:
        raise ValueError(
            f"the mesh's devices are on platforms {platforms}; a mesh needs devices of one "
            "platform: pass devices=[...] of a single platform."
        )
    return platforms[0]


def uses_matmul_convs(config: ml_collections.ConfigDict, platform: str | None) -> bool:
    """Whether training-step convolutions are matrix products (``config.conv_impl``).

    ``platform`` None (a model built for inference or counting only) resolves "auto"
    to XLA's convolutions: the two forms differ only in training steps.
    """
    impl = config.conv_impl
    check_choice("conv_impl", impl, CONV_IMPLS)
    if impl == "auto":
        return platform == "cpu"
    return impl == "matmul"


def matmul_precision(config: ml_collections.ConfigDict) -> str | None:
    """``config.matmul_precision`` for `jax.default_matmul_precision` (None: JAX's default)."""
    precision = config.matmul_precision
    check_choice("matmul_precision", precision, MATMUL_PRECISIONS)
    return None if precision == "default" else precision


def with_matmul_precision(fn: Callable, config: ml_collections.ConfigDict) -> Callable:
    """``fn`` traced under ``config.matmul_precision``: every convolution and matrix
    product it (and its gradient) lowers carries that precision."""
    precision = matmul_precision(config)
    if precision is None:
        return fn

    @functools.wraps(fn)
    def traced_with_precision(*args: Any, **kwargs: Any) -> Any:
        with jax.default_matmul_precision(precision):
            return fn(*args, **kwargs)

    return traced_with_precision


def jit(fn: Callable, config: ml_collections.ConfigDict, **jit_kwargs: Any) -> Any:
    """`jax.jit` of ``fn`` under ``config.matmul_precision`` (`with_matmul_precision`)."""
    return jax.jit(with_matmul_precision(fn, config), **jit_kwargs)


def describe(config: ml_collections.ConfigDict, platform: str) -> str:
    """For the start-up line: what was chosen for the target ``platform``."""
    form = "matrix products" if uses_matmul_convs(config, platform) else "XLA convolutions"
    return (
        f"convolutions as {form} (conv_impl={config.conv_impl}), "
        f"matmul_precision={config.matmul_precision}, dtype={config.dtype}"
    )
