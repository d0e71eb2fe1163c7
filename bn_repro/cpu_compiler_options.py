"""XLA:CPU compiler options, apart from the mathematics they compile.

Each is measured on the 2-core development CPU (jax 0.10.2) and applies only when
JAX runs on CPU: on GPU and TPU every function gets None, XLA's defaults.
"""

from typing import Any

import jax
import ml_collections

# Initialisation runs once: unoptimised, the CPU-scale network's compiles in 7 s
# instead of 40 s on one core, its values within a float32 ulp.
INITIALISATION = {"xla_backend_optimization_level": 0}
# YNNPACK's fusions (jax 0.10.2's default) off: the fully-connected MNIST network's
# small products and reductions ran 1.3× faster as XLA's own kernels. Convolutional
# networks keep them: without, the CPU-scale Inception ran 0.8× and the 224 px one
# 0.39× as fast.
NO_YNNPACK = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def for_initialisation() -> dict[str, Any] | None:
    return INITIALISATION if _on_cpu() else None


def for_steps(config: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """Options for the training loop and the evaluation step of ``config.model``."""
    return NO_YNNPACK if _on_cpu() and config.model == "mlp" else None
