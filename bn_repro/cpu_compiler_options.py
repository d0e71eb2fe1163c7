"""XLA:CPU compiler options, apart from the mathematics they compile.

Each was kept because it measured faster (docs/measurements.md, with the commands)
and applies only to programs compiled for a CPU target: for "tpu", "cuda" or any
other platform every function gets None, XLA's defaults. The platform is the one the
program is compiled for (bn_repro/platforms.py), not the machine this runs on.
"""

from typing import Any

import ml_collections

# Initialisation runs once: unoptimised, it compiles several times faster, and its
# values stay within a float32 ulp.
INITIALISATION = {"xla_backend_optimization_level": 0}
# YNNPACK's fusions (jax 0.10.2's default) off: the fully-connected MNIST network's
# small products and reductions run faster as XLA's own kernels. Convolutional
# networks keep them: without, they run slower.
NO_YNNPACK = {"xla_cpu_experimental_ynn_fusion_type": ""}


def for_initialisation(platform: str) -> dict[str, Any] | None:
    return INITIALISATION if platform == "cpu" else None


def for_steps(config: ml_collections.ConfigDict, platform: str) -> dict[str, Any] | None:
    """Options for the training loop and the evaluation step of ``config.model``."""
    return NO_YNNPACK if platform == "cpu" and config.model == "mlp" else None
