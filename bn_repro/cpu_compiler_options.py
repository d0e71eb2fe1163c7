"""XLA:CPU compiler options, apart from the mathematics they compile.

Each was kept because it measured faster (docs/measurements.md, with the commands)
and applies only when JAX runs on CPU: on GPU and TPU every function gets None,
XLA's defaults.
"""

from typing import Any

import jax
import ml_collections

# Initialisation runs once: unoptimised, it compiles several times faster, and its
# values stay within a float32 ulp.
INITIALISATION = {"xla_backend_optimization_level": 0}
# YNNPACK's fusions (jax 0.10.2's default) off: the fully-connected MNIST network's
# small products and reductions run faster as XLA's own kernels. Convolutional
# networks keep them: without, they run slower.
NO_YNNPACK = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def for_initialisation() -> dict[str, Any] | None:
    return INITIALISATION if _on_cpu() else None


def for_steps(config: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """Options for the training loop and the evaluation step of ``config.model``."""
    return NO_YNNPACK if _on_cpu() and config.model == "mlp" else None
