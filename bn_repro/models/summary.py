"""Counting a model: parameters, multiply-accumulates per image, BN layers.

Used by scripts/model_summary.py (its docstring explains the counts) and the tests.
Nothing runs on a device: shapes come from `jax.eval_shape`.
"""

import math
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from bn_repro.batch_norm import BATCH_STATS

GRAYSCALE_DATASETS = ("mnist", "fashion_mnist")


def input_shape(config: ml_collections.ConfigDict, channels: int | None = None) -> tuple:
    """(height, width, channels) of one input image of ``config``."""
    if channels is None:
        channels = 1 if config.dataset in GRAYSCALE_DATASETS else 3
    return (config.image_size, config.image_size, channels)


def abstract_variables(model: Any, shape: tuple) -> Any:
    """The model's variables as shapes only: no parameter is allocated."""
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False)
    )


def _leaves(tree: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        yield tuple(str(getattr(k, "key", k)) for k in path), leaf


def parameter_counts(params: Any) -> dict[str, int]:
    """Parameters split by role.

    The classifier is the last top-level layer (Flax keeps definition order); BN's
    γ and β are the ``scale`` and ``bias`` of BatchNorm layers; every other
    ``kernel`` is a convolution or hidden fully-connected weight, every other
    ``bias`` that layer's bias (present only without BN).
    """
    classifier = list(params)[-1]
    counts = {"weights": 0, "biases": 0, "bn_gamma": 0, "bn_beta": 0, "classifier": 0}
    for path, leaf in _leaves(params):
        size = math.prod(leaf.shape)
        if path[0] == classifier:
            counts["classifier"] += size
        elif any(part.startswith("BatchNorm") for part in path):
            counts["bn_gamma" if path[-1] == "scale" else "bn_beta"] += size
        elif path[-1] == "kernel":
            counts["weights"] += size
        else:
            counts["biases"] += size
    counts["total"] = sum(counts.values())
    return counts


def count_bn_layers(variables: Any) -> int:
    """BatchNorm layers: each keeps one ``mean`` in ``batch_stats``."""
    return sum(path[-1] == "mean" for path, _ in _leaves(variables.get(BATCH_STATS, {})))


def forward_macs(model: nn.Module, variables: Any, shape: tuple) -> int:
    """Multiply-accumulates of one image's forward pass, from the layer shapes.

    Each output value of a layer with a ``kernel`` (a convolution with any number of
    groups, or a fully-connected layer) is a dot product over kernel size / output
    features weights. This counts the network's mathematics, whatever form a layer
    is computed in (e.g. bn_repro.models.conv's CPU matrix products).
    """
    total = 0

    def count(next_fun, args, kwargs, context):
        nonlocal total
        out = next_fun(*args, **kwargs)
        kernel = context.module.variables.get("params", {}).get("kernel")
        if context.method_name == "__call__" and hasattr(kernel, "shape"):
            total += math.prod(out.shape) * math.prod(kernel.shape[:-1])
        return out

    def forward(v, x):
        with nn.intercept_methods(count):
            return model.apply(v, x, train=False)

    jax.eval_shape(forward, variables, jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    return total


def xla_forward_flops(model: Any, variables: Any, shape: tuple) -> float:
    """XLA's cost analysis of one image's forward pass (all FLOPs, not only MACs)."""
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
        variables, jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    )
    return float(lowered.cost_analysis()["flops"])
